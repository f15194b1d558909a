/**
 * Fuzzing helpers for the RESP parser: a generator of RESP2/RESP3 values written from the spec (not
 * from the parser), their encoding, the value the parser should give for each (the oracle), a deep
 * comparison, and streams that are valid, targeted-invalid, over a limit, truncated, corrupted or random.
 *
 * Everything is a pure function of the seed (the PRNG and chunkings come from ./fuzz), so a failing
 * case replays from its seed alone.
 */
import type { RespParserOptions } from '../../src/redis/resp-parser';
import { RedisReplyError, VerbatimString, type RespValue } from '../../src/redis/values';
import { mulberry32, type Rng } from './rng';

// ---------------------------------------------------------------------------------------------
// What the parser reports, in order

export type RespEvent =
  | { readonly kind: 'reply' | 'push' | 'attribute'; readonly value: RespValue }
  | { readonly kind: 'error'; readonly message: string };

/** Where two values differ (a path and both sides), or undefined when they are the same. */
export function diffValues(a: RespValue, b: RespValue, path = '$'): string | undefined {
  const show = (v: RespValue): string => describe(v);
  if (a === b) return undefined;
  if (typeof a === 'number' && typeof b === 'number') {
    return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)) ? undefined : `${path}: ${a} vs ${b}`;
  }
  if (typeof a !== typeof b || a === null || b === null) return `${path}: ${show(a)} vs ${show(b)}`;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) {
    return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b) ? undefined : `${path}: ${show(a)} vs ${show(b)}`;
  }
  if (a instanceof RedisReplyError || b instanceof RedisReplyError) {
    return a instanceof RedisReplyError && b instanceof RedisReplyError && a.message === b.message && a.code === b.code
      ? undefined
      : `${path}: ${show(a)} vs ${show(b)}`;
  }
  if (a instanceof VerbatimString || b instanceof VerbatimString) {
    if (!(a instanceof VerbatimString && b instanceof VerbatimString) || a.format !== b.format) {
      return `${path}: ${show(a)} vs ${show(b)}`;
    }
    return diffValues(a.text, b.text, `${path}.text`);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return `${path}: ${show(a)} vs ${show(b)}`;
    for (let i = 0; i < a.length; i++) {
      const d = diffValues(a[i]!, b[i]!, `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return `${path}: ${show(a)} vs ${show(b)}`;
    const ea = [...a];
    const eb = [...b];
    for (let i = 0; i < ea.length; i++) {
      const [ka, va] = ea[i]!;
      const [kb, vb] = eb[i]!;
      const d = diffValues(ka, kb, `${path}<key ${i}>`) ?? diffValues(va, vb, `${path}<value ${i}>`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (a instanceof Set || b instanceof Set) {
    if (!(a instanceof Set && b instanceof Set)) return `${path}: ${show(a)} vs ${show(b)}`;
    return diffValues([...a], [...b], `${path}<set>`);
  }
  return `${path}: ${show(a)} vs ${show(b)}`;
}

export function describe(v: RespValue): string {
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `Buffer(${v.length}:${v.subarray(0, 16).toString('hex')})`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof RedisReplyError) return `RedisReplyError(${JSON.stringify(v.message.slice(0, 40))})`;
  if (v instanceof VerbatimString) return `Verbatim(${v.format}:${describe(v.text)})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v instanceof Map) return `map(${v.size})`;
  if (v instanceof Set) return `set(${v.size})`;
  return String(v);
}

export function diffEvents(a: readonly RespEvent[], b: readonly RespEvent[]): string | undefined {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined) return `event ${i}: ${x?.kind ?? '(nothing)'} vs ${y?.kind ?? '(nothing)'}`;
    if (x.kind !== y.kind) return `event ${i}: ${x.kind} vs ${y.kind}`;
    if (x.kind === 'error' || y.kind === 'error') {
      const mx = (x as { message: string }).message;
      const my = (y as { message: string }).message;
      if (mx !== my) return `event ${i}: error ${JSON.stringify(mx)} vs ${JSON.stringify(my)}`;
      continue;
    }
    const d = diffValues((x as { value: RespValue }).value, (y as { value: RespValue }).value);
    if (d !== undefined) return `event ${i} (${x.kind}): ${d}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Generating values: each generated item carries its bytes and the value it should parse to

interface Item {
  readonly bytes: Buffer[];
  /** What the parser should report, in order: attributes first, then the value itself (if any). */
  readonly events: RespEvent[];
  /** The value (for nesting), absent for a top-level push. */
  readonly value: RespValue;
}

export interface Limits {
  readonly maxBulkBytes: number;
  readonly maxAggregateLength: number;
  readonly maxDepth: number;
  readonly maxLineBytes: number;
}

const line = (type: string, text: string): Buffer => Buffer.from(`${type}${text}\r\n`, 'latin1');
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

function lineText(rng: Rng, max: number): Buffer {
  // Any bytes but CR and LF (RESP3 spec, "Simple string"), often plain ASCII, sometimes UTF-8.
  const n = rng.int(Math.min(max, rng.chance(0.9) ? 24 : max) + 1);
  // UTF-8, maybe cut inside a character (then decoded as U+FFFD, by the parser as by the oracle).
  if (rng.chance(0.3)) return Buffer.from('é€😀 ok'.repeat(4)).subarray(0, n);
  const b = rng.bytes(n);
  for (let i = 0; i < n; i++) if (b[i] === 13 || b[i] === 10) b[i] = 0x20;
  return rng.chance(0.5) ? Buffer.from(b.toString('latin1').replace(/[^\x20-\x7e]/g, 'x'), 'latin1') : b;
}

function bulkBytes(rng: Rng, max: number): Buffer {
  const n = rng.chance(0.1) ? 0 : rng.chance(0.8) ? rng.int(Math.min(max, 40) + 1) : rng.int(max + 1);
  const b = rng.bytes(n);
  // Bulk strings may hold CRLF: plant some.
  for (let i = 0; i + 1 < n; i++) {
    if (rng.chance(0.05)) {
      b[i] = 13;
      b[i + 1] = 10;
    }
  }
  return b;
}

function integerText(rng: Rng): string {
  const pick = rng.int(6);
  if (pick === 0) return rng.pick(['0', '-1', '1', String(2 ** 53 - 1), String(2 ** 53), String(-(2 ** 53) - 1)]);
  if (pick === 1) return rng.pick([INT64_MAX, INT64_MIN, INT64_MAX - 1n, INT64_MIN + 1n]).toString();
  if (pick === 2) {
    return (BigInt(rng.int(2 ** 31)) * BigInt(rng.int(2 ** 31)) * (rng.chance(0.5) ? -1n : 1n)).toString();
  }
  return String(rng.range(-1_000_000, 1_000_000));
}

function expectedInteger(text: string): number | bigint {
  const big = BigInt(text);
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : big;
}

function doubleText(rng: Rng): { text: string; value: number } {
  switch (rng.int(5)) {
    case 0: {
      const text = rng.pick(['inf', '-inf', 'nan', '-nan', 'NAN', 'nan(0x8000)']);
      return { text, value: text === 'inf' ? Infinity : text === '-inf' ? -Infinity : NaN };
    }
    case 1: {
      // %.17g as Redis prints it.
      const x = (rng.next() - 0.5) * 10 ** rng.range(-300, 300);
      const text = x.toPrecision(17).replace(/\.?0+(e|$)/, '$1').replace(/e\+?/, 'e+').replace('e+-', 'e-');
      return { text, value: Number(text) };
    }
    case 2: {
      const text = String(rng.range(-1000, 1000));
      return { text, value: Number(text) };
    }
    default: {
      const text = String((rng.next() - 0.5) * 10 ** rng.range(-5, 25));
      return { text, value: Number(text) };
    }
  }
}

export class ValueGenerator {
  constructor(
    private readonly rng: Rng,
    private readonly limits: Limits,
    private readonly bulkAs: 'string' | 'buffer',
  ) {}

  private bulkValue(bytes: Buffer): string | Buffer {
    return this.bulkAs === 'buffer' ? bytes : bytes.toString('utf8');
  }

  /** One value (maybe preceded by attributes), at nesting `depth` (aggregates open around it). */
  value(depth: number): Item {
    const rng = this.rng;
    const item = this.plain(depth);
    // RESP3 spec, "Attribute type": may precede any value; it is reported apart, before the value.
    if (depth < this.limits.maxDepth && rng.chance(0.05)) {
      const attrs = this.aggregate('|', depth, rng.range(0, 2));
      return { bytes: [...attrs.bytes, ...item.bytes], events: [...attrs.events, ...item.events], value: item.value };
    }
    return item;
  }

  private simple(type: string, bytes: Buffer, value: RespValue): Item {
    return { bytes: [Buffer.from(type, 'latin1'), bytes, Buffer.from('\r\n')], events: [], value };
  }

  private plain(depth: number): Item {
    const rng = this.rng;
    const L = this.limits;
    const kinds = ['+', '-', ':', '$', '$-1', '*-1', '_', '#', ',', '(', '!', '='];
    if (depth < L.maxDepth) kinds.push('*', '*', '%', '~');
    const kind = rng.pick(kinds);
    switch (kind) {
      case '+': {
        const b = lineText(rng, L.maxLineBytes);
        return this.simple('+', b, b.toString('utf8'));
      }
      case '-': {
        const b = lineText(rng, L.maxLineBytes);
        return this.simple('-', b, new RedisReplyError(b.toString('utf8')));
      }
      case ':': {
        const t = integerText(rng);
        return { bytes: [line(':', t)], events: [], value: expectedInteger(t) };
      }
      case '$': {
        const b = bulkBytes(rng, L.maxBulkBytes);
        return { bytes: [line('$', String(b.length)), b, Buffer.from('\r\n')], events: [], value: this.bulkValue(b) };
      }
      case '!': {
        const b = bulkBytes(rng, L.maxBulkBytes);
        return {
          bytes: [line('!', String(b.length)), b, Buffer.from('\r\n')],
          events: [],
          value: new RedisReplyError(b.toString('utf8')),
        };
      }
      case '=': {
        const fmt = rng.pick(['txt', 'mkd', 'xyz']);
        const text = bulkBytes(rng, Math.max(0, L.maxBulkBytes - 4));
        const b = Buffer.concat([Buffer.from(`${fmt}:`), text]);
        return {
          bytes: [line('=', String(b.length)), b, Buffer.from('\r\n')],
          events: [],
          value: new VerbatimString(fmt, this.bulkValue(text)),
        };
      }
      case '$-1':
      case '*-1':
        return { bytes: [line(kind, '')], events: [], value: null };
      case '_':
        return { bytes: [line('_', '')], events: [], value: null };
      case '#': {
        const v = rng.chance(0.5);
        return { bytes: [line('#', v ? 't' : 'f')], events: [], value: v };
      }
      case ',': {
        const d = doubleText(rng);
        return { bytes: [line(',', d.text)], events: [], value: d.value };
      }
      case '(': {
        const digits = Array.from({ length: rng.range(1, 60) }, () => rng.int(10)).join('');
        const t = `${rng.pick(['', '-', '+'])}${digits}`;
        return { bytes: [line('(', t)], events: [], value: BigInt(t) };
      }
      default:
        return this.aggregate(kind as '*' | '%' | '~', depth, rng.int(Math.min(L.maxAggregateLength, 5) + 1));
    }
  }

  /** An aggregate of `count` elements (pairs for maps and attributes). */
  aggregate(type: '*' | '%' | '~' | '|' | '>', depth: number, count: number): Item {
    const bytes: Buffer[] = [line(type, String(count))];
    const events: RespEvent[] = [];
    const items: RespValue[] = [];
    const n = type === '%' || type === '|' ? 2 * count : count;
    for (let i = 0; i < n; i++) {
      const child = this.value(depth + 1);
      bytes.push(...child.bytes);
      events.push(...child.events.filter((e) => e.kind === 'attribute'));
      items.push(child.value);
    }
    const pairs = (): Map<RespValue, RespValue> => {
      const m = new Map<RespValue, RespValue>();
      for (let i = 0; i < items.length; i += 2) m.set(items[i]!, items[i + 1]!);
      return m;
    };
    switch (type) {
      case '*':
        return { bytes, events, value: items };
      case '~':
        return { bytes, events, value: new Set(items) };
      case '%':
        return { bytes, events, value: pairs() };
      case '|':
        return { bytes, events: [...events, { kind: 'attribute', value: pairs() }], value: null };
      case '>':
        return { bytes, events: [...events, { kind: 'push', value: items }], value: null };
    }
  }

  /** A top-level item: a reply (attributes first) or a push. */
  top(): { bytes: Buffer; events: RespEvent[] } {
    if (this.rng.chance(0.1)) {
      const push = this.aggregate('>', 0, this.rng.range(1, Math.min(this.limits.maxAggregateLength, 4)));
      return { bytes: Buffer.concat(push.bytes), events: push.events };
    }
    const item = this.value(0);
    return { bytes: Buffer.concat(item.bytes), events: [...item.events, { kind: 'reply', value: item.value }] };
  }
}

// ---------------------------------------------------------------------------------------------
// Cases

export type RespStreamKind = 'valid' | 'invalid' | 'over-limit' | 'truncated' | 'corrupted' | 'random-bytes';

export interface RespFuzzCase {
  readonly kind: RespStreamKind;
  readonly note: string;
  readonly bytes: Buffer;
  readonly options: RespParserOptions & Limits;
  /** What the parser must report (valid, invalid and over-limit streams), or undefined if unknown. */
  readonly expected: RespEvent[] | undefined;
  /** invalid / over-limit: the error message must match. */
  readonly error?: RegExp;
  /** truncated: the events of the whole stream, of which the truncated stream's must be a prefix. */
  readonly whole?: RespEvent[];
}

/** Malformed pieces, each with the error the parser must report (RESP3 spec rule broken in the note). */
const INVALID: readonly { bytes: string; error: RegExp; note: string }[] = [
  { bytes: '?x\r\n', error: /unknown type byte 0x3f/, note: 'unknown type byte' },
  { bytes: '\r\n', error: /unknown type byte 0x0d/, note: 'empty line' },
  { bytes: '+ab\ncd\r\n', error: /not terminated by CRLF/, note: 'bare LF' },
  { bytes: '+a\rb\r\n', error: /CR inside a line/, note: 'CR inside a simple string' },
  { bytes: '$-2\r\n', error: /malformed bulk length/, note: 'negative bulk length' },
  { bytes: '$abc\r\n', error: /malformed bulk length/, note: 'bulk length not a number' },
  { bytes: '$\r\n', error: /malformed bulk length/, note: 'empty bulk length' },
  { bytes: '$3\r\nabcde\r\n', error: /bulk string not followed by CRLF/, note: 'bulk longer than declared' },
  { bytes: '$3\r\nab\r\n\r\n', error: /bulk string not followed by CRLF/, note: 'bulk shorter than declared' },
  { bytes: '$?\r\n;3\r\nabc\r\n;0\r\n', error: /streamed strings are not supported/, note: 'streamed string' },
  { bytes: '*?\r\n:1\r\n.\r\n', error: /streamed aggregates are not supported/, note: 'streamed array' },
  { bytes: '*-2\r\n', error: /malformed aggregate length/, note: 'negative array length' },
  { bytes: '%-1\r\n', error: /malformed aggregate length/, note: 'null map' },
  { bytes: '!-1\r\n', error: /malformed bulk length/, note: 'null bulk error' },
  { bytes: ':1.5\r\n', error: /malformed integer/, note: 'fractional integer' },
  { bytes: ':+1\r\n', error: /malformed integer/, note: 'integer with a plus' },
  { bytes: ':\r\n', error: /malformed integer/, note: 'empty integer' },
  { bytes: ':9223372036854775808\r\n', error: /outside the signed 64-bit range/, note: 'integer overflow' },
  { bytes: '#x\r\n', error: /boolean other than/, note: 'bad boolean' },
  { bytes: '#tt\r\n', error: /boolean other than/, note: 'long boolean' },
  { bytes: '_x\r\n', error: /null with a payload/, note: 'null with payload' },
  { bytes: ',abc\r\n', error: /malformed double/, note: 'double not a number' },
  { bytes: ',.5\r\n', error: /malformed double/, note: 'double without integral part' },
  { bytes: ',1.\r\n', error: /malformed double/, note: 'double with empty fraction' },
  { bytes: ',0x10\r\n', error: /malformed double/, note: 'hex double' },
  { bytes: '(1.5\r\n', error: /malformed big number/, note: 'fractional big number' },
  { bytes: '(\r\n', error: /malformed big number/, note: 'empty big number' },
  { bytes: '=3\r\ntxt\r\n', error: /shorter than its format/, note: 'verbatim without text' },
  { bytes: '=5\r\ntxt-a\r\n', error: /without a colon/, note: 'verbatim without colon' },
  { bytes: '*1\r\n>1\r\n:1\r\n', error: /push data inside an aggregate/, note: 'nested push' },
];

function limitsFor(rng: Rng): Limits {
  return {
    maxBulkBytes: rng.pick([16, 64, 300, 4096]),
    maxAggregateLength: rng.pick([4, 8, 64]),
    maxDepth: rng.range(2, 6),
    maxLineBytes: rng.pick([64, 80, 1024]), // a generated big number is up to 61 bytes
  };
}

/** A stream of 1-6 top-level items. */
function validStream(rng: Rng, limits: Limits, bulkAs: 'string' | 'buffer'): { bytes: Buffer; events: RespEvent[] } {
  const gen = new ValueGenerator(rng, limits, bulkAs);
  const parts: Buffer[] = [];
  const events: RespEvent[] = [];
  for (let i = rng.range(1, 6); i > 0; i--) {
    const top = gen.top();
    parts.push(top.bytes);
    events.push(...top.events);
  }
  return { bytes: Buffer.concat(parts), events };
}

/** A piece that breaks one limit by one, with the error it must give. */
function overLimit(rng: Rng, L: Limits): { bytes: Buffer; error: RegExp; note: string } {
  switch (rng.int(4)) {
    case 0:
      // The declared length alone is refused: no payload follows, nothing is reserved.
      return {
        bytes: line(rng.pick(['$', '!', '=']), String(L.maxBulkBytes + 1 + rng.int(3) * 1e9)),
        error: /bulk length .* above the limit/,
        note: 'bulk over maxBulkBytes',
      };
    case 1:
      return {
        bytes: line(rng.pick(['*', '%', '~', '>']), String(L.maxAggregateLength + 1)),
        error: /aggregate length .* above the limit/,
        note: 'aggregate over maxAggregateLength',
      };
    case 2:
      return {
        bytes: Buffer.from('*1\r\n'.repeat(L.maxDepth + 1) + ':1\r\n'),
        error: /nested deeper than/,
        note: 'nesting over maxDepth',
      };
    default:
      return {
        bytes: Buffer.from(`+${'a'.repeat(L.maxLineBytes + 1)}\r\n`),
        error: /line longer than/,
        note: 'line over maxLineBytes',
      };
  }
}

export function generateRespCase(seed: number): RespFuzzCase {
  const rng = mulberry32(seed);
  const limits = limitsFor(rng);
  const bulkAs = rng.chance(0.5) ? 'string' : 'buffer';
  const options = { ...limits, bulkAs } as const;
  const roll = rng.int(100);
  if (roll < 45) {
    const s = validStream(rng, limits, bulkAs);
    return { kind: 'valid', note: `${s.events.length} events`, bytes: s.bytes, options, expected: s.events };
  }
  if (roll < 60) {
    const s = validStream(rng, limits, bulkAs);
    const bad = rng.pick(INVALID);
    const tail = rng.chance(0.5) ? validStream(rng, limits, bulkAs).bytes : Buffer.alloc(0);
    return {
      kind: 'invalid',
      note: bad.note,
      bytes: Buffer.concat([s.bytes, Buffer.from(bad.bytes, 'latin1'), tail]),
      options,
      expected: [...s.events, { kind: 'error', message: '(matched by regex)' }],
      error: bad.error,
    };
  }
  if (roll < 70) {
    const s = validStream(rng, limits, bulkAs);
    const bad = overLimit(rng, limits);
    return {
      kind: 'over-limit',
      note: bad.note,
      bytes: Buffer.concat([s.bytes, bad.bytes, rng.bytes(rng.int(64))]),
      options,
      expected: [...s.events, { kind: 'error', message: '(matched by regex)' }],
      error: bad.error,
    };
  }
  if (roll < 80) {
    const s = validStream(rng, limits, bulkAs);
    const cut = rng.int(s.bytes.length);
    const note = `cut at ${cut} of ${s.bytes.length}`;
    return { kind: 'truncated', note, bytes: s.bytes.subarray(0, cut), options, expected: undefined, whole: s.events };
  }
  if (roll < 93) {
    const s = validStream(rng, limits, bulkAs);
    const bytes = Buffer.from(s.bytes);
    const flips = rng.range(1, 3);
    // Half of the changes write a byte RESP gives meaning to: CR, LF, $, *, -, :, 0, 9.
    const meaningful = [13, 10, 0x24, 0x2a, 0x2d, 0x3a, 0x30, 0x39];
    for (let i = 0; i < flips && bytes.length > 0; i++) {
      bytes[rng.int(bytes.length)] = rng.chance(0.5) ? rng.int(256) : rng.pick(meaningful);
    }
    return { kind: 'corrupted', note: `${flips} byte(s) changed`, bytes, options, expected: undefined };
  }
  const prefix = rng.chance(0.5) ? rng.pick(['$', '*', '%', '+', ':', '>', '|', '~', '=']) : '';
  const bytes = Buffer.concat([Buffer.from(prefix), rng.bytes(rng.int(200))]);
  return { kind: 'random-bytes', note: `prefix ${JSON.stringify(prefix)}`, bytes, options, expected: undefined };
}
