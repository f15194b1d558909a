/**
 * UTF-8 validation for RFC 6455 §8.1: text messages and close reasons must be valid UTF-8
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
 *
 * Whole buffers go to Node's native `isUtf8`. Fragmented text is checked incrementally by
 * `Utf8Validator`, so a bad fragment fails at once (we do not wait for the end of the message)
 * and a code point split across fragments or socket chunks is fine.
 */
import { isUtf8 } from 'node:buffer';

export { isUtf8 };

/** Below this many bytes the byte loop is cheaper than a call into native code. */
const NATIVE_MIN = 64;

export class Utf8Validator {
  /** Continuation bytes still owed by the current code point. */
  private need = 0;
  /** Allowed range of the next continuation byte (narrowed after E0, ED, F0, F4). */
  private lo = 0x80;
  private hi = 0xbf;

  /**
   * Feeds bytes [start, end). Returns false as soon as a byte can never be part of valid UTF-8.
   * Long runs go to native `isUtf8`: only a code point split at either edge is walked byte by byte.
   */
  update(buf: Uint8Array, start: number, end: number): boolean {
    if (end - start < NATIVE_MIN) return this.walk(buf, start, end);
    // Finish the code point the previous piece left open.
    let i = start;
    while (this.need > 0 && i < end) {
      if (!this.walk(buf, i, i + 1)) return false;
      i++;
    }
    // Back up over a code point that the end of this piece cuts (at most 3 bytes, RFC 3629).
    let cut = end;
    for (let k = end - 1; k >= i && k >= end - 3; k--) {
      const b = buf[k]!;
      if (b < 0x80) break; // ASCII: nothing is cut
      if (b >= 0xc0) {
        // A lead byte: is its code point complete within [k, end)?
        const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
        if (end - k < length) cut = k;
        break;
      }
    }
    if (!isUtf8(buf.subarray(i, cut))) return false;
    return this.walk(buf, cut, end);
  }

  /** The byte-by-byte state machine. */
  private walk(buf: Uint8Array, start: number, end: number): boolean {
    let need = this.need;
    let lo = this.lo;
    let hi = this.hi;
    for (let i = start; i < end; i++) {
      const b = buf[i]!;
      if (need === 0) {
        if (b < 0x80) continue;
        if (b >= 0xc2 && b <= 0xdf) {
          need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
          need = 2;
          if (b === 0xe0) lo = 0xa0; // overlong 3-byte forms
          else if (b === 0xed) hi = 0x9f; // UTF-16 surrogates D800-DFFF
        } else if (b >= 0xf0 && b <= 0xf4) {
          need = 3;
          if (b === 0xf0) lo = 0x90; // overlong 4-byte forms
          else if (b === 0xf4) hi = 0x8f; // above U+10FFFF
        } else {
          return false; // 80-C1 (stray continuation, overlong 2-byte) and F5-FF never start a code point
        }
      } else {
        if (b < lo || b > hi) return false;
        lo = 0x80;
        hi = 0xbf;
        need--;
      }
    }
    this.need = need;
    this.lo = lo;
    this.hi = hi;
    return true;
  }

  /** True when no code point is left half-finished. */
  get complete(): boolean {
    return this.need === 0;
  }

  reset(): void {
    this.need = 0;
    this.lo = 0x80;
    this.hi = 0xbf;
  }
}
