/**
 * The Hub's ordering guarantee, driven through its channels directly (no sockets): an unregister
 * must never overtake the leaver's messages still queued on `broadcast`, even when select() picks
 * the unregister case first. Math.random is pinned so select's uniform pick is the worst one.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../src/chat/models/client';
import { Hub, whoIsOnline } from '../src/chat/models/hub';
import { chatMessage, privateMessage } from '../src/chat/models/message';
import type { WebSocketConnection } from '../src/websocket';

// The Hub only closes connections of clients it drops; none is dropped here (queues are large).
const noConnection = { close() {} } as unknown as WebSocketConnection;

function member(name: string): Client {
  const c = new Client(noConnection, 1024);
  c.name = name;
  return c;
}

/** The JSON payloads of a client's queued frames (server frames: 2- or 4-byte header, unmasked). */
async function texts(c: Client): Promise<string[]> {
  const frames = await c.send.receiveMany();
  return frames.map((f) => {
    const m = JSON.parse(f.bytes.subarray(f.bytes.indexOf('{')).toString()) as { type: string; message: string };
    return `${m.type}:${m.message}`;
  });
}

afterEach(() => vi.restoreAllMocks());

describe('Hub ordering', () => {
  it("delivers everything a leaver said before its leave notice, though select picks the unregister first", async () => {
    const hub = new Hub();
    const running = hub.run();
    const alice = member('alice');
    const bob = member('bob');
    await hub.register.send(alice);
    await hub.register.send(bob);
    expect(await texts(bob)).toEqual(['join:bob joined the chat']);

    // Of several ready cases select picks uniformly at random; 0 picks the first ready one, and
    // `unregister` comes before `broadcast` in the Hub's select.
    vi.spyOn(Math, 'random').mockReturnValue(0);
    // More than one select turn's batch (64) is queued, so the unregister meets a non-empty queue.
    const said: string[] = [];
    for (let i = 0; i < 150; i++) {
      const message = i % 3 === 0 ? privateMessage('alice', 'bob', `p${i}`) : chatMessage('alice', `c${i}`);
      expect(hub.broadcast.trySend({ from: alice, message })).toBe(true);
      said.push(`${message.type}:${message.message}`);
    }
    await hub.unregister.send(alice);
    await whoIsOnline(hub); // the Hub has finished the unregister once it answers this

    expect(await texts(bob)).toEqual([...said, 'leave:alice left the chat']);
    await hub.quit.send({ code: 1001, reason: 'test over' });
    await running;
  });
});
