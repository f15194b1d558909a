/**
 * The terminal client's command line: `wschat-client ws://host:port/ws NAME` (or wss://).
 * Parsing is separate from main() so it can be tested without starting a process.
 */

export const USAGE = `usage: wschat-client ws://HOST:PORT/ws NAME
       wschat-client wss://HOST:PORT/ws NAME

Joins the chat at the given WebSocket URL as NAME, in the lobby (wss://: over
TLS; a certificate your system does not trust can be added with
NODE_EXTRA_CA_CERTS=cert.pem).
  Type a line to send it to the current room, "@user text" for a private
  message. Messages of other rooms show the room: "#rust bob: hi".
  Commands: /join #room, /switch #room, /leave [#room], /rooms,
  /who [#room], /help, /quit (or Ctrl-C, Ctrl-D).
  With stdin not a terminal (a pipe, a file), every line is sent, at the
  server's default rate, and the client closes the connection cleanly once
  the server has acknowledged them all.
  A connection that drops (no close from the server) is resumed by itself:
  nothing is shown twice or missed, nothing typed is lost or sent twice.

Exit status: 0 when you quit, 1 when the connection failed, the server
closed it, or it could not be resumed, 2 for a usage error, 3 when the
server refused the name.
Colours only on a terminal; NO_COLOR=1 turns them off.
`;

export type Args =
  | { readonly kind: 'run'; readonly url: URL; readonly name: string }
  | { readonly kind: 'help' }
  | { readonly kind: 'usage-error'; readonly problem: string };

export function parseArgs(argv: readonly string[]): Args {
  if (argv.includes('-h') || argv.includes('--help')) return { kind: 'help' };
  if (argv.length !== 2) {
    return { kind: 'usage-error', problem: argv.length < 2 ? 'missing arguments' : 'too many arguments' };
  }
  const [rawUrl, name] = argv as [string, string];
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return { kind: 'usage-error', problem: `not a URL: ${rawUrl}` };
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    return { kind: 'usage-error', problem: `not a ws:// or wss:// URL: ${rawUrl}` };
  }
  // The name is the server's to judge (nameProblem): it explains a refusal better than we could.
  return { kind: 'run', url, name };
}

/**
 * Where `/who` asks: the HTTP endpoint next to the WebSocket one, same host and port (`?room=` for one
 * room). Resolved relative to the ws URL, so ws://h:p/ws gives http://h:p/clients (wss:// gives https://)
 * and a server mounted under a prefix (ws://h:p/chat/ws) gives http://h:p/chat/clients.
 */
export function clientsUrl(wsUrl: URL, room?: string): URL {
  const url = beside(wsUrl, 'clients');
  if (room !== undefined) url.searchParams.set('room', room);
  return url;
}

/** Where `/rooms` asks: GET rooms next to the WebSocket endpoint. */
export function roomsUrl(wsUrl: URL): URL {
  return beside(wsUrl, 'rooms');
}

function beside(wsUrl: URL, path: string): URL {
  const http = new URL(wsUrl.href.replace(/^ws(s?):/, 'http$1:'));
  http.search = '';
  http.hash = '';
  return new URL(path, http);
}
