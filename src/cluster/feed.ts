/**
 * Feed: a node's view of one stream (a room, or the inbox of a session it holds). Redis stores the stream
 * and publishes every message once; the feed puts what arrives back in offset order for the node's members.
 *
 *   in order     offset top + 1: it goes into the cache (the Stream, which holds what this node delivered)
 *                and out to the members
 *   old          offset <= top: already delivered (a repair and the live message crossed), dropped
 *   gap          a later offset: Redis pub/sub lost messages (a broken subscriber connection, a node too
 *                busy to read): it is held, and the node reads the missing ones from the stream (XRANGE)
 *                before delivering what follows
 *   other epoch  the stream started a new life (Redis lost its data): held, and the node reads where the
 *                stream stands; members hear `resync` and go on from there
 *
 * A feed starts unsynced: it holds everything until the first read (the script that made its first
 * member join) says where the stream stood when Redis ran it; everything after that is live.
 */
import type { Stored } from '../chat/models/history';
import { Stream } from '../chat/models/history';
import type { Members, Room } from '../chat/models/rooms';
import type { Session } from '../chat/models/session';

/** A stored message on its way to a feed's members. */
export interface Delivery {
  readonly feed: Feed;
  readonly stored: Stored;
}

/** What the node must do after a feed took something in. */
export interface Outcome {
  /** Read the stream from Redis: there is a gap, or another epoch. */
  readonly repair: boolean;
  /** The stream started over: the members must hear `resync`. */
  readonly reset: boolean;
}

const NOTHING: Outcome = { repair: false, reset: false };

/** The place of a stored message, read from its tail: `..."stream":"lobby","offset":58,"epoch":"..."}`. */
export interface Place {
  readonly stream: string;
  readonly offset: number;
  readonly epoch: string;
}

export function parsePlace(json: string): Place | undefined {
  // A quote inside a string value is escaped, so these field markers can only be the real fields.
  const e = json.lastIndexOf(',"epoch":"');
  const o = json.lastIndexOf(',"offset":', e);
  const s = json.lastIndexOf(',"stream":', o);
  if (s < 0 || o < 0 || e < 0) return undefined;
  const offset = Number(json.slice(o + 10, e));
  const epoch = json.slice(e + 10, json.length - 2);
  let stream: unknown;
  try {
    stream = JSON.parse(json.slice(s + 10, o));
  } catch {
    return undefined;
  }
  if (typeof stream !== 'string' || !Number.isSafeInteger(offset)) return undefined;
  return { stream, offset, epoch };
}

interface Held {
  readonly epoch: string;
  readonly json: string;
}

export class Feed {
  /** What this node delivered of the stream, in order: the cache that closes the subscribe race. */
  readonly stream: Stream;
  /** A room's feed has its Room (members, for sessions' room sets); an inbox's, just members. */
  readonly room: Room | undefined;
  readonly members: Members;
  /** Members whose leave request went to Redis: they leave when their notice comes back. */
  readonly leaving = new Map<string, Session>();
  synced = false;
  /** A read of the stream (repair or resync) is in flight. */
  repairing = false;
  /** Operations in flight that need this feed; it is dropped when nothing needs it. */
  refs = 0;
  /** Messages that arrived ahead of their turn, by offset. */
  private readonly held = new Map<number, Held>();

  constructor(
    readonly name: string,
    historySize: number,
    room?: Room,
  ) {
    this.room = room;
    this.stream = room?.stream ?? new Stream(name, historySize);
    this.members = room?.members ?? new Map();
  }

  /** True when nothing needs the feed any more. */
  get idle(): boolean {
    return this.refs === 0 && this.members.size === 0 && this.leaving.size === 0 && !this.repairing;
  }

  /** A message from Redis; what can go out now is added to `out`. */
  accept(place: Place, json: string, out: Delivery[]): Outcome {
    if (!this.synced || this.repairing) {
      this.hold(place, json);
      return NOTHING;
    }
    if (place.epoch !== this.stream.epoch) {
      this.hold(place, json);
      return { repair: true, reset: false };
    }
    if (place.offset <= this.stream.top) return NOTHING;
    if (place.offset > this.stream.top + 1) {
      this.hold(place, json);
      return { repair: true, reset: false };
    }
    this.take(json, out);
    return this.drain(out);
  }

  /**
   * Where the stream stands in Redis (`epoch`, `top`) and the entries after this feed's top, when the
   * epoch is the same (a repair); or the first read of an unsynced feed (no entries: it starts at top).
   */
  sync(epoch: string, top: number, entries: readonly string[], out: Delivery[]): Outcome {
    this.repairing = false;
    if (!this.synced || epoch !== this.stream.epoch) {
      const reset = this.synced;
      this.synced = true;
      this.stream.reset(epoch, top);
      return { ...this.drain(out), reset };
    }
    for (const json of entries) {
      const place = parsePlace(json);
      if (place !== undefined && place.offset === this.stream.top + 1) this.take(json, out);
    }
    if (this.stream.top < top) {
      // Trimmed from Redis before we could read them: lost for good. Start again from where it stands.
      this.stream.reset(epoch, top);
      return { ...this.drain(out), reset: true };
    }
    return this.drain(out);
  }

  private take(json: string, out: Delivery[]): void {
    this.stream.put(json);
    out.push({ feed: this, stored: { offset: this.stream.top, json } });
  }

  private hold(place: Place, json: string): void {
    if (this.held.size < HELD_MAX) this.held.set(place.offset, { epoch: place.epoch, json });
  }

  /** Delivers held messages that are next in order; asks for a repair when some are still ahead. */
  private drain(out: Delivery[]): Outcome {
    if (this.held.size === 0) return NOTHING;
    for (const [offset, held] of this.held) {
      if (held.epoch !== this.stream.epoch || offset <= this.stream.top) this.held.delete(offset);
    }
    for (let next = this.held.get(this.stream.top + 1); next !== undefined; next = this.held.get(this.stream.top + 1)) {
      this.held.delete(this.stream.top + 1);
      this.take(next.json, out);
    }
    return this.held.size > 0 ? { repair: true, reset: false } : NOTHING;
  }
}

/**
 * Messages held per feed at most while a repair is in flight; more are dropped, and read from the
 * stream by the next repair (that is what it is for).
 */
const HELD_MAX = 10_000;
