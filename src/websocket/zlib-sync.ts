/**
 * Synchronous, streaming raw DEFLATE (RFC 1951) on node:zlib, for permessage-deflate (RFC 7692).
 *
 * Node's public zlib API is either streaming and asynchronous (a thread-pool round trip per write:
 * ~48 µs for a 120-byte chat message here) or synchronous and one-shot (`inflateRawSync`: a new
 * zlib context per call, no state across calls). A WebSocket endpoint needs both at once: inflate
 * a message frame by frame as it arrives, with a hard bound on the output, and keep the LZ77 window
 * across messages when the peer takes over its context. So, like Node's own `*Sync` functions, we
 * drive the zlib handle's `writeSync()` directly (~2 µs for the same message), into output buffers
 * we own. That handle is not documented API: `checkZlibHandle()` fails at start-up, with a clear
 * message, if a Node release ever changes it.
 */
import * as zlib from 'node:zlib';

/** The parts of a node:zlib stream that Node's own synchronous functions use. */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
}
interface ZlibInternals {
  _handle: ZlibHandle | null;
  /** After writeSync: [bytes of output space left, bytes of input left]. */
  _writeState: Uint32Array;
}
type ZlibStream = zlib.DeflateRaw | zlib.InflateRaw;

/** The smallest chunk Node allows: the stream's own output buffer is never used. */
const UNUSED_CHUNK = zlib.constants.Z_MIN_CHUNK;

/** zlib reported corrupt input (or ran out of memory). */
export class ZlibError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZlibError';
  }
}

/** One raw DEFLATE compressor or decompressor, written synchronously. */
export class SyncZlib {
  private readonly stream: ZlibStream;
  private readonly internals: ZlibInternals;
  /** Output space and input left after the last write(). */
  availOut = 0;
  availIn = 0;

  private constructor(stream: ZlibStream) {
    this.stream = stream;
    this.internals = stream as unknown as ZlibInternals;
    // An error destroys the stream and is emitted on the next tick; write() reports it already.
    stream.on('error', () => {});
  }

  static deflate(windowBits: number, level: number, memLevel: number): SyncZlib {
    // RFC 7692 §7.1.2.1 allows a window of 8 bits, which zlib's deflate does not: Node turns 8 into 9,
    // and zlib never emits a distance beyond the window minus 262 bytes (250 < 256 for 9 bits).
    return new SyncZlib(zlib.createDeflateRaw({ windowBits, level, memLevel, chunkSize: UNUSED_CHUNK }));
  }

  static inflate(windowBits: number): SyncZlib {
    return new SyncZlib(zlib.createInflateRaw({ windowBits, chunkSize: UNUSED_CHUNK }));
  }

  /**
   * Feeds input[inOff, inOff + inLen) and writes output into out[outOff, outOff + outLen), with
   * Z_SYNC_FLUSH (all output that can be produced is). Sets availOut/availIn. Throws ZlibError.
   */
  write(input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void {
    const handle = this.internals._handle;
    if (handle === null) throw new ZlibError('zlib stream closed');
    handle.writeSync(zlib.constants.Z_SYNC_FLUSH, input, inOff, inLen, out, outOff, outLen);
    // On corrupt data zlib's error callback runs inside writeSync and destroys the stream.
    if (this.stream.destroyed) throw new ZlibError(this.stream.errored?.message ?? 'zlib error');
    const state = this.internals._writeState;
    this.availOut = state[0]!;
    this.availIn = state[1]!;
  }

  /** Forgets the LZ77 window and starts a new stream; keeps the allocated memory. */
  reset(): void {
    if (!this.stream.destroyed) this.stream.reset();
  }

  get closed(): boolean {
    return this.stream.destroyed;
  }

  close(): void {
    this.stream.close();
  }
}

/** Throws if this Node's zlib streams lack the synchronous handle that SyncZlib drives. */
export function checkZlibHandle(): void {
  const probe = zlib.createInflateRaw({ chunkSize: UNUSED_CHUNK }) as unknown as Partial<ZlibInternals> &
    zlib.InflateRaw;
  const ok = typeof probe._handle?.writeSync === 'function' && probe._writeState instanceof Uint32Array;
  probe.close();
  if (!ok) {
    throw new Error(
      `node:zlib in Node ${process.versions.node} has no synchronous handle: permessage-deflate is unavailable`,
    );
  }
}
