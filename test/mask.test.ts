/**
 * RFC 6455 §5.3 masking: applyMask must equal the definition (octet i XOR key[i mod 4]) at every
 * buffer alignment, start phase and length, including the word loop and its byte-loop edges.
 */
import { describe, it, expect } from 'vitest';
import { applyMask } from '../src/websocket/mask';

function naive(buf: Uint8Array, start: number, end: number, key: Uint8Array, phase: number): void {
  for (let i = start; i < end; i++) buf[i] ^= key[(phase + i - start) & 3]!;
}

function pattern(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 131 + seed * 17 + (i >>> 3)) & 0xff;
  return out;
}

describe('applyMask', () => {
  const key = Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]);

  it('equals the byte loop at every alignment, phase and length (0..80 and a few large)', () => {
    const lengths = [...Array.from({ length: 81 }, (_, i) => i), 127, 128, 129, 1023, 4096, 65537];
    for (const length of lengths) {
      for (let align = 0; align < 8; align++) {
        for (let start = 0; start < 4; start++) {
          for (let phase = 0; phase < 8; phase++) {
            // A view at an arbitrary byteOffset of a fresh ArrayBuffer, with guard bytes around [start, end).
            const backing = new ArrayBuffer(align + start + length + 4);
            const buf = new Uint8Array(backing, align, start + length + 3);
            buf.set(pattern(buf.length, length + align));
            const expected = Uint8Array.from(buf);
            naive(expected, start, start + length, key, phase);
            applyMask(buf, start, start + length, key, phase);
            if (!Buffer.from(buf).equals(Buffer.from(expected))) {
              expect.fail(`mismatch: length ${length} align ${align} start ${start} phase ${phase}`);
            }
          }
        }
      }
    }
  });

  it('works on pooled Buffers (odd byteOffset into a shared slab)', () => {
    const a = Buffer.from('x'); // take a byte of the pool so the next one is misaligned
    const buf = Buffer.from('The quick brown fox jumps over the lazy dog, twice: the quick brown fox.');
    expect(a.length).toBe(1);
    const expected = Uint8Array.from(buf);
    naive(expected, 0, buf.length, key, 0);
    applyMask(buf, 0, buf.length, key, 0);
    expect(Buffer.from(expected).equals(buf)).toBe(true);
  });

  it('is its own inverse, and piecewise masking with a carried phase equals one pass', () => {
    const original = pattern(1000, 7);
    const once = Buffer.from(original);
    applyMask(once, 0, once.length, key, 0);
    expect(once.equals(original)).toBe(false);
    const twice = Buffer.from(once);
    applyMask(twice, 0, twice.length, key, 0);
    expect(twice.equals(original)).toBe(true);

    // Cut into pieces of every size: phase = bytes already masked.
    for (const piece of [1, 2, 3, 5, 31, 33, 64, 333]) {
      const pieces = Buffer.from(original);
      for (let at = 0; at < pieces.length; at += piece) {
        applyMask(pieces, at, Math.min(at + piece, pieces.length), key, at);
      }
      expect(pieces.equals(once), `pieces of ${piece}`).toBe(true);
    }
  });

  it('masks the RFC example (§5.7): "Hello" with key 37 fa 21 3d', () => {
    const hello = Buffer.from('Hello');
    applyMask(hello, 0, 5, key, 0);
    expect([...hello]).toEqual([0x7f, 0x9f, 0x4d, 0x51, 0x58]);
  });
});
