/**
 * The Hub's fan-out unit alone, without sockets or the Hub: the one delivery path (encode once, post to
 * each recipient, report slow ones), the per-turn budget, the presence window and the audience rule.
 */
import { describe, expect, it } from 'vitest';
import { endOfTurn } from '../src/channel';
import { Client } from '../src/chat/models/client';
import { Fanout, type FanoutOptions } from '../src/chat/models/fanout';
import { chatMessage, errorMessage, joinNotice, privateMessage } from '../src/chat/models/message';
import type { PreparedFrame, WebSocketConnection } from '../src/websocket';

// Fan-out never touches a connection; a dropped client's connection is the Hub's business.
const noConnection = { close() {} } as unknown as WebSocketConnection;

/** Members in join order, with join sequence numbers 1, 2, 3... */
function members(count: number, queue = 1024): Client[] {
  return Array.from({ length: count }, (_, i) => {
    const c = new Client(noConnection, queue);
    c.name = `m${i + 1}`;
    c.joinSeq = i + 1;
    return c;
  });
}

interface Setup {
  readonly fanout: Fanout;
  readonly slow: Client[];
  readonly set: Set<Client>;
}

function setup(clients: Client[], options: Partial<FanoutOptions> = {}): Setup {
  const slow: Client[] = [];
  const set = new Set(clients);
  const fanout = new Fanout(set, {
    perTurn: 64,
    presenceWindowMs: 5,
    onSlow: (c) => slow.push(c),
    ...options,
  });
  return { fanout, slow, set };
}

/** What is queued for a client, as "type:message", without waiting. */
function queued(c: Client): string[] {
  return c.send.tryReceiveMany().map((f: PreparedFrame) => {
    const m = JSON.parse(f.bytes.subarray(f.bytes.indexOf('{')).toString()) as { type: string; message: string };
    return `${m.type}:${m.message}`;
  });
}

describe('deliver', () => {
  it('encodes a message once and posts the same frame to every member', () => {
    const clients = members(3);
    const { fanout } = setup(clients);
    fanout.send(chatMessage('m1', 'hello'), 3);
    const frames = clients.map((c) => c.send.tryReceiveMany());
    expect(frames.map((f) => f.length)).toEqual([1, 1, 1]);
    expect(frames[1]![0]).toBe(frames[0]![0]);
    expect(frames[2]![0]).toBe(frames[0]![0]);
  });

  it('reaches only those who had joined when it was said (joinSeq <= upTo)', () => {
    const clients = members(3);
    const { fanout } = setup(clients);
    fanout.send(chatMessage('m1', 'early'), 2);
    expect(clients.map(queued)).toEqual([['chat:early'], ['chat:early'], []]);
  });

  it('a private message goes to its addressee alone', () => {
    const clients = members(3);
    const { fanout } = setup(clients);
    fanout.send(privateMessage('m1', 'm2', 'psst'), 3, clients[1]);
    expect(clients.map(queued)).toEqual([[], ['private:psst'], []]);
  });

  it('reports a member whose queue is full after the loop, and the others still get the message', () => {
    const clients = members(3, 1);
    const { fanout, slow } = setup(clients);
    fanout.send(chatMessage('m1', 'one'), 3);
    clients[0]!.send.tryReceiveMany();
    clients[2]!.send.tryReceiveMany();
    fanout.send(chatMessage('m1', 'two'), 3);
    expect(slow).toEqual([clients[1]]);
    expect(queued(clients[0]!)).toEqual(['chat:two']);
    expect(queued(clients[2]!)).toEqual(['chat:two']);
  });

  it('an error for one client whose queue is full reports it like any fan-out', () => {
    const [c] = members(1, 1);
    const { fanout, slow } = setup([c!]);
    fanout.tell(c!, errorMessage('first'));
    fanout.tell(c!, errorMessage('second'));
    expect(slow).toEqual([c]);
  });
});

describe('the per-turn budget', () => {
  it('has no room after perTurn deliveries, and gets it back with a wake-up at the end of the turn', async () => {
    const clients = members(2);
    const { fanout } = setup(clients, { perTurn: 3 });
    for (let i = 0; i < 3; i++) {
      expect(fanout.hasRoom).toBe(true);
      fanout.send(chatMessage('m1', `c${i}`), 2);
    }
    expect(fanout.hasRoom).toBe(false);
    expect(fanout.wake.length).toBe(0);
    await endOfTurn();
    expect(fanout.hasRoom).toBe(true);
    expect(fanout.wake.tryReceive().ready).toBe(true);
  });

  it('delivers waiting messages at most perTurn per turn, in order', async () => {
    const clients = members(1);
    const { fanout } = setup(clients, { perTurn: 4 });
    fanout.announce(joinNotice('m1'), 1);
    for (let i = 0; i < 9; i++) fanout.send(chatMessage('m1', `c${i}`), 1);
    fanout.flush();
    expect(queued(clients[0]!)).toEqual(['join:m1 joined the chat', 'chat:c0', 'chat:c1', 'chat:c2']);
    expect(fanout.pending).toBe(6);
    fanout.flush(); // the same turn: no budget left
    expect(queued(clients[0]!)).toEqual([]);
    await endOfTurn();
    fanout.flush();
    expect(queued(clients[0]!)).toEqual(['chat:c3', 'chat:c4', 'chat:c5', 'chat:c6']);
    await endOfTurn();
    fanout.flush();
    expect(queued(clients[0]!)).toEqual(['chat:c7', 'chat:c8']);
    expect(fanout.pending).toBe(0);
  });
});

describe('the presence window', () => {
  it('holds a notice until its window closes, then the wake-up lets it out', async () => {
    const clients = members(2);
    const { fanout } = setup(clients);
    fanout.announce(joinNotice('m2'), 2);
    fanout.flush(); // not due yet: nothing goes out
    expect(clients.map((c) => c.send.length)).toEqual([0, 0]);
    await fanout.wake.receive();
    fanout.flush();
    expect(clients.map(queued)).toEqual([['join:m2 joined the chat'], ['join:m2 joined the chat']]);
  });

  it('a notice reaches only those who had joined when it was made', async () => {
    const clients = members(3);
    const { fanout } = setup(clients);
    fanout.announce(joinNotice('m2'), 2); // m3 joins during the window
    await fanout.wake.receive();
    fanout.flush();
    expect(clients.map(queued)).toEqual([['join:m2 joined the chat'], ['join:m2 joined the chat'], []]);
  });

  it('a message said during the window queues behind the notices and makes them due at once', () => {
    const clients = members(2);
    const { fanout } = setup(clients);
    fanout.announce(joinNotice('m2'), 2);
    fanout.send(chatMessage('m2', 'hi'), 2);
    expect(clients[0]!.send.length).toBe(0);
    expect(fanout.wake.tryReceive().ready).toBe(true); // due now, not when the window closes
    fanout.flush();
    expect(queued(clients[0]!)).toEqual(['join:m2 joined the chat', 'chat:hi']);
  });

  it('an error for one client does not wait behind notices', () => {
    const clients = members(2);
    const { fanout } = setup(clients);
    fanout.announce(joinNotice('m2'), 2);
    fanout.tell(clients[0]!, errorMessage('nope'));
    expect(queued(clients[0]!)).toEqual(['error:nope']);
  });

  it('a waiting private message for someone who has left since is not delivered', () => {
    const clients = members(2);
    const { fanout, set } = setup(clients);
    fanout.announce(joinNotice('m2'), 2);
    fanout.send(privateMessage('m1', 'm2', 'late'), 2, clients[1]);
    set.delete(clients[1]!); // what the Hub does when m2 leaves
    clients[1]!.finish(1000, '');
    fanout.flush();
    expect(queued(clients[0]!)).toEqual(['join:m2 joined the chat']);
    expect(queued(clients[1]!)).toEqual([]);
  });

  it('with nobody left, a notice and everything waiting are dropped', async () => {
    const { fanout } = setup([]);
    fanout.announce(joinNotice('gone'), 1);
    expect(fanout.pending).toBe(0);
  });
});
