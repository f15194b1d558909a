/**
 * The chat peer: a named client on our own connect() that records every message the server sends,
 * plus the same chat over the raw wire peer (handshake, name and frames by hand) for peers that stop
 * reading, half-send or vanish.
 */
import { randomBytes } from 'node:crypto';
import { connect, type CloseInfo, type ConnectOptions, type WebSocketConnection } from '../../src/websocket';
import { expect } from 'vitest';
import { NO_CLOSE_TIMER_MS, startApp, type TestApp } from './app';
import { RawPeer } from './raw-peer';
import { Signal } from './wait';

/** A server message, as the chat protocol defines it. */
export interface ChatMsg {
  readonly type: 'join' | 'leave' | 'chat' | 'private' | 'error';
  readonly user: string;
  readonly message: string;
  readonly to?: string;
  readonly time: string;
}

/** A message type, or any predicate. */
export type Filter = ChatMsg['type'] | ((m: ChatMsg) => boolean);

const matches = (filter: Filter | undefined, m: ChatMsg): boolean =>
  filter === undefined ? true : typeof filter === 'string' ? m.type === filter : filter(m);

export class ChatPeer {
  /** Everything received so far, in order. */
  readonly messages: ChatMsg[] = [];
  /** Resolves after the last message has been recorded and the TCP connection is gone. */
  readonly closed: Promise<CloseInfo>;
  private readonly arrived = new Signal();
  private cursor = 0;
  private ended = false;

  private constructor(
    readonly conn: WebSocketConnection,
    /** The name it sent (undefined until it sends one). */
    public name: string | undefined,
  ) {
    this.closed = this.pump();
  }

  /** A chat peer over a connection opened elsewhere (wss://, a proxy): no name sent yet. */
  static over(conn: WebSocketConnection): ChatPeer {
    return new ChatPeer(conn, undefined);
  }

  /** Opens /ws (or `path`) without sending a name. */
  static async open(port: number, options: ConnectOptions = {}, path = '/ws'): Promise<ChatPeer> {
    const conn = await connect(`ws://127.0.0.1:${port}${path}`, { closeTimeoutMs: NO_CLOSE_TIMER_MS, ...options });
    return new ChatPeer(conn, undefined);
  }

  /** Opens /ws, sends `name` and waits for its own join notice: it is registered. */
  static async join(port: number, name: string, options: ConnectOptions = {}): Promise<ChatPeer> {
    const peer = await ChatPeer.open(port, options);
    peer.send(name);
    peer.name = name;
    await peer.next(joined(name));
    return peer;
  }

  private async pump(): Promise<CloseInfo> {
    for await (const m of this.conn) {
      if (m.binary) throw new Error('the chat server sent a binary frame');
      this.messages.push(JSON.parse(m.data) as ChatMsg);
      this.arrived.notify();
    }
    this.ended = true;
    this.arrived.notify();
    return this.conn.closed;
  }

  private endedError = (): Error | undefined =>
    this.ended
      ? new Error(`${this.name ?? 'peer'}: connection ended; got ${JSON.stringify(this.messages)}`)
      : undefined;

  /** The next message after the last one next() returned that matches `filter` (any, if none). */
  next(filter?: Filter): Promise<ChatMsg> {
    return this.arrived.until(() => {
      while (this.cursor < this.messages.length) {
        const m = this.messages[this.cursor++]!;
        if (matches(filter, m)) return m;
      }
      return undefined;
    }, this.endedError);
  }

  /** Like next(), but returns every message read: those after the last one read, up to the match. */
  async upTo(filter: Filter): Promise<ChatMsg[]> {
    const from = this.cursor;
    await this.next(filter);
    return this.messages.slice(from, this.cursor);
  }

  /** The first message, already received or still to come, that matches `filter` (order aside). */
  waitFor(filter: Filter): Promise<ChatMsg> {
    return this.arrived.until(() => this.messages.find((m) => matches(filter, m)), this.endedError);
  }

  /** Resolves once `condition` holds for everything received so far (re-checked on each message). */
  async until(condition: (all: readonly ChatMsg[]) => boolean): Promise<void> {
    await this.arrived.until(() => (condition(this.messages) ? true : undefined), this.endedError);
  }

  /** Messages received so far that match `filter`. */
  received(filter?: Filter): ChatMsg[] {
    return this.messages.filter((m) => matches(filter, m));
  }

  /** The texts of the chat messages received so far (from `user` only, if given). */
  chats(user?: string): string[] {
    return this.received((m) => m.type === 'chat' && (user === undefined || m.user === user)).map((m) => m.message);
  }

  send(text: string): boolean {
    return this.conn.send(text);
  }

  /** Closes (1000 by default) and waits for the TCP connection to end. */
  close(code = 1000, reason = ''): Promise<CloseInfo> {
    this.conn.close(code, reason);
    return this.closed;
  }
}

/** Message matchers for next(), waitFor() and received(). */
export const joined = (name: string) => (m: ChatMsg): boolean =>
  m.type === 'join' && m.message === `${name} joined the chat`;
export const left = (name: string) => (m: ChatMsg): boolean =>
  m.type === 'leave' && m.message === `${name} left the chat`;
export const chatFrom = (user: string, text?: string) => (m: ChatMsg): boolean =>
  m.type === 'chat' && m.user === user && (text === undefined || m.message === text);

/** Joins clients one after another; each has read (next()) the join notices of those after it. */
export async function joinAll(port: number, ...names: string[]): Promise<ChatPeer[]> {
  const peers: ChatPeer[] = [];
  for (const name of names) peers.push(await ChatPeer.join(port, name));
  for (const [i, p] of peers.entries()) for (const later of names.slice(i + 1)) await p.next(joined(later));
  return peers;
}

/** The chat works: `a` says something unique and `b` hears it. */
export async function roundTrip(a: ChatPeer, b: ChatPeer, tag: string): Promise<void> {
  const text = `${tag} ${randomBytes(4).toString('hex')}`;
  a.send(text);
  await b.waitFor(chatFrom(a.name!, text));
}

// ---- the chat over the raw wire peer ----

/** The chat messages a recording raw peer has received. */
export function chatMessages(peer: RawPeer): ChatMsg[] {
  return peer.texts().map((t) => JSON.parse(t) as ChatMsg);
}

/** A raw peer on /ws after the handshake, recording frames (close frames answered); no name sent. */
export async function rawChat(port: number): Promise<RawPeer> {
  return (await RawPeer.upgrade(port, '/ws')).record({ answerClose: true });
}

/** A raw peer on /ws that sent `name` and saw its own join notice. */
export async function rawJoin(port: number, name: string): Promise<RawPeer> {
  const peer = await rawChat(port);
  peer.send(0x1, name);
  await peer.untilFrames(() => chatMessages(peer).some(joined(name)));
  return peer;
}

export interface ChattingApp {
  readonly t: TestApp;
  readonly alice: ChatPeer;
  readonly bob: ChatPeer;
  /** Every other socket is closed on the server's side too, and alice and bob still talk both ways. */
  undisturbed(): Promise<void>;
}

/** An app with two chatters, alice and bob, who must keep talking whatever else the test does. */
export async function appWithChatters(env: Record<string, string> = {}): Promise<ChattingApp> {
  const t = await startApp(env);
  const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
  return {
    t,
    alice: alice!,
    bob: bob!,
    async undisturbed() {
      await t.untilSockets(2);
      expect(t.app.connections.size).toBe(2);
      await roundTrip(alice!, bob!, 'alice to bob');
      await roundTrip(bob!, alice!, 'bob to alice');
      expect((await t.roster()).clients.map((c) => c.name)).toEqual(['alice', 'bob']);
    },
  };
}
