/**
 * How the terminal client shows things: one line per server message, with the local time, and
 * ANSI colours only when asked for. Pure functions (no I/O), so the tests can check exact strings.
 *
 *   12:00:01 --> alice joined the chat        12:00:03 [private] bob → you: psst
 *   12:00:02 alice: hello                     12:00:04 error: carol is not online
 *   12:00:05 #rust bob: ship it               12:00:06 <-- bob left #rust
 *
 * The lobby's messages are unadorned, as in the lesson; other rooms' carry their name.
 */
import type { MessageType } from '../chat/models/message';
import { LOBBY } from '../chat/models/protocol';
import type { CloseInfo } from '../websocket';
import { CloseCode, HandshakeError } from '../websocket';

/** A message as the server sends it: what this client shows. */
export interface ServerMessage {
  readonly type: MessageType;
  readonly user: string;
  readonly message: string;
  readonly to?: string;
  readonly time: string;
  /** Where it is stored: a room, or an inbox (`@name`). */
  readonly stream?: string;
  /** Sent as history (from before we joined), not live. */
  readonly history?: boolean;
}

// ---- colours ----

/** https://no-color.org: colours only on a terminal, and never when NO_COLOR is set (non-empty). */
export function wantColor(isTTY: boolean | undefined, env: Readonly<Record<string, string | undefined>>): boolean {
  return isTTY === true && (env.NO_COLOR ?? '') === '';
}

/** SGR codes (ECMA-48): [switch on, switch off]; the "off" codes reset only that attribute. */
const SGR = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  magenta: [35, 39],
  cyan: [36, 39],
} as const;

export type Colour = keyof typeof SGR;

/** Wraps text in a colour when colours are on; returns it unchanged when they are off. */
export type Paint = (colour: Colour, text: string) => string;

export function painter(color: boolean): Paint {
  if (!color) return (_colour, text) => text;
  return (colour, text) => `\x1b[${SGR[colour][0]}m${text}\x1b[${SGR[colour][1]}m`;
}

// ---- pieces ----

/** HH:MM:SS in the local time zone. */
export function clockTime(date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/**
 * Other people's text goes to our terminal: control characters in it could move the cursor,
 * clear the screen or fake a second line ("\n12:00:00 System: ..."). Show them as escapes instead.
 * Tabs are harmless and kept.
 */
export function sanitize(text: string): string {
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

const TYPES: ReadonlySet<MessageType> = new Set<MessageType>(['join', 'leave', 'chat', 'private', 'error']);

/** A server text frame as a ServerMessage, or undefined if it is not one (we show those raw). */
export function parseServerMessage(text: string): ServerMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  if (typeof m.type !== 'string' || !TYPES.has(m.type as MessageType)) return undefined;
  if (typeof m.user !== 'string' || typeof m.message !== 'string') return undefined;
  return {
    type: m.type as MessageType,
    user: m.user,
    message: m.message,
    ...(typeof m.to === 'string' ? { to: m.to } : {}),
    time: typeof m.time === 'string' ? m.time : '',
    ...(typeof m.stream === 'string' ? { stream: m.stream } : {}),
    ...(m.history === true ? { history: true } : {}),
  };
}

/** The message's own time if it has a valid one, else now. */
function timeOf(m: ServerMessage, now: Date): Date {
  const t = new Date(m.time);
  return Number.isNaN(t.getTime()) ? now : t;
}

// ---- lines ----

/** One server message as one line. `me` is our own name: private messages to us say "you". */
export function formatMessage(m: ServerMessage, me: string, color: boolean, now = new Date()): string {
  const paint = painter(color);
  const time = paint('dim', clockTime(timeOf(m, now)));
  const text = sanitize(m.message);
  const who = (name: string): string => paint('bold', name === me ? paint('cyan', sanitize(name)) : sanitize(name));
  switch (m.type) {
    case 'join':
      return `${time} ${paint('green', `--> ${text}`)}`;
    case 'leave':
      return `${time} ${paint('yellow', `<-- ${text}`)}`;
    case 'error':
      return `${time} ${paint('red', `error: ${text}`)}`;
    case 'private': {
      const to = m.to === undefined || m.to === me ? 'you' : sanitize(m.to);
      return `${time} ${paint('magenta', '[private]')} ${who(m.user)} → ${to}: ${text}`;
    }
    case 'chat': {
      const room = m.stream === undefined || m.stream === LOBBY ? '' : `${paint('blue', `#${sanitize(m.stream)}`)} `;
      return `${time} ${room}${who(m.user)}: ${text}`;
    }
  }
}

/** A frame that is not a chat message (another server, a newer protocol): shown as it came. */
export function formatRaw(text: string, color: boolean, now = new Date()): string {
  const paint = painter(color);
  return `${paint('dim', clockTime(now))} ${paint('dim', '?')} ${sanitize(text)}`;
}

/** Something the client itself says (command output): no sender, dimmed. */
export function formatNote(text: string, color: boolean, now = new Date()): string {
  const paint = painter(color);
  return `${paint('dim', clockTime(now))} ${paint('dim', `-- ${text}`)}`;
}

/** One row of GET /clients. */
export interface RosterEntry {
  readonly name: string;
  readonly connectedAt: string;
}

/**
 * /who: "online (2): bob, alice (you)", or for a room "in #rust (2): ...", in the server's order (join
 * order).
 */
export function formatRoster(
  clients: readonly RosterEntry[],
  me: string,
  color: boolean,
  now = new Date(),
  room?: string,
): string {
  const names = clients.map((c) => (c.name === me ? `${sanitize(c.name)} (you)` : sanitize(c.name)));
  const label = room === undefined ? 'online' : `in #${room}`;
  return formatNote(`${label} (${clients.length}): ${names.length > 0 ? names.join(', ') : 'nobody'}`, color, now);
}

/** One row of GET /rooms. */
export interface RoomRow {
  readonly room: string;
  readonly members: number;
}

/** /rooms: "rooms (3): lobby 4 (here), #rust 2 (joined), #ops 0", in the server's order. */
export function formatRooms(
  rows: readonly RoomRow[],
  mine: readonly string[],
  current: string,
  color: boolean,
  now = new Date(),
): string {
  const list = rows.map((r) => {
    const mark = r.room === current ? ' (here)' : mine.includes(r.room) ? ' (joined)' : '';
    return `${r.room === LOBBY ? LOBBY : `#${sanitize(r.room)}`} ${r.members}${mark}`;
  });
  return formatNote(`rooms (${rows.length}): ${list.join(', ')}`, color, now);
}

export const HELP_LINES: readonly string[] = [
  'text          send to the current room',
  '@user text    private message to user',
  '/join #room   join a room and talk there',
  '/switch #room talk in another room you are in',
  '/leave #room  leave a room (the current one without #room)',
  '/rooms        the rooms on the server',
  '/who [#room]  who is in this room (in the lobby: who is online)',
  '/help         this list',
  '/quit         leave (also Ctrl-C, Ctrl-D)',
  '//text        send a line that starts with "/"',
];

// ---- errors (one line each, for stderr) ----

/** Why connect() failed, for a person: "cannot connect to ws://...: connection refused". */
export function describeConnectError(url: URL, error: unknown): string {
  const where = `cannot connect to ${url.href}`;
  if (error instanceof HandshakeError) {
    if (error.status === undefined || error.status === 101) return `${where}: ${error.message}`;
    const body = sanitize((error.body ?? '').trim()).slice(0, 200);
    return `${where}: the server refused the WebSocket handshake: ${error.status}${body === '' ? '' : ` ${body}`}`;
  }
  // With several addresses for a host, Node reports an AggregateError that holds one error per address.
  const first = error instanceof AggregateError ? (error.errors[0] as unknown) : error;
  const code = (first as NodeJS.ErrnoException | undefined)?.code;
  const because: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host not found (DNS lookup failed)',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
  };
  if (code !== undefined && because[code] !== undefined) return `${where}: ${because[code]}`;
  return `${where}: ${error instanceof Error ? error.message : String(error)}`;
}

/** The server refused our name: it says why in a System error message before closing with 1008. */
export function describeRefusal(name: string, reason: string): string {
  return `the server refused the name ${JSON.stringify(name)}: ${sanitize(reason)}`;
}

/** The connection ended without us asking: say why, with the RFC 6455 §7.4.1 code and the reason. */
export function describeClose(info: CloseInfo): string {
  const detail = (text: string): string => `(${info.code}${text === '' ? '' : `: ${text}`})`;
  switch (info.code) {
    case CloseCode.GoingAway:
      return `the server is going away ${detail(sanitize(info.reason))}`;
    case CloseCode.Abnormal:
      // §7.1.5: 1006 means no close frame arrived: the TCP connection just went away.
      return `connection lost ${detail(info.reason === '' ? 'no close frame' : sanitize(info.reason))}`;
    case CloseCode.NoStatus:
      return `the server closed the connection ${detail('no status code')}`;
    default:
      return `the server closed the connection ${detail(sanitize(info.reason))}`;
  }
}
