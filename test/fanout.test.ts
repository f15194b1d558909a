/**
 * The Hub's fan-out unit alone, without sockets or the Hub: the one delivery path (one frame per stored
 * message, posted to each member of its stream, slow ones reported), the per-turn budget, the presence
 * window and the audience rule (a member receives a stream from an offset on).
 */
import { describe, expect, it } from 'vitest';
import { endOfTurn } from '../src/channel';
import { Client } from '../src/chat/models/client';
import { Fanout, type FanoutOptions } from '../src/chat/models/fanout';
import { Stream } from '../src/chat/models/history';
import { chatMessage, encodeError, joinNotice } from '../src/chat/models/message';
import type { Members } from '../src/chat/models/rooms';
import { Session } from '../src/chat/models/session';
import { PreparedFrame, type WebSocketConnection } from '../src/websocket';

// Fan-out never touches a connection; a dropped client's connection is the Hub's business.
const noConnection = { close() {} } as unknown as WebSocketConnection;

interface Setup {
  readonly fanout: Fanout;
  readonly slow: Client[];
  readonly clients: Client[];
  readonly members: Members;
  readonly stream: Stream;
}

/** A stream with `count` members receiving it from offset 0, each with a client of queue `queue`. */
function setup(count: number, options: Partial<FanoutOptions> & { queue?: number } = {}): Setup {
  const slow: Client[] = [];
  const fanout = new Fanout({ perTurn: 64, presenceWindowMs: 5, onSlow: (c) => slow.push(c), ...options });
  const members: Members = new Map();
  const clients: Client[] = [];
  for (let i = 0; i < count; i++) {
    const client = new Client(noConnection, options.queue ?? 1024);
    client.name = `m${i + 1}`;
    members.set(new Session(client.name, client.name, true, client, 10), 0);
    clients.push(client);
  }
  return { fanout, slow, clients, members, stream: new Stream('room', 100) };
}

/** What is queued for a client, as "type:message", without waiting. */
function queued(c: Client): string[] {
  const frames = c.send.tryReceiveMany().flatMap((out) => (out instanceof PreparedFrame ? [out] : [...out]));
  return frames.map((f) => {
    const m = JSON.parse(payload(f.bytes)) as { type: string; message: string };
    return `${m.type}:${m.message}`;
  });
}

/** An unmasked server frame's payload (RFC 6455 §5.2: a 7-bit length, or 126/127 and 2/8 more bytes). */
function payload(frame: Buffer): string {
  const len7 = frame[1]! & 0x7f;
  return frame.subarray(len7 < 126 ? 2 : len7 === 126 ? 4 : 10).toString();
}

describe('deliver', () => {
  it('turns a stored message into one frame and posts that frame to every member', () => {
    const { fanout, clients, members, stream } = setup(3);
    fanout.send(stream.append(chatMessage('m1', 'hello')), members);
    const frames = clients.map((c) => c.send.tryReceiveMany());
    expect(frames.map((f) => f.length)).toEqual([1, 1, 1]);
    expect(frames[1]![0]).toBe(frames[0]![0]);
    expect(frames[2]![0]).toBe(frames[0]![0]);
  });

  it('reaches a member only from the offset it receives the stream from', () => {
    const { fanout, clients, members, stream } = setup(3);
    const first = stream.append(chatMessage('m1', 'first'));
    members.set([...members.keys()][2]!, first.offset); // the third got it as history already
    fanout.send(first, members);
    fanout.send(stream.append(chatMessage('m1', 'second')), members);
    expect(clients.map(queued)).toEqual([
      ['chat:first', 'chat:second'],
      ['chat:first', 'chat:second'],
      ['chat:second'],
    ]);
  });

  it('skips a member in its grace period (no client), and keeps going', () => {
    const { fanout, clients, members, stream } = setup(2);
    [...members.keys()][0]!.client = null;
    fanout.send(stream.append(chatMessage('m2', 'hi')), members);
    expect(clients.map(queued)).toEqual([[], ['chat:hi']]);
  });

  it('reports a member whose queue is full after the loop, and the others still get the message', () => {
    const { fanout, slow, clients, members, stream } = setup(3, { queue: 1 });
    fanout.send(stream.append(chatMessage('m1', 'one')), members);
    queued(clients[0]!);
    queued(clients[2]!);
    fanout.send(stream.append(chatMessage('m1', 'two')), members);
    expect(slow).toEqual([clients[1]]);
    expect(queued(clients[0]!)).toEqual(['chat:two']);
    expect(queued(clients[2]!)).toEqual(['chat:two']);
  });

  it('an error for one client whose queue is full reports it like any fan-out', () => {
    const { fanout, slow, clients } = setup(1, { queue: 1 });
    fanout.tell(clients[0]!, encodeError('first'));
    fanout.tell(clients[0]!, encodeError('second'));
    expect(slow).toEqual([clients[0]]);
  });

  it('a backlog takes one place in the queue, however many messages it holds', () => {
    const { fanout, slow, clients } = setup(1, { queue: 1 });
    fanout.tell(clients[0]!, ['a', 'b', 'c'].map((t) => encodeError(t)));
    expect(slow).toEqual([]);
    expect(clients[0]!.send.length).toBe(1);
    expect(queued(clients[0]!)).toEqual(['error:a', 'error:b', 'error:c']);
  });
});

describe('the per-turn budget', () => {
  it('has no room after perTurn deliveries, and gets it back with a wake-up at the end of the turn', async () => {
    const { fanout, members, stream } = setup(2, { perTurn: 3 });
    for (let i = 0; i < 3; i++) {
      expect(fanout.hasRoom).toBe(true);
      fanout.send(stream.append(chatMessage('m1', `c${i}`)), members);
    }
    expect(fanout.hasRoom).toBe(false);
    expect(fanout.wake.length).toBe(0);
    await endOfTurn();
    expect(fanout.hasRoom).toBe(true);
    expect(fanout.wake.tryReceive().ready).toBe(true);
  });

  it('delivers waiting messages at most perTurn per turn, in order', async () => {
    const { fanout, clients, members, stream } = setup(1, { perTurn: 4 });
    fanout.announce(stream.append(joinNotice('m1', 'lobby')), members);
    for (let i = 0; i < 9; i++) fanout.send(stream.append(chatMessage('m1', `c${i}`)), members);
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
    const { fanout, clients, members, stream } = setup(2);
    fanout.announce(stream.append(joinNotice('m2', 'lobby')), members);
    fanout.flush(); // not due yet: nothing goes out
    expect(clients.map((c) => c.send.length)).toEqual([0, 0]);
    await fanout.wake.receive();
    fanout.flush();
    expect(clients.map(queued)).toEqual([['join:m2 joined the chat'], ['join:m2 joined the chat']]);
  });

  it('a waiting notice reaches only those who were members when it was stored', async () => {
    const { fanout, clients, members, stream } = setup(3);
    const third = [...members.keys()][2]!;
    members.delete(third); // not a member yet
    fanout.announce(stream.append(joinNotice('m2', 'lobby')), members);
    members.set(third, stream.top); // joins during the window, from the latest offset on
    await fanout.wake.receive();
    fanout.flush();
    expect(clients.map(queued)).toEqual([['join:m2 joined the chat'], ['join:m2 joined the chat'], []]);
  });

  it('a message said during the window queues behind the notices and makes them due at once', () => {
    const { fanout, clients, members, stream } = setup(2);
    fanout.announce(stream.append(joinNotice('m2', 'lobby')), members);
    fanout.send(stream.append(chatMessage('m2', 'hi')), members);
    expect(clients[0]!.send.length).toBe(0);
    expect(fanout.wake.tryReceive().ready).toBe(true); // due now, not when the window closes
    fanout.flush();
    expect(queued(clients[0]!)).toEqual(['join:m2 joined the chat', 'chat:hi']);
  });

  it('a reply to one client does not wait behind notices', () => {
    const { fanout, clients, members, stream } = setup(2);
    fanout.announce(stream.append(joinNotice('m2', 'lobby')), members);
    fanout.tell(clients[0]!, encodeError('nope'));
    expect(queued(clients[0]!)).toEqual(['error:nope']);
  });

  it('a waiting message for someone who has left since is not delivered to them', () => {
    const { fanout, clients, members, stream } = setup(2);
    fanout.announce(stream.append(joinNotice('m2', 'lobby')), members);
    members.delete([...members.keys()][1]!); // what the Hub does when m2 leaves
    fanout.flush();
    fanout.send(stream.append(chatMessage('m1', 'late')), members);
    fanout.flush();
    expect(queued(clients[0]!)).toEqual(['join:m2 joined the chat', 'chat:late']);
    expect(queued(clients[1]!)).toEqual([]);
  });

  it('a notice with nobody to tell is not held at all', () => {
    const { fanout, stream } = setup(0);
    fanout.announce(stream.append(joinNotice('gone', 'lobby')), new Map());
    expect(fanout.pending).toBe(0);
  });
});
