/**
 * Slow consumers: a client that stops reading is dropped once its send queue (SEND_QUEUE) or its
 * socket's unsent bytes (MAX_BUFFERED_BYTES) pass their bound - whichever the config makes trigger
 * first - and the others neither wait for it nor lose a message. The server runs in this process, so
 * its memory is measured directly.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type WebSocketConnection } from '../src/websocket';
import { ChatPeer, RawWs, roundTrip, startServer, within, type TestServer } from './helpers/abuse';

let s: TestServer | undefined;

afterEach(async () => {
  await s?.stop();
  s = undefined;
});

/** No rate limit in the way of the test's own traffic. */
const UNLIMITED = { RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000' };
/** A private message body near the 4096-byte default limit, to fill the slow reader's buffers quickly. */
const BULK = 'x'.repeat(4000);

/** Privates between two marks: bounds what is in flight when the slow client goes. */
const PACE = 8;

interface Filler {
  send(text: string): boolean;
  drained(): Promise<void>;
  /** Resolves when the filler's own broadcast `mark <n>` came back: the Hub handled all before it. */
  markSeen(n: number): Promise<unknown>;
}

/**
 * Sends private messages to `to` until `gone()` (or `max` were sent), respecting backpressure. The
 * kernel buffers a few MB of a non-reading loopback peer before the server sees any backpressure.
 * Every PACE messages the filler waits for its own broadcast to come back, so when `to` is dropped at
 * most PACE privates are still on their way (each of those earns the filler a "not online" error).
 */
async function fill(f: Filler, to: string, gone: () => boolean, max = 5_000): Promise<number> {
  let sent = 0;
  for (let mark = 0; !gone() && sent < max; mark++) {
    for (let i = 0; i < PACE && sent < max; i++, sent++) {
      if (!f.send(`@${to} ${sent} ${BULK}`)) await f.drained();
    }
    f.send(`mark ${mark}`);
    await f.markSeen(mark);
  }
  return sent;
}

function peerFiller(peer: ChatPeer): Filler {
  return {
    send: (text) => peer.conn.send(text),
    drained: () => peer.conn.drained(),
    markSeen: (n) => peer.next((m) => m.type === 'chat' && m.user === peer.name && m.message === `mark ${n}`),
  };
}

/** The server has let go of `name` (the Hub dropped it, or its connection did). */
function goneFrom(server: TestServer, name: string): () => boolean {
  return () => server.logs.some((l) => l.startsWith(`dropped name="${name}"`) || l.startsWith(`disconnect name="${name}"`));
}

/** Resumes a paused raw client and waits until the server's close frame (or the end of the stream). */
async function drainToClose(slow: RawWs): Promise<{ code: number; reason: string } | undefined> {
  slow.resume();
  await slow.waitFor((f) => f.kind === 'close');
  const close = slow.frames.find((f) => f.kind === 'close');
  return close?.kind === 'close' ? { code: close.code, reason: close.reason } : undefined;
}

/** The private messages a client received are 0, 1, 2, ... with no gap: nothing lost before the drop. */
function privateSequence(slow: RawWs): number[] {
  return slow
    .messages()
    .filter((m) => m.type === 'private')
    .map((m) => Number(m.message.split(' ', 1)[0]));
}

describe('a client that stops reading', () => {
  it('is dropped by the Hub when its send queue is full (SEND_QUEUE=16 triggers first)', async () => {
    s = await startServer({ ...UNLIMITED, SEND_QUEUE: '16', MAX_BUFFERED_BYTES: String(256 * 1024 * 1024) });
    const watcher = await ChatPeer.join(s.wsUrl(), 'watcher');
    const filler = await ChatPeer.join(s.wsUrl(), 'filler');
    const slow = await RawWs.join(s.port, 'slow');
    slow.pause();

    const sent = await fill(peerFiller(filler), 'slow', goneFrom(s, 'slow'));
    await watcher.next((m) => m.type === 'leave' && m.message === 'slow left the chat');
    expect(await s.logged(/^dropped name="slow"/)).toMatch(
      /^dropped name="slow" reason="send queue full" peer=127\.0\.0\.1:\d+$/,
    );

    // What was queued before the drop still arrives, in order, then the close frame saying why.
    const close = await drainToClose(slow);
    expect(close).toEqual({ code: 1008, reason: 'too slow: send queue full' });
    const got = privateSequence(slow);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(sent);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));
    slow.destroy();

    await roundTrip(filler, watcher, 'after the drop');
    expect(await s.clientCount()).toBe(2);
  });

  it('is dropped by its connection when its unsent bytes pass MAX_BUFFERED_BYTES (1024 triggers first)', async () => {
    // 1 KiB is under the socket's 16 KiB high-water mark: the first write that reports backpressure drops it.
    s = await startServer({ ...UNLIMITED, SEND_QUEUE: '1000000', MAX_BUFFERED_BYTES: '1024' });
    const watcher = await ChatPeer.join(s.wsUrl(), 'watcher');
    const filler = await ChatPeer.join(s.wsUrl(), 'filler');
    const slow = await RawWs.join(s.port, 'slow');
    slow.pause();

    await fill(peerFiller(filler), 'slow', goneFrom(s, 'slow'));
    await watcher.next((m) => m.type === 'leave' && m.message === 'slow left the chat');
    const line = await s.logged(/^disconnect name="slow"/);
    expect(line).toMatch(
      /^disconnect name="slow" code=1006 reason="too slow: outbound buffer full" sent=1008 peer=127\.0\.0\.1:\d+$/,
    );
    // Not the Hub's doing: the connection cut itself off, the readPump then unregistered it.
    expect(s.logs.some((l) => l.startsWith('dropped name="slow"'))).toBe(false);

    // The socket was destroyed (no closing handshake with a peer that does not read): what the kernel
    // had already taken still arrives, in order, and then the stream just ends.
    slow.resume();
    await within(slow.closed, 10_000, 'the slow socket to end');
    const got = privateSequence(slow);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));

    await roundTrip(filler, watcher, 'after the drop');
    expect(await s.clientCount()).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------

/** A healthy receiver: checks order as messages arrive, keeps O(1) state (no list of 10,000 messages). */
class Receiver {
  chats = 0;
  /** Per sender, the next sequence number expected. */
  readonly next = new Map<string, number>();
  /** A rolling hash of the whole interleaving: every healthy client must see the same one. */
  hash = 0;
  problem: string | undefined;
  sawSlowLeave = false;
  /** The filler's marks seen (only the filler's own receiver cares). */
  lastMark = -1;
  private markWaiter: (() => void) | null = null;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((r) => (this.resolveDone = r));

  constructor(
    readonly conn: WebSocketConnection,
    private readonly expected: number,
  ) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    for await (const m of this.conn) {
      if (m.binary) continue;
      const msg = JSON.parse(m.data) as { type: string; user: string; message: string };
      if (msg.type === 'leave' && msg.message === 'slow left the chat') this.sawSlowLeave = true;
      if (msg.type !== 'chat') continue;
      if (msg.user === FILLER) {
        this.lastMark = Number(msg.message.slice('mark '.length));
        this.markWaiter?.();
        continue;
      }
      const seq = Number(msg.message);
      const want = this.next.get(msg.user) ?? 0;
      if (seq !== want) this.problem ??= `from ${msg.user}: got #${seq}, expected #${want}`;
      this.next.set(msg.user, seq + 1);
      this.hash = (Math.imul(this.hash ^ msg.user.charCodeAt(1), 0x01000193) + seq) | 0;
      if (++this.chats === this.expected) this.resolveDone();
    }
    this.problem ??= `connection ended after ${this.chats} chats`;
    this.resolveDone();
    this.markWaiter?.();
  }

  markSeen(n: number): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.lastMark >= n || this.problem !== undefined) {
            this.markWaiter = null;
            resolve();
          }
        };
        this.markWaiter = check;
        check();
      }),
      10_000,
      `the filler's mark ${n}`,
    );
  }
}

/** The name of the client that fills the slow one's buffers in the big run. */
const FILLER = 'f0';

/** A real GC, so heap figures are live memory, not garbage not yet collected. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

describe('1 slow and 100 healthy clients through 10,000 broadcasts', () => {
  it('delivers every message to every healthy client in the same order, drops the slow one, and memory stays bounded', async () => {
    const SENDERS = 10;
    const PER_SENDER = 1_000;
    const HEALTHY = 100;
    const total = SENDERS * PER_SENDER;
    // Defaults for the bounds (SEND_QUEUE 256, MAX_BUFFERED_BYTES 1 MiB); no rate limit.
    s = await startServer(UNLIMITED);

    // 100 healthy clients: s0..s9 send, f0 fills the slow one's buffers, the rest only listen.
    const names = Array.from({ length: HEALTHY }, (_, i) => (i < SENDERS ? `s${i}` : i === SENDERS ? FILLER : `l${i}`));
    const conns: WebSocketConnection[] = [];
    for (const name of names) {
      const conn = await connect(s.wsUrl());
      conn.send(name);
      conns.push(conn);
    }
    const receivers = conns.map((c) => new Receiver(c, total));
    const slow = await RawWs.join(s.port, 'slow');
    slow.pause();
    // Everyone is registered once /clients counts them all.
    for (let i = 0; i < 500 && (await s.clientCount()) < HEALTHY + 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await s.clientCount()).toBe(HEALTHY + 1);

    collectGarbage();
    const before = process.memoryUsage();

    // The filler talks to the slow client only (private messages), so its buffers fill fast.
    const slowLeft = new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (receivers.every((r) => r.sawSlowLeave)) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    const fillerConn = conns[SENDERS]!;
    const filler = fill(
      { send: (t) => fillerConn.send(t), drained: () => fillerConn.drained(), markSeen: (n) => receivers[SENDERS]!.markSeen(n) },
      'slow',
      goneFrom(s, 'slow'),
    );
    const senders = conns.slice(0, SENDERS).map(async (conn) => {
      for (let seq = 0; seq < PER_SENDER; seq++) {
        if (!conn.send(String(seq))) await conn.drained();
        if (seq % 100 === 0) await new Promise((r) => setImmediate(r));
      }
    });

    const started = Date.now();
    await within(Promise.all([...senders, filler, ...receivers.map((r) => r.done), slowLeft]), 60_000, 'the 10,000 broadcasts');
    const seconds = (Date.now() - started) / 1000;

    for (const r of receivers) expect(r.problem).toBeUndefined();
    for (const r of receivers) expect(r.chats).toBe(total);
    // One order for everyone: the Hub fans each message out to all clients in turn.
    expect(new Set(receivers.map((r) => r.hash)).size).toBe(1);
    const slowDrop = s.logs.find((l) => l.startsWith('dropped name="slow"') || l.startsWith('disconnect name="slow"'));
    expect(slowDrop).toBeDefined();

    collectGarbage();
    const after = process.memoryUsage();
    const growth = {
      rss: after.rss - before.rss,
      heapUsed: after.heapUsed - before.heapUsed,
      arrayBuffers: after.arrayBuffers - before.arrayBuffers,
    };
    console.log(
      `slow consumer: ${total} broadcasts x ${HEALTHY} healthy clients in ${seconds.toFixed(1)} s; memory growth ` +
        `rss ${mib(growth.rss)}, heapUsed ${mib(growth.heapUsed)}, arrayBuffers ${mib(growth.arrayBuffers)} ` +
        `(before: rss ${mib(before.rss)}, heapUsed ${mib(before.heapUsed)}; after: rss ${mib(after.rss)}, heapUsed ${mib(after.heapUsed)}); ` +
        `slow client: ${slowDrop}`,
    );
    // The bound, from the config: the slow client may hold SEND_QUEUE (256) frames of ~4.1 KB plus
    // MAX_BUFFERED_BYTES (1 MiB) until it is dropped, each healthy one at most its 16 KiB socket
    // high-water mark plus 256 small frames (~55 KB x 100 = 5.5 MB), and each of our in-process
    // readers 16 queued messages. That is < 8 MiB at the worst moment, and all of it is released
    // once the run is over: after a GC, live JS + buffer memory must not have grown by 16 MiB. RSS
    // also counts pages the allocator keeps for reuse, hence the looser 64 MiB.
    expect(growth.heapUsed + growth.arrayBuffers).toBeLessThan(16 * 1024 * 1024);
    expect(growth.rss).toBeLessThan(64 * 1024 * 1024);

    for (const c of conns) c.close();
    await Promise.all(conns.map((c) => c.closed));
    slow.destroy();
  }, 90_000);
});
