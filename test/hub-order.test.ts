/**
 * The Hub's ordering guarantees, driven through its channels directly (no sockets): an unregister never
 * overtakes the leaver's last words, even when select() picks the unregister case first and many others'
 * messages wait ahead; presence notices are held together and reach exactly those present.
 * Math.random is pinned so select's uniform pick is the worst one.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { endOfTurn } from '../src/channel';
import { Client } from '../src/chat/models/client';
import { Hub, whoIsOnline } from '../src/chat/models/hub';
import { lessonRequest } from '../src/chat/models/protocol';
import { PreparedFrame, type WebSocketConnection } from '../src/websocket';

// The Hub only closes connections of clients it drops; none is dropped here (queues are large).
const noConnection = { close() {} } as unknown as WebSocketConnection;

/** A client of the lesson's protocol that has sent its name. */
function member(name: string): Client {
  const c = new Client(noConnection, 100_000);
  c.name = name;
  c.hello = { name, v2: false, token: undefined, resume: new Map() };
  return c;
}

/** What the client's readPump would hand the Hub for this text. */
const says = (c: Client, text: string) => ({ from: c, request: lessonRequest(text) });

/** What a client's writePump would take in one wake-up (everything queued by the end of the turn). */
async function texts(c: Client): Promise<string[]> {
  const queued = await c.send.receiveMany();
  await endOfTurn();
  queued.push(...c.send.tryReceiveMany());
  return queued
    .flatMap((out) => (out instanceof PreparedFrame ? [out] : [...out]))
    .map((f) => {
      const len7 = f.bytes[1]! & 0x7f;
      const m = JSON.parse(f.bytes.subarray(len7 < 126 ? 2 : 4).toString()) as { type: string; message: string };
      return `${m.type}:${m.message}`;
    });
}

afterEach(() => vi.restoreAllMocks());

describe('Hub ordering', () => {
  it("delivers a leaver's last words before its leave notice while many others' messages wait ahead", async () => {
    const hub = new Hub({ sendQueue: 100_000 });
    const running = hub.run();
    const alice = member('alice');
    const bob = member('bob');
    const crowd = Array.from({ length: 30 }, (_, i) => member(`crowd${i}`));
    for (const c of [alice, bob, ...crowd]) await hub.register.send(c);
    while (!(await texts(bob)).includes(`join:crowd29 joined the chat`));

    // Of several ready cases select picks uniformly at random; 0 picks the first ready one, and
    // `unregister` comes before `broadcast` in the Hub's select: the worst pick for alice's last words.
    vi.spyOn(Math, 'random').mockReturnValue(0);
    // Each sender behaves like a readPump: it awaits each send, then unregisters. The crowd keeps far
    // more than a turn's budget (64) waiting, so alice's words queue behind theirs.
    const said: string[] = [];
    const speak = async (c: Client, count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const text = `${c.name}-${i}`;
        const line = c === alice && i % 3 === 0 ? `@bob ${text}` : text;
        if (c === alice) said.push(`${line.startsWith('@') ? 'private' : 'chat'}:${text}`);
        await hub.broadcast.send(says(c, line));
      }
    };
    const crowdDone = Promise.all(crowd.map((c) => speak(c, 20)));
    await speak(alice, 150);
    await hub.unregister.send(alice);
    await crowdDone;

    // The leave notice waits out the presence window: read until it comes.
    const got: string[] = [];
    while (!got.includes('leave:alice left the chat')) got.push(...(await texts(bob)));
    const hers = got.filter((t) => /^\w+:alice/.test(t));
    expect(hers).toEqual([...said, 'leave:alice left the chat']);
    await hub.quit.send({ code: 1001, reason: 'test over' });
    await running;
  });
});

describe('presence notices', () => {
  it('a burst of joins reaches each client together, each notice only to those who had joined by then', async () => {
    const hub = new Hub();
    const running = hub.run();
    const names = Array.from({ length: 50 }, (_, i) => `user${i}`);
    const clients = names.map(member);
    // All register before any notice goes out: the presence window holds them (a timer cannot fire
    // before this chain of promise jobs yields to the event loop).
    for (const c of clients) await hub.register.send(c);
    expect(await whoIsOnline(hub)).toHaveLength(50);
    expect(clients.map((c) => c.send.length)).toEqual(names.map(() => 0));

    // The first client gets every join, in order, in one wake-up: they were held and sent together.
    expect(await texts(clients[0]!)).toEqual(names.map((n) => `join:${n} joined the chat`));
    // Later joiners hear of themselves and of those after them, never of those before.
    expect(await texts(clients[49]!)).toEqual(['join:user49 joined the chat']);
    expect(await texts(clients[10]!)).toEqual(names.slice(10).map((n) => `join:${n} joined the chat`));
    await hub.quit.send({ code: 1001, reason: 'test over' });
    await running;
  });

  it('a message said right after a join never overtakes the join notice', async () => {
    const hub = new Hub();
    const running = hub.run();
    const bob = member('bob');
    await hub.register.send(bob);
    expect(await texts(bob)).toEqual(['join:bob joined the chat']);
    const alice = member('alice');
    await hub.register.send(alice);
    // alice's notice is waiting out its window; her first words must queue behind it.
    void hub.broadcast.send(says(alice, 'hi all'));
    const got: string[] = [];
    while (got.length < 2) got.push(...(await texts(bob)));
    expect(got).toEqual(['join:alice joined the chat', 'chat:hi all']);
    await hub.quit.send({ code: 1001, reason: 'test over' });
    await running;
  });
});
