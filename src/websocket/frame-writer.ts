/**
 * Frame encoding (RFC 6455 §5.2). A server sends unmasked frames (§5.1); a client masks every
 * frame with a fresh, unpredictable key (§5.3).
 *
 * `PreparedFrame` is a whole frame encoded once: a broadcast encodes its message a single time and
 * writes the same bytes to every socket. With permessage-deflate (RFC 7692) it also compresses the
 * message once, on the first connection that wants it, and keeps that frame for all the others.
 */
import { randomFillSync } from 'node:crypto';
import { deflatePayload } from './deflater';
import { applyMask } from './mask';
import { Opcode } from './opcodes';

/** Size of the header for a payload of `length` bytes (§5.2: 7-bit, 16-bit or 64-bit length). */
export function headerSize(length: number, masked: boolean): number {
  const base = length < 126 ? 2 : length <= 0xffff ? 4 : 10;
  return masked ? base + 4 : base;
}

/** RFC 7692 §6: RSV1 marks the first frame of a compressed message ("Per-Message Compressed"). */
export const RSV1 = 0x40;

/**
 * Writes a frame header into `target` at `offset` and returns the offset after it.
 * `maskKey` (4 bytes) sets the MASK bit and is appended after the length; `rsv1` sets RSV1.
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  length: number,
  fin = true,
  maskKey?: Uint8Array,
  rsv1 = false,
): number {
  target[offset] = (fin ? 0x80 : 0) | (rsv1 ? RSV1 : 0) | opcode;
  const maskBit = maskKey ? 0x80 : 0;
  if (length < 126) {
    target[offset + 1] = maskBit | length;
    offset += 2;
  } else if (length <= 0xffff) {
    target[offset + 1] = maskBit | 126;
    target[offset + 2] = length >>> 8;
    target[offset + 3] = length & 0xff;
    offset += 4;
  } else {
    // §5.2: 64-bit length, most significant bit 0. JS numbers are exact up to 2^53.
    target[offset + 1] = maskBit | 127;
    const hi = Math.floor(length / 0x100000000);
    const lo = length >>> 0;
    target[offset + 2] = hi >>> 24;
    target[offset + 3] = (hi >>> 16) & 0xff;
    target[offset + 4] = (hi >>> 8) & 0xff;
    target[offset + 5] = hi & 0xff;
    target[offset + 6] = lo >>> 24;
    target[offset + 7] = (lo >>> 16) & 0xff;
    target[offset + 8] = (lo >>> 8) & 0xff;
    target[offset + 9] = lo & 0xff;
    offset += 10;
  }
  if (maskKey) {
    target[offset] = maskKey[0]!;
    target[offset + 1] = maskKey[1]!;
    target[offset + 2] = maskKey[2]!;
    target[offset + 3] = maskKey[3]!;
    offset += 4;
  }
  return offset;
}

// §5.3: "The masking key MUST be derived from a strong source of entropy." Keys come from a pool of
// crypto-random bytes refilled in bulk, so a client pays one randomFillSync per 1,024 frames.
const keyPool = Buffer.allocUnsafe(4096);
let keyPoolOffset = keyPool.length;

export function nextMaskKey(): Buffer {
  if (keyPoolOffset === keyPool.length) {
    randomFillSync(keyPool);
    keyPoolOffset = 0;
  }
  const key = keyPool.subarray(keyPoolOffset, keyPoolOffset + 4);
  keyPoolOffset += 4;
  return key;
}

/**
 * Encodes a complete frame into one buffer (header + payload, a single copy of the payload).
 * With `masked`, the payload bytes in the frame are masked; `payload` itself is not modified.
 * `rsv1` marks an already compressed payload (RFC 7692 §6).
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array | string,
  masked = false,
  fin = true,
  rsv1 = false,
): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const size = headerSize(length, masked);
  const frame = Buffer.allocUnsafe(size + length);
  const key = masked ? nextMaskKey() : undefined;
  writeHeader(frame, 0, opcode, length, fin, key, rsv1);
  if (typeof payload === 'string') frame.write(payload, size, 'utf8');
  else frame.set(payload, size);
  if (key) applyMask(frame, size, size + length, key, 0);
  return frame;
}

/**
 * A whole message as one frame, compressed with permessage-deflate (RFC 7692 §7.2.1) when that makes
 * it smaller, else as it is (RSV1 clear: §6 lets any message go uncompressed). Masked for a client.
 */
export function encodeMessageFrame(
  opcode: number,
  payload: Uint8Array | string,
  masked: boolean,
  windowBits: number,
): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const deflated = deflatePayload(bytes, windowBits);
  return deflated === null ? encodeFrame(opcode, bytes, masked) : encodeFrame(opcode, deflated, masked, true, true);
}

/** A message encoded once as an unmasked server frame, ready to be written to any number of sockets. */
export class PreparedFrame {
  /**
   * The compressed frame for each LZ77 window size (RFC 7692 §7.1.2.1) that a recipient needed,
   * computed on first need; the uncompressed frame itself where compressing does not pay.
   */
  private deflated: Buffer[] | null = null;

  constructor(readonly bytes: Buffer) {}

  /**
   * The bytes to write to a connection that negotiated permessage-deflate with this window size.
   * Every message is compressed on its own (no context takeover), so the result is the same for
   * every such connection: a broadcast compresses once, whatever the number of recipients.
   */
  deflatedBytes(windowBits: number): Buffer {
    const cache = (this.deflated ??= []);
    let frame = cache[windowBits];
    if (frame === undefined) {
      const bytes = this.bytes;
      // An unmasked header (§5.2): 2 bytes, plus 2 or 8 for the 16- or 64-bit length.
      const len7 = bytes[1]! & 0x7f;
      const payload = bytes.subarray(len7 < 126 ? 2 : len7 === 126 ? 4 : 10);
      const compressed = deflatePayload(payload, windowBits);
      frame = compressed === null ? bytes : encodeFrame(bytes[0]! & 0x0f, compressed, false, true, true);
      cache[windowBits] = frame;
    }
    return frame;
  }

  static text(text: string): PreparedFrame {
    return new PreparedFrame(encodeFrame(Opcode.Text, text));
  }
}

/** §5.5.1: a close payload is a 2-byte big-endian code followed by a UTF-8 reason (≤ 123 bytes). */
export function closePayload(code: number | undefined, reason = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const payload = Buffer.allocUnsafe(2 + MAX_CLOSE_REASON);
  payload.writeUInt16BE(code, 0);
  // Buffer#write never splits a code point, so a long reason is cut at a character boundary.
  const written = payload.write(reason, 2, MAX_CLOSE_REASON, 'utf8');
  return payload.subarray(0, 2 + written);
}

/** §5.5: control payload ≤ 125 bytes, minus the 2-byte code. */
export const MAX_CLOSE_REASON = 123;
