/**
 * Abrupt disconnects in every state - during the handshake, mid-frame, mid-fragmented message, while
 * the Hub is broadcasting, during shutdown - and peers that vanish without a FIN (found by the
 * heartbeat). Afterwards: no unhandled rejection, no uncaught exception, no leaked client.
 *
 * vitest fails a run on unhandled errors by default (test/vitest.config.ts does not set
 * dangerouslyIgnoreUnhandledErrors); the listeners below also fail the test that caused one.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame, Opcode } from '../src/websocket';
import { ChatPeer, RawPeer, RawWs, roundTrip, startServer, upgradeRequest, waitUntil, within, watchUnhandled, type TestServer } from './helpers/abuse';

let s: TestServer | undefined;
let unhandled: ReturnType<typeof watchUnhandled>;

beforeAll(() => {
  unhandled = watchUnhandled();
});

afterAll(() => {
  unhandled.stop();
});

afterEach(async () => {
  await s?.stop();
  s = undefined;
  // Let any late rejection surface before checking.
  await new Promise((r) => setTimeout(r, 20));
  expect(unhandled.errors).toEqual([]);
});

const UNLIMITED = { RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000' };

function serverSockets(server: TestServer): Promise<number> {
  return new Promise((resolve, reject) => server.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** Nothing left behind: the Hub's roster, the app's connection set and the TCP sockets all back to `n`. */
async function expectOnly(server: TestServer, n: number): Promise<void> {
  await waitUntil(async () => server.app.connections.size === n && (await serverSockets(server)) === n, `${n} connection(s) left`);
  await waitUntil(async () => (await server.clientCount()) === n, `${n} client(s) on /clients`);
  expect(server.app.connections.size).toBe(n);
  expect(await server.clientCount()).toBe(n);
}

describe('destroyed during the handshake', () => {
  it.each([
    ['after 10 bytes of the request', (r: string) => r.slice(0, 10)],
    ['after half the request', (r: string) => r.slice(0, r.length >> 1)],
    ['after the whole head but its last CRLF', (r: string) => r.slice(0, -2)],
    ['right after the whole request, before reading the 101', (r: string) => r],
  ])('%s: nothing is left behind', async (_name, cut) => {
    s = await startServer();
    const alice = await ChatPeer.join(s.wsUrl(), 'alice');
    const bob = await ChatPeer.join(s.wsUrl(), 'bob');
    for (let i = 0; i < 5; i++) {
      const p = await RawPeer.open(s.port);
      p.write(cut(upgradeRequest(s.port, '/ws')));
      p.destroy();
    }
    await expectOnly(s, 2);
    await roundTrip(alice, bob, 'after handshake disconnects');
  });
});

describe('destroyed mid-frame', () => {
  const text = encodeFrame(Opcode.Text, 'hello, this message is never finished', true);
  const big = encodeFrame(Opcode.Text, 'y'.repeat(3000), true); // 16-bit length form
  it.each([
    ['after 1 header byte', [text.subarray(0, 1)]],
    ['after 2 of 6 header bytes', [text.subarray(0, 2)]],
    ['inside the mask key', [text.subarray(0, 4)]],
    ['inside a 16-bit length', [big.subarray(0, 3)]],
    ['after half the payload', [text.subarray(0, text.length >> 1)]],
    ['after half of a 3000-byte payload', [big.subarray(0, 1500)]],
    ['after half a ping', [encodeFrame(Opcode.Ping, 'ping payload', true).subarray(0, 9)]],
    ['after half a close frame', [encodeFrame(Opcode.Close, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), true).subarray(0, 8)]],
  ])('%s: the client leaves, the others are told, nothing is left behind', async (_name, chunks) => {
    s = await startServer();
    const alice = await ChatPeer.join(s.wsUrl(), 'alice');
    const victim = await RawWs.join(s.port, 'victim');
    for (const c of chunks) victim.peer.write(c);
    victim.destroy();
    await alice.next((m) => m.type === 'leave' && m.message === 'victim left the chat');
    await expectOnly(s, 1);
    // Nothing of the half-sent message leaked out as a chat message.
    expect(alice.chats('victim')).toEqual([]);
  });

  it('a half-sent name (the very first message) leaves no trace', async () => {
    s = await startServer();
    const alice = await ChatPeer.join(s.wsUrl(), 'alice');
    const ws = await RawWs.open(s.port);
    ws.peer.write(encodeFrame(Opcode.Text, 'nameless', true).subarray(0, 7));
    ws.destroy();
    await expectOnly(s, 1);
    expect(alice.received.filter((m) => m.message.includes('nameless'))).toEqual([]);
  });
});

describe('destroyed mid-fragmented message (§5.4)', () => {
  it.each([
    ['after the first fragment', (f: Buffer[]) => [f[0]!]],
    ['after the first fragment and a ping between fragments', (f: Buffer[]) => [f[0]!, encodeFrame(Opcode.Ping, 'p', true)]],
    ['halfway through the second fragment', (f: Buffer[]) => [f[0]!, f[1]!.subarray(0, 5)]],
    ['before the final fragment', (f: Buffer[]) => [f[0]!, f[1]!]],
  ])('%s: no partial message is broadcast, nothing is left behind', async (_name, pick) => {
    s = await startServer();
    const alice = await ChatPeer.join(s.wsUrl(), 'alice');
    const victim = await RawWs.join(s.port, 'victim');
    const fragments = [
      encodeFrame(Opcode.Text, 'first part, ', true, false),
      encodeFrame(Opcode.Continuation, 'second part, ', true, false),
      encodeFrame(Opcode.Continuation, 'last part', true, true),
    ];
    for (const c of pick(fragments)) victim.peer.write(c);
    victim.destroy();
    await alice.next((m) => m.type === 'leave' && m.message === 'victim left the chat');
    await expectOnly(s, 1);
    expect(alice.chats('victim')).toEqual([]);
  });
});

describe('destroyed while the Hub is broadcasting to it', () => {
  it('10 of 20 receivers vanish during a 1,200-message burst; the rest get every message in order', async () => {
    s = await startServer(UNLIMITED);
    const watcher = await ChatPeer.join(s.wsUrl(), 'watcher');
    const senders = await Promise.all([0, 1, 2, 3].map((i) => ChatPeer.join(s!.wsUrl(), `sender${i}`)));
    const receivers: RawWs[] = [];
    for (let i = 0; i < 20; i++) receivers.push(await RawWs.join(s.port, `r${i}`));
    const PER_SENDER = 300;

    const chatsFrom = (ws: RawWs): number => ws.frames.filter((f) => f.kind === 'message' && f.data.includes('"type":"chat"')).length;
    // Victim i is destroyed once it has seen 20 x i chat messages: all along the burst.
    const victims = receivers.filter((_, i) => i % 2 === 0);
    const destroyed = victims.map(async (v, i) => {
      await v.waitFor(() => chatsFrom(v) >= 20 * i + 1);
      v.destroy();
    });
    for (let n = 0; n < PER_SENDER; n++) for (const sender of senders) sender.say(`${sender.name} ${n}`);
    await Promise.all(destroyed);

    const survivors = receivers.filter((_, i) => i % 2 === 1);
    const total = PER_SENDER * senders.length;
    await within(Promise.all(survivors.map((r) => r.waitFor(() => chatsFrom(r) === total))), 20_000, 'survivors to get the whole burst');
    for (const r of survivors) {
      const chats = r.messages().filter((m) => m.type === 'chat');
      for (const sender of senders) {
        expect(chats.filter((m) => m.user === sender.name).map((m) => m.message)).toEqual(Array.from({ length: PER_SENDER }, (_, n) => `${sender.name} ${n}`));
      }
    }
    for (const v of victims) await watcher.next((m) => m.type === 'leave' && m.message === `r${receivers.indexOf(v)} left the chat`);
    await waitUntil(() => watcher.chats().length === total, 'the watcher to get the whole burst');
    await expectOnly(s, 1 + senders.length + survivors.length);
  });
});

describe('destroyed during shutdown', () => {
  it('sockets vanishing while app.shutdown() runs: it completes, every connection is released', async () => {
    s = await startServer();
    const app = s.app;
    const chatters = await Promise.all(['a', 'b', 'c', 'd'].map((n) => ChatPeer.join(s!.wsUrl(), n)));
    const raws = await Promise.all(['e', 'f', 'g', 'h'].map((n) => RawWs.join(s!.port, n)));
    const unnamed = await Promise.all([0, 1].map(() => RawWs.open(s!.port)));
    const halfHandshakes = await Promise.all([0, 1].map(() => RawPeer.open(s!.port)));
    for (const p of halfHandshakes) p.write(upgradeRequest(s.port).slice(0, 40));
    // e is mid-frame when the shutdown starts.
    raws[0]!.peer.write(encodeFrame(Opcode.Text, 'never finished', true).subarray(0, 6));
    await waitUntil(() => app.connections.size === 10, 'all 10 WebSocket connections');

    const shutdown = app.shutdown(1_000);
    // Some vanish at once, some a moment later, some never answer the close (paused), the rest close cleanly.
    raws[0]!.destroy();
    unnamed[0]!.destroy();
    halfHandshakes[0]!.destroy();
    raws[1]!.pause();
    setImmediate(() => {
      raws[2]!.destroy();
      chatters[0]!.conn.terminate();
      halfHandshakes[1]!.destroy();
    });
    setTimeout(() => {
      raws[3]!.destroy();
      unnamed[1]!.destroy();
    }, 5);
    await within(shutdown, 5_000, 'app.shutdown() to finish');

    expect(app.connections.size).toBe(0);
    expect(app.server.listening).toBe(false);
    // The clients that stayed were told why: 1001 (§7.4.1 going away).
    for (const c of chatters.slice(1)) expect((await c.closed).code).toBe(1001);
    // The paused one learns of the server's FIN once it reads again.
    raws[1]!.resume();
    await Promise.all([...raws, ...unnamed].map((r) => within(r.closed, 5_000, 'raw sockets to close')));
    expect(raws[1]!.frames.at(-1)).toEqual({ kind: 'close', code: 1001, reason: 'server shutting down' });
  });
});

describe('half-open peers (vanished without a FIN)', () => {
  it('a peer that stops reading and never answers pings is dropped by the heartbeat; the others are told', async () => {
    // A paused socket stands in for a vanished peer: the server's pings go unanswered either way.
    // (A real FIN-less vanish needs packet dropping - netns + iptables - which this suite avoids.)
    s = await startServer({ PING_INTERVAL_MS: '50', PONG_TIMEOUT_MS: '150' });
    const alice = await ChatPeer.join(s.wsUrl(), 'alice'); // our client answers pings (§5.5.2)
    const ghost = await RawWs.join(s.port, 'ghost');
    ghost.pause();

    await alice.next((m) => m.type === 'leave' && m.message === 'ghost left the chat', 5_000);
    expect(await s.logged(/^disconnect name="ghost"/)).toMatch(
      /^disconnect name="ghost" code=1006 reason="pong timeout" peer=127\.0\.0\.1:\d+$/,
    );
    await expectOnly(s, 1);
    ghost.destroy();
  });

  it('peers that answer pings are kept, well past several pong timeouts', async () => {
    // The clients share this process (and a busy 2-core machine) with the server: a 400 ms timeout
    // leaves room for a scheduling stall that a 150 ms one would turn into a false drop.
    s = await startServer({ PING_INTERVAL_MS: '50', PONG_TIMEOUT_MS: '400' });
    const alice = await ChatPeer.join(s.wsUrl(), 'alice'); // our client answers pings itself
    const ponger = await RawWs.join(s.port, 'ponger');
    let answered = 0;
    const stop = setInterval(() => {
      // Answer every ping seen so far (§5.5.2: the pong echoes the ping's payload).
      const pings = ponger.frames.filter((f) => f.kind === 'ping');
      for (; answered < pings.length; answered++) ponger.send(Opcode.Pong, (pings[answered] as { data: Buffer }).data);
    }, 10);
    try {
      // 24 pings at 50 ms: three pong timeouts' worth.
      await waitUntil(() => ponger.frames.filter((f) => f.kind === 'ping').length >= 24, '24 pings');
      expect(ponger.peer.isClosed).toBe(false);
      expect(await s.clientCount()).toBe(2);
      expect(s.logs.filter((l) => l.startsWith('disconnect'))).toEqual([]);
      await roundTrip(alice, alice, 'ponger still here');
    } finally {
      clearInterval(stop);
      ponger.destroy();
    }
  });
});
