/**
 * A batch of prepared frames as one buffer, built once for every connection that writes the same batch.
 *
 * A fan-out queues the same frames for every member, so their writers hand over equal batches in the
 * same turn (a join storm: every client gets the same presence notices). The first connection copies
 * the frames into a buffer, the next ones with the same frames in the same order write that buffer too:
 * one copy and one allocation per distinct batch instead of one per connection. The buffer is never
 * modified once built, so sockets that could not write it at once may all hold it.
 */
import type { PreparedFrame } from './frame-writer';

export class FrameBatch {
  private constructor(
    /** A copy of the list it was built from: the caller's array may be reused. */
    private readonly frames: readonly PreparedFrame[],
    /** permessage-deflate window bits of the encoding, 0 for uncompressed frames. */
    private readonly windowBits: number,
    readonly bytes: Buffer,
    /** The largest frame in it. */
    readonly largest: number,
    /** With permessage-deflate: its frames' size uncompressed, and how many of them went compressed. */
    readonly plainBytes: number,
    readonly compressed: number,
  ) {}

  /** The batch of `frames` encoded for `windowBits` (0: uncompressed): the last one built, if it is the same. */
  static of(frames: readonly PreparedFrame[], windowBits: number): FrameBatch {
    const last = lastBatch;
    if (last !== null && last.matches(frames, windowBits)) return last;
    return (lastBatch = FrameBatch.build(frames, windowBits));
  }

  private matches(frames: readonly PreparedFrame[], windowBits: number): boolean {
    const mine = this.frames;
    if (mine.length !== frames.length || this.windowBits !== windowBits) return false;
    for (let i = 0; i < mine.length; i++) if (mine[i] !== frames[i]) return false;
    return true;
  }

  private static build(frames: readonly PreparedFrame[], windowBits: number): FrameBatch {
    const count = frames.length;
    let total = 0;
    let largest = 0;
    let plainBytes = 0;
    let compressed = 0;
    for (let i = 0; i < count; i++) {
      const frame = frames[i]!;
      const encoded = bytesOf(frame, windowBits);
      total += encoded.length;
      if (encoded.length > largest) largest = encoded.length;
      plainBytes += frame.bytes.length;
      if (encoded !== frame.bytes) compressed++;
    }
    const bytes = Buffer.allocUnsafe(total);
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const frame = bytesOf(frames[i]!, windowBits);
      bytes.set(frame, offset);
      offset += frame.length;
    }
    return new FrameBatch(frames.slice(), windowBits, bytes, largest, plainBytes, compressed);
  }
}

/** The encoding of `frame` for a connection with these deflate window bits (0: not negotiated). */
export function bytesOf(frame: PreparedFrame, windowBits: number): Buffer {
  return windowBits === 0 ? frame.bytes : frame.deflatedBytes(windowBits);
}

/** The batch built last; the next connection most likely writes the same. */
let lastBatch: FrameBatch | null = null;
