/**
 * The soak's population: well-behaved chatters (whose every message is accounted for by the Ledger)
 * and misbehaving peers - flooders, slow readers, garbage senders, abrupt disconnects. Chatters use our
 * own connect(); the misbehaving ones that need to stop mid-byte use a raw socket and our own codec.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect, encodeFrame, Opcode, type WebSocketConnection } from '../../src/websocket';
import type { Ledger } from './soak-ledger';

// ---- small tools ----

export interface Rng {
  next(): number;
  int(n: number): number;
}

/** mulberry32: seeded, so a soak's choices can be replayed with --seed. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with true when `p` settles within `ms`, false otherwise (never rejects). */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => (clearTimeout(timer), resolve(true)),
      () => (clearTimeout(timer), resolve(true)),
    );
  });
}

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

/**
 * A chatter: joins under a fresh name per session, broadcasts its sequence numbers at `rate` per
 * second (some private messages to stayers in between), and - unless it is a stayer - leaves after
 * 10-60 s and comes back under a new name.
 */
export async function chatter(ctx: SoakContext, index: number, stayer: boolean): Promise<void> {
  for (let gen = 0; !ctx.stopped(); gen++) {
    await session(ctx, `c${index}.${gen}`, stayer);
    if (stayer || ctx.stopped()) return;
    await sleep(1_000 + ctx.rng.int(4_000));
  }
}

async function session(ctx: SoakContext, name: string, stayer: boolean): Promise<void> {
  let conn: WebSocketConnection;
  try {
    conn = await connect(ctx.url, { timeoutMs: 10_000 });
  } catch (error) {
    ctx.counters.connectFailures++;
    note(ctx, `${name}: connect failed: ${(error as Error).message}`);
    return;
  }
  ctx.counters.sessions++;
  const { sender, receiver } = ctx.ledger.open(name);
  let onJoined!: () => void;
  const joined = new Promise<void>((r) => (onJoined = r));

  const pump = (async () => {
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
          if (msg.message === `${name} joined the chat`) {
            receiver.joinedAt = ctx.now();
            if (stayer) ctx.stayers.add(name);
            onJoined();
          }
          break;
        case 'error':
          ctx.counters.chatErrors++;
          note(ctx, `${name} got a System error: ${msg.message}`);
          break;
      }
    }
  })();

  conn.send(name);
  if (!(await settlesWithin(joined, 10_000))) {
    note(ctx, `${name}: no join notice within 10 s`);
    conn.terminate(); // counted as an unexpected drop below
  }

  const end = stayer ? Infinity : ctx.now() + 10_000 + ctx.rng.int(50_000);
  const gap = 1000 / ctx.rate;
  while (!ctx.stopped() && ctx.now() < end && conn.readyState === 'open') {
    await sleep(gap * (0.5 + ctx.rng.next()));
    if (ctx.stopped() || conn.readyState !== 'open') break;
    if (ctx.stayers.size > 1 && ctx.rng.next() < ctx.privateShare) {
      const targets = [...ctx.stayers];
      const to = targets[ctx.rng.int(targets.length)]!;
      if (to === name) continue;
      const k = sender.privateSent.get(to) ?? 0;
      sender.privateSent.set(to, k + 1);
      ctx.counters.privatesSent++;
      if (!conn.send(`@${to} p${k}`)) await conn.drained();
    } else {
      sender.sendTimes.push(ctx.now()); // before the send: the Hub sees it later
      ctx.counters.broadcastsSent++;
      if (!conn.send(String(sender.sendTimes.length - 1))) await conn.drained();
    }
  }

  if (conn.readyState === 'open' && ctx.stopped()) {
    // The run is over: stay connected until every message has been accounted for.
    await ctx.released;
  }
  if (conn.readyState === 'open') {
    const leftAt = ctx.now();
    conn.close(1000, '');
    await conn.closed;
    ctx.counters.leaves++;
    ctx.ledger.receiverGone(receiver, leftAt);
  } else {
    const info = await conn.closed;
    ctx.counters.unexpectedDrops++;
    note(ctx, `${name} was dropped by the server: code=${info.code} reason=${JSON.stringify(info.reason)}`);
    ctx.ledger.receiverGone(receiver, ctx.now());
  }
  ctx.stayers.delete(name);
  await pump;
  settleLater(ctx, () => ctx.ledger.senderGone(sender));
}

// ---- misbehaving peers ----

function upgradeRequest(port: number): string {
  return (
    `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}

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

/** A raw socket past the 101. */
async function rawUpgraded(port: number): Promise<Socket> {
  const socket = await rawSocket(port);
  socket.write(upgradeRequest(port));
  await new Promise<void>((resolve, reject) => {
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        socket.off('data', onData);
        if (head.startsWith('HTTP/1.1 101 ')) resolve();
        else reject(new Error(`refused: ${head.split('\r\n', 1)[0]}`));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed during the handshake')));
  });
  socket.on('data', () => {}); // keep reading (and discarding) unless paused
  return socket;
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
  socket.write(encodeFrame(Opcode.Text, `slow${n}`, true));
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
      socket.write(upgradeRequest(ctx.port).slice(0, 40));
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
      socket.write(upgradeRequest(ctx.port).slice(0, 60)); // half a handshake
    } else if (variant === 2) {
      socket.write(encodeFrame(Opcode.Text, `abrupt${n}`, true)); // a name, then half a frame
      socket.write(encodeFrame(Opcode.Text, 'never finished', true).subarray(0, 9));
    } else if (variant === 3) {
      socket.write(encodeFrame(Opcode.Text, `abrupt${n}`, true)); // a name, then half a fragmented message
      socket.write(encodeFrame(Opcode.Text, 'first half, ', true, false));
    }
    // variant 4: upgraded, then gone before choosing a name
    await sleep(ctx.rng.int(200));
    socket.destroy();
    await closed;
  } catch {
    // refused or reset: also an abrupt end
  }
}
