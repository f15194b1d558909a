/**
 * Slow consumers (the lesson: never block on the send channel). A client that stops reading is
 * dropped once its send queue (SEND_QUEUE) or its socket's unsent bytes (MAX_BUFFERED_BYTES) pass
 * their bound, whichever the config makes come first, whether what fills it is broadcasts, private
 * messages or the server's own errors; and the others neither wait for it nor lose a message. A
 * client that keeps reading is never dropped, however much it is sent.
 */
import { describe, expect, it } from 'vitest';
import { connect, Opcode, type WebSocketConnection } from '../src/websocket';
import { NO_RATE_LIMIT, startApp, type TestApp } from './helpers/app';
import { chatMessages, ChatPeer, joined, left, rawJoin, roundTrip } from './helpers/chat';
import type { RawPeer } from './helpers/raw-peer';
import { Signal } from './helpers/wait';
import { frame } from './helpers/wire';

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
 * most PACE privates are still on their way. `atMark` runs at every mark.
 */
async function fill(f: Filler, to: string, gone: () => boolean, atMark = (): void => {}, max = 5_000): Promise<number> {
  let sent = 0;
  for (let mark = 0; !gone() && sent < max; mark++) {
    for (let i = 0; i < PACE && sent < max; i++, sent++) {
      if (!f.send(`@${to} ${sent} ${BULK}`)) await f.drained();
    }
    f.send(`mark ${mark}`);
    await f.markSeen(mark);
    atMark();
  }
  return sent;
}

function peerFiller(peer: ChatPeer): Filler {
  return {
    send: (text) => peer.send(text),
    drained: () => peer.conn.drained(),
    markSeen: (n) => peer.waitFor((m) => m.type === 'chat' && m.user === peer.name && m.message === `mark ${n}`),
  };
}

/** The server has let go of `name` (the Hub dropped it, or its connection did). */
function goneFrom(t: TestApp, name: string): () => boolean {
  return () => t.log.some((l) => l.startsWith(`dropped name="${name}"`) || l.startsWith(`disconnect name="${name}"`));
}

/** The private messages a raw client received are 0, 1, 2, ... with no gap: nothing lost before the drop. */
function privateSequence(slow: RawPeer): number[] {
  return chatMessages(slow)
    .filter((m) => m.type === 'private')
    .map((m) => Number(m.message.split(' ', 1)[0]));
}

describe('a client that stops reading', () => {
  it('is dropped by the Hub when its send queue is full (SEND_QUEUE=16 triggers first)', async () => {
    const t = await startApp({ ...NO_RATE_LIMIT, SEND_QUEUE: '16', MAX_BUFFERED_BYTES: String(256 * 1024 * 1024) });
    const watcher = await ChatPeer.join(t.port, 'watcher');
    const filler = await ChatPeer.join(t.port, 'filler');
    const slow = await rawJoin(t.port, 'slow');
    slow.pause();

    const sent = await fill(peerFiller(filler), 'slow', goneFrom(t, 'slow'));
    await watcher.waitFor(left('slow'));
    const [dropped] = await t.logged(/^dropped name="slow"/);
    expect(dropped).toMatch(/^dropped name="slow" reason="send queue full" peer=127\.0\.0\.1:\d+$/);

    // What was queued before the drop still arrives, in order, then the close frame saying why.
    slow.resume();
    await slow.closed;
    expect(slow.closeFrame()).toEqual({ code: 1008, reason: 'too slow: send queue full' });
    const got = privateSequence(slow);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(sent);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));

    await roundTrip(filler, watcher, 'after the drop');
    expect((await t.roster()).count).toBe(2);
  });

  it('is dropped by its connection when its unsent bytes pass MAX_BUFFERED_BYTES (1024 triggers first)', async () => {
    // 1 KiB is under the socket's 16 KiB high-water mark: the first write that reports backpressure drops it.
    const t = await startApp({ ...NO_RATE_LIMIT, SEND_QUEUE: '1000000', MAX_BUFFERED_BYTES: '1024' });
    const watcher = await ChatPeer.join(t.port, 'watcher');
    const filler = await ChatPeer.join(t.port, 'filler');
    const slow = await rawJoin(t.port, 'slow');
    slow.pause();

    await fill(peerFiller(filler), 'slow', goneFrom(t, 'slow'));
    await watcher.waitFor(left('slow'));
    const [line] = await t.logged(/^disconnect name="slow"/);
    expect(line).toMatch(
      /^disconnect name="slow" code=1006 reason="too slow: outbound buffer full" sent=1008 peer=127\.0\.0\.1:\d+$/,
    );
    // Not the Hub's doing: the connection cut itself off, the readPump then unregistered it.
    expect(t.log.some((l) => l.startsWith('dropped name="slow"'))).toBe(false);

    // The socket was destroyed (no closing handshake with a peer that does not read): what the kernel
    // had already taken still arrives, in order, and then the stream just ends.
    slow.resume();
    await slow.closed;
    const got = privateSequence(slow);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));

    await roundTrip(filler, watcher, 'after the drop');
    expect((await t.roster()).count).toBe(2);
  });

  it('is dropped when its own error messages fill its send queue (SEND_QUEUE=4, @nobody over and over)', async () => {
    const t = await startApp({ ...NO_RATE_LIMIT, SEND_QUEUE: '4' });
    const watcher = await ChatPeer.join(t.port, 'watcher');
    const sender = await rawJoin(t.port, 'sender');
    sender.pause();
    // Every "@nobody" earns the sender an error, for it alone; a private mark to the watcher after
    // each round shows the Hub has handled the round (and reaches nobody else's queue).
    const ROUND = 5_000;
    let round = 0;
    for (; round < 40; round++) {
      const texts = Array.from({ length: ROUND }, (_, i) => frame(Opcode.Text, `@nobody ${round}.${i}`));
      texts.push(frame(Opcode.Text, `@watcher mark ${round}`));
      if (!sender.write(Buffer.concat(texts))) await new Promise((resolve) => sender.socket.once('drain', resolve));
      const seen = await watcher.waitFor((m) => m.message === `mark ${round}` || left('sender')(m));
      if (seen.type === 'leave') break;
    }
    const dropped = /^dropped name="sender" reason="send queue full" peer=127\.0\.0\.1:\d+$/;
    expect(t.log.some((l) => dropped.test(l))).toBe(true);
    expect(round).toBeLessThan(40);
    // What it was told before the drop arrives whole: errors only, then the close frame saying why.
    sender.resume();
    await sender.closed;
    const told = chatMessages(sender).filter((m) => !joined('sender')(m));
    expect(told.length).toBeGreaterThan(0);
    expect(new Set(told.map((m) => `${m.type}:${m.message}`))).toEqual(new Set(['error:nobody is not online']));
    expect(sender.closeFrame()).toEqual({ code: 1008, reason: 'too slow: send queue full' });
  });
});

describe('a client that keeps reading', () => {
  it.each([
    // 19 of the default burst of 20: the 20th token is for the broadcast that follows.
    ['19 in one go with SEND_QUEUE=16', { SEND_QUEUE: '16' }, 19],
    ['2,000 with no rate limit and the default SEND_QUEUE (256)', NO_RATE_LIMIT, 2_000],
  ])('and sends %s privates to nobody gets one error each and is not dropped', async (_name, env, count) => {
    const t = await startApp(env);
    const bob = await ChatPeer.join(t.port, 'bob');
    const sender = await ChatPeer.join(t.port, 'sender');
    for (let i = 0; i < count; i++) sender.send(`@nobody hello ${i}`);
    sender.send('and now for everyone');
    await bob.waitFor((m) => m.type === 'chat' && m.message === 'and now for everyone');
    // Every refusal reached the sender (until() fails if its connection ends first).
    await sender.until((all) => all.filter((m) => m.type === 'error').length === count);
    expect(t.log.filter((l) => l.startsWith('dropped'))).toEqual([]);
    expect(sender.conn.readyState).toBe('open');
    const errors = sender.received('error').map((m) => m.message);
    expect(errors).toEqual(Array.from({ length: count }, () => 'nobody is not online'));
    await roundTrip(bob, sender, 'after the private flood');
  });
});

// ---------------------------------------------------------------------------------------------

/** The name of the client that fills the slow one's buffers in the big run. */
const FILLER = 'f0';

/** A healthy receiver: checks order as messages arrive, keeps O(1) state (no list of 10,000 messages). */
class Receiver {
  chats = 0;
  /** Per sender, the next sequence number expected. */
  readonly next = new Map<string, number>();
  /** A rolling hash of the whole interleaving: every healthy client must see the same one. */
  hash = 0;
  problem: string | undefined;
  /** The filler's marks seen (only the filler's own receiver cares). */
  lastMark = -1;
  private readonly changed = new Signal();
  private ended = false;
  /** Its own join notice arrived: it is registered. */
  readonly joined: Promise<void>;
  /** The slow client's leave notice arrived. */
  readonly slowLeft: Promise<void>;
  /** All `expected` chats arrived. */
  readonly done: Promise<void>;

  constructor(
    readonly name: string,
    readonly conn: WebSocketConnection,
    private readonly expected: number,
  ) {
    let sawJoin = false;
    let sawSlowLeave = false;
    const ended = (): Error | undefined => (this.ended ? new Error(`${name}: ${this.problem}`) : undefined);
    void this.pump((msg) => {
      if (msg.type === 'join' && msg.message === `${name} joined the chat`) sawJoin = true;
      if (msg.type === 'leave' && msg.message === 'slow left the chat') sawSlowLeave = true;
    });
    this.joined = this.changed.until(() => sawJoin || undefined, ended).then(() => {});
    this.slowLeft = this.changed.until(() => sawSlowLeave || undefined, ended).then(() => {});
    this.done = this.changed.until(() => this.chats === this.expected || undefined, ended).then(() => {});
  }

  private async pump(notice: (msg: { type: string; message: string }) => void): Promise<void> {
    for await (const m of this.conn) {
      if (m.binary) continue;
      const msg = JSON.parse(m.data) as { type: string; user: string; message: string };
      notice(msg);
      if (msg.type === 'chat' && msg.user === FILLER) {
        this.lastMark = Number(msg.message.slice('mark '.length));
      } else if (msg.type === 'chat') {
        const seq = Number(msg.message);
        const want = this.next.get(msg.user) ?? 0;
        if (seq !== want) this.problem ??= `from ${msg.user}: got #${seq}, expected #${want}`;
        this.next.set(msg.user, seq + 1);
        this.hash = (Math.imul(this.hash ^ msg.user.charCodeAt(1), 0x01000193) + seq) | 0;
        this.chats++;
      }
      this.changed.notify();
    }
    this.problem ??= `connection ended after ${this.chats} chats`;
    this.ended = true;
    this.changed.notify();
  }

  markSeen(n: number): Promise<void> {
    const ended = (): Error | undefined => (this.ended ? new Error(`${this.name}: ${this.problem}`) : undefined);
    return this.changed.until(() => this.lastMark >= n || undefined, ended).then(() => {});
  }
}

describe('1 slow and 100 healthy clients through 10,000 broadcasts', () => {
  it('delivers every message to every healthy client in one order, drops the slow one, keeps the bounds', async () => {
    const SENDERS = 10;
    const PER_SENDER = 1_000;
    const HEALTHY = 100;
    const total = SENDERS * PER_SENDER;
    // The default bounds: SEND_QUEUE 256, MAX_BUFFERED_BYTES 1 MiB; no rate limit.
    const MAX_BUFFERED_BYTES = 1024 * 1024;
    const t = await startApp(NO_RATE_LIMIT);

    // 100 healthy clients: s0..s9 send, f0 fills the slow one's buffers, the rest only listen.
    const names = Array.from({ length: HEALTHY }, (_, i) => (i < SENDERS ? `s${i}` : i === SENDERS ? FILLER : `l${i}`));
    const receivers: Receiver[] = [];
    for (const name of names) {
      const conn = await connect(t.url());
      conn.send(name);
      receivers.push(new Receiver(name, conn, total));
    }
    await Promise.all(receivers.map((r) => r.joined));
    const slow = await rawJoin(t.port, 'slow');
    slow.pause();
    expect((await t.roster()).count).toBe(HEALTHY + 1);

    // The design's bound on unsent bytes, checked at every filler mark and every 100 messages of
    // each sender: no open connection holds more than MAX_BUFFERED_BYTES.
    let largestBuffered = 0;
    const checkBounds = (): void => {
      for (const c of t.app.connections) {
        if (c.readyState === 'open') largestBuffered = Math.max(largestBuffered, c.bufferedAmount);
      }
    };

    // The filler talks to the slow client only (private messages), so its buffers fill fast. Each of
    // its batches of privates is PACE x 4 KB, far below 1 MiB: the send queue (256) fills first.
    const fillerConn = receivers[SENDERS]!.conn;
    const filler = fill(
      {
        send: (text) => fillerConn.send(text),
        drained: () => fillerConn.drained(),
        markSeen: (n) => receivers[SENDERS]!.markSeen(n),
      },
      'slow',
      goneFrom(t, 'slow'),
      checkBounds,
    );
    const senders = receivers.slice(0, SENDERS).map(async ({ conn }) => {
      for (let seq = 0; seq < PER_SENDER; seq++) {
        if (!conn.send(String(seq))) await conn.drained();
        if (seq % 100 === 0) {
          checkBounds();
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    });
    await Promise.all([...senders, filler, ...receivers.map((r) => r.done), ...receivers.map((r) => r.slowLeft)]);

    for (const r of receivers) expect(r.problem).toBeUndefined();
    for (const r of receivers) expect(r.chats).toBe(total);
    // One order for everyone: the Hub fans each message out to all clients in turn.
    expect(new Set(receivers.map((r) => r.hash)).size).toBe(1);
    const drops = t.log.filter((l) => l.startsWith('dropped ')).map((l) => l.replace(/ peer=127\.0\.0\.1:\d+$/, ''));
    expect(drops).toEqual(['dropped name="slow" reason="send queue full"']);
    expect(largestBuffered).toBeLessThanOrEqual(MAX_BUFFERED_BYTES);
    // Once everyone has read everything, nothing is left queued on any open socket (the slow one's
    // connection is closing: it waits for the answer to its close frame).
    for (const c of t.app.connections) if (c.readyState === 'open') expect(c.bufferedAmount).toBe(0);

    slow.resume();
    await slow.closed;
    expect(slow.closeFrame()).toEqual({ code: 1008, reason: 'too slow: send queue full' });
    await t.untilConnections(HEALTHY);
    for (const r of receivers) r.conn.close();
    await Promise.all(receivers.map((r) => r.conn.closed));
  }, 90_000);
});
