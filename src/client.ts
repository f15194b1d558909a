#!/usr/bin/env node
/**
 * The terminal chat client (the lesson's "try it with websocat", as a program of our own):
 *
 *   node dist/client.js ws://localhost:8080/ws alice
 *
 * It speaks protocol v2 over our own RFC 6455 client (connect() from src/websocket):
 *   1. connect and say hello; the server answers with a welcome (a token, our streams and their
 *      positions), or refuses the name (an error, then close 1008);
 *   2. then loops run side by side, like the server's readPump and writePump:
 *        readLoop   prints what the server sends, each stored message once;
 *        inputLoop  turns typed lines into requests (or runs /join, /who, /quit...);
 *        writer     sends the requests, paced to the server's default rate limit;
 *   3. a connection that drops without a close from the server (a network cut) is resumed: backoff
 *      with jitter, hello with the token and the last positions, then whatever was not acknowledged
 *      is sent again. Nothing is shown twice or missed, nothing typed is lost or doubled;
 *   4. whichever ends first decides how we stop: the user leaving (close 1000, exit 0), or the server
 *      closing the connection, or our giving up on resuming it (say why, exit 1).
 *
 * On a terminal there is a prompt (with the current room) and colour. With stdin piped every line is
 * sent, and at the end of input the client waits until the server has acknowledged them all, then
 * closes cleanly: nothing typed is lost.
 */
import { createInterface, type Interface } from 'node:readline';
import { TokenBucket } from './chat/models/rate-limit';
import { LOBBY } from './chat/models/protocol';
import { clientsUrl, parseArgs, roomsUrl, USAGE } from './cli/args';
import { parseLine, type Command } from './cli/commands';
import { Conversation, type Outgoing, type Shown } from './cli/conversation';
import {
  describeClose,
  describeConnectError,
  describeRefusal,
  formatMessage,
  formatNote,
  formatRaw,
  formatRooms,
  formatRoster,
  HELP_LINES,
  sanitize,
  wantColor,
  type RoomRow,
  type RosterEntry,
} from './cli/format';
import { Screen } from './cli/screen';
import { DEFAULTS } from './config';
import { Backoff } from './redis/backoff';
import { CloseCode, connect, type CloseInfo, type WebSocketConnection } from './websocket';

/** Exit statuses (documented in USAGE). */
const EXIT = { ok: 0, connection: 1, usage: 2, refused: 3 } as const;

/** The handshake, the hello's answer, /join, /who each get this long before we give up. */
const TIMEOUT_MS = 10_000;
/** At the end of piped input: the longest we wait for an answer while the server answers nothing. */
const SETTLE_MS = 3_000;
/** After a drop: how long we keep trying to resume before we give up. */
const RESUME_FOR_MS = 60_000;
/** Our own heartbeat: a server gone without a FIN (a dead network) is noticed, and resumed. */
const HEARTBEAT = { pingIntervalMs: 20_000, pongTimeoutMs: 30_000 };
/** Lines said and not yet acknowledged, at most: reading input waits beyond it (backpressure). */
const MAX_UNACKED = 64;
/** After a rate-limit refusal, the wait before what was not acknowledged is sent again. */
const RATE_PAUSE_MS = 1_000;
/**
 * A little under the server's default rate limit: the server measures arrivals, and network jitter can
 * bring two lines closer together than we sent them. A refusal names no line (its cid is not read), so
 * its resend would come after lines sent later.
 */
const PACE = { perSec: DEFAULTS.rateLimitPerSec * 0.9, burst: DEFAULTS.rateLimitBurst - 2 };

/** How the session ended: the exit status and why; null when we left on our own. */
type Outcome = { readonly code: number; readonly why: string } | null;

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

  const convo = new Conversation(name);
  const opened = await open(url, convo);
  if (!opened.ok) return fail(opened.code, opened.why);

  const rl = interactive
    ? createInterface({ input: process.stdin, output: process.stdout, prompt: promptOf(convo), terminal: true })
    : createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity });
  const session = new Session(url, convo, screen, color, opened.conn, () => {
    if (interactive) rl.setPrompt(promptOf(convo));
  });
  session.show(opened.shown);
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

  const reading = session.run();
  void session.writer();
  const first = await Promise.race([
    reading.then(() => 'server' as const),
    inputLoop(session, rl, interactive).then(() => 'user' as const),
  ]);
  let outcome: Outcome;
  if (first === 'user') {
    // Piped: everything said is acknowledged before we go, so nothing typed is lost.
    if (!interactive) await session.settle();
    screen.detach();
    outcome = await session.leave(reading);
  } else {
    outcome = await reading;
  }
  rl.close();
  return outcome === null ? EXIT.ok : fail(outcome.code, outcome.why);
}

function promptOf(convo: Conversation): string {
  return `${convo.name}${convo.current === LOBBY ? '' : ` #${convo.current}`}> `;
}

type Opened =
  | { readonly ok: true; readonly conn: WebSocketConnection; readonly shown: Shown[] }
  | { readonly ok: false; readonly code: number; readonly why: string };

/**
 * Connects and says hello (with the token and positions when resuming). The server's first answer is
 * the welcome, or an error saying why it refused the name, followed by close 1008.
 */
async function open(url: URL, convo: Conversation): Promise<Opened> {
  let conn: WebSocketConnection;
  try {
    conn = await connect(url, { timeoutMs: TIMEOUT_MS, ...HEARTBEAT });
  } catch (error) {
    return { ok: false, code: EXIT.connection, why: describeConnectError(url, error) };
  }
  conn.send(convo.hello());
  const first = await within(conn.read(), TIMEOUT_MS);
  if (first === undefined) {
    conn.terminate();
    return { ok: false, code: EXIT.connection, why: 'the server did not answer our hello' };
  }
  if (first === null) return { ok: false, code: EXIT.connection, why: describeClose(await conn.closed) };
  const answer = first.binary ? undefined : parseObject(first.data);
  if (answer?.type === 'welcome') return { ok: true, conn, shown: convo.receive(answer).shown };
  if (answer?.type === 'error' && typeof answer.message === 'string') {
    // Let the server's closing handshake (1008) finish before we go.
    if ((await within(conn.closed, SETTLE_MS)) === undefined) conn.terminate();
    return { ok: false, code: EXIT.refused, why: describeRefusal(convo.name, answer.message) };
  }
  // Not the chat: the URL probably points at something else (the /echo endpoint, say).
  conn.close(CloseCode.Normal);
  const what = first.binary ? `${first.data.length} binary bytes` : JSON.stringify(sanitize(first.data.slice(0, 80)));
  return { ok: false, code: EXIT.connection, why: `not a wschat server: it answered our hello with ${what}` };
}

/** One chat session across connections: what is read, what is written, the resumes in between. */
class Session {
  /** Set once the session is over for good (we left, the server closed it, we gave up). */
  ended = false;
  private conn: WebSocketConnection | null;
  /** Requests to write, each for the connection it was meant for. */
  private queue: { readonly conn: WebSocketConnection; readonly json: string }[] = [];
  private readonly changed = new Signal();
  /** Join and leave requests waiting for their answer, by cid. */
  private readonly waiters = new Map<string, () => void>();
  private leaving = false;
  /** We started the closing handshake (rather than the server). */
  private closedByUs = false;
  private throttle: NodeJS.Timeout | undefined;
  /** Cuts the wait before the next resume attempt short (we are leaving). */
  private wake: (() => void) | null = null;

  constructor(
    readonly url: URL,
    readonly convo: Conversation,
    private readonly screen: Screen,
    readonly color: boolean,
    conn: WebSocketConnection,
    private readonly promptChanged: () => void,
  ) {
    this.conn = conn;
  }

  show(items: readonly Shown[]): void {
    for (const item of items) this.print(line(item, this.convo.name, this.color));
  }

  /** A line for stdout, below which the prompt (with the current room) is drawn again. */
  print(text: string): void {
    this.promptChanged();
    this.screen.print(text);
  }

  note(text: string): void {
    this.show([{ kind: 'note', text }]);
  }

  /** Reads until the session ends, resuming after drops; resolves with how it ended. */
  async run(): Promise<Outcome> {
    for (;;) {
      const info = await this.readLoop(this.conn!);
      this.conn = null;
      for (const cid of this.convo.dropRequests()) this.settled(cid);
      this.changed.notify();
      if (this.closedByUs) return this.end(null);
      // A close frame is the server's decision (shutting down, a flood, replaced by another login): we stop.
      if (info.code !== CloseCode.Abnormal) return this.end({ code: EXIT.connection, why: describeClose(info) });
      if (this.leaving) return this.end(null);
      this.note(`${describeClose(info)}: resuming…`);
      const failed = await this.resume();
      if (failed !== undefined) return this.end(failed);
      this.note('resumed');
    }
  }

  /** Like the server's readPump: everything the server sends, shown, until the connection ends. */
  private async readLoop(conn: WebSocketConnection): Promise<CloseInfo> {
    for await (const m of conn) {
      if (m.binary) {
        this.note(`ignored a binary message (${m.data.length} bytes)`);
        continue;
      }
      const json = parseObject(m.data);
      if (json === undefined) {
        this.show([{ kind: 'raw', text: m.data }]);
        continue;
      }
      const r = this.convo.receive(json);
      this.show(r.shown);
      for (const cid of r.settled) this.settled(cid);
      if (r.throttled) this.slowDown();
      this.changed.notify();
    }
    return conn.closed;
  }

  /**
   * Connects again, with backoff and jitter, until a welcome (undefined), a refusal of the name, our
   * leaving (null) or RESUME_FOR_MS without success.
   */
  private async resume(): Promise<Outcome | undefined> {
    const backoff = new Backoff({ minDelayMs: 250, maxDelayMs: 8_000 });
    const deadline = Date.now() + RESUME_FOR_MS;
    let last = '';
    for (;;) {
      const delay = backoff.next();
      if (Date.now() + delay > deadline) {
        const why = `connection lost, not resumed within ${RESUME_FOR_MS / 1000} s (${last})`;
        return { code: EXIT.connection, why };
      }
      await this.pause(delay);
      if (this.leaving) return null;
      const opened = await open(this.url, this.convo);
      if (opened.ok) {
        this.conn = opened.conn;
        this.show(opened.shown);
        if (this.leaving) {
          // We were told to go while this attempt ran: go politely.
          this.closedByUs = true;
          opened.conn.close(CloseCode.Normal);
          await opened.conn.closed;
          return null;
        }
        this.resend();
        return undefined;
      }
      if (opened.code === EXIT.refused) return opened; // the name is someone else's now
      last = opened.why;
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  /** What was not acknowledged goes out again, in order, on the connection we have now. */
  private resend(): void {
    const conn = this.conn;
    this.queue = conn === null ? [] : [...this.convo.outbox.values()].map((o) => ({ conn, json: o.json }));
    this.changed.notify();
  }

  /** A rate-limit refusal names no message: after a pause, resend whatever is unacknowledged. */
  private slowDown(): void {
    if (this.throttle !== undefined) return;
    this.throttle = setTimeout(() => {
      this.throttle = undefined;
      this.resend(); // the server ignores a cid it has stored already
    }, RATE_PAUSE_MS);
  }

  private end(outcome: Outcome): Outcome {
    this.ended = true;
    clearTimeout(this.throttle);
    this.changed.notify();
    return outcome;
  }

  private settled(cid: string): void {
    this.waiters.get(cid)?.();
    this.waiters.delete(cid);
  }

  /**
   * Like the server's writePump: writes queued requests in order, keeping to the server's default rate
   * limit so a long piped file arrives whole instead of being refused from its 21st line on.
   */
  async writer(): Promise<void> {
    const pace = new TokenBucket(PACE.perSec, PACE.burst, Date.now());
    while (!this.ended) {
      const item = this.queue[0];
      if (item === undefined) {
        await this.changed.wait();
      } else if (item.conn !== this.conn || item.conn.readyState !== 'open') {
        this.queue.shift(); // meant for a connection that is gone: the next welcome brings it back
      } else if (!pace.take(Date.now())) {
        await new Promise((resolve) => setTimeout(resolve, 1000 / PACE.perSec));
      } else {
        this.queue.shift();
        // Backpressure: when the socket's buffer is full, wait until it drains.
        if (!item.conn.send(item.json)) await item.conn.drained();
        this.changed.notify();
      }
    }
  }

  /** A request for the writer, on the connection we have (none while resuming: the outbox keeps lines). */
  private enqueue(out: Outgoing): void {
    if (this.conn !== null) this.queue.push({ conn: this.conn, json: out.json });
    this.changed.notify();
  }

  /** Says a line (to the current room, or privately); waits while too much is unacknowledged. */
  async say(text: string): Promise<void> {
    while (this.convo.outbox.size >= MAX_UNACKED && !this.ended) await this.changed.wait();
    this.enqueue(this.convo.say(text));
  }

  /** /join and /leave: sent, then we wait for the answer, so the next line goes where it should. */
  async ask(type: 'join' | 'leave', room: string): Promise<void> {
    if (this.conn === null) {
      this.note(`not connected: /${type} #${room} was not sent`);
      return;
    }
    const out = this.convo.request(type, room);
    const answered = new Promise<true>((resolve) => this.waiters.set(out.cid, () => resolve(true)));
    this.enqueue(out);
    if ((await within(answered, TIMEOUT_MS)) === undefined) this.note(`no answer to /${type} #${room}`);
    this.waiters.delete(out.cid);
  }

  /** At the end of piped input: until everything said is acknowledged, or the server stops answering. */
  async settle(): Promise<void> {
    while (this.convo.outbox.size > 0 && !this.ended) {
      const moved = await within(this.changed.wait().then(() => true), SETTLE_MS);
      if (moved === undefined && this.conn !== null) return;
    }
  }

  /**
   * We are done: after what is queued, close 1000 (RFC 6455 §7.1.2; the server reads frames in order, so
   * all of it reaches it), and stop resuming. The server may have begun closing first: then it has the
   * last word.
   */
  async leave(reading: Promise<Outcome>): Promise<Outcome> {
    while (this.queue.length > 0 && this.conn?.readyState === 'open') await this.changed.wait();
    this.leaving = true;
    this.wake?.();
    const conn = this.conn;
    if (conn !== null && conn.readyState === 'open') {
      this.closedByUs = true;
      conn.close(CloseCode.Normal);
    }
    this.changed.notify();
    return reading;
  }
}

/** Wakes everyone waiting when something changed: an answer, a write, a connection, the end. */
class Signal {
  private waiting: (() => void)[] = [];

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  notify(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }
}

/**
 * Reads the keyboard (or the piped file): sends each line, runs commands. Resolves when the user is
 * done: /quit, Ctrl-C, Ctrl-D, or the end of piped input.
 */
async function inputLoop(session: Session, rl: Interface, interactive: boolean): Promise<void> {
  for await (const raw of rl) {
    const command = parseLine(raw);
    if (command.kind === 'quit') break;
    await perform(session, command);
    if (session.ended) break; // the server has closed: the reading side says why
    if (interactive) rl.prompt();
  }
}

async function perform(session: Session, command: Exclude<Command, { kind: 'quit' }>): Promise<void> {
  const { convo } = session;
  switch (command.kind) {
    case 'nothing':
      return;
    case 'problem':
      return session.note(command.text);
    case 'help':
      for (const help of HELP_LINES) session.note(help);
      return;
    case 'say':
      return session.say(command.text);
    case 'who':
      return who(session, command.room ?? (convo.current === LOBBY ? undefined : convo.current));
    case 'rooms':
      return rooms(session);
    case 'join':
    case 'switch':
      if (convo.rooms.includes(command.room)) {
        convo.current = command.room;
        return session.note(`talking in ${command.room === LOBBY ? 'the lobby' : `#${command.room}`}`);
      }
      if (command.kind === 'switch') return session.note(`you are not in #${command.room}: /join #${command.room}`);
      return session.ask('join', command.room);
    case 'leave': {
      const room = command.room ?? convo.current;
      if (room === LOBBY) return session.note('everyone is in the lobby: /quit leaves the chat');
      if (!convo.rooms.includes(room)) return session.note(`you are not in #${room}`);
      return session.ask('leave', room);
    }
  }
}

/** /who: GET /clients (the lobby: everyone online) or /clients?room=, on the same host and port. */
async function who(session: Session, room: string | undefined): Promise<void> {
  const body = await getJson(session, '/who', clientsUrl(session.url, room));
  if (body === undefined) return;
  if (!Array.isArray(body.clients)) return session.note('/who: unexpected answer (no "clients" list)');
  const clients = body.clients.filter(
    (c: unknown): c is RosterEntry =>
      typeof c === 'object' && c !== null && typeof (c as RosterEntry).name === 'string',
  );
  session.print(formatRoster(clients, session.convo.name, session.color, new Date(), room));
}

/** /rooms: GET /rooms. */
async function rooms(session: Session): Promise<void> {
  const body = await getJson(session, '/rooms', roomsUrl(session.url));
  if (body === undefined) return;
  if (!Array.isArray(body.rooms)) return session.note('/rooms: unexpected answer (no "rooms" list)');
  const rows = body.rooms.filter(
    (r: unknown): r is RoomRow => typeof r === 'object' && r !== null && typeof (r as RoomRow).room === 'string',
  );
  const { convo } = session;
  session.print(formatRooms(rows, convo.rooms, convo.current, session.color));
}

async function getJson(session: Session, what: string, where: URL): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(where, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (response.status === 404) throw new Error('no such room');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return (await response.json()) as Record<string, unknown>;
  } catch (error) {
    // fetch reports network failures as "fetch failed" with the real reason as the cause.
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    session.note(`${what}: cannot read ${where.href}: ${cause ?? (error as Error).message}`);
    return undefined;
  }
}

function line(item: Shown, me: string, color: boolean): string {
  switch (item.kind) {
    case 'message':
      return formatMessage(item.message, me, color);
    case 'note':
      return formatNote(item.text, color);
    case 'error':
      return formatMessage({ type: 'error', user: 'System', message: item.text, time: item.time ?? '' }, me, color);
    case 'raw':
      return formatRaw(item.text, color);
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    const object = typeof value === 'object' && value !== null && !Array.isArray(value);
    return object ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
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
