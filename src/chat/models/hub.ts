/**
 * Hub: the lesson's models.Hub. It alone owns the chat's state (who is online, the rooms, the streams);
 * everything else talks to it through its channels, and run() is the Go goroutine's `for { select }`.
 * One loop owns the state, so no mutex. How messages reach the clients is ./fanout.ts.
 */
import { timingSafeEqual } from 'node:crypto';
import { Channel, select } from '../../channel';
import { CloseCode } from '../../websocket';
import type { Client } from './client';
import { Fanout } from './fanout';
import type { Stored, Stream } from './history';
import { asHistory, chatMessage, encodeAck, encodeError, encodeHistory, encodeJoined, encodeLeft } from './message';
import { encodeWelcome, joinNotice, leaveNotice, privateMessage } from './message';
import type { ChatMessage, Position, StreamWelcome } from './message';
import { nameKey } from './names';
import { isRoomName, LOBBY, type Request } from './protocol';
import { Rooms, type Members, type Room } from './rooms';
import { Session } from './session';
import { ChatStats, type ChatGauges } from './stats';

export class Hub {
  /** Go: Register chan *Client. The client's hello says who it is; a name must be free, or be its own. */
  readonly register = new Channel<Client>();
  /** Go: Unregister chan *Client. */
  readonly unregister = new Channel<Client>();
  /**
   * Go: Broadcast chan []byte: what clients say and ask, in the order they said it. Unbuffered, as in
   * gorilla's chat: a readPump's send completes only once the Hub has taken the message, so its
   * unregister, sent after, can never overtake its last words.
   */
  readonly broadcast = new Channel<Said>();
  /** The homework's "who is online", and the rooms and their history: HTTP asks, the Hub answers. */
  readonly queries = new Channel<Query>();
  /** Shutdown: every client is closed with this code and reason, then run() returns. */
  readonly quit = new Channel<{ readonly code: number; readonly reason: string }>(1);

  /** Go: func (h *Hub) Run(). Returns after a quit request, with every client closed. */
  async run(): Promise<void> {
    for (;;) {
      const r = await select({
        register: this.register,
        unregister: this.unregister,
        // A nil case while this turn's budget is spent: readers wait until the writePumps have flushed.
        broadcast: this.fanout.hasRoom ? this.broadcast : null,
        queries: this.queries,
        expired: this.expired,
        fanout: this.fanout.wake,
        quit: this.quit,
      });
      switch (r.case) {
        case 'register': // Go: h.Clients[client] = true, and the exercise's join notice
          this.admit(r.value!);
          break;
        case 'unregister': // Go: delete(h.Clients, client); close(client.Send), and the leave notice
          this.release(r.value!);
          break;
        case 'broadcast': // Go: for client := range h.Clients { client.Send <- message }
          this.handle(r.value!);
          break;
        case 'queries': // the homework's list of who is online, and more
          this.answer(r.value!);
          break;
        case 'expired': // a vanished client did not come back within its grace period
          if (r.value!.client === null) this.end(r.value!);
          break;
        case 'fanout': // notices whose presence window closed, or a new turn's budget
          this.fanout.flush();
          break;
        case 'quit':
          this.shutdown(r.value!.code, r.value!.reason);
          return;
      }
    }
  }

  /** Go: Clients map[*Client]bool: the connected clients that hold a session. */
  private readonly clients = new Set<Client>();
  /** Everyone holding a name, by its key, in join order; a session in its grace period has no client. */
  private readonly sessions = new Map<string, Session>();
  private readonly rooms: Rooms;
  private readonly fanout: Fanout;
  /** Sessions whose grace period ran out; their timers send here. */
  private readonly expired = new Channel<Session>(1024);
  private readonly options: Required<Omit<HubOptions, 'stats'>>;
  private readonly stats: ChatStats;

  constructor(options: HubOptions = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.stats = options.stats ?? new ChatStats();
    this.rooms = new Rooms(this.options.maxRooms, this.options.historySize);
    this.fanout = new Fanout({
      perTurn: Math.max(1, Math.min(MAX_PER_TURN, Math.floor(this.options.sendQueue / 2))),
      presenceWindowMs: PRESENCE_WINDOW_MS,
      onSlow: (client) => this.dropSlow(client),
      stats: this.stats,
    });
  }

  /** What is true now (the metrics' gauges), asked through the queries channel like every question. */
  gauges(): Promise<ChatGauges> {
    return ask(this, (reply) => ({ kind: 'gauges', reply }));
  }

  // ---- register: a hello ----

  private admit(client: Client): void {
    const hello = client.hello!;
    const held = this.sessions.get(nameKey(hello.name));
    if (held !== undefined) {
      if (hello.v2 && sameToken(hello.token, held.token)) return this.resume(held, client);
      client.log('refused', { name: hello.name, reason: 'name taken' });
      return this.refuse(client, `the name ${hello.name} is taken: choose another`, 'name taken');
    }
    const session = new Session(hello.name, nameKey(hello.name), hello.v2, client, this.options.historySize);
    this.sessions.set(session.key, session);
    this.attach(session, client);
    const welcome: StreamWelcome[] = [];
    const backlog: string[] = [];
    const joined: Room[] = [];
    for (const name of [LOBBY, ...roomsIn(hello.resume)]) {
      const room = this.rooms.open(name);
      if (room === undefined || session.rooms.size >= this.options.maxRoomsPerClient) break;
      welcome.push(this.subscribe(session, room.stream, room.members, hello.resume.get(name), backlog));
      this.enter(room, session);
      joined.push(room);
    }
    if (session.v2) {
      welcome.push(this.subscribe(session, session.inbox, session.inboxMembers, undefined, backlog));
      this.fanout.tell(client, encodeWelcome(session.name, session.token, welcome));
      if (backlog.length > 0) this.fanout.tell(client, backlog);
    }
    for (const room of joined) this.announce(room, joinNotice(session.name, room.name));
  }

  /** The same person again, with the token of its session: nobody sees it leave or join. */
  private resume(session: Session, client: Client): void {
    const stale = session.client;
    if (stale !== null) {
      this.clients.delete(stale);
      this.stats.drops.replaced++;
      stale.drop(4001, 'replaced by a new connection');
    }
    if (session.grace !== null) clearTimeout(session.grace);
    session.grace = null;
    this.attach(session, client);
    const resume = client.hello!.resume;
    const welcome: StreamWelcome[] = [];
    const backlog: string[] = [];
    for (const room of session.rooms) {
      welcome.push(this.subscribe(session, room.stream, room.members, resume.get(room.name), backlog));
    }
    const inbox = session.inbox;
    welcome.push(this.subscribe(session, inbox, session.inboxMembers, resume.get(inbox.name), backlog));
    this.fanout.tell(client, encodeWelcome(session.name, session.token, welcome));
    if (backlog.length > 0) this.fanout.tell(client, backlog);
    client.log('resumed', { name: session.name, replaced: stale !== null ? true : undefined });
  }

  private attach(session: Session, client: Client): void {
    session.client = client;
    client.session = session;
    this.clients.add(client);
  }

  private refuse(client: Client, why: string, reason: string): void {
    this.stats.drops.helloRefused++;
    this.fanout.tell(client, encodeError(why));
    client.finish(CloseCode.PolicyViolation, reason);
  }

  /**
   * Makes `members` receive `stream` from its latest offset on, and adds what the client missed to
   * `backlog`: everything after its position if the stream still holds it, else the latest history.
   * (The lesson's clients get no backlog: their first message is their own join notice.)
   */
  private subscribe(
    session: Session,
    stream: Stream,
    members: Members,
    at: Position | undefined,
    backlog: string[],
  ): StreamWelcome {
    members.set(session, stream.top);
    const recovered = at !== undefined && stream.covers(at);
    if (at === undefined) this.stats.resumeNone++;
    else if (recovered) this.stats.resumeRecovered++;
    else this.stats.resumeNotRecovered++;
    if (recovered) {
      backlog.push(...stream.range(at.offset + 1, stream.top));
    } else if (session.v2) {
      const latest = stream.range(stream.top - this.options.historyOnJoin + 1, stream.top);
      backlog.push(...latest.map(asHistory));
    }
    return { stream: stream.name, ...stream.position, recovered };
  }

  /** A join or leave notice, stored in the room's stream and held for the presence window. */
  private announce(room: Room, notice: ChatMessage): void {
    this.fanout.announce(room.stream.append(notice), room.members);
  }

  private enter(room: Room, session: Session): void {
    this.rooms.add(room, session, room.stream.top);
    session.rooms.add(room);
  }

  // ---- unregister ----

  private release(client: Client): void {
    this.clients.delete(client);
    const session = client.session;
    if (session === null || session.client !== client) {
      client.finish(CloseCode.Normal, ''); // refused, or replaced by a newer connection
      return;
    }
    // It may come back with its token: keep its name, rooms and inbox for a while, tell nobody yet.
    if (!session.awaitReturn(client, this.options.resumeGraceMs, this.expired)) this.end(session);
  }

  /** The session ends for good: its rooms hear it leave, its name is free, its inbox is gone. */
  private end(session: Session): void {
    if (this.sessions.get(session.key) !== session) return;
    this.sessions.delete(session.key);
    if (session.grace !== null) clearTimeout(session.grace);
    session.grace = null;
    if (session.client !== null) {
      this.clients.delete(session.client);
      session.client.finish(CloseCode.Normal, ''); // a reason recorded earlier (drop, readPump) is kept
      session.client = null;
    }
    for (const room of session.rooms) {
      this.rooms.remove(room, session);
      this.announce(room, leaveNotice(session.name, room.name));
    }
    session.rooms.clear();
    if (this.sessions.size === 0) this.fanout.clear(); // nobody is left to tell anything
  }

  /** The lesson's rule: a client that cannot keep up is dropped, not waited for. */
  private dropSlow(client: Client): void {
    client.log('dropped', { name: client.name, reason: 'send queue full' });
    // Its writePump may wait on a socket the peer no longer reads: drop() closes the connection itself.
    client.drop(CloseCode.PolicyViolation, 'too slow: send queue full');
    const session = client.session;
    if (session !== null && session.client === client) this.end(session);
    else this.clients.delete(client);
  }

  // ---- broadcast: what clients say and ask ----

  private handle({ from, request }: Said): void {
    const session = from.session;
    // Only members speak: what a refused, replaced or dropped client still had on its way is not heard.
    if (session === null || session.client !== from) return;
    const fail = (why: string): void => this.fanout.tell(from, encodeError(why, request.cid));
    switch (request.type) {
      case 'chat': {
        const room = this.rooms.get(request.room);
        if (room === undefined || !room.members.has(session)) return fail(`you are not in #${request.room}`);
        const key = dedupKey(session, request.cid);
        const stored = this.store(room.stream, key, () => chatMessage(session.name, request.text));
        if (stored !== null) this.fanout.send(stored, room.members);
        return this.ack(from, request.cid, room.stream, key);
      }
      case 'private': {
        const to = this.sessions.get(nameKey(request.to));
        if (to === undefined) return fail(`${request.to} is not online`);
        // Stored twice: in the addressee's inbox, and as a copy in the sender's (its other tabs, its resume).
        const key = dedupKey(session, request.cid);
        const message = privateMessage(session.name, to.name, request.text);
        const copy = this.store(session.inbox, key, () => message);
        if (copy !== null) {
          // The lesson's clients get no copy of what they sent; a note to oneself arrives once.
          if (session.v2 || to === session) this.fanout.send(copy, session.inboxMembers);
          if (to !== session) this.fanout.send(to.inbox.append(message), to.inboxMembers);
        }
        return this.ack(from, request.cid, session.inbox, key);
      }
      case 'join':
        return this.join(session, from, request.room, fail);
      case 'leave': {
        const room = this.rooms.get(request.room);
        if (room === undefined || !session.rooms.has(room)) return fail(`you are not in #${request.room}`);
        this.rooms.remove(room, session);
        session.rooms.delete(room);
        this.fanout.tell(from, encodeLeft(room.name));
        return this.announce(room, leaveNotice(session.name, room.name));
      }
      case 'history': {
        const stream = this.readable(session, request.stream);
        if (stream === undefined) return fail(`you cannot read ${request.stream}: join it first`);
        const before = Math.min(request.before ?? Infinity, stream.top + 1);
        const first = Math.max(before - request.limit, stream.oldest);
        const page = stream.range(first, before - 1);
        const more = first > stream.oldest;
        return this.fanout.tell(from, encodeHistory(stream.name, stream.epoch, page, more, request.cid));
      }
    }
  }

  private join(session: Session, client: Client, name: string, fail: (why: string) => void): void {
    const existing = this.rooms.get(name);
    if (existing !== undefined && session.rooms.has(existing)) return fail(`you are already in #${name}`);
    if (session.rooms.size >= this.options.maxRoomsPerClient) {
      return fail(`too many rooms: at most ${this.options.maxRoomsPerClient} at once`);
    }
    const room = existing ?? this.rooms.open(name);
    if (room === undefined) return fail(`too many rooms on this server: at most ${this.options.maxRooms}`);
    const backlog: string[] = [];
    this.subscribe(session, room.stream, room.members, undefined, backlog);
    this.enter(room, session);
    this.fanout.tell(client, encodeJoined(room.name, room.stream.position));
    if (backlog.length > 0) this.fanout.tell(client, backlog);
    this.announce(room, joinNotice(session.name, room.name));
  }

  /**
   * Stores what `make` says unless the same cid from the same sender is still held: then it was stored
   * before (a resend after a reconnect) and nothing new is stored. Returns what was stored, or null.
   */
  private store(stream: Stream, key: string | undefined, make: () => ChatMessage): Stored | null {
    if (key !== undefined && stream.find(key) !== undefined) return null;
    return stream.append(make(), key);
  }

  /** The sender of a message with a cid learns where it is stored. */
  private ack(client: Client, cid: string | undefined, stream: Stream, key: string | undefined): void {
    if (cid === undefined || key === undefined) return;
    this.fanout.tell(client, encodeAck(cid, stream.name, { epoch: stream.epoch, offset: stream.find(key)! }));
  }

  /** A stream this session may read: a room it is in, or its own inbox (`@name`, in any of its forms). */
  private readable(session: Session, name: string): Stream | undefined {
    if (name.startsWith('@')) return nameKey(name.slice(1)) === session.key ? session.inbox : undefined;
    const room = this.rooms.get(name);
    return room !== undefined && session.rooms.has(room) ? room.stream : undefined;
  }

  // ---- queries (HTTP) ----

  private answer(q: Query): void {
    switch (q.kind) {
      case 'clients': {
        const room = q.room === undefined ? undefined : this.rooms.get(q.room);
        if (q.room !== undefined && room === undefined) return void q.reply.trySend(undefined);
        const sessions = room === undefined ? this.sessions.values() : room.members.keys();
        const rows: ClientInfo[] = [];
        for (const s of sessions) rows.push({ name: s.name, connectedAt: s.connectedAt.toISOString() });
        return void q.reply.trySend(rows);
      }
      case 'rooms': {
        const rows: RoomInfo[] = [];
        for (const r of this.rooms) rows.push({ room: r.name, members: r.members.size, ...r.stream.position });
        return void q.reply.trySend(rows);
      }
      case 'gauges': {
        let historyMessages = 0;
        for (const room of this.rooms) historyMessages += room.stream.held;
        for (const session of this.sessions.values()) historyMessages += session.inboxHeld;
        const counts = { sessions: this.sessions.size, clients: this.clients.size, rooms: this.rooms.size };
        return void q.reply.trySend({ ...counts, historyMessages });
      }
      case 'history': {
        const stream = this.rooms.get(q.room)?.stream;
        if (stream === undefined) return void q.reply.trySend(undefined);
        const before = Math.min(q.before ?? Infinity, stream.top + 1);
        const [first, last] = q.after !== undefined ? [q.after + 1, q.after + q.limit] : [before - q.limit, before - 1];
        const messages = stream.range(first, last);
        return void q.reply.trySend({ room: q.room, epoch: stream.epoch, offset: stream.top, messages });
      }
    }
  }

  private shutdown(code: number, reason: string): void {
    for (const client of this.clients) client.drop(code, reason);
    for (const session of this.sessions.values()) if (session.grace !== null) clearTimeout(session.grace);
    this.clients.clear();
    this.sessions.clear();
    this.fanout.clear();
    // Anyone still trying to reach the Hub learns it is gone instead of waiting forever.
    this.register.close();
    this.unregister.close();
    this.broadcast.close();
    this.queries.close();
  }
}

/** The rooms a resume names (streams that are not inboxes), in the order given. */
function roomsIn(resume: ReadonlyMap<string, Position>): string[] {
  return [...resume.keys()].filter((s) => s !== LOBBY && isRoomName(s));
}

/** A resend is recognised by its sender and cid together: two people may pick the same cid. */
function dedupKey(session: Session, cid: string | undefined): string | undefined {
  return cid === undefined ? undefined : `${session.key}\n${cid}`;
}

/** Compares tokens in constant time: how long a wrong guess takes says nothing about the right one. */
function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined || given.length !== token.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(token));
}

/** What a client said or asked (chat, private, join, leave, history), and which connection it came on. */
export interface Said {
  readonly from: Client;
  readonly request: Request;
}

/** One row of the roster that GET /clients shows. */
export interface ClientInfo {
  readonly name: string;
  readonly connectedAt: string;
}

/** One row of GET /rooms. */
export interface RoomInfo extends Position {
  readonly room: string;
  readonly members: number;
}

/** A page of a room's history for GET /rooms/<room>/history. */
export interface RoomHistory {
  readonly room: string;
  readonly epoch: string;
  /** The room's latest offset. */
  readonly offset: number;
  /** Stored messages as their JSON, oldest first. */
  readonly messages: readonly string[];
}

/** A question for the Hub, with the channel its answer comes back on (undefined: no such room). */
export type Query =
  | { readonly kind: 'clients'; readonly room?: string; readonly reply: Channel<ClientInfo[] | undefined> }
  | { readonly kind: 'rooms'; readonly reply: Channel<RoomInfo[]> }
  | { readonly kind: 'gauges'; readonly reply: Channel<ChatGauges> }
  | {
      readonly kind: 'history';
      readonly room: string;
      readonly after?: number;
      readonly before?: number;
      readonly limit: number;
      readonly reply: Channel<RoomHistory | undefined>;
    };

export interface HubOptions {
  /** Capacity of the clients' send channels (SEND_QUEUE); sets how much the Hub fans out per turn. */
  readonly sendQueue?: number;
  /** Messages each stream keeps (HISTORY_SIZE). */
  readonly historySize?: number;
  /** Messages a v2 client gets on joining a stream it cannot resume (HISTORY_ON_JOIN). */
  readonly historyOnJoin?: number;
  /** Rooms on the server (MAX_ROOMS) and per client (MAX_ROOMS_PER_CLIENT). */
  readonly maxRooms?: number;
  readonly maxRoomsPerClient?: number;
  /** How long a vanished v2 client keeps its session (RESUME_GRACE_MS); 0: it leaves at once. */
  readonly resumeGraceMs?: number;
  /** The chat's counters, shared with the connection handlers; absent: counted where nobody looks. */
  readonly stats?: ChatStats;
}

const DEFAULTS: Required<Omit<HubOptions, 'stats'>> = {
  sendQueue: 256,
  historySize: 1000,
  historyOnJoin: 50,
  maxRooms: 1000,
  maxRoomsPerClient: 20,
  resumeGraceMs: 5000,
};

/** How long join and leave notices wait for others of the same burst: a crowd shares writes, nobody notices. */
const PRESENCE_WINDOW_MS = 25;
/** Messages fanned out per event-loop turn at most, however large SEND_QUEUE is: the writes go out sooner. */
const MAX_PER_TURN = 64;

/** Asks the Hub a question through its channel (never by reading its state). */
async function ask<T>(hub: Hub, make: (reply: Channel<T>) => Query): Promise<T> {
  const reply = new Channel<T>(1);
  await hub.queries.send(make(reply));
  return (await reply.receive()) as T;
}

/** The homework's HTTP API: who is online (everyone, or one room's members; undefined: no such room). */
export function whoIsOnline(hub: Hub, room?: string): Promise<ClientInfo[] | undefined> {
  return ask(hub, (reply) => ({ kind: 'clients', room, reply }));
}

export function listRooms(hub: Hub): Promise<RoomInfo[]> {
  return ask(hub, (reply) => ({ kind: 'rooms', reply }));
}

export function roomHistory(
  hub: Hub,
  room: string,
  page: { after?: number; before?: number; limit: number },
): Promise<RoomHistory | undefined> {
  return ask(hub, (reply) => ({ kind: 'history', room, ...page, reply }));
}

/**
 * What the connection handlers and the HTTP wiring use of a hub: its channels and its loop. A cluster
 * node's hub (src/cluster) has the same, so readPump, writePump and the routes work with either.
 */
export interface HubChannels {
  readonly register: Channel<Client>;
  readonly unregister: Channel<Client>;
  readonly broadcast: Channel<Said>;
  readonly quit: Channel<{ readonly code: number; readonly reason: string }>;
  run(): Promise<void>;
  /** What is true now (for metrics): sessions, connections, rooms, history held. */
  /** Counts for the metrics, answered by the hub's own loop. */
  gauges(): Promise<ChatGauges>;
}

/** The HTTP endpoints' questions: who is online, the rooms, a room's history (undefined: no such room). */
export interface Directory {
  clients(room?: string): Promise<ClientInfo[] | undefined>;
  rooms(): Promise<RoomInfo[]>;
  history(room: string, page: { after?: number; before?: number; limit: number }): Promise<RoomHistory | undefined>;
}

/** One process: the Hub knows everything, and answers through its queries channel. */
export function hubDirectory(hub: Hub): Directory {
  return {
    clients: (room) => whoIsOnline(hub, room),
    rooms: () => listRooms(hub),
    history: (room, page) => roomHistory(hub, room, page),
  };
}
