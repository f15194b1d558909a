/**
 * Streams and their history: every stored message gets the next offset of its stream (1, 2, 3...,
 * no gaps), and the last `size` messages are kept to replay to newcomers and to clients that resume.
 * A stream's epoch names one life of its offsets: a new epoch means the history before it is gone
 * (here, at every server start, and when a private inbox changes hands).
 *
 * Memory is bounded: a stream holds at most `size` messages, each as the JSON its members received
 * (one string, shared with the frame that went out), and its ring of slots grows only as it fills.
 */
import { randomBytes } from 'node:crypto';
import { encodeStored, type ChatMessage, type Position } from './message';

/** A message with its place: the JSON members receive. */
export interface Stored {
  readonly offset: number;
  readonly json: string;
}

/** A new epoch: random, so offsets from a stream's earlier life can never be mistaken for this one's. */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/** First ring allocation; doubles up to `size`. A quiet inbox costs a few slots, not a thousand. */
const INITIAL_SLOTS = 8;
/** The slots of a stream that holds nothing yet, shared: put() grows a ring of its own before writing. */
const NO_SLOTS: never[] = [];

export class Stream {
  /** Set by reset() only (a cluster node's cache follows Redis). */
  epoch = newEpoch();
  /** The latest offset given; 0 before the first message. */
  top = 0;
  private slots: (string | undefined)[] = NO_SLOTS;
  /** Per slot, the de-duplication key of the message in it, if it had a cid. */
  private keys: (string | undefined)[] = NO_SLOTS;
  private start = 0;
  private count = 0;
  /** De-duplication key (sender and cid) -> offset, for the messages still held; made for the first cid. */
  private byKey: Map<string, number> | null = null;

  constructor(
    readonly name: string,
    private readonly size: number,
  ) {}

  get position(): Position {
    return { epoch: this.epoch, offset: this.top };
  }

  /** The oldest offset still held (top + 1 when nothing is). */
  get oldest(): number {
    return this.top - this.count + 1;
  }

  /** Messages held now. */
  get held(): number {
    return this.count;
  }

  /** Where a message with this de-duplication key was stored, if it is still held. */
  find(key: string): number | undefined {
    return this.byKey?.get(key);
  }

  append(message: ChatMessage, key?: string): Stored {
    const offset = this.top + 1;
    const json = encodeStored(message, this.name, offset, this.epoch);
    this.put(json, key);
    return { offset, json };
  }

  /**
   * Keeps the JSON of the next offset (top + 1), stored elsewhere: a cluster node's streams are caches of
   * Redis streams, filled in offset order with what the node delivers.
   */
  put(json: string, key?: string): void {
    const offset = ++this.top;
    if (this.count === this.slots.length && this.slots.length < this.size) this.grow();
    let at = this.start + this.count;
    if (this.count === this.slots.length) {
      // Full: the oldest message makes room (and forgets its key).
      at = this.start;
      const evicted = this.keys[at];
      if (evicted !== undefined && this.byKey?.get(evicted) === offset - this.count) this.byKey.delete(evicted);
      this.start = (this.start + 1) % this.slots.length;
      this.count--;
    } else if (at >= this.slots.length) {
      at -= this.slots.length;
    }
    this.slots[at] = json;
    this.keys[at] = key;
    this.count++;
    if (key !== undefined) (this.byKey ??= new Map()).set(key, offset);
  }

  /** Forgets everything held and goes on from `top` in `epoch` (a cache whose source moved on or was lost). */
  reset(epoch: string, top: number): void {
    this.epoch = epoch;
    this.top = top;
    this.slots = NO_SLOTS;
    this.keys = NO_SLOTS;
    this.start = 0;
    this.count = 0;
    this.byKey = null;
  }

  /** The JSON of the held messages with offsets in [from, to], oldest first. */
  range(from: number, to: number): string[] {
    const first = Math.max(from, this.oldest);
    const last = Math.min(to, this.top);
    const out: string[] = [];
    for (let offset = first; offset <= last; offset++) {
      out.push(this.slots[(this.start + offset - this.oldest) % this.slots.length]!);
    }
    return out;
  }

  /** Can a client that saw everything up to `at` get all it missed from here? */
  covers(at: Position): boolean {
    return at.epoch === this.epoch && at.offset <= this.top && at.offset >= this.oldest - 1;
  }

  private grow(): void {
    const size = Math.min(this.size, Math.max(INITIAL_SLOTS, this.slots.length * 2));
    const slots = new Array<string | undefined>(size);
    const keys = new Array<string | undefined>(size);
    for (let i = 0; i < this.count; i++) {
      const j = (this.start + i) % this.slots.length;
      slots[i] = this.slots[j];
      keys[i] = this.keys[j];
    }
    this.slots = slots;
    this.keys = keys;
    this.start = 0;
  }
}
