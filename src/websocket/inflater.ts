/**
 * Decompressing received messages for permessage-deflate (RFC 7692 §7.2.2), frame by frame as they
 * arrive, never past the message limit.
 *
 * The output goes straight into the message's own buffer, which grows geometrically up to the limit
 * plus one byte; the byte past the limit is how a message is known to be too big. So a 1 KiB message
 * that would inflate to 1 GiB costs at most `limit + 1` bytes of output (and one doubling of the
 * buffer) before the connection is failed with 1009 (RFC 6455 §7.4.1, §10.4).
 *
 * Memory: a zlib inflate state (~7 KiB) and its window (2^15 = 32 KiB; zlib allocates it on first
 * output), held only while it is needed. When the peer takes over no context between messages
 * (§7.1.1, which our server always asks of its clients), an inflater is lent from a small
 * process-wide pool for one message and given back at its end, so an idle connection holds none.
 */
import { SyncZlib, ZlibError } from './zlib-sync';

export { ZlibError };

/** §7.2.2: the tail that the sender removed (§7.2.1) and the receiver appends before inflating. */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/**
 * §7.1.2: whatever window size the peer uses, a 15-bit window (the largest) decodes it, so one kind of
 * inflater serves every connection and the pool.
 */
const WINDOW_BITS = 15;
/** The first output buffer of a message: this many times its first compressed piece, at least 256 bytes. */
const FIRST_GUESS_RATIO = 4;
const MIN_OUTPUT = 256;
/** Idle inflaters kept for reuse (~40 KiB each); beyond that they are closed. */
const POOL_SIZE = 16;

const pool: SyncZlib[] = [];

/** Bytes of output produced by every Inflater in this process: tests check the zip-bomb bound with it. */
export const inflateStats = { bytesOut: 0 };

export class Inflater {
  /** The message inflated so far: output[0, length). */
  output: Buffer | null = null;
  length = 0;
  private zlib: SyncZlib | null = null;
  /** The DEFLATE stream of this message ended with a BFINAL block (§7.2.3.3): what follows is ignored. */
  private ended = false;

  /**
   * @param takeover the peer may refer to earlier messages (§7.1.1): keep one zlib context for the
   *   connection's lifetime instead of borrowing one per message.
   * @param limit largest inflated message, in bytes.
   */
  constructor(
    private readonly takeover: boolean,
    private readonly limit: number,
  ) {}

  /**
   * Inflates input[start, end), a piece of the message's compressed payload. Returns false once the
   * message has grown past the limit (nothing more is inflated). Throws ZlibError on corrupt data.
   */
  write(input: Uint8Array, start: number, end: number): boolean {
    if (this.ended || start === end) return this.length <= this.limit;
    const z = (this.zlib ??= this.takeover
      ? SyncZlib.inflate(WINDOW_BITS)
      : (pool.pop() ?? SyncZlib.inflate(WINDOW_BITS)));
    let inOff = start;
    let inLen = end - start;
    for (;;) {
      const out = this.room(inLen);
      if (out === null) return false;
      const outLen = out.length - this.length;
      z.write(input, inOff, inLen, out, this.length, outLen);
      const produced = outLen - z.availOut;
      this.length += produced;
      inflateStats.bytesOut += produced;
      if (this.length > this.limit) return false;
      inOff += inLen - z.availIn;
      inLen = z.availIn;
      if (z.availOut > 0) {
        // Output space left yet input unread: the stream ended (a BFINAL block, §7.2.3.3).
        if (inLen > 0) this.ended = true;
        return true;
      }
    }
  }

  /** §7.2.2: the message's last frame is in: append the tail and take the inflated message. */
  finish(): Buffer | null {
    if (!this.write(TAIL, 0, TAIL.length)) return null;
    const message = this.output === null ? Buffer.alloc(0) : this.output.subarray(0, this.length);
    this.endMessage();
    return message;
  }

  /** Forgets the current message; gives the zlib context back unless the peer takes over its context. */
  endMessage(): void {
    this.output = null;
    this.length = 0;
    const z = this.zlib;
    // After a BFINAL block the stream is over: the next message starts a new one whatever the context.
    if (z !== null && (this.ended || !this.takeover)) {
      z.reset();
      if (!this.takeover) {
        this.zlib = null;
        if (pool.length < POOL_SIZE && !z.closed) pool.push(z);
        else z.close();
      }
    }
    this.ended = false;
  }

  /** The connection is gone: release everything. */
  close(): void {
    const z = this.zlib;
    this.zlib = null;
    this.output = null;
    this.length = 0;
    if (z === null) return;
    if (!this.takeover && !z.closed && pool.length < POOL_SIZE) {
      z.reset();
      pool.push(z);
    } else {
      z.close();
    }
  }

  /** An output buffer with free space after `length`, grown geometrically; null at limit + 1. */
  private room(pending: number): Buffer | null {
    const cap = this.limit + 1;
    const current = this.output;
    if (current !== null && current.length > this.length) return current;
    if (this.length >= cap) return null;
    const size = Math.min(
      cap,
      current === null ? Math.max(MIN_OUTPUT, pending * FIRST_GUESS_RATIO) : current.length * 2,
    );
    const grown = Buffer.allocUnsafe(size);
    if (current !== null) current.copy(grown, 0, 0, this.length);
    this.output = grown;
    return grown;
  }
}
