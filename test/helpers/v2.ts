/**
 * The v2 chat protocol from a test's side: hello, welcome, requests with cids, and the positions a client
 * keeps (the last offset it saw in each stream, for a resume). Built on the chat peer, over real sockets.
 */
import { expect } from 'vitest';
import { ChatPeer, type ChatMsg } from './chat';

/** Any message the server sends, as parsed JSON. */
export type Msg = Record<string, unknown> & { type: string };

export interface Welcome extends Msg {
  name: string;
  token: string;
  streams: { stream: string; epoch: string; offset: number; recovered: boolean }[];
}

export interface Position {
  epoch: string;
  offset: number;
}

/** The chat peer records the lesson's shape; v2 messages have other fields. */
const asMsg = (m: ChatMsg): Msg => m as unknown as Msg;

/** Opens /ws and says hello; resolves with the peer and its welcome. */
export async function hello(
  port: number,
  name: string,
  extra: { token?: string; resume?: Record<string, Position> } = {},
): Promise<{ peer: ChatPeer; welcome: Welcome }> {
  const peer = await ChatPeer.open(port);
  peer.send(JSON.stringify({ type: 'hello', name, ...extra }));
  const welcome = (await peer.next((m) => asMsg(m).type === 'welcome')) as unknown as Welcome;
  return { peer, welcome };
}

/** Sends a v2 request. */
export function request(peer: ChatPeer, body: Record<string, unknown>): void {
  peer.send(JSON.stringify(body));
}

/** The next message after the last one read that satisfies `match` (a type, or a predicate). */
export async function next(peer: ChatPeer, match: string | ((m: Msg) => boolean)): Promise<Msg> {
  const test = typeof match === 'string' ? (m: Msg) => m.type === match : match;
  return asMsg(await peer.next((m) => test(asMsg(m))));
}

/** Everything received so far, as parsed JSON. */
export function all(peer: ChatPeer): Msg[] {
  return peer.received().map(asMsg);
}

/**
 * A stored message's exact shape: the lesson's fields first, then (for notices) the member's name, the
 * time, and its place. `expected` gives every field but the time.
 */
export function expectStored(m: Msg, expected: Record<string, unknown>): void {
  const { time, ...rest } = m;
  expect(rest).toEqual(expected);
  const lesson = ['type', 'user', 'message', ...(m.to !== undefined ? ['to'] : [])];
  const tail = ['time', 'stream', 'offset', 'epoch', ...(m.history !== undefined ? ['history'] : [])];
  expect(Object.keys(m)).toEqual([...lesson, ...(m.name !== undefined ? ['name'] : []), ...tail]);
  expect(new Date(time as string).toISOString()).toBe(time);
}

/** The last position seen in each stream, from every stored message received so far. */
export function positions(peer: ChatPeer): Record<string, Position> {
  const out: Record<string, Position> = {};
  for (const m of all(peer)) {
    if (m.type === 'welcome') {
      for (const s of (m as unknown as Welcome).streams) out[s.stream] = { epoch: s.epoch, offset: s.offset };
    } else if (typeof m.stream === 'string' && typeof m.offset === 'number' && typeof m.epoch === 'string') {
      if (m.type === 'joined' || (out[m.stream]?.offset ?? -1) < m.offset) {
        out[m.stream] = { epoch: m.epoch, offset: m.offset };
      }
    }
  }
  return out;
}
