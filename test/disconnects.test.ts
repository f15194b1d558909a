/**
 * Abrupt disconnects in every state - during the handshake, mid-frame, mid-fragmented message, while
 * the Hub is broadcasting - leave nothing behind: no unhandled rejection, no uncaught exception, no
 * leaked client, connection or socket. (During shutdown: shutdown.test.ts; vanished peers found by
 * the heartbeat: heartbeat.test.ts and hub.test.ts.)
 *
 * vitest fails a run on unhandled errors by default (test/vitest.config.ts does not set
 * dangerouslyIgnoreUnhandledErrors); the listeners below also fail the test that caused one.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { NO_RATE_LIMIT, startApp, type TestApp } from './helpers/app';
import { chatMessages, ChatPeer, left, rawChat, rawJoin, roundTrip } from './helpers/chat';
import { RawPeer } from './helpers/raw-peer';
import { turns } from './helpers/wait';
import { frame, upgradeRequest } from './helpers/wire';

/** Unhandled rejections and uncaught exceptions while the file runs. */
const unhandled: unknown[] = [];
const record = (error: unknown): void => {
  unhandled.push(error);
};

beforeAll(() => {
  process.on('unhandledRejection', record);
  process.on('uncaughtException', record);
});

afterAll(() => {
  process.off('unhandledRejection', record);
  process.off('uncaughtException', record);
});

afterEach(async () => {
  // A rejection nobody handled is reported at the end of the turn it happened in.
  await turns(2);
  expect(unhandled).toEqual([]);
});

/** Nothing left behind: the app's connections, the TCP sockets and the roster are back to `n`. */
async function expectOnly(t: TestApp, n: number): Promise<void> {
  await t.untilConnections(n);
  await t.untilSockets(n);
  expect(t.app.connections.size).toBe(n);
  expect((await t.roster()).count).toBe(n);
}

describe('destroyed during the handshake', () => {
  it.each([
    ['after 10 bytes of the request', (r: string) => r.slice(0, 10)],
    ['after half the request', (r: string) => r.slice(0, r.length >> 1)],
    ['after the whole head but its last CRLF', (r: string) => r.slice(0, -2)],
    ['right after the whole request, before reading the 101', (r: string) => r],
  ])('%s: nothing is left behind', async (_name, cut) => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const bob = await ChatPeer.join(t.port, 'bob');
    for (let i = 0; i < 5; i++) {
      const p = await RawPeer.open(t.port);
      p.write(cut(upgradeRequest(t.port, '/ws')));
      p.destroy();
    }
    await expectOnly(t, 2);
    await roundTrip(alice, bob, 'after handshake disconnects');
  });
});

describe('destroyed mid-frame', () => {
  const text = frame(Opcode.Text, 'hello, this message is never finished');
  const big = frame(Opcode.Text, 'y'.repeat(3000)); // 16-bit length form
  it.each([
    ['after 1 header byte', [text.subarray(0, 1)]],
    ['after 2 of 6 header bytes', [text.subarray(0, 2)]],
    ['inside the mask key', [text.subarray(0, 4)]],
    ['inside a 16-bit length', [big.subarray(0, 3)]],
    ['after half the payload', [text.subarray(0, text.length >> 1)]],
    ['after half of a 3000-byte payload', [big.subarray(0, 1500)]],
    ['after half a ping', [frame(Opcode.Ping, 'ping payload').subarray(0, 9)]],
    ['after half a close frame', [frame(Opcode.Close, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65])).subarray(0, 8)]],
  ])('%s: the client leaves, the others are told, nothing is left behind', async (_name, chunks) => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const victim = await rawJoin(t.port, 'victim');
    for (const c of chunks) victim.write(c);
    victim.destroy();
    await alice.waitFor(left('victim'));
    await expectOnly(t, 1);
    // Nothing of the half-sent message leaked out as a chat message.
    expect(alice.chats('victim')).toEqual([]);
  });

  it('a half-sent name (the very first message) leaves no trace', async () => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const ws = await rawChat(t.port);
    ws.write(frame(Opcode.Text, 'nameless').subarray(0, 7));
    ws.destroy();
    await expectOnly(t, 1);
    expect(alice.received((m) => m.message.includes('nameless'))).toEqual([]);
  });
});

describe('destroyed mid-fragmented message (§5.4)', () => {
  it.each([
    ['after the first fragment', (f: Buffer[]) => [f[0]!]],
    ['after the first fragment and a ping between fragments', (f: Buffer[]) => [f[0]!, frame(Opcode.Ping, 'p')]],
    ['halfway through the second fragment', (f: Buffer[]) => [f[0]!, f[1]!.subarray(0, 5)]],
    ['before the final fragment', (f: Buffer[]) => [f[0]!, f[1]!]],
  ])('%s: no partial message is broadcast, nothing is left behind', async (_name, pick) => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const victim = await rawJoin(t.port, 'victim');
    const fragments = [
      frame(Opcode.Text, 'first part, ', { fin: false }),
      frame(Opcode.Continuation, 'second part, ', { fin: false }),
      frame(Opcode.Continuation, 'last part'),
    ];
    for (const c of pick(fragments)) victim.write(c);
    victim.destroy();
    await alice.waitFor(left('victim'));
    await expectOnly(t, 1);
    expect(alice.chats('victim')).toEqual([]);
  });
});

describe('destroyed while the Hub is broadcasting to it', () => {
  it('10 of 20 receivers vanish during a 1,200-message burst; the rest get every message in order', async () => {
    const t = await startApp(NO_RATE_LIMIT);
    const watcher = await ChatPeer.join(t.port, 'watcher');
    const senders = await Promise.all([0, 1, 2, 3].map((i) => ChatPeer.join(t.port, `sender${i}`)));
    const receivers: RawPeer[] = [];
    for (let i = 0; i < 20; i++) receivers.push(await rawJoin(t.port, `r${i}`));
    const PER_SENDER = 300;
    const total = PER_SENDER * senders.length;

    /** Resolves once `peer` has received `n` chat messages (the predicate sees each frame once). */
    const chats = (peer: RawPeer, n: number): Promise<unknown> => {
      let seen = 0;
      return peer.waitForFrame((f) => f.payload.includes('"type":"chat"') && ++seen >= n);
    };
    // Victim i is destroyed once it has seen 20 x i chat messages: all along the burst.
    const victims = receivers.filter((_, i) => i % 2 === 0);
    const destroyed = victims.map(async (v, i) => {
      await chats(v, 20 * i + 1);
      v.destroy();
    });
    for (let n = 0; n < PER_SENDER; n++) for (const sender of senders) sender.send(`${sender.name} ${n}`);
    await Promise.all(destroyed);

    const survivors = receivers.filter((_, i) => i % 2 === 1);
    await Promise.all(survivors.map((r) => chats(r, total)));
    for (const r of survivors) {
      const got = chatMessages(r).filter((m) => m.type === 'chat');
      for (const sender of senders) {
        const expected = Array.from({ length: PER_SENDER }, (_, n) => `${sender.name} ${n}`);
        expect(got.filter((m) => m.user === sender.name).map((m) => m.message)).toEqual(expected);
      }
    }
    for (const v of victims) await watcher.waitFor(left(`r${receivers.indexOf(v)}`));
    await watcher.until((all) => all.filter((m) => m.type === 'chat').length === total);
    await expectOnly(t, 1 + senders.length + survivors.length);
  });
});
