/**
 * The incremental UTF-8 validator (RFC 6455 §8.1, RFC 3629) against Node's native isUtf8: fed one
 * byte at a time, or in any split, it must reach the same verdict on every input.
 */
import { describe, it, expect } from 'vitest';
import { isUtf8 } from 'node:buffer';
import { Utf8Validator } from '../src/websocket/utf8';
import { mulberry32 } from './helpers/rng';

/** A random code point of 1, 2, 3 (below the surrogates) or 4 UTF-8 bytes, with these cumulative odds. */
function randomCodePoint(rand: () => number, [one, two, three]: readonly [number, number, number]): number {
  const kind = rand();
  if (kind < one) return Math.floor(rand() * 0x80);
  if (kind < two) return 0x80 + Math.floor(rand() * 0x780);
  if (kind < three) return 0x800 + Math.floor(rand() * 0xd000);
  return 0x10000 + Math.floor(rand() * 0x100000);
}

/** Whole-message verdict of the validator: valid bytes and no code point left open. */
function byteByByte(bytes: Uint8Array): boolean {
  const v = new Utf8Validator();
  for (let i = 0; i < bytes.length; i++) if (!v.update(bytes, i, i + 1)) return false;
  return v.complete;
}

function inTwo(bytes: Uint8Array, cut: number): boolean {
  const v = new Utf8Validator();
  return v.update(bytes, 0, cut) && v.update(bytes, cut, bytes.length) && v.complete;
}

const b = (...x: number[]): Uint8Array => Uint8Array.from(x);

describe('Utf8Validator', () => {
  it('accepts every boundary code point, rejects every malformed form', () => {
    const valid = [
      b(),
      b(0x00),
      b(0x7f),
      b(0xc2, 0x80), // U+0080
      b(0xdf, 0xbf), // U+07FF
      b(0xe0, 0xa0, 0x80), // U+0800
      b(0xed, 0x9f, 0xbf), // U+D7FF
      b(0xee, 0x80, 0x80), // U+E000
      b(0xef, 0xbf, 0xbf), // U+FFFF
      b(0xf0, 0x90, 0x80, 0x80), // U+10000
      b(0xf4, 0x8f, 0xbf, 0xbf), // U+10FFFF
    ];
    const invalid = [
      b(0x80),
      b(0xbf),
      b(0xc0, 0x80), // overlong NUL
      b(0xc1, 0xbf),
      b(0xc2), // truncated
      b(0xc2, 0x7f),
      b(0xc2, 0xc0),
      b(0xe0, 0x80, 0x80), // overlong
      b(0xe0, 0x9f, 0xbf),
      b(0xed, 0xa0, 0x80), // U+D800
      b(0xed, 0xbf, 0xbf), // U+DFFF
      b(0xe1, 0x80), // truncated
      b(0xf0, 0x80, 0x80, 0x80), // overlong
      b(0xf0, 0x8f, 0xbf, 0xbf),
      b(0xf4, 0x90, 0x80, 0x80), // U+110000
      b(0xf5, 0x80, 0x80, 0x80),
      b(0xf8, 0x88, 0x80, 0x80, 0x80),
      b(0xfe),
      b(0xff),
      b(0xf0, 0x90, 0x80), // truncated
    ];
    for (const bytes of valid) {
      expect(isUtf8(bytes), Buffer.from(bytes).toString('hex')).toBe(true);
      expect(byteByByte(bytes), Buffer.from(bytes).toString('hex')).toBe(true);
    }
    for (const bytes of invalid) {
      expect(isUtf8(bytes), Buffer.from(bytes).toString('hex')).toBe(false);
      expect(byteByByte(bytes), Buffer.from(bytes).toString('hex')).toBe(false);
    }
  });

  it('agrees with isUtf8 on every 1- and 2-byte input and every 3-byte input with a 3-byte lead', () => {
    for (let x = 0; x < 256; x++) expect(byteByByte(b(x))).toBe(isUtf8(b(x)));
    for (let x = 0; x < 256; x++) {
      for (let y = 0; y < 256; y++) {
        const bytes = b(x, y);
        if (byteByByte(bytes) !== isUtf8(bytes)) expect.fail(`disagree on ${Buffer.from(bytes).toString('hex')}`);
      }
    }
    for (let x = 0xe0; x <= 0xf4; x++) {
      for (let y = 0x70; y < 0xd0; y++) {
        for (const z of [0x00, 0x7f, 0x80, 0xbf, 0xc0]) {
          const bytes = b(x, y, z);
          if (byteByByte(bytes) !== isUtf8(bytes)) expect.fail(`disagree on ${Buffer.from(bytes).toString('hex')}`);
        }
      }
    }
  });

  it('agrees with isUtf8 on random inputs, fed byte by byte and split anywhere', () => {
    const rand = mulberry32(6455).next;
    const interesting = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0];
    interesting.push(0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff);
    let validSeen = 0;
    for (let round = 0; round < 3000; round++) {
      // Mostly valid text from random code points, then a few bytes mutated, so both verdicts occur.
      let s = '';
      const n = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < n; i++) s += String.fromCodePoint(randomCodePoint(rand, [0.3, 0.5, 0.75]));
      const bytes = Buffer.from(s, 'utf8');
      const mutations = rand() < 0.4 ? 0 : 1 + Math.floor(rand() * 3);
      for (let m = 0; m < mutations; m++) {
        const at = Math.floor(rand() * bytes.length);
        bytes[at] = rand() < 0.5 ? interesting[Math.floor(rand() * interesting.length)]! : Math.floor(rand() * 256);
      }
      // Sometimes cut the end off, to leave a code point open.
      const input = rand() < 0.2 ? bytes.subarray(0, Math.floor(rand() * bytes.length)) : bytes;
      const expected = isUtf8(input);
      if (expected) validSeen++;
      expect(byteByByte(input), input.toString('hex')).toBe(expected);
      for (let cut = 0; cut <= input.length; cut++) {
        expect(inTwo(input, cut), `${input.toString('hex')} cut ${cut}`).toBe(expected);
      }
    }
    // Both verdicts were exercised plenty.
    expect(validSeen).toBeGreaterThan(500);
    expect(validSeen).toBeLessThan(2500);
  });

  it('agrees with isUtf8 on long inputs (the native path) cut anywhere, code points split at the cuts', () => {
    const rand = mulberry32(1007).next;
    let validSeen = 0;
    for (let round = 0; round < 150; round++) {
      let s = '';
      const n = 40 + Math.floor(rand() * 200); // 40..240 code points: well over the native threshold
      for (let i = 0; i < n; i++) s += String.fromCodePoint(randomCodePoint(rand, [0.4, 0.6, 0.8]));
      const bytes = Buffer.from(s, 'utf8');
      if (rand() < 0.5) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      const input = rand() < 0.2 ? bytes.subarray(0, bytes.length - 1 - Math.floor(rand() * 3)) : bytes;
      const expected = isUtf8(input);
      if (expected) validSeen++;
      for (let cut = 0; cut <= input.length; cut++) {
        expect(inTwo(input, cut), `${input.toString('hex')} cut ${cut}`).toBe(expected);
      }
      // And in random pieces of 1..300 bytes.
      const v = new Utf8Validator();
      let ok = true;
      for (let at = 0; at < input.length && ok; ) {
        const next = Math.min(input.length, at + 1 + Math.floor(rand() * 300));
        ok = v.update(input, at, next);
        at = next;
      }
      expect(ok && v.complete, input.toString('hex')).toBe(expected);
    }
    expect(validSeen).toBeGreaterThan(30);
    expect(validSeen).toBeLessThan(120);
  });

  it('fails on the first bad byte and reset() starts over', () => {
    const v = new Utf8Validator();
    expect(v.update(b(0x61, 0xe2, 0x82), 0, 3)).toBe(true);
    expect(v.complete).toBe(false);
    expect(v.update(b(0xac), 0, 1)).toBe(true);
    expect(v.complete).toBe(true);
    expect(v.update(b(0xed), 0, 1)).toBe(true);
    expect(v.update(b(0xa0), 0, 1)).toBe(false); // a surrogate, known at its second byte
    v.reset();
    expect(v.complete).toBe(true);
    expect(v.update(b(0x80), 0, 1)).toBe(false);
    v.reset();
    expect(v.update(b(0x68, 0x69), 0, 2)).toBe(true);
    expect(v.complete).toBe(true);
  });

  it('only looks at [start, end)', () => {
    const v = new Utf8Validator();
    expect(v.update(b(0xff, 0x61, 0x62, 0xff), 1, 3)).toBe(true);
    expect(v.complete).toBe(true);
  });
});
