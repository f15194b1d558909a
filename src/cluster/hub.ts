/**
 * ClusterHub: the Hub of one node of a cluster. Same channels as the lesson's Hub (readPump and writePump
 * do not know which they talk to), same rule (one loop owns the state), but the chat itself lives in Redis:
 *
 *   - a request starts a script (./store.ts) and the loop goes on; the reply comes back on `events`, a
 *     channel like any other, and is applied there (Go: a goroutine does the I/O and sends the result
 *     to the hub). The loop never waits for Redis.
 *   - a stored message is published by Redis to every node, the sender's included; it comes back on
 *     `published`, each stream's feed puts it in order (./feed.ts), and the fan-out delivers it to this
 *     node's members. So every member of a stream, on every node, gets the same messages in the same order.
 *   - a member that joins is told the backlog Redis read up to offset T, then what this node delivered
 *     after T (the feed's cache), then live messages: nothing in between is lost or doubled.
 *
 * One command connection carries every script in the order the loop sent them, so one client's requests
 * keep their order without waiting for each other; Redis checks each (owner, membership) when it runs it.
 */
import type { EventLog } from '../log';
import { Channel, select } from '../channel';
import { CloseCode } from '../websocket';
import type { Client } from '../chat/models/client';
import { Fanout } from '../chat/models/fanout';
import type { Said } from '../chat/models/hub';
import { asHistory, chatMessage, encodeAck, encodeError, encodeHistory, encodeJoined } from '../chat/models/message';
import { encodeLeft, encodeStoredHead, encodeWelcome, joinNotice, leaveNotice } from '../chat/models/message';
import { privateMessage } from '../chat/models/message';
import type { StreamWelcome } from '../chat/models/message';
import { nameKey } from '../chat/models/names';
import { isRoomName, LOBBY } from '../chat/models/protocol';
import { Stream } from '../chat/models/history';
import { Room } from '../chat/models/rooms';
import { newToken, Session } from '../chat/models/session';
import { ChatStats, type ChatGauges } from '../chat/models/stats';
import { Feed, parsePlace, type Delivery, type Outcome } from './feed';
import { tokenHash, type Backlog, type ChatStore, type HelloReply } from './store';

/** A session this node holds: its token's hash and the generation of its claim, as Redis has them. */
export class NodeSession extends Session {
  readonly tokenHash: string;
  gen = 0;

  constructor(
    name: string,
    key: string,
    v2: boolean,
    client: Client | null,
    historySize: number,
    known: { token: string; connectedAt: Date },
  ) {
    super(name, key, v2, client, historySize, known);
    this.tokenHash = tokenHash(known.token);
  }
}

export interface ClusterHubOptions {
  readonly store: ChatStore;
  readonly log: EventLog;
  readonly sendQueue: number;
  readonly historySize: number;
  readonly maxRooms: number;
  readonly maxRoomsPerClient: number;
  readonly resumeGraceMs: number;
  /** The chat's counters, shared with the connection handlers. */
  readonly stats?: ChatStats;
}

/** What a client that cannot be served now is told. */
const UNAVAILABLE = 'the chat is unavailable: try again later';

export class ClusterHub {
  readonly register = new Channel<Client>();
  readonly unregister = new Channel<Client>();
  readonly broadcast = new Channel<Said>();
  readonly quit = new Channel<{ readonly code: number; readonly reason: string }>(1);
  /** Replies from Redis and news about it, each applied by the loop (Go: a `chan func()`). */
  readonly events = new Channel<() => void>(4096);
  /** Stored messages have arrived from Redis (a wake-up; they wait in `incoming`). */
  private readonly published = new Channel<void>(1);

  async run(): Promise<void> {
    for (;;) {
      const r = await select({
        register: this.register,
        unregister: this.unregister,
        broadcast: this.broadcast,
        // A nil case while this turn's budget is spent, as in the Hub.
        published: this.fanout.hasRoom ? this.published : null,
        events: this.events,
        expired: this.expired,
        fanout: this.fanout.wake,
        quit: this.quit,
      });
      switch (r.case) {
        case 'register': // a hello: claimed in Redis, welcomed when the claim comes back
          this.admit(r.value!);
          break;
        case 'unregister':
          this.release(r.value!);
          break;
        case 'broadcast': // a request: a script in Redis
          this.handle(r.value!);
          break;
        case 'published': // what Redis stored, in each stream's order, to this node's members
          this.relay();
          break;
        case 'events': // a reply from Redis (or news of it)
          r.value!();
          this.relay();
          break;
        case 'expired':
          if (r.value!.client === null) this.end(r.value! as NodeSession);
          break;
        case 'fanout':
          this.fanout.flush();
          this.relay();
          break;
        case 'quit':
          this.shutdown(r.value!.code, r.value!.reason);
          return;
      }
    }
  }

  /** Can this node serve requests (Redis reachable and this node's state repaired)? */
  up = false;
  private readonly clients = new Set<Client>();
  /** The sessions this node holds, by name key. */
  private readonly sessions = new Map<string, NodeSession>();
  private readonly feeds = new Map<string, Feed>();
  /** Clients whose hello is in Redis, with the requests they sent meanwhile (and whether they left). */
  private readonly admitting = new Map<Client, { queued: Said[]; gone: boolean }>();
  /** Sessions that ended here but could not be ended in Redis yet. */
  private readonly unended = new Set<NodeSession>();
  private readonly expired = new Channel<Session>(1024);
  private readonly fanout: Fanout;
  private incoming: string[] = [];
  private outbox: Delivery[] = [];
  private outboxHead = 0;
  private readonly store: ChatStore;
  private readonly log: EventLog;

  private readonly stats: ChatStats;

  constructor(private readonly options: ClusterHubOptions) {
    this.store = options.store;
    this.log = options.log;
    this.stats = options.stats ?? new ChatStats();
    this.fanout = new Fanout({
      perTurn: Math.max(1, Math.min(MAX_PER_TURN, Math.floor(options.sendQueue / 2))),
      presenceWindowMs: PRESENCE_WINDOW_MS,
      onSlow: (client) => this.dropSlow(client),
      stats: this.stats,
    });
  }

  /**
   * What is true on this node now: its sessions and connections; the rooms it follows (feeds with a
   * room) and what their caches hold. The cluster's whole chat is in Redis.
   */
  gauges(): Promise<ChatGauges> {
    // A stopped loop answers nothing: say so rather than leave the scrape waiting.
    if (this.events.closed) return Promise.reject(new Error('the hub has stopped'));
    return this.inLoop(() => this.count());
  }

  private count(): ChatGauges {
    let rooms = 0;
    let historyMessages = 0;
    for (const feed of this.feeds.values()) {
      if (feed.room !== undefined) rooms++;
      historyMessages += feed.stream.held;
    }
    return { sessions: this.sessions.size, clients: this.clients.size, rooms, historyMessages };
  }

  // ---- from outside the loop ----

  /** A message Redis published (the subscriber calls this). */
  publish(json: string): void {
    // Beyond the bound, a message is dropped: its stream's next message shows the gap, and the feed
    // reads what is missing from Redis. Memory stays bounded when Redis sends faster than we deliver.
    if (this.incoming.length < INCOMING_MAX) this.incoming.push(json);
    this.published.trySend();
  }

  /** Runs `fn` in the loop and resolves with its result. */
  inLoop<T>(fn: () => T): Promise<T> {
    return new Promise((resolve, reject) => {
      this.post(() => {
        try {
          resolve(fn());
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  private post(fn: () => void): void {
    if (!this.events.closed) this.events.send(fn).catch(() => undefined);
  }

  /** Starts `op`; `then` or `fail` runs in the loop when Redis has answered. */
  private call<T>(op: Promise<T>, then: (value: T) => void, fail: (error: unknown) => void): void {
    op.then(
      (value) => this.post(() => then(value)),
      (error: unknown) => this.post(() => fail(error)),
    );
  }

  // ---- register: a hello ----

  private admit(client: Client): void {
    const hello = client.hello!;
    if (!this.up) return this.refuse(client, UNAVAILABLE, CloseCode.TryAgainLater, 'try again later');
    const key = nameKey(hello.name);
    // Feeds first: whatever Redis publishes after the script's read reaches them (see feed.ts).
    const rooms = [...new Set([LOBBY, ...[...hello.resume.keys()].filter(isRoomName)])];
    const feeds = [...rooms, `@${key}`].map((name) => this.feed(name));
    for (const feed of feeds) feed.refs++;
    const token = newToken();
    const given = hello.token === undefined ? '' : tokenHash(hello.token);
    const since = new Date();
    this.admitting.set(client, { queued: [], gone: false });
    const joins = rooms.map((room) => [room, encodeStoredHead(joinNotice(hello.name, room), room)] as const);
    const op = this.store.hello({
      key, name: hello.name, v2: hello.v2, given, fresh: tokenHash(token), since: since.toISOString(),
      resume: hello.resume, joins,
    });
    const done = (): void => {
      for (const feed of feeds) {
        feed.refs--;
        this.unref(feed);
      }
      const waiting = this.admitting.get(client)!;
      this.admitting.delete(client);
      if (client.session !== null) for (const said of waiting.queued) this.handle(said);
      if (waiting.gone) this.release(client);
    };
    this.call(
      op,
      (reply) => {
        // A resume keeps the client's token; a new session (even after a stale token) gets the new one.
        const kept = reply.mode === 'resume' ? hello.token! : token;
        this.admitted(client, reply, kept, since, feeds);
        done();
      },
      (error) => {
        client.log('refused', { name: hello.name, reason: `redis: ${describe(error)}` });
        this.refuse(client, UNAVAILABLE, CloseCode.TryAgainLater, 'try again later');
        done();
      },
    );
  }

  private admitted(client: Client, reply: HelloReply, token: string, since: Date, made: readonly Feed[]): void {
    const hello = client.hello!;
    if (reply.mode === 'taken') {
      client.log('refused', { name: hello.name, reason: 'name taken' });
      return this.refuse(client, `the name ${hello.name} is taken: choose another`, CloseCode.PolicyViolation,
        'name taken');
    }
    const key = nameKey(hello.name);
    let session = this.sessions.get(key);
    let replaced = false;
    if (session !== undefined && reply.mode === 'resume' && session.token === token) {
      // Taken over here, from a connection of this node: close the stale one, keep the session.
      const stale = session.client;
      if (stale !== null) {
        this.clients.delete(stale);
        stale.drop(4001, 'replaced by a new connection');
        this.stats.drops.replaced++;
        replaced = true;
      }
      if (session.grace !== null) clearTimeout(session.grace);
      session.grace = null;
      this.leaveFeeds(session);
      session.rooms.clear(); // joined again below, from what Redis says, in its order
    } else {
      if (session !== undefined) this.forget(session, 4001, 'replaced by a new connection');
      session = new NodeSession(reply.name, key, hello.v2, null, this.options.historySize, {
        token,
        connectedAt: reply.mode === 'resume' ? new Date(reply.since) : since,
      });
      this.sessions.set(key, session);
    }
    session.gen = reply.gen;
    session.client = client;
    client.session = session;
    this.clients.add(client);
    const welcome: StreamWelcome[] = [];
    const backlog: string[] = [];
    const resyncs: string[] = [];
    for (const b of reply.streams) {
      const feed = this.feed(b.stream);
      if (feed.room !== undefined) session.rooms.add(feed.room);
      const entries = b.recovered ? b.entries : session.v2 ? b.entries.map(asHistory) : [];
      backlog.push(...entries);
      const kept = this.attach(feed, session, b, !made.includes(feed), backlog);
      if (!kept) resyncs.push(feed.name);
      const recovered = b.recovered && kept;
      welcome.push({ stream: b.stream, epoch: b.epoch, offset: b.top, recovered });
      if (!hello.resume.has(b.stream)) this.stats.resumeNone++;
      else if (recovered) this.stats.resumeRecovered++;
      else this.stats.resumeNotRecovered++;
    }
    // The lesson's clients get no welcome and no history, but what was delivered here after the read is
    // live to them too (their own join notice, say): the backlog then holds only that.
    if (session.v2) this.fanout.tell(client, encodeWelcome(session.name, session.token, welcome));
    if (backlog.length > 0) this.fanout.tell(client, backlog);
    if (session.v2) for (const name of resyncs) this.fanout.tell(client, this.resyncOf(this.feeds.get(name)!));
    if (reply.mode === 'resume') {
      const from = reply.previous !== this.nodeId ? reply.previous : undefined;
      client.log('resumed', { name: session.name, replaced: replaced ? true : undefined, from });
    }
  }

  /**
   * Makes `session` a member of `feed` from the backlog's top T: what this node delivered after T (the
   * cache) is added to the backlog, live messages follow. False when that cannot be done exactly (the
   * stream started over, or the cache no longer holds it): the member goes on from now, and says so.
   */
  private attach(feed: Feed, session: Session, b: Backlog, late: boolean, backlog: string[]): boolean {
    const stream = feed.stream;
    if (!feed.synced) {
      this.after(feed, feed.sync(b.epoch, b.top, [], this.outbox));
      // A feed made after the script ran (a room the client did not name) may have missed messages.
      if (late) this.repair(feed);
    }
    let kept = stream.epoch === b.epoch;
    if (kept && stream.top > b.top) {
      if (stream.oldest <= b.top + 1) backlog.push(...stream.range(b.top + 1, stream.top));
      else kept = false;
    }
    feed.members.set(session, kept ? Math.max(b.top, stream.top) : stream.top);
    return kept;
  }

  private refuse(client: Client, why: string, code: number, reason: string): void {
    this.stats.drops.helloRefused++;
    this.fanout.tell(client, encodeError(why));
    client.finish(code, reason);
  }

  // ---- unregister ----

  private release(client: Client): void {
    const admitting = this.admitting.get(client);
    if (admitting !== undefined) {
      admitting.gone = true; // released when its hello comes back
      return;
    }
    this.clients.delete(client);
    const session = client.session as NodeSession | null;
    if (session === null || session.client !== client) {
      client.finish(CloseCode.Normal, '');
      return;
    }
    // It may come back, here or on another node: Redis keeps the session claimed by this node.
    if (!session.awaitReturn(client, this.options.resumeGraceMs, this.expired)) this.end(session);
  }

  /** The session ends for good: forgotten here, then ended in Redis (leave notices, name free, inbox gone). */
  private end(session: NodeSession): void {
    if (this.sessions.get(session.key) !== session) return;
    const rooms = [...session.rooms].map((r) => r.name);
    this.forget(session, CloseCode.Normal, '');
    this.endInRedis(session, rooms, 0);
  }

  private endInRedis(session: NodeSession, rooms: readonly string[], attempt: number): void {
    const heads = rooms.map((room) => [room, encodeStoredHead(leaveNotice(session.name, room), room)] as const);
    this.call(
      this.store.end(session.key, this.nodeId, session.tokenHash, heads),
      (verdict) => {
        this.unended.delete(session);
        // Its rooms changed under us (a takeover in flight): try again with the rooms Redis has.
        if (Array.isArray(verdict) && attempt < 3) this.endInRedis(session, verdict, attempt + 1);
      },
      () => this.unended.add(session), // ended when Redis is back (or reaped if this node dies first)
    );
  }

  /** Forgets a session here, without a word to anyone: it ended, or another node holds it now. */
  private forget(session: NodeSession, code: number, reason: string): void {
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (session.grace !== null) clearTimeout(session.grace);
    session.grace = null;
    const client = session.client;
    if (client !== null) {
      this.clients.delete(client);
      if (code === CloseCode.Normal) client.finish(code, reason);
      else client.drop(code, reason);
      if (code === 4001) this.stats.drops.replaced++;
      session.client = null;
    }
    this.leaveFeeds(session);
    session.rooms.clear();
  }

  /** Takes a session out of every feed's members (it joins them again on a resume). */
  private leaveFeeds(session: Session): void {
    for (const name of [...[...session.rooms].map((r) => r.name), session.inboxName]) {
      const feed = this.feeds.get(name);
      if (feed === undefined) continue;
      feed.members.delete(session);
      feed.leaving.delete(session.key);
      this.unref(feed);
    }
  }

  private dropSlow(client: Client): void {
    client.log('dropped', { name: client.name, reason: 'send queue full' });
    client.drop(CloseCode.PolicyViolation, 'too slow: send queue full');
    const session = client.session as NodeSession | null;
    if (session !== null && session.client === client) this.end(session);
    else this.clients.delete(client);
  }

  // ---- broadcast: requests ----

  private handle(said: Said): void {
    const { from, request } = said;
    const admitting = this.admitting.get(from);
    if (admitting !== undefined) {
      // Its hello is in Redis: the request waits for it (a client's requests keep their order).
      if (admitting.queued.length < MAX_QUEUED) admitting.queued.push(said);
      else this.fanout.tell(from, encodeError('too many requests before the welcome', request.cid));
      return;
    }
    const session = from.session as NodeSession | null;
    if (session === null || session.client !== from) return;
    const fail = (why: string): void => this.fanout.tell(from, encodeError(why, request.cid));
    if (!this.up) return fail(UNAVAILABLE);
    const unavailable = (): void => fail(UNAVAILABLE);
    // Redis no longer gives this node the session (taken over, or reaped): find out which, and say so.
    const notOwner = (): void => {
      this.verify([session]);
      fail(UNAVAILABLE);
    };
    const cid = request.cid === undefined ? '' : `${session.key}\n${request.cid}`;
    switch (request.type) {
      case 'chat': {
        const head = encodeStoredHead(chatMessage(session.name, request.text), request.room);
        return this.call(
          this.store.say(session.key, request.room, head, cid),
          (r) => {
            if (r === 'not in room') return fail(`you are not in #${request.room}`);
            if (typeof r === 'string') return notOwner();
            this.ack(from, request.cid, request.room, r);
          },
          unavailable,
        );
      }
      case 'private': {
        // The addressee's name as they typed it is Redis's to fill in: it goes between a and b.
        const to = nameKey(request.to);
        const m = privateMessage(session.name, ADDRESSEE, request.text);
        const [a, bCopy] = splitAtAddressee(encodeStoredHead(m, session.inboxName));
        const [, bTo] = splitAtAddressee(encodeStoredHead(m, `@${to}`));
        return this.call(
          this.store.private(session.key, to, a, bCopy, bTo, cid),
          (r) => {
            if (r === 'offline') return fail(`${request.to} is not online`);
            if (typeof r === 'string') return notOwner();
            this.ack(from, request.cid, session.inboxName, r);
          },
          unavailable,
        );
      }
      case 'join':
        return this.join(session, from, request.room, fail);
      case 'leave':
        return this.leave(session, request.room, fail);
      case 'history': {
        const stream = this.readable(session, request.stream);
        if (stream === undefined) return fail(`you cannot read ${request.stream}: join it first`);
        const page = { room: false, before: request.before, limit: request.limit, clamp: true };
        return this.call(
          this.store.page(stream, page),
          (p) => {
            if (p === undefined) return fail(`you cannot read ${request.stream}: join it first`);
            this.fanout.tell(from, encodeHistory(stream, p.epoch, p.entries, p.first > p.oldest, request.cid));
          },
          unavailable,
        );
      }
    }
  }

  private join(session: NodeSession, client: Client, name: string, fail: (why: string) => void): void {
    if ([...session.rooms].some((r) => r.name === name)) return fail(`you are already in #${name}`);
    if (session.rooms.size >= this.options.maxRoomsPerClient) {
      return fail(`too many rooms: at most ${this.options.maxRoomsPerClient} at once`);
    }
    const feed = this.feed(name);
    feed.refs++;
    const head = encodeStoredHead(joinNotice(session.name, name), name);
    this.call(
      this.store.join(session.key, name, head),
      (r) => {
        feed.refs--;
        if (typeof r === 'string') {
          this.unref(feed);
          if (r === 'already in room') return fail(`you are already in #${name}`);
          if (r === 'too many') return fail(`too many rooms: at most ${this.options.maxRoomsPerClient} at once`);
          if (r === 'server full') return fail(`too many rooms on this server: at most ${this.options.maxRooms}`);
          this.verify([session]);
          return fail(UNAVAILABLE);
        }
        if (this.sessions.get(session.key) !== session) return this.unref(feed); // it left meanwhile
        session.rooms.add(feed.room!);
        const backlog = r.history.map(asHistory);
        const at = { stream: name, epoch: r.epoch, top: r.top, recovered: false, entries: [] };
        const kept = this.attach(feed, session, at, false, backlog);
        this.fanout.tell(client, encodeJoined(name, { epoch: r.epoch, offset: r.top }));
        if (backlog.length > 0) this.fanout.tell(client, backlog);
        if (!kept) this.fanout.tell(client, this.resyncOf(feed));
      },
      () => {
        feed.refs--;
        this.unref(feed);
        fail(UNAVAILABLE);
      },
    );
  }

  /** A leave completes when its notice comes back from Redis: the member gets everything before it. */
  private leave(session: NodeSession, name: string, fail: (why: string) => void): void {
    const feed = this.feeds.get(name);
    if (feed === undefined || feed.room === undefined || !session.rooms.has(feed.room)) {
      return fail(`you are not in #${name}`);
    }
    feed.leaving.set(session.key, session);
    const undo = (why: string): void => {
      if (feed.leaving.get(session.key) === session) feed.leaving.delete(session.key);
      fail(why);
    };
    this.call(
      this.store.leave(session.key, name, encodeStoredHead(leaveNotice(session.name, name), name)),
      (r) => {
        if (r === 'not in room') undo(`you are not in #${name}`);
        else if (typeof r === 'string') undo(UNAVAILABLE);
      },
      () => undo(UNAVAILABLE),
    );
  }

  private ack(client: Client, cid: string | undefined, stream: string, at: { offset: number; epoch: string }): void {
    if (cid !== undefined) this.fanout.tell(client, encodeAck(cid, stream, at));
  }

  /** The stream a session may read: a room it is in, or its own inbox (`@name`, in any of its forms). */
  private readable(session: Session, name: string): string | undefined {
    if (name.startsWith('@')) return nameKey(name.slice(1)) === session.key ? session.inboxName : undefined;
    return [...session.rooms].some((r) => r.name === name) ? name : undefined;
  }

  // ---- published: what Redis stored ----

  /** Puts what arrived in order per stream, then delivers while this turn's budget lasts. */
  private relay(): void {
    if (this.incoming.length > 0) {
      const arrived = this.incoming;
      this.incoming = [];
      for (const json of arrived) {
        const place = parsePlace(json);
        const feed = place === undefined ? undefined : this.feeds.get(place.stream);
        if (feed !== undefined) this.after(feed, feed.accept(place!, json, this.outbox));
      }
    }
    while (this.outboxHead < this.outbox.length && this.fanout.hasRoom) {
      const d = this.outbox[this.outboxHead]!;
      this.outbox[this.outboxHead++] = undefined as unknown as Delivery;
      this.deliver(d);
    }
    if (this.outboxHead === this.outbox.length) {
      this.outbox = [];
      this.outboxHead = 0;
    }
  }

  private deliver({ feed, stored }: Delivery): void {
    const json = stored.json;
    if (json.startsWith('{"type":"join"') || json.startsWith('{"type":"leave"')) {
      if (feed.leaving.size > 0 && json.startsWith('{"type":"leave"')) this.left(feed, json);
      return this.fanout.announce(stored, feed.members);
    }
    if (feed.room === undefined && isOwnCopyForLesson(feed, json)) return;
    this.fanout.send(stored, feed.members);
  }

  /** A leave notice of a member that asked to leave: it is out before the notice goes to the others. */
  private left(feed: Feed, json: string): void {
    const name = (JSON.parse(json) as { name?: string }).name;
    const session = name === undefined ? undefined : feed.leaving.get(nameKey(name));
    if (session === undefined) return;
    feed.leaving.delete(session.key);
    feed.members.delete(session);
    session.rooms.delete(feed.room!);
    if (session.client !== null) this.fanout.tell(session.client, encodeLeft(feed.name));
    this.unref(feed);
  }

  /** What a feed needs after it took something in: a read of its stream, a resync for its members. */
  private after(feed: Feed, outcome: Outcome): void {
    if (outcome.reset) {
      const resync = this.resyncOf(feed);
      for (const session of feed.members.keys()) {
        feed.members.set(session, feed.stream.top);
        if (session.client !== null && session.v2) this.fanout.tell(session.client, resync);
      }
      this.log('resync', { stream: feed.name, epoch: feed.stream.epoch, offset: feed.stream.top }, 'warn');
    }
    if (outcome.repair) this.repair(feed);
  }

  /** Reads what a feed missed from Redis (a gap, a new epoch, a broken subscription). */
  private repair(feed: Feed): void {
    if (feed.repairing || !feed.synced) return;
    feed.repairing = true;
    this.call(
      this.store.sync(feed.name, feed.stream.epoch, feed.stream.top),
      (r) => {
        if (this.feeds.get(feed.name) !== feed) return;
        const from = feed.stream.top;
        this.after(feed, feed.sync(r.epoch, r.top, r.entries, this.outbox));
        if (feed.stream.top > from && r.epoch === feed.stream.epoch) {
          this.log('repaired', { stream: feed.name, offsets: `${from + 1}-${feed.stream.top}` });
        }
        this.unref(feed);
        this.relay();
      },
      () => {
        feed.repairing = false; // repaired when Redis is back
        this.unref(feed);
      },
    );
  }

  private resyncOf(feed: Feed): string {
    const { epoch, top } = feed.stream;
    return `{"type":"resync","stream":${JSON.stringify(feed.name)},"epoch":"${epoch}","offset":${top}}`;
  }

  // ---- feeds ----

  private feed(name: string): Feed {
    let feed = this.feeds.get(name);
    if (feed === undefined) {
      const size = this.options.historySize;
      feed = new Feed(name, size, name.startsWith('@') ? undefined : new Room(name, new Stream(name, size)));
      this.feeds.set(name, feed);
    }
    return feed;
  }

  private unref(feed: Feed): void {
    if (feed.idle && this.feeds.get(feed.name) === feed) this.feeds.delete(feed.name);
  }

  // ---- Redis going and coming back (node.ts calls these) ----

  get nodeId(): string {
    return this.store.node;
  }

  /** Redis is unreachable: requests are refused until recover() has run. */
  down(): void {
    this.up = false;
  }

  /** Every feed reads what it missed (after a resubscribe, or when Redis is back). */
  repairAll(): void {
    for (const feed of this.feeds.values()) this.repair(feed);
  }

  /**
   * Redis is back (or this node's lease had lapsed): sessions Redis no longer gives this node are
   * forgotten (another node took them over, or reaped them); if Redis lost its data, they are written
   * again. Then every feed is repaired, and requests are served again.
   */
  async recover(lost: boolean): Promise<void> {
    const held = await this.inLoop(() => [...this.sessions.values()]);
    const verdicts = await this.store.verify(held.map((s) => [s.key, s.gen] as const));
    const restore: NodeSession[] = [];
    await this.inLoop(() => {
      held.forEach((s, i) => {
        if (this.sessions.get(s.key) !== s || verdicts[i] === 'ok') return;
        if (verdicts[i] === 'gone' && lost) return void restore.push(s);
        const why = verdicts[i] === 'moved' ? 'moved' : 'ended elsewhere';
        this.log('forgot', { name: s.name, reason: why });
        if (verdicts[i] === 'moved') this.forget(s, 4001, 'replaced by a new connection');
        else this.forget(s, CloseCode.TryAgainLater, 'session ended: reconnect');
      });
    });
    for (const s of restore) {
      const rooms = await this.inLoop(() => [...s.rooms].map((r) => r.name));
      const verdict = await this.store.restore({
        key: s.key, name: s.name, token: s.tokenHash, v2: s.v2, since: s.connectedAt.toISOString(), gen: s.gen, rooms,
      });
      if (verdict === 'taken') await this.inLoop(() => this.forget(s, 4001, 'replaced by a new connection'));
    }
    await this.inLoop(() => {
      for (const s of this.unended) this.endInRedis(s, [...s.rooms].map((r) => r.name), 0);
      this.up = true;
      this.repairAll();
    });
  }

  /** Checks sessions against Redis (a script said this node no longer holds one). */
  private verify(sessions: readonly NodeSession[]): void {
    this.call(
      this.store.verify(sessions.map((s) => [s.key, s.gen] as const)),
      (verdicts) => {
        sessions.forEach((s, i) => {
          if (this.sessions.get(s.key) !== s || verdicts[i] === 'ok') return;
          if (verdicts[i] === 'moved') this.forget(s, 4001, 'replaced by a new connection');
          else this.forget(s, CloseCode.TryAgainLater, 'session ended: reconnect');
        });
      },
      () => undefined,
    );
  }

  /** A control message for this node: one of its sessions moved, or was ended by another node. */
  control(message: string): void {
    const [kind, gen, token, key] = message.split('\n');
    const session = key === undefined ? undefined : this.sessions.get(key);
    if (session === undefined || session.tokenHash !== token) return;
    if (kind === 'moved' && session.gen < Number(gen)) {
      this.log('moved', { name: session.name, reason: 'resumed on another node' });
      this.forget(session, 4001, 'replaced by a new connection');
    } else if (kind === 'ended' && session.gen <= Number(gen)) {
      this.log('forgot', { name: session.name, reason: 'ended elsewhere' });
      this.forget(session, CloseCode.TryAgainLater, 'session ended: reconnect');
    }
  }

  private shutdown(code: number, reason: string): void {
    for (const client of this.clients) client.drop(code, reason);
    for (const { queued } of this.admitting.values()) queued.length = 0;
    for (const client of this.admitting.keys()) client.drop(code, reason);
    for (const session of this.sessions.values()) if (session.grace !== null) clearTimeout(session.grace);
    this.clients.clear();
    this.fanout.clear();
    this.register.close();
    this.unregister.close();
    this.broadcast.close();
    this.events.close();
  }
}

/** How long join and leave notices wait for others of the same burst (as in the Hub). */
const PRESENCE_WINDOW_MS = 25;
/** Messages fanned out per event-loop turn at most (as in the Hub). */
const MAX_PER_TURN = 64;
/** Messages from Redis waiting for the loop at most (see publish()). */
const INCOMING_MAX = 100_000;
/** Requests a client may send before its welcome. */
const MAX_QUEUED = 64;

/** Stands for the addressee's name in a private message's head, until Redis puts the name there. */
const ADDRESSEE = '\u0001';
const ADDRESSEE_FIELD = `,"to":${JSON.stringify(ADDRESSEE)}`;

function splitAtAddressee(head: string): [string, string] {
  // The field marker can only be the field itself: a quote inside a string value is escaped.
  const at = head.lastIndexOf(ADDRESSEE_FIELD);
  return [head.slice(0, at) + ',"to":', head.slice(at + ADDRESSEE_FIELD.length)];
}

/** The lesson's clients get no copy of what they sent (a note to oneself arrives once). */
function isOwnCopyForLesson(feed: Feed, json: string): boolean {
  const session = feed.members.keys().next().value as Session | undefined;
  if (session === undefined || session.v2 || !json.startsWith('{"type":"private"')) return false;
  const m = JSON.parse(json) as { user?: string; to?: string };
  return nameKey(m.user ?? '') === session.key && nameKey(m.to ?? '') !== session.key;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
