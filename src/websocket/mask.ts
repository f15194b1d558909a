/**
 * RFC 6455 §5.3 masking: octet i of the payload is XORed with octet (i mod 4) of the masking key.
 * The same operation masks and unmasks. Done in place, four bytes at a time where the buffer is
 * aligned, because this loop touches every byte a client sends.
 */
import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';
/** Below this many bytes the word loop's setup costs more than it saves. */
const WORD_LOOP_MIN = 32;

/** A 4-byte masking key read from `bytes` at `at` as one number: key octet j is bits 8j..8j+7. */
export function packMaskKey(bytes: Uint8Array, at = 0): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) | 0;
}

/**
 * XORs buf[start, end) with `key`, where buf[start] is payload byte number `phase` (mod 4).
 * `phase` lets a frame's payload be unmasked piece by piece as socket chunks arrive.
 */
export function applyMask(buf: Uint8Array, start: number, end: number, key: Uint8Array, phase: number): void {
  applyPackedMask(buf, start, end, packMaskKey(key), phase);
}

/** applyMask with the key as packMaskKey gives it: a connection keeps a number, not a buffer, per frame. */
export function applyPackedMask(buf: Uint8Array, start: number, end: number, key: number, phase: number): void {
  let i = start;
  let p = phase & 3;
  if (end - start >= WORD_LOOP_MIN && LITTLE_ENDIAN) {
    // Byte loop up to a 4-byte aligned address, then whole 32-bit words.
    while (((buf.byteOffset + i) & 3) !== 0) {
      buf[i++] ^= key >>> (p << 3);
      p = (p + 1) & 3;
    }
    const words = (end - i) >>> 2;
    // The key rotated so that its octet p comes first (the lowest byte of a little-endian word).
    const word = p === 0 ? key : (key >>> (p << 3)) | (key << (32 - (p << 3)));
    // Int32 (not Uint32) keeps the values small integers for V8; 8 words per turn halves the loop cost.
    const view = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    const unrolled = words & ~7;
    let w = 0;
    for (; w < unrolled; w += 8) {
      view[w] ^= word;
      view[w + 1] ^= word;
      view[w + 2] ^= word;
      view[w + 3] ^= word;
      view[w + 4] ^= word;
      view[w + 5] ^= word;
      view[w + 6] ^= word;
      view[w + 7] ^= word;
    }
    for (; w < words; w++) view[w] ^= word;
    i += words << 2; // a whole number of words keeps the phase unchanged
  }
  while (i < end) {
    buf[i++] ^= key >>> (p << 3);
    p = (p + 1) & 3;
  }
}
