/**
 * The load client's counters, shared between its threads (load-threads.ts): every thread counts the
 * messages its clients receive into its own block of one SharedArrayBuffer, so the main thread
 * follows every thread's progress (joins, deliveries) while it runs, without messages. Latency stays
 * in each thread's histogram and is sent over once at the end.
 */
import { Histogram } from './histogram';

/**
 * Int32 slots per block: 16 × 4 bytes is one cache line, so threads never write to the same line.
 * Block 0 is the control block (written by the main thread), block t + 1 holds the counters of the
 * clients of thread t (written by that thread only).
 */
const BLOCK = 16;
export const CHATS = 0;
export const JOINS = 1;
export const LEAVES = 2;
/** Error messages from the server (System errors: a rate limit, say): should stay 0. */
export const ERRORS = 3;
/** Chat messages seen out of order or twice on one connection (should stay 0). */
export const REORDERED = 4;
/** Connections whose TCP connection is gone. */
export const ENDED = 5;
/** KiB received on the wire after the handshakes (frames as sent: compressed, when they were). */
export const WIRE_KIB = 6;
/** Control word: the number of the measurement in progress, 0 when latency is not recorded. */
const RECORDING = 0;

/** The counters of `threads` threads and the control block, to hand to every thread. */
export function sharedCounters(threads: number): SharedArrayBuffer {
  return new SharedArrayBuffer((threads + 1) * BLOCK * 4);
}

/** Reads slot `slot` of thread `thread` (from any thread). */
export function readCounter(shared: Int32Array, thread: number, slot: number): number {
  return Atomics.load(shared, (thread + 1) * BLOCK + slot);
}

/** Starts measurement number `generation` (> 0) in every thread, or stops it (0). */
export function setRecording(shared: Int32Array, generation: number): void {
  Atomics.store(shared, RECORDING, generation);
}

/** The counters of the clients of one thread (one object: the clients touch it per message). */
export class Totals {
  /** This thread's block, written with Atomics. */
  private readonly counts: Int32Array;
  private readonly control: Int32Array;
  /** Latency of chat deliveries during measurement number `generation`. */
  readonly latency = new Histogram();
  generation = 0;
  /** Leave notices, by the name that left ("<name> left the chat"), when `watchLeaves` is set. */
  readonly leftNames: string[] = [];
  watchLeaves = false;

  constructor(shared: SharedArrayBuffer, thread: number) {
    this.control = new Int32Array(shared, 0, BLOCK);
    this.counts = new Int32Array(shared, (thread + 1) * BLOCK * 4, BLOCK);
  }

  count(slot: number): void {
    Atomics.add(this.counts, slot, 1);
  }

  private wireBytes = 0;

  /** Bytes received, counted in whole KiB (an Int32 of bytes would wrap within a saturating run). */
  received(bytes: number): void {
    this.wireBytes += bytes;
    if (this.wireBytes < 1024) return;
    Atomics.add(this.counts, WIRE_KIB, this.wireBytes >>> 10);
    this.wireBytes &= 1023;
  }

  /** Records one delivery's latency if a measurement is in progress (the first sample of a new one resets). */
  recordLatency(us: number): void {
    const generation = Atomics.load(this.control, RECORDING);
    if (generation === 0) return;
    if (generation !== this.generation) {
      this.latency.reset();
      this.generation = generation;
    }
    this.latency.record(us);
  }
}
