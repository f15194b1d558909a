/**
 * ChatStore: the chat's state in Redis, as typed calls. Each call is one script (./scripts.ts) or one
 * command, sent on the node's one command connection: Redis runs them in the order the node sent them, so
 * a client's requests keep their order without waiting for each other.
 */
import { createHash } from 'node:crypto';
import type { RedisClient, RedisScript, RespValue } from '../redis';
import { newEpoch } from '../chat/models/history';
import * as S from './scripts';

export const PREFIX = 'wschat:';
/** Every stored message, published by the scripts. */
export const PUBLISHED = `${PREFIX}pub`;
/** A node's control channel. */
export const controlChannel = (node: string): string => `${PREFIX}ctl:${node}`;

/** The SHA-256 of a session token, as Redis keeps it: a token is never stored. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface StoreOptions {
  readonly node: string;
  readonly historySize: number;
  readonly historyOnJoin: number;
  readonly maxRooms: number;
  readonly maxRoomsPerClient: number;
}

/** A stream's backlog for a member: where it stands, and what the member gets of it. */
export interface Backlog {
  readonly stream: string;
  readonly epoch: string;
  readonly top: number;
  readonly recovered: boolean;
  readonly entries: readonly string[];
}

export type HelloReply =
  | { readonly mode: 'taken' }
  | {
      readonly mode: 'new' | 'resume';
      /** The name as its owner first typed it. */
      readonly name: string;
      readonly previous: string;
      readonly since: string;
      readonly gen: number;
      readonly streams: readonly Backlog[];
    };

export interface Hello {
  readonly key: string;
  readonly name: string;
  readonly v2: boolean;
  /** Hash of the token the client gave ('' for none), and of the token a new session gets. */
  readonly given: string;
  readonly fresh: string;
  readonly since: string;
  /** The positions the client gave. */
  readonly resume: ReadonlyMap<string, { readonly epoch: string; readonly offset: number }>;
  /** For a new session: the rooms it joins, with the head of each join notice. */
  readonly joins: readonly (readonly [room: string, head: string])[];
}

/** Where a message went, or why it did not. */
export type Placed = { readonly offset: number; readonly epoch: string } | Refusal;
export type Refusal = 'not owner' | 'not in room' | 'offline' | 'already in room' | 'too many' | 'server full';

const REFUSALS: Readonly<Record<number, Refusal>> = {
  [-1]: 'not owner',
  [-2]: 'not in room',
  [-3]: 'offline',
  [-4]: 'too many',
  [-5]: 'server full',
};

/** A join: where the room stood when the member joined, and its latest history. */
export interface Joined {
  readonly epoch: string;
  readonly top: number;
  readonly history: string[];
}

export interface Page {
  readonly epoch: string;
  readonly top: number;
  readonly oldest: number;
  readonly first: number;
  readonly entries: readonly string[];
}

export interface RoomRow {
  readonly room: string;
  readonly members: number;
  readonly epoch: string;
  readonly offset: number;
}

export class ChatStore {
  /** Seeds for new epochs: unique per call, random per process. */
  private readonly seedBase = newEpoch();
  private seeds = 0;

  constructor(
    readonly redis: RedisClient,
    private readonly o: StoreOptions,
  ) {}

  /** This node's id. */
  get node(): string {
    return this.o.node;
  }

  /** Loads every script, so that none is reloaded (out of order) while requests flow. */
  async loadScripts(): Promise<void> {
    await Promise.all(S.ALL_SCRIPTS.map((s) => this.redis.loadScript(s)));
  }

  /** The lobby exists; returns Redis's boot mark (a new one means it lost its data). */
  async init(): Promise<string> {
    return str(await this.run(S.INIT, this.seed()));
  }

  async hello(h: Hello): Promise<HelloReply> {
    const o = this.o;
    const args: (string | number)[] = [
      h.key, h.name, JSON.stringify(h.name), h.given, h.fresh, o.node, h.v2 ? '1' : '0', h.since,
      o.historySize, o.historyOnJoin, o.maxRooms, o.maxRoomsPerClient, this.seed(),
    ];
    for (const [stream, at] of h.resume) args.push(stream, at.epoch, at.offset);
    args.push('--');
    for (const [room, head] of h.joins) args.push(room, head);
    const r = list(await this.run(S.HELLO, ...args));
    if (str(r[0]) === 'taken') return { mode: 'taken' };
    return {
      mode: str(r[0]) as 'new' | 'resume',
      name: str(r[5]),
      previous: str(r[1]),
      since: str(r[2]),
      gen: num(r[3]),
      streams: list(r[4]).map((b) => {
        const x = list(b);
        return { stream: str(x[0]), epoch: str(x[1]), top: num(x[2]), recovered: num(x[3]) === 1, entries: strs(x[4]) };
      }),
    };
  }

  async say(key: string, room: string, head: string, cid: string): Promise<Placed> {
    const o = this.o;
    return placed(await this.run(S.SAY, key, o.node, room, head, cid, o.historySize, this.seed()));
  }

  /** `a` + the addressee's name as JSON + `bCopy` (or `bTo`) is the head in the sender's (addressee's) inbox. */
  async private(key: string, to: string, a: string, bCopy: string, bTo: string, cid: string): Promise<Placed> {
    const o = this.o;
    return placed(await this.run(S.PRIVATE, key, o.node, to, a, bCopy, bTo, cid, o.historySize, this.seed()));
  }

  async join(key: string, room: string, head: string): Promise<Joined | Refusal> {
    const o = this.o;
    const r = list(
      await this.run(S.JOIN, key, o.node, room, head, o.historySize, o.historyOnJoin, o.maxRooms,
        o.maxRoomsPerClient, this.seed()),
    );
    const code = num(r[0]);
    if (code !== 1) return code === -2 ? 'already in room' : REFUSALS[code]!;
    return { epoch: str(r[1]), top: num(r[2]), history: strs(r[3]) };
  }

  async leave(key: string, room: string, head: string): Promise<number | Refusal> {
    const r = list(await this.run(S.LEAVE, key, this.o.node, room, head, this.o.historySize, this.seed()));
    const code = num(r[0]);
    return code > 0 ? code : REFUSALS[code]!;
  }

  /**
   * Ends a session held by `node` with this token, with a leave notice in each room (`heads`: room ->
   * head). 'ended', 'gone' (not held so: ended already, or taken over), or the rooms it is really in.
   */
  async end(
    key: string,
    node: string,
    token: string,
    heads: readonly (readonly [room: string, head: string])[],
  ): Promise<'ended' | 'gone' | string[]> {
    const r = list(await this.run(S.END, key, node, token, this.o.historySize, this.seed(), ...heads.flat()));
    const verdict = str(r[0]);
    return verdict === 'rooms' ? strs(r[1]) : (verdict as 'ended' | 'gone');
  }

  async sync(stream: string, epoch: string, after: number): Promise<{ epoch: string; top: number; entries: string[] }> {
    const r = list(await this.run(S.SYNC, stream, epoch, after, this.o.historySize, this.seed()));
    return { epoch: str(r[0]), top: num(r[1]), entries: strs(r[2]) };
  }

  /** A page of a stream (see scripts.ts PAGE); undefined when the room (or inbox) does not exist. */
  async page(
    stream: string,
    page: { room: boolean; after?: number; before?: number; limit: number; clamp: boolean },
  ): Promise<Page | undefined> {
    const r = list(
      await this.run(S.PAGE, stream, page.room ? stream : '', page.after ?? '', page.before ?? '', page.limit,
        page.clamp ? '1' : '0'),
    );
    if (r.length === 0) return undefined;
    return { epoch: str(r[0]), top: num(r[1]), oldest: num(r[2]), first: num(r[3]), entries: strs(r[4]) };
  }

  /** Who is online (in a room), in join order; undefined: no such room. */
  async roster(room?: string): Promise<{ name: string; connectedAt: string }[] | undefined> {
    const r = list(await this.run(S.ROSTER, room ?? ''));
    if (num(r[0]) === 0) return undefined;
    const rows: { name: string; connectedAt: string }[] = [];
    for (let i = 1; i + 1 < r.length; i += 2) rows.push({ name: str(r[i]), connectedAt: str(r[i + 1]) });
    return rows;
  }

  async rooms(): Promise<RoomRow[]> {
    const r = list(await this.run(S.ROOMS));
    const rows: RoomRow[] = [];
    for (let i = 0; i + 3 < r.length; i += 4) {
      rows.push({ room: str(r[i]), members: num(r[i + 1]), epoch: str(r[i + 2]), offset: num(r[i + 3]) });
    }
    return rows;
  }

  /** Renews this node's lease (PX `ttlMs`); false when it had lapsed (or is new). */
  async heartbeat(ttlMs: number): Promise<boolean> {
    return num(await this.run(S.HEARTBEAT, this.o.node, ttlMs)) === 1;
  }

  /** Per session key and generation: 'ok', 'moved' or 'gone' (see scripts.ts VERIFY). */
  async verify(sessions: readonly (readonly [key: string, gen: number])[]): Promise<string[]> {
    if (sessions.length === 0) return [];
    return strs(await this.run(S.VERIFY, this.o.node, ...sessions.flat()));
  }

  async restore(s: {
    key: string;
    name: string;
    token: string;
    v2: boolean;
    since: string;
    gen: number;
    rooms: readonly string[];
  }): Promise<'ok' | 'taken'> {
    const o = this.o;
    const r = list(
      await this.run(S.RESTORE, s.key, s.name, JSON.stringify(s.name), s.token, o.node, s.v2 ? '1' : '0', s.since,
        s.gen, o.maxRooms, this.seed(), ...s.rooms),
    );
    return str(r[0]) as 'ok' | 'taken';
  }

  // ---- leases and reaping: plain commands ----

  async nodes(): Promise<string[]> {
    return strs(await this.redis.send(['SMEMBERS', `${PREFIX}nodes`]));
  }

  async alive(node: string): Promise<boolean> {
    return num(await this.redis.send(['EXISTS', `${PREFIX}lease:${node}`])) === 1;
  }

  /** One node reaps a dead one: a lock that expires, in case the reaper dies too. */
  async lockReap(node: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.send(['SET', `${PREFIX}reap:${node}`, this.o.node, 'NX', 'PX', ttlMs])) !== null;
  }

  async sessionsOf(node: string): Promise<string[]> {
    return strs(await this.redis.send(['SMEMBERS', `${PREFIX}n:${node}`]));
  }

  /** A session's name, token hash and rooms, for ending it from elsewhere; undefined when it is gone. */
  async session(key: string): Promise<{ name: string; token: string; rooms: string[] } | undefined> {
    const [u, rooms] = await Promise.all([
      this.redis.send(['HMGET', `${PREFIX}u:${key}`, 'name', 'token']),
      this.redis.send(['ZRANGE', `${PREFIX}r:${key}`, 0, -1]),
    ]);
    const [name, token] = list(u);
    if (name === null || token === null) return undefined;
    return { name: str(name), token: str(token), rooms: strs(rooms) };
  }

  async forgetNode(node: string): Promise<void> {
    await Promise.all([
      this.redis.send(['SREM', `${PREFIX}nodes`, node]),
      this.redis.send(['DEL', `${PREFIX}n:${node}`, `${PREFIX}reap:${node}`]),
    ]);
  }

  private run(script: RedisScript, ...args: (string | number)[]): Promise<RespValue> {
    return this.redis.evalScript(script, [], [PREFIX, ...args]);
  }

  private seed(): string {
    return `${this.seedBase}.${(this.seeds++).toString(36)}`;
  }
}

function placed(v: RespValue): Placed {
  const r = list(v);
  const code = num(r[0]);
  return code > 0 ? { offset: code, epoch: str(r[1]) } : REFUSALS[code]!;
}

/** An array reply (a set, for SMEMBERS in RESP3). */
function list(v: RespValue): RespValue[] {
  if (v instanceof Set) return [...v];
  if (!Array.isArray(v)) throw new TypeError(`expected an array from Redis, got ${typeof v}`);
  return v;
}

function str(v: RespValue | undefined): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'number') return String(v);
  throw new TypeError(`expected a string from Redis, got ${v === null ? 'null' : typeof v}`);
}

function strs(v: RespValue | undefined): string[] {
  return list(v ?? []).map(str);
}

function num(v: RespValue | undefined): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  throw new TypeError(`expected a number from Redis, got ${v === null ? 'null' : typeof v}`);
}
