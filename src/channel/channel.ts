/**
 * Go channels in TypeScript.
 *
 * How each part maps to Go:
 *
 *   Go                                   here
 *   ---------------------------------    --------------------------------------------
 *   ch := make(chan T)                   const ch = new Channel<T>()       (rendezvous)
 *   ch := make(chan T, n)                const ch = new Channel<T>(n)      (buffered)
 *   len(ch), cap(ch)                     ch.length, ch.capacity
 *   ch <- v                              await ch.send(v)
 *   select { case ch <- v: default: }    ch.trySend(v)        (true = sent, false = would block)
 *   v := <-ch                            const v = await ch.receive()
 *   v, ok := <-ch                        const { value, ok } = await ch.receiveOk()
 *   select { case v, ok := <-ch: default: }   ch.tryReceive()  (ready = false: would block)
 *   close(ch)                            ch.close()
 *   for v := range ch { ... }            for await (const v of ch) { ... }
 *   select { case ...: }                 select() / trySelect() in ./select.ts
 *
 * The chat uses a part of this (send, trySend, receiveMany, tryReceiveMany, select); the rest is Go's
 * whole channel API, kept for readers of the lesson and tested in test/channel.test.ts.
 *
 * Go panics become exceptions: sending on a closed channel throws (trySend) or rejects
 * (send) with ChannelClosedError, and so does closing a channel twice.
 *
 * One addition with no Go syntax: receiveMany() takes everything that can be received
 * right now in one wake-up (a consumer's "drain the queue" loop without one promise per
 * value). It behaves exactly like calling <-ch repeatedly while it would not block.
 *
 * Inside, like Go's runtime (runtime/chan.go), a channel is a ring buffer plus two FIFO
 * queues of parked goroutines: receivers (recvq) and senders (sendq). The invariants:
 *   - receivers wait only while the buffer is empty and no sender waits;
 *   - senders wait only while the buffer is full (always, for capacity 0).
 * So a send first hands its value straight to the oldest waiting receiver, and a receive
 * that frees a buffer slot moves the oldest waiting sender's value into it.
 */

/** Go's panics "send on closed channel" and "close of closed channel". */
export class ChannelClosedError extends Error {
  constructor(message = 'send on closed channel') {
    super(message);
    this.name = 'ChannelClosedError';
  }
}

/** Result of `v, ok := <-ch`: ok is false only once the channel is closed and drained. */
export type RecvResult<T> =
  | { readonly value: T; readonly ok: true }
  | { readonly value: undefined; readonly ok: false };

/**
 * Result of a non-blocking receive (Go's select with a default case).
 * Both not-taken results are shared frozen objects: only a real value allocates.
 */
export type TryReceiveResult<T> =
  | { readonly ready: true; readonly ok: true; readonly value: T }
  | { readonly ready: true; readonly ok: false; readonly value: undefined } // closed and drained
  | { readonly ready: false; readonly ok: false; readonly value: undefined }; // would block

// ---------------------------------------------------------------------------------------
// Internals shared with ./select.ts. The symbols are not re-exported by ./index.ts, so
// they are not part of the public API.

/** Returned by the internal poll when nothing can be received without blocking. */
export const EMPTY: unique symbol = Symbol('channel.empty');
/** ch[kPoll](): one value if it can be received without blocking, else EMPTY. */
export const kPoll: unique symbol = Symbol('channel.poll');
/** ch[kPark](w): queue a receiver (only when a receive would block). */
export const kPark: unique symbol = Symbol('channel.park');
/** ch[kUnpark](w): remove a queued receiver; a no-op if it is no longer queued. */
export const kUnpark: unique symbol = Symbol('channel.unpark');

/** Something that owns parked receivers and decides what a delivery means (select, for-await). */
export interface WaiterOwner {
  /** Called synchronously, after `w` has been unlinked from its channel's queue. */
  fire(w: Receiver, value: unknown, ok: boolean): void;
}

// What a parked receiver does with a value. Plain numbers, not an enum, so that the
// switch in deliver() stays obvious to someone reading this next to Go.
const RECV_VALUE = 0; // receive():     resolve(value)
const RECV_OK = 1; //    receiveOk():   resolve({ value, ok })
const RECV_MANY = 2; //  receiveMany(): resolve([value]) or []
/** The kind for receivers parked by a WaiterOwner (select, for-await): owner.fire(...). */
export const RECV_OWNER = 3;

/**
 * A parked receiver (Go's sudog in recvq). A node of a doubly linked list, so that a
 * select can take its waiters off the other channels in O(1) once one case fires.
 */
export class Receiver {
  prev: Receiver | null = null;
  next: Receiver | null = null;
  /** True while linked into a channel's queue. */
  queued = false;
  constructor(
    readonly kind: number,
    /** The pending promise's resolve, for the plain receive kinds. */
    readonly resolve: ((v: unknown) => void) | null,
    readonly owner: WaiterOwner | null = null,
    /** Owner-defined tag (select: the case index). */
    readonly tag = 0,
  ) {}
}

/** A parked sender (Go's sudog in sendq). Senders are never cancelled: a singly linked FIFO. */
class Sender<T> {
  next: Sender<T> | null = null;
  constructor(
    readonly value: T,
    readonly resolve: () => void,
    readonly reject: (e: Error) => void,
  ) {}
}

const CLOSED_RESULT = Object.freeze({ value: undefined, ok: false } as const);
const NOT_READY = Object.freeze({ ready: false, ok: false, value: undefined } as const);
const CLOSED_READY = Object.freeze({ ready: true, ok: false, value: undefined } as const);
const ITER_DONE = Object.freeze({ value: undefined, done: true } as const);

// Shared settled promises: the synchronous fast paths return these instead of allocating.
const RESOLVED: Promise<void> = Promise.resolve();
const RESOLVED_UNDEFINED: Promise<undefined> = Promise.resolve(undefined);
const RESOLVED_CLOSED: Promise<RecvResult<never>> = Promise.resolve(CLOSED_RESULT);
const RESOLVED_DONE: Promise<IteratorReturnResult<undefined>> = Promise.resolve(ITER_DONE);

/** Used by the ring until the first value is buffered: an idle channel owns no slots. */
const NO_SLOTS: never[] = [];
/** First allocation of the ring (or `capacity` if smaller). */
const INITIAL_SLOTS = 4;
/**
 * When single receives drain the buffer empty, a ring larger than this is dropped, so that
 * thousands of idle consumers do not each keep the slots of their last burst. Smaller rings
 * are kept, so a steady trickle never reallocates. (receiveMany hands the ring over instead.)
 */
const KEEP_SLOTS = 64;

/** Hands a value (or the "closed" signal) to a parked receiver that was just unlinked. */
function deliver(w: Receiver, value: unknown, ok: boolean): void {
  switch (w.kind) {
    case RECV_VALUE:
      w.resolve!(value); // value is undefined when !ok, like Go's zero value
      break;
    case RECV_OK:
      w.resolve!(ok ? { value, ok: true } : CLOSED_RESULT);
      break;
    case RECV_MANY:
      w.resolve!(ok ? [value] : []);
      break;
    default:
      w.owner!.fire(w, value, ok);
  }
}

export class Channel<T> {
  /** Go's cap(ch). 0 means unbuffered: a send completes only when a receiver takes the value. */
  readonly capacity: number;

  // Ring buffer: `count` values starting at `head`, wrapping at ring.length.
  // ring.length grows by doubling from 0 up to exactly `capacity`, never beyond.
  private ring: (T | undefined)[] = NO_SLOTS;
  private head = 0;
  private count = 0;

  private isClosed = false;
  /** How many values receiveMany took with the ring last time: a new ring starts that large. */
  private lastTaken = 0;

  // recvq: doubly linked FIFO (cancellable by select / abort / iterator return).
  private recvHead: Receiver | null = null;
  private recvTail: Receiver | null = null;
  private recvCount = 0;

  // sendq: singly linked FIFO.
  private sendHead: Sender<T> | null = null;
  private sendTail: Sender<T> | null = null;
  private sendCount = 0;

  /** Go's make(chan T, capacity). */
  constructor(capacity = 0) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new RangeError(`channel capacity must be an integer >= 0, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  /** Go's len(ch): values waiting in the buffer (not counting blocked senders). */
  get length(): number {
    return this.count;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Receivers parked in receive/receiveOk/receiveMany/select/for-await. */
  get waitingReceivers(): number {
    return this.recvCount;
  }

  /** Senders parked in send() because the buffer is full (or no receiver, for capacity 0). */
  get waitingSenders(): number {
    return this.sendCount;
  }

  // ---- send -------------------------------------------------------------------------

  /**
   * Go's `ch <- v`. Resolves at once (a shared settled promise, nothing allocated) when a
   * receiver is waiting or the buffer has room; otherwise waits its turn behind earlier
   * senders. Rejects with ChannelClosedError if the channel is closed, now or while waiting.
   */
  send(value: T): Promise<void> {
    if (this.isClosed) return Promise.reject(new ChannelClosedError());
    if (this.offer(value)) return RESOLVED;
    return new Promise<void>((resolve, reject) => {
      const s = new Sender(value, resolve, reject);
      if (this.sendTail) this.sendTail.next = s;
      else this.sendHead = s;
      this.sendTail = s;
      this.sendCount++;
    });
  }

  /**
   * Go's `select { case ch <- v: return true; default: return false }`.
   * Throws ChannelClosedError if the channel is closed (Go panics there too).
   */
  trySend(value: T): boolean {
    if (this.isClosed) throw new ChannelClosedError();
    return this.offer(value);
  }

  /** Delivers to the oldest waiting receiver, else buffers if there is room. */
  private offer(value: T): boolean {
    const w = this.recvHead;
    if (w !== null) {
      // A waiting receiver implies an empty buffer: hand the value over directly.
      this[kUnpark](w);
      deliver(w, value, true);
      return true;
    }
    if (this.count < this.capacity) {
      this.push(value);
      return true;
    }
    return false;
  }

  // ---- receive ----------------------------------------------------------------------

  /** Go's `v := <-ch`: undefined once the channel is closed and drained. */
  receive(): Promise<T | undefined> {
    const v = this[kPoll]();
    if (v !== EMPTY) return Promise.resolve(v);
    if (this.isClosed) return RESOLVED_UNDEFINED;
    return new Promise<T | undefined>((resolve) => {
      this[kPark](new Receiver(RECV_VALUE, resolve as (v: unknown) => void));
    });
  }

  /** Go's `v, ok := <-ch`: ok is false once the channel is closed and drained. */
  receiveOk(): Promise<RecvResult<T>> {
    const v = this[kPoll]();
    if (v !== EMPTY) return Promise.resolve({ value: v, ok: true });
    if (this.isClosed) return RESOLVED_CLOSED;
    return new Promise<RecvResult<T>>((resolve) => {
      this[kPark](new Receiver(RECV_OK, resolve as (v: unknown) => void));
    });
  }

  /**
   * Go's `select { case v, ok := <-ch: ...; default: ... }`.
   * `ready: false` means a receive would block; the not-ready and closed results are shared
   * objects, so polling an empty channel allocates nothing.
   */
  tryReceive(): TryReceiveResult<T> {
    const v = this[kPoll]();
    if (v !== EMPTY) return { ready: true, ok: true, value: v };
    return this.isClosed ? CLOSED_READY : NOT_READY;
  }

  /**
   * Batch drain: waits until at least one value can be received, then takes everything
   * available in one go, up to `max`: buffered values first, then the values of blocked
   * senders in FIFO order (their send() promises resolve). The result is exactly what
   * repeated `<-ch` would return while it does not block. Resolves [] only once the channel
   * is closed and drained.
   */
  receiveMany(max = Infinity): Promise<T[]> {
    if (!(max >= 1) || (max !== Infinity && !Number.isInteger(max))) {
      throw new RangeError(`receiveMany max must be an integer >= 1 or Infinity, got ${max}`);
    }
    const n = Math.min(max, this.count + this.sendCount);
    if (n > 0) return Promise.resolve(this.drain(n));
    if (this.isClosed) return Promise.resolve([]);
    return new Promise<T[]>((resolve) => {
      this[kPark](new Receiver(RECV_MANY, resolve as (v: unknown) => void));
    });
  }

  /**
   * Non-blocking receiveMany: everything receivable right now (up to max), or an empty array.
   * Go: a loop of `select { case v := <-ch: ... default: }` until the default case fires.
   */
  tryReceiveMany(max = Infinity): T[] {
    const n = Math.min(max, this.count + this.sendCount);
    return n > 0 ? this.drain(n) : [];
  }

  /**
   * Takes n values (n <= count + sendCount) in receive order. Taking the whole buffer hands the ring
   * itself over when it starts at slot 0: no copy, and the drained channel owns no slots until its next
   * value (an idle client keeps nothing of its last burst).
   */
  private drain(n: number): T[] {
    let out: T[];
    let i = 0;
    if (n >= this.count && this.head === 0 && this.count > 0) {
      out = this.ring as T[];
      out.length = i = this.lastTaken = this.count;
      this.ring = NO_SLOTS;
      this.count = 0;
    } else {
      out = new Array<T>(n);
    }
    while (i < n && this.count > 0) out[i++] = this.shift();
    while (i < n) {
      const s = this.shiftSender()!;
      out[i++] = s.value;
      s.resolve();
    }
    // Slots freed in the buffer admit the next blocked senders, as n single receives would.
    this.admitSenders();
    return out;
  }

  // ---- close ------------------------------------------------------------------------

  /**
   * Go's close(ch). Buffered values stay receivable; after them receivers get
   * undefined / ok=false / []. Waiting receivers wake now; waiting senders reject with
   * ChannelClosedError. Closing twice throws, like Go's "close of closed channel" panic.
   */
  close(): void {
    if (this.isClosed) throw new ChannelClosedError('close of closed channel');
    this.isClosed = true;
    // Receivers wait only on an empty buffer, so every one of them sees "closed".
    for (let w = this.recvHead; w !== null; w = this.recvHead) {
      this[kUnpark](w);
      deliver(w, undefined, false);
    }
    for (let s = this.shiftSender(); s !== null; s = this.shiftSender()) {
      s.reject(new ChannelClosedError());
    }
  }

  // ---- range ------------------------------------------------------------------------

  /**
   * Go's `for v := range ch`: yields until the channel is closed and drained. Leaving the
   * loop early (break/return/throw) neither closes the channel nor leaves a waiter behind.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return new ChannelIterator(this);
  }

  // ---- internals (also used by select) ----------------------------------------------

  /** Receives one value without blocking, or returns EMPTY. Keeps both invariants. */
  [kPoll](): T | typeof EMPTY {
    if (this.count > 0) {
      const v = this.shift();
      this.admitSenders(); // a slot just freed up
      return v;
    }
    // Empty buffer with a waiting sender only happens for capacity 0: take from it directly.
    const s = this.shiftSender();
    if (s !== null) {
      s.resolve();
      return s.value;
    }
    return EMPTY;
  }

  [kPark](w: Receiver): void {
    w.queued = true;
    w.prev = this.recvTail;
    w.next = null;
    if (this.recvTail) this.recvTail.next = w;
    else this.recvHead = w;
    this.recvTail = w;
    this.recvCount++;
  }

  [kUnpark](w: Receiver): void {
    if (!w.queued) return;
    w.queued = false;
    if (w.prev) w.prev.next = w.next;
    else this.recvHead = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.recvTail = w.prev;
    w.prev = w.next = null;
    this.recvCount--;
  }

  private shiftSender(): Sender<T> | null {
    const s = this.sendHead;
    if (s !== null) {
      this.sendHead = s.next;
      if (this.sendHead === null) this.sendTail = null;
      s.next = null;
      this.sendCount--;
    }
    return s;
  }

  /** Moves blocked senders into free buffer slots (FIFO), completing their sends. */
  private admitSenders(): void {
    while (this.sendHead !== null && this.count < this.capacity) {
      const s = this.shiftSender()!;
      this.push(s.value);
      s.resolve();
    }
  }

  // ---- ring buffer --------------------------------------------------------------------

  /** Appends to the ring. Callers guarantee count < capacity. */
  private push(value: T): void {
    let ring = this.ring;
    if (this.count === ring.length) ring = this.grow();
    let i = this.head + this.count;
    if (i >= ring.length) i -= ring.length;
    ring[i] = value;
    this.count++;
  }

  /** Removes the oldest value. Callers guarantee count > 0. */
  private shift(): T {
    const ring = this.ring;
    const v = ring[this.head] as T;
    ring[this.head] = undefined; // no retained reference once dequeued
    this.count--;
    if (this.count === 0) {
      this.head = 0;
      if (ring.length > KEEP_SLOTS) this.ring = NO_SLOTS;
    } else if (++this.head === ring.length) {
      this.head = 0;
    }
    return v;
  }

  /**
   * Doubles the ring (0 -> 4 -> 8 ...), capped at exactly `capacity`; unwraps it to index 0. A first ring
   * is as large as the last one receiveMany took: a consumer that drains bursts gets one allocation per
   * burst, not a doubling series.
   */
  private grow(): (T | undefined)[] {
    const old = this.ring;
    const size = Math.min(this.capacity, old.length === 0 ? Math.max(INITIAL_SLOTS, this.lastTaken) : old.length * 2);
    const ring = new Array<T | undefined>(size);
    for (let k = 0, j = this.head; k < this.count; k++) {
      ring[k] = old[j];
      if (++j === old.length) j = 0;
    }
    this.ring = ring;
    this.head = 0;
    return ring;
  }
}

/**
 * The iterator behind `for await (const v of ch)`. Written by hand rather than as an async
 * generator: a generator's return() would wait for a pending next() to settle, leaving a
 * parked receiver behind; this one unparks it at once.
 */
class ChannelIterator<T> implements AsyncIterableIterator<T>, WaiterOwner {
  private done = false;
  /** Parked next() calls: at most one under for-await, more only if next() is called eagerly. */
  private readonly pending: Receiver[] = [];

  constructor(private readonly ch: Channel<T>) {}

  next(): Promise<IteratorResult<T>> {
    if (this.done) return RESOLVED_DONE;
    const v = this.ch[kPoll]();
    if (v !== EMPTY) return Promise.resolve({ value: v, done: false });
    if (this.ch.closed) {
      this.done = true;
      return RESOLVED_DONE;
    }
    return new Promise<IteratorResult<T>>((resolve) => {
      const w = new Receiver(RECV_OWNER, resolve as (v: unknown) => void, this);
      this.pending.push(w);
      this.ch[kPark](w);
    });
  }

  fire(w: Receiver, value: unknown, ok: boolean): void {
    this.pending.splice(this.pending.indexOf(w), 1);
    if (!ok) this.done = true;
    w.resolve!(ok ? { value, done: false } : ITER_DONE);
  }

  /** Called by for-await on break/return/throw. Does not close the channel. */
  return(): Promise<IteratorResult<T>> {
    this.done = true;
    for (const w of this.pending) {
      this.ch[kUnpark](w);
      w.resolve!(ITER_DONE);
    }
    this.pending.length = 0;
    return RESOLVED_DONE;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
