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

export class Utf8Validator {
  /** Continuation bytes still owed by the current code point. */
  private need = 0;
  /** Allowed range of the next continuation byte (narrowed after E0, ED, F0, F4). */
  private lo = 0x80;
  private hi = 0xbf;

  /** Feeds bytes [start, end). Returns false as soon as a byte can never be part of valid UTF-8. */
  update(buf: Uint8Array, start: number, end: number): boolean {
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
