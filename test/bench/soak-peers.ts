/**
 * The soak's population: well-behaved chatters (whose every message is accounted for by the Ledger)
 * and misbehaving peers - flooders, slow readers, garbage senders, abrupt disconnects. Chatters use our
 * own connect(); the misbehaving ones that need to stop mid-byte use a raw socket (after the product's
 * handshake, raw-websocket.ts) and our own codec.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { clientRequest, newClientKey } from '../../src/websocket/handshake';
import { connect, encodeFrame, Opcode, type WebSocketConnection } from '../../src/websocket';
import type { Rng } from '../helpers/rng';
import { openRawWebSocket } from './raw-websocket';
import type { Ledger, ReceiverLog, SenderLog } from './soak-ledger';
import { settlesWithin, sleep } from './time';

// ---- shared state ----

export interface Counters {
  sessions: number;
  leaves: number;
  broadcastsSent: number;
  privatesSent: number;
  /** Well-behaved clients the server closed on its own: there should be none. */
  unexpectedDrops: number;
  /** System errors sent to well-behaved clients (rate limit, "not online"): there should be none. */
  chatErrors: number;
  connectFailures: number;
  flood: { started: number; closed1008: number; other: number };
  slow: { started: number; dropped: number; notDropped: number };
  garbage: { started: number; closed: number; lingering: number };
  abrupt: { started: number };
  examples: string[];
}

export function newCounters(): Counters {
  return {
    sessions: 0,
    leaves: 0,
    broadcastsSent: 0,
    privatesSent: 0,
    unexpectedDrops: 0,
    chatErrors: 0,
    connectFailures: 0,
    flood: { started: 0, closed1008: 0, other: 0 },
    slow: { started: 0, dropped: 0, notDropped: 0 },
    garbage: { started: 0, closed: 0, lingering: 0 },
    abrupt: { started: 0 },
    examples: [],
  };
}

export interface SoakContext {
  readonly port: number;
  readonly url: string;
  readonly rng: Rng;
  readonly ledger: Ledger;
  readonly counters: Counters;
  /** Broadcasts per second per chatter. */
  readonly rate: number;
  /** Share of messages that are private (to a stayer). */
  readonly privateShare: number;
  /** Names of stayers that have joined: the only addressees of private messages. */
  readonly stayers: Set<string>;
  /** A sender's log is settled this long after its session ended. */
  readonly finalGraceMs: number;
  /** True once the run is over: no new sessions, no more sending. */
  stopped(): boolean;
  /** Resolves when everything is settled and the chatters may close. */
  readonly released: Promise<void>;
  now(): number;
  /** Pending sender settlements, run early at the end of the run. */
  readonly pendingSettles: Set<() => void>;
}

function note(ctx: SoakContext, text: string): void {
  if (ctx.counters.examples.length < 20) ctx.counters.examples.push(text);
}

function settleLater(ctx: SoakContext, fn: () => void): void {
  const run = (): void => {
    clearTimeout(timer);
    ctx.pendingSettles.delete(run);
    fn();
  };
  const timer = setTimeout(run, ctx.finalGraceMs);
  ctx.pendingSettles.add(run);
}

// ---- well-behaved chatters ----

export interface ChatterRole {
  readonly index: number;
  /** Never leaves (and receives private messages). */
  readonly stayer: boolean;
}

/**
 * A chatter: joins under a fresh name per session, broadcasts its sequence numbers at `rate` per
 * second (some private messages to stayers in between), and - unless it is a stayer - leaves after
 * 10-60 s and comes back under a new name.
 */
export async function chatter(ctx: SoakContext, role: ChatterRole): Promise<void> {
  for (let gen = 0; !ctx.stopped(); gen++) {
    await session(ctx, { name: `c${role.index}.${gen}`, stayer: role.stayer });
    if (role.stayer || ctx.stopped()) return;
    await sleep(1_000 + ctx.rng.int(4_000));
  }
}

interface Session {
  readonly name: string;
  readonly stayer: boolean;
}

async function session(ctx: SoakContext, who: Session): Promise<void> {
  let conn: WebSocketConnection;
  try {
    conn = await connect(ctx.url, { timeoutMs: 10_000 });
  } catch (error) {
    ctx.counters.connectFailures++;
    note(ctx, `${who.name}: connect failed: ${(error as Error).message}`);
    return;
  }
  ctx.counters.sessions++;
  const { sender, receiver } = ctx.ledger.open(who.name);
  let onJoined!: () => void;
  const joined = new Promise<void>((r) => (onJoined = r));
  const reading = readMessages(ctx, conn, receiver, () => {
    if (who.stayer) ctx.stayers.add(who.name);
    onJoined();
  });

  conn.send(who.name);
  if (!(await settlesWithin(joined, 10_000))) {
    note(ctx, `${who.name}: no join notice within 10 s`);
    conn.terminate(); // counted as an unexpected drop below
  }
  await talk(ctx, conn, who, sender);
  if (conn.readyState === 'open' && ctx.stopped()) {
    // The run is over: stay connected until every message has been accounted for.
    await ctx.released;
  }
  await leave(ctx, conn, receiver);
  ctx.stayers.delete(who.name);
  await reading;
  settleLater(ctx, () => ctx.ledger.senderGone(sender));
}

/** Hands everything the chatter receives to the ledger; `onJoined` when its own join notice arrives. */
async function readMessages(ctx: SoakContext, conn: WebSocketConnection, receiver: ReceiverLog, onJoined: () => void) {
  for await (const m of conn) {
    if (m.binary) continue;
    const msg = JSON.parse(m.data) as { type: string; user: string; message: string };
    switch (msg.type) {
      case 'chat':
        if (/^\d+$/.test(msg.message)) ctx.ledger.onBroadcast(receiver, msg.user, Number(msg.message));
        break;
      case 'private': {
        const k = /^p(\d+)$/.exec(msg.message);
        if (k) ctx.ledger.onPrivate(receiver, msg.user, Number(k[1]));
        break;
      }
      case 'join':
        if (msg.message === `${receiver.name} joined the chat`) {
          receiver.joinedAt = ctx.now();
          onJoined();
        }
        break;
      case 'error':
        ctx.counters.chatErrors++;
        note(ctx, `${receiver.name} got a System error: ${msg.message}`);
        break;
    }
  }
}

/** Sends until the session's end (never, for a stayer), the end of the run, or the connection's. */
async function talk(ctx: SoakContext, conn: WebSocketConnection, who: Session, sender: SenderLog): Promise<void> {
  const end = who.stayer ? Infinity : ctx.now() + 10_000 + ctx.rng.int(50_000);
  const gap = 1000 / ctx.rate;
  while (!ctx.stopped() && ctx.now() < end && conn.readyState === 'open') {
    await sleep(gap * (0.5 + ctx.rng.next()));
    if (ctx.stopped() || conn.readyState !== 'open') break;
    let text: string;
    if (ctx.stayers.size > 1 && ctx.rng.next() < ctx.privateShare) {
      const targets = [...ctx.stayers];
      const to = targets[ctx.rng.int(targets.length)]!;
      if (to === who.name) continue;
      const k = sender.privateSent.get(to) ?? 0;
      sender.privateSent.set(to, k + 1);
      ctx.counters.privatesSent++;
      text = `@${to} p${k}`;
    } else {
      sender.sendTimes.push(ctx.now()); // before the send: the Hub sees it later
      ctx.counters.broadcastsSent++;
      text = String(sender.sendTimes.length - 1);
    }
    if (!conn.send(text)) await conn.drained();
  }
}

/** Closes cleanly if the connection is still open; else it was dropped, which a chatter never should be. */
async function leave(ctx: SoakContext, conn: WebSocketConnection, receiver: ReceiverLog): Promise<void> {
  if (conn.readyState === 'open') {
    const leftAt = ctx.now();
    conn.close(1000, '');
    await conn.closed;
    ctx.counters.leaves++;
    ctx.ledger.receiverGone(receiver, leftAt);
  } else {
    const info = await conn.closed;
    ctx.counters.unexpectedDrops++;
    note(ctx, `${receiver.name} was dropped by the server: code=${info.code} reason=${JSON.stringify(info.reason)}`);
    ctx.ledger.receiverGone(receiver, ctx.now());
  }
}

// ---- misbehaving peers ----

/** The first `bytes` of an opening handshake, for peers that never finish it. */
function halfRequest(ctx: SoakContext, bytes: number): string {
  return clientRequest(new URL(ctx.url), newClientKey()).slice(0, bytes);
}

/** A plain TCP connection (no handshake). */
function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function closedPromise(socket: Socket): Promise<void> {
  return socket.destroyed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}

/** A raw socket past the 101; what the server sends is read and dropped (unless the socket is paused). */
async function rawUpgraded(port: number): Promise<Socket> {
  const { socket } = await openRawWebSocket({ port, onData: () => {} });
  socket.on('error', () => {});
  return socket;
}

/** A masked text frame, as a client sends it (RFC 6455 §5.3); `fin: false` for the first fragment of a message. */
function maskedText(text: string, options: { fin?: boolean } = {}): Buffer {
  return encodeFrame(Opcode.Text, text, /* masked */ true, options.fin ?? true);
}

/** Joins and sends far over the rate limit: expect refusals, then a close with 1008. */
export async function flooder(ctx: SoakContext, n: number): Promise<void> {
  ctx.counters.flood.started++;
  let conn: WebSocketConnection;
  try {
    conn = await connect(ctx.url, { timeoutMs: 10_000 });
  } catch {
    ctx.counters.flood.other++;
    return;
  }
  conn.send(`flood${n}`);
  for (let i = 0; i < 300; i++) conn.send(`flood ${i}`);
  const drained = (async () => {
    for await (const _ of conn) {
      // read everything, so the close frame reaches us
    }
  })();
  if (!(await settlesWithin(conn.closed, 10_000))) conn.terminate();
  const info = await conn.closed;
  await drained;
  if (info.code === 1008) ctx.counters.flood.closed1008++;
  else {
    ctx.counters.flood.other++;
    note(ctx, `flooder closed with ${info.code} ${JSON.stringify(info.reason)}`);
  }
}

/** Joins, then stops reading: the heartbeat (or a full queue) must drop it. */
export async function slowReader(ctx: SoakContext, n: number, holdMs: number): Promise<void> {
  ctx.counters.slow.started++;
  let socket: Socket;
  try {
    socket = await rawUpgraded(ctx.port);
  } catch {
    ctx.counters.slow.notDropped++;
    return;
  }
  const closed = closedPromise(socket);
  socket.write(maskedText(`slow${n}`));
  socket.pause();
  // Hold still; stop early when the run ends.
  for (let t = 0; t < holdMs && !ctx.stopped(); t += 250) await sleep(250);
  socket.resume(); // read what piled up: a server that dropped us shows up as the end of the stream
  if (await settlesWithin(closed, 5_000)) ctx.counters.slow.dropped++;
  else {
    if (!ctx.stopped()) ctx.counters.slow.notDropped++;
    socket.destroy();
  }
}

/** Something that is not a WebSocket client: the server must refuse it and close. */
export async function garbage(ctx: SoakContext, n: number): Promise<void> {
  ctx.counters.garbage.started++;
  const variant = n % 6;
  let socket: Socket;
  try {
    socket = variant === 2 ? await rawUpgraded(ctx.port) : await rawSocket(ctx.port);
  } catch {
    ctx.counters.garbage.closed++;
    return;
  }
  socket.on('data', () => {});
  const closed = closedPromise(socket);
  switch (variant) {
    case 0: // random bytes instead of HTTP
      socket.write(randomBytes(1 + ctx.rng.int(300)));
      break;
    case 1: // a TLS ClientHello on the plain port
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
      break;
    case 2: // random bytes after a valid handshake
      socket.write(randomBytes(1 + ctx.rng.int(300)));
      break;
    case 3: // half a request, then silence (slowloris)
      socket.write(halfRequest(ctx, 40));
      break;
    case 4: // an oversized head
      socket.write(`GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      break;
    default: // too many header lines
      socket.write(`GET /clients HTTP/1.1\r\nHost: x\r\n${'X-H: v\r\n'.repeat(100)}\r\n`);
  }
  if (await settlesWithin(closed, 15_000)) ctx.counters.garbage.closed++;
  else {
    ctx.counters.garbage.lingering++;
    note(ctx, `garbage variant ${variant} was not closed by the server within 15 s`);
    socket.destroy();
  }
}

/** Vanishes without a goodbye, at a random point of its life. */
export async function abrupt(ctx: SoakContext, n: number): Promise<void> {
  ctx.counters.abrupt.started++;
  const variant = n % 5;
  try {
    if (variant === 0) {
      // A chat client that says a few things and is gone (no close frame, no FIN handshake).
      const conn = await connect(ctx.url, { timeoutMs: 10_000 });
      conn.send(`abrupt${n}`);
      for (let i = 0; i < 3; i++) conn.send(`abrupt says ${i}`);
      await sleep(ctx.rng.int(500));
      conn.terminate();
      await conn.closed;
      return;
    }
    const socket = variant === 1 ? await rawSocket(ctx.port) : await rawUpgraded(ctx.port);
    const closed = closedPromise(socket);
    if (variant === 1) {
      socket.write(halfRequest(ctx, 60)); // half a handshake
    } else if (variant === 2) {
      socket.write(maskedText(`abrupt${n}`)); // a name, then half a frame
      socket.write(maskedText('never finished').subarray(0, 9));
    } else if (variant === 3) {
      socket.write(maskedText(`abrupt${n}`)); // a name, then half a fragmented message
      socket.write(maskedText('first half, ', { fin: false }));
    }
    // variant 4: upgraded, then gone before choosing a name
    await sleep(ctx.rng.int(200));
    socket.destroy();
    await closed;
  } catch {
    // refused or reset: also an abrupt end
  }
}
