/**
 * Compressing one message for permessage-deflate (RFC 7692 §7.2.1), with no context takeover.
 *
 * Every message is compressed on its own: the compressor is reset after each one, so the result
 * depends only on the message and the window size. That is what lets a broadcast compress a
 * message once and write the same bytes to every client (§7.1.1.1 server_no_context_takeover), and
 * it is why one compressor per window size serves the whole process: compressing is synchronous, so
 * nobody else can use it in between. Memory: one zlib deflate state per window size in use
 * (windowBits 15, memLevel 8: 256 KiB), for the process, not per connection.
 */
import { SyncZlib } from './zlib-sync';

/**
 * Below this many bytes a message is sent as it is: deflate (fixed Huffman codes, 3 bits of block
 * header, a 5-byte empty stored block of which 4 are stripped) is smaller for 1% of 16-byte and
 * 15% of 32-byte chat texts, for 85% at 48 bytes and for all at 64 (the chat's JSON is ≥ 64).
 */
export const MIN_DEFLATE_BYTES = 32;
/**
 * Above this many bytes a message is sent as it is: deflate costs 10-25 ns per byte on the event
 * loop (a 16 MiB echo: 150-400 ms), so this bounds the stall one message can cause to ~1.5 ms.
 */
export const MAX_DEFLATE_BYTES = 64 * 1024;
/** zlib's defaults: on chat-sized JSON levels 1 to 9 compress alike; the window and hash table are per process. */
const LEVEL = 6;
const MEM_LEVEL = 8;

/** §7.2.1: a sync flush ends with an empty stored block, 00 00 ff ff, which is not sent. */
const TAIL_LENGTH = 4;

const compressors: (SyncZlib | undefined)[] = [];
/** Output space: a result that does not fit is not smaller than its input (see deflatePayload). */
const scratch = Buffer.allocUnsafe(MAX_DEFLATE_BYTES + TAIL_LENGTH);

function compressor(windowBits: number): SyncZlib {
  let z = compressors[windowBits];
  if (z === undefined || z.closed) compressors[windowBits] = z = SyncZlib.deflate(windowBits, LEVEL, MEM_LEVEL);
  return z;
}

/**
 * The compressed payload of a message (§7.2.1: DEFLATE, sync flush, the 00 00 ff ff tail removed),
 * using an LZ77 window of at most 2^windowBits bytes (§7.1.2). Null when compressing does not pay:
 * outside [MIN_DEFLATE_BYTES, MAX_DEFLATE_BYTES], or not smaller than the payload (§6: a message may
 * always be sent uncompressed). The result is a view that the next call overwrites: copy it.
 */
export function deflatePayload(payload: Uint8Array, windowBits: number): Buffer | null {
  const length = payload.length;
  if (length < MIN_DEFLATE_BYTES || length > MAX_DEFLATE_BYTES) return null;
  const z = compressor(windowBits);
  // Room for length + 4 bytes: if zlib fills it, the payload without its tail is ≥ length: not worth it.
  const room = length + TAIL_LENGTH;
  try {
    z.write(payload, 0, length, scratch, 0, room);
  } catch {
    return null; // zlib failed (out of memory): the message goes uncompressed; a new compressor next time
  }
  const produced = room - z.availOut;
  z.reset(); // no context takeover: the next message starts from an empty window
  if (z.availOut === 0) return null;
  return scratch.subarray(0, produced - TAIL_LENGTH);
}
