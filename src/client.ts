#!/usr/bin/env node
/**
 * The terminal chat client (the lesson's "try it with websocat", as a program of our own):
 *
 *   node dist/client.js ws://localhost:8080/ws alice
 *
 * It speaks the chat protocol over our own RFC 6455 client (connect() from src/websocket):
 *   1. connect, send the name as the first message (the lesson's exercise);
 *   2. the server answers with our join notice, or refuses the name (System error, then close 1008);
 *   3. then two loops run side by side, like the server's readPump and writePump:
 *        readLoop   prints every message the server sends;
 *        inputLoop  reads lines from stdin and sends them (or runs /who, /help, /quit);
 *   4. whichever ends first decides how we stop: the user leaving (close 1000, exit 0) or the
 *      server ending the connection (say why, exit 1).
 *
 * On a terminal there is a prompt and colour. With stdin piped (`printf 'hi\n' | wschat-client ...`)
 * every line is sent, and at the end of input the client waits for the server's answer to the
 * last line, then closes cleanly: nothing typed is lost.
 */
import { TokenBucket } from './chat/models/rate-limit';
import { DEFAULTS } from './config';
import { createInterface, type Interface } from 'node:readline';
import { parseInput } from './chat/models/protocol';
import { clientsUrl, parseArgs, USAGE } from './cli/args';
import {
  describeClose,
  describeConnectError,
  describeRefusal,
  formatMessage,
  formatNote,
  formatRaw,
  formatRoster,
  HELP_LINES,
  parseServerMessage,
  type ServerMessage,
  sanitize,
  wantColor,
  type RosterEntry,
} from './cli/format';
import { Screen } from './cli/screen';
import { CloseCode, connect, type CloseInfo, type WebSocketConnection } from './websocket';

/** Exit statuses (documented in USAGE). */
const EXIT = { ok: 0, connection: 1, usage: 2, refused: 3 } as const;

/** The handshake, the name's verdict and /who each get this long before we give up. */
const TIMEOUT_MS = 10_000;
/** At the end of piped input: the longest we wait for the server to answer our last message. */
const SETTLE_MS = 3_000;

/** What the whole client shares: the connection, who we are, where and how to print. */
interface Session {
  readonly conn: WebSocketConnection;
  readonly url: URL;
  readonly name: string;
  readonly screen: Screen;
  readonly color: boolean;
  /** Broadcasts we sent that the server has not answered yet (see readLoop). */
  unanswered: number;
  /** Called whenever `unanswered` drops to 0. */
  onAllAnswered: () => void;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.kind === 'help') {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  if (args.kind === 'usage-error') {
    process.stderr.write(`wschat-client: ${args.problem}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const { url, name } = args;
  // A prompt only when a person is typing and watching; colour whenever stdout is a terminal.
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const color = wantColor(process.stdout.isTTY, process.env);
  const screen = new Screen(process.stdout, process.stderr);
  const fail = (code: number, why: string): number => {
    screen.detach();
    screen.error(`wschat-client: ${why}`);
    return code;
  };
  // Ctrl-C (SIGINT) and a polite kill (SIGTERM). Until we are in the chat there is nothing to close
  // cleanly: stop at once, with the shell's status for "interrupted". Replaced below once we are in.
  let onInterrupt = (): void => process.exit(130);
  process.on('SIGINT', () => onInterrupt());
  process.on('SIGTERM', () => onInterrupt());

  let conn: WebSocketConnection;
  try {
    conn = await connect(url, { timeoutMs: TIMEOUT_MS });
  } catch (error) {
    return fail(EXIT.connection, describeConnectError(url, error));
  }

  const joined = await join(conn, name);
  if (!joined.ok) return fail(joined.code, joined.why);

  const session: Session = { conn, url, name, screen, color, unanswered: 0, onAllAnswered: () => {} };
  screen.print(formatMessage(joined.welcome, name, color));

  const rl = interactive
    ? createInterface({ input: process.stdin, output: process.stdout, prompt: `${name}> `, terminal: true })
    : createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity });
  // In the chat, Ctrl-C ends the input like /quit does (close 1000, exit 0); a second one does not wait.
  onInterrupt = (): void => {
    onInterrupt = () => process.exit(130);
    rl.close();
  };
  if (interactive) {
    screen.attach(rl);
    rl.on('SIGINT', () => onInterrupt()); // in raw mode Ctrl-C is a key press, which readline reports
    rl.prompt();
  }

  const reading = readLoop(session);
  const first = await Promise.race([
    reading.then(() => 'server'),
    inputLoop(session, rl, interactive).then(() => 'user'),
  ]);

  if (first === 'user') {
    // Piped: let the server answer what we sent, so the output shows all of it.
    if (!interactive && session.unanswered > 0) {
      const answered = new Promise<void>((resolve) => (session.onAllAnswered = resolve));
      await within(Promise.race([answered, conn.closed]), SETTLE_MS);
    }
    // We leave on our own, unless the server has begun closing meanwhile (then it has the last word).
    if (conn.readyState === 'open') {
      screen.detach();
      // RFC 6455 §7.1.2: start the closing handshake. The server reads frames in order, so everything
      // sent before this close frame reaches it; §7.1.1: then wait for the server to close TCP.
      conn.close(CloseCode.Normal);
      await reading;
      return EXIT.ok;
    }
  }

  // The server ended the connection: say how, and stop reading the keyboard.
  const code = fail(EXIT.connection, describeClose(await reading));
  rl.close();
  return code;
}

/**
 * Step 1 (the lesson's exercise): the first message is our name. The server's first answer is our
 * own join notice (nothing else can reach us before we are registered), or a System error saying
 * why it refused the name, followed by close 1008. Returns why we cannot go on, if we cannot.
 */
async function join(
  conn: WebSocketConnection,
  name: string,
): Promise<{ ok: true; welcome: ServerMessage } | { ok: false; code: number; why: string }> {
  conn.send(name);
  const first = await within(conn.read(), TIMEOUT_MS);
  if (first === undefined) {
    conn.terminate();
    return { ok: false, code: EXIT.connection, why: 'the server did not answer our name' };
  }
  if (first === null) return { ok: false, code: EXIT.connection, why: describeClose(await conn.closed) };
  const answer = first.binary ? undefined : parseServerMessage(first.data);
  if (answer?.type === 'join') return { ok: true, welcome: answer };
  if (answer?.type === 'error') {
    // Let the server's closing handshake (1008) finish before we go.
    if ((await within(conn.closed, SETTLE_MS)) === undefined) conn.terminate();
    return { ok: false, code: EXIT.refused, why: describeRefusal(name, answer.message) };
  }
  // Not the chat protocol: the URL probably points at something else (the /echo endpoint, say).
  conn.close(CloseCode.Normal);
  const what = first.binary ? `${first.data.length} binary bytes` : JSON.stringify(sanitize(first.data.slice(0, 80)));
  return { ok: false, code: EXIT.connection, why: `not a wschat server: it answered our name with ${what}` };
}

/**
 * Like the server's readPump: prints every message until the connection closes, and resolves with
 * how it closed. It also counts answers: every broadcast we send comes back to us (the Hub sends it
 * to everyone, us included) or is answered with an error (the rate limit), in order.
 */
async function readLoop(session: Session): Promise<CloseInfo> {
  const { conn, name } = session;
  for await (const m of conn) {
    if (m.binary) {
      session.screen.print(formatNote(`ignored a binary message (${m.data.length} bytes)`, session.color));
      continue;
    }
    const msg = parseServerMessage(m.data);
    const line = msg === undefined ? formatRaw(m.data, session.color) : formatMessage(msg, name, session.color);
    session.screen.print(line);
    const answersUs = msg !== undefined && ((msg.type === 'chat' && msg.user === name) || msg.type === 'error');
    if (answersUs && session.unanswered > 0 && --session.unanswered === 0) session.onAllAnswered();
  }
  return conn.closed;
}

/**
 * Like the server's writePump, for the keyboard: sends each line, runs commands. Resolves when the
 * user is done: /quit, Ctrl-C, Ctrl-D, or the end of piped input.
 */
async function inputLoop(session: Session, rl: Interface, interactive: boolean): Promise<void> {
  const { conn, screen, color } = session;
  const note = (text: string): void => screen.print(formatNote(text, color));
  // Keep to the server's default rate limit, so a long piped file arrives whole instead of being
  // refused from its 21st line on.
  const pace = new TokenBucket(DEFAULTS.rateLimitPerSec, DEFAULTS.rateLimitBurst, Date.now());
  for await (const line of rl) {
    const command = line.trim();
    if (command === '/quit') break;
    if (command === '/help') {
      for (const help of HELP_LINES) note(help);
    } else if (command === '/who') {
      await who(session);
    } else if (/^\/[a-z]/i.test(line)) {
      note(`unknown command ${command.split(/\s/)[0]} (try /help)`);
    } else if (command !== '') {
      // "//text" sends "/text"; everything else goes as it is, "@bob hi" included.
      const text = line.startsWith('//') ? line.slice(1) : line;
      while (!pace.take(Date.now())) await new Promise((r) => setTimeout(r, 1000 / DEFAULTS.rateLimitPerSec));
      if (parseInput(text).kind === 'chat') session.unanswered++;
      // Backpressure: when the socket's buffer is full, stop reading input until it drains.
      if (!conn.send(text)) await conn.drained();
      if (conn.readyState !== 'open') break; // the server is closing: readLoop will say why
    }
    if (interactive) rl.prompt();
  }
}

/** /who: asks GET /clients on the same host and port, prints the roster. */
async function who(session: Session): Promise<void> {
  const { screen, color, name } = session;
  const where = clientsUrl(session.url);
  try {
    const response = await fetch(where, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = (await response.json()) as { clients?: unknown };
    if (!Array.isArray(body.clients)) throw new Error('unexpected answer (no "clients" list)');
    const clients = body.clients.filter(
      (c: unknown): c is RosterEntry =>
        typeof c === 'object' && c !== null && typeof (c as RosterEntry).name === 'string',
    );
    screen.print(formatRoster(clients, name, color));
  } catch (error) {
    // fetch reports network failures as "fetch failed" with the real reason as the cause.
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    screen.print(formatNote(`/who: cannot read ${where.href}: ${cause ?? (error as Error).message}`, color));
  }
}

/** Resolves with the promise's value, or with undefined when it has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Exits once stdout and stderr have taken everything written (a pipe may still be draining). */
function exit(code: number): void {
  setTimeout(() => process.exit(code), 1_000).unref(); // a reader that stopped reading must not keep us
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

// A closed stdout (`wschat-client ... | head -1`) is not worth a crash.
process.stdout.on('error', () => {});

main().then(exit, (error: unknown) => {
  process.stderr.write(`wschat-client: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  exit(EXIT.connection);
});
