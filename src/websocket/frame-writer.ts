/**
 * Frame encoding (RFC 6455 §5.2). A server sends unmasked frames (§5.1); a client masks every
 * frame with a fresh, unpredictable key (§5.3).
 *
 * `PreparedFrame` is a whole frame encoded once: a broadcast encodes its message a single time and
 * writes the same bytes to every socket.
 */
import { randomFillSync } from 'node:crypto';
import { applyMask } from './mask';
import { Opcode } from './opcodes';

/** Size of the header for a payload of `length` bytes (§5.2: 7-bit, 16-bit or 64-bit length). */
export function headerSize(length: number, masked: boolean): number {
  const base = length < 126 ? 2 : length <= 0xffff ? 4 : 10;
  return masked ? base + 4 : base;
}

/**
 * Writes a frame header into `target` at `offset` and returns the offset after it.
 * `maskKey` (4 bytes) sets the MASK bit and is appended after the length.
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  length: number,
  fin = true,
  maskKey?: Uint8Array,
): number {
  target[offset] = (fin ? 0x80 : 0) | opcode;
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
 */
export function encodeFrame(opcode: number, payload: Uint8Array | string, masked = false, fin = true): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const size = headerSize(length, masked);
  const frame = Buffer.allocUnsafe(size + length);
  const key = masked ? nextMaskKey() : undefined;
  writeHeader(frame, 0, opcode, length, fin, key);
  if (typeof payload === 'string') frame.write(payload, size, 'utf8');
  else frame.set(payload, size);
  if (key) applyMask(frame, size, size + length, key, 0);
  return frame;
}

/** A message encoded once as an unmasked server frame, ready to be written to any number of sockets. */
export class PreparedFrame {
  constructor(readonly bytes: Buffer) {}

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
