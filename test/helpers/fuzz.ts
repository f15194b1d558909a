/**
 * Fuzzing helpers for the frame parser: frames that can lie (on the oracle's encoder, wire.ts), and
 * generators for valid, targeted-invalid, truncated, mutated and random client frame streams.
 *
 * Everything is a pure function of the seed (rng.ts), so a failing case replays from its seed alone.
 */

import { mulberry32, type Rng } from './rng';
import { frame } from './wire';

/** The seed of case `index` in a run: a splitmix32-style hash, so neighbouring cases are unrelated. */
export function caseSeed(runSeed: number, index: number): number {
  let z = (runSeed + Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// What a parser run reports, in order

export type ParseEvent =
  | { readonly kind: 'message'; readonly binary: boolean; readonly data: Buffer }
  | { readonly kind: 'ping' | 'pong'; readonly data: Buffer }
  | { readonly kind: 'close'; readonly code: number; readonly reason: string }
  | { readonly kind: 'error'; readonly code: number };

function describeEvent(e: ParseEvent | undefined): string {
  if (e === undefined) return '(nothing)';
  switch (e.kind) {
    case 'message':
      return `message(${e.binary ? 'binary' : 'text'}, ${e.data.length} bytes)`;
    case 'ping':
    case 'pong':
      return `${e.kind}(${e.data.toString('hex')})`;
    case 'close':
      return `close(${e.code}, ${JSON.stringify(e.reason)})`;
    case 'error':
      return `error(${e.code})`;
  }
}

/** undefined when equal; otherwise where and how the two verdicts first differ. */
export function diffEvents(a: readonly ParseEvent[], b: readonly ParseEvent[]): string | undefined {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined || !sameEvent(x, y)) {
      return `event #${i}: ${describeEvent(x)} vs ${describeEvent(y)} (lengths ${a.length} vs ${b.length})`;
    }
  }
  return undefined;
}

function sameEvent(x: ParseEvent, y: ParseEvent): boolean {
  if (x.kind !== y.kind) return false;
  switch (x.kind) {
    case 'message':
      return y.kind === 'message' && x.binary === y.binary && x.data.equals(y.data);
    case 'ping':
    case 'pong':
      return (y.kind === 'ping' || y.kind === 'pong') && x.data.equals(y.data);
    case 'close':
      return y.kind === 'close' && x.code === y.code && x.reason === y.reason;
    case 'error':
      return y.kind === 'error' && x.code === y.code;
  }
}

// ---------------------------------------------------------------------------------------------
// Frames, including lying ones

export interface FrameSpec {
  fin: boolean;
  /** RSV1-3 as a 3-bit number (§5.2: must be 0 without an extension). */
  rsv?: number;
  opcode: number;
  /** §5.1: client frames are masked. Default true. */
  masked?: boolean;
  payload: Buffer;
  /** Which length encoding (§5.2); default the minimal one. 16 and 64 may be used non-minimally. */
  form?: 7 | 16 | 64;
  /** A length to declare instead of payload.length (a lie). For form 64 up to 2^53. */
  declared?: number;
  /** Raw 64-bit length words, overriding `declared` (to set the MSB, which §5.2 forbids). */
  declared64?: readonly [hi: number, lo: number];
  maskKey?: Buffer;
}

/** Encodes a client frame as written in `spec`, lies included, with the oracle's encoder (wire.ts). */
export function frameBytes(spec: FrameSpec, rng: Rng): Buffer {
  const key = spec.maskKey ?? rng.bytes(4);
  const [hi, lo] = spec.declared64 ?? [0, 0];
  const declared = spec.declared64
    ? (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
    : (spec.declared ?? spec.payload.length);
  return frame(spec.opcode & 0x0f, spec.payload, {
    fin: spec.fin,
    rsv: spec.rsv ?? 0,
    mask: (spec.masked ?? true) ? key : false,
    ...(spec.form !== undefined ? { lengthForm: spec.form } : {}),
    declaredLength: declared,
  });
}

// ---------------------------------------------------------------------------------------------
// Payloads

/** Valid UTF-8 of exactly `size` bytes: ASCII mixed with 2-, 3- and 4-byte code points. */
export function utf8Text(rng: Rng, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let i = 0;
  const asciiOnly = rng.chance(0.3);
  while (i < size) {
    const room = size - i;
    const r = asciiOnly ? 0 : rng.int(10);
    if (r >= 9 && room >= 4) {
      // U+10000..U+10FFFF
      const cp = 0x10000 + rng.int(0x100000);
      i += out.write(String.fromCodePoint(cp), i, 'utf8');
    } else if (r >= 7 && room >= 3) {
      // U+0800..U+FFFF without the surrogates
      let cp = 0x800 + rng.int(0xf800);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xe000 + (cp - 0xd800);
      i += out.write(String.fromCodePoint(cp), i, 'utf8');
    } else if (r >= 5 && room >= 2) {
      i += out.write(String.fromCodePoint(0x80 + rng.int(0x780)), i, 'utf8');
    } else {
      out[i++] = rng.int(0x80);
    }
  }
  return out;
}

/** Byte sequences that are never valid UTF-8 (RFC 3629), whatever surrounds them. */
export const INVALID_UTF8: readonly (readonly number[])[] = [
  [0x80], // stray continuation
  [0xbf],
  [0xc0, 0x80], // overlong NUL
  [0xc1, 0xbf], // overlong
  [0xe0, 0x80, 0x80], // overlong 3-byte
  [0xe0, 0x9f, 0xbf],
  [0xed, 0xa0, 0x80], // surrogate D800
  [0xed, 0xbf, 0xbf], // surrogate DFFF
  [0xf0, 0x80, 0x80, 0x80], // overlong 4-byte
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xf5, 0x80, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
  [0xfe],
  [0xff],
  [0xe2, 0x82, 0x41], // truncated sequence followed by ASCII
  [0xc3, 0xc3],
];

/** Valid text with an invalid sequence at a random place. */
export function invalidUtf8Text(rng: Rng, size: number): Buffer {
  const bad = Buffer.from(rng.pick(INVALID_UTF8));
  const before = rng.int(Math.max(1, size - bad.length));
  return Buffer.concat([utf8Text(rng, before), bad, utf8Text(rng, Math.max(0, size - before - bad.length))]);
}

/** Valid text whose last code point is cut short: only the end of the message can tell. */
function truncatedUtf8Text(rng: Rng, size: number): Buffer {
  const cut = rng.pick([[0xc3], [0xe2], [0xe2, 0x82], [0xf0, 0x9f], [0xf0, 0x9f, 0x98]]);
  return Buffer.concat([utf8Text(rng, Math.max(0, size - cut.length)), Buffer.from(cut)]);
}

/** Close codes §7.4 allows on the wire, and some it does not. */
export const VALID_CLOSE_CODES: readonly number[] = [
  1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
];
export const INVALID_CLOSE_CODES: readonly number[] = [
  0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
];

// ---------------------------------------------------------------------------------------------
// Streams

export type StreamKind = 'valid' | 'invalid' | 'truncated' | 'mutated' | 'random-frames' | 'random-bytes';

export interface FuzzCase {
  readonly kind: StreamKind;
  /** What the violation is, for invalid cases (in failure messages). */
  readonly note: string;
  readonly maxMessageBytes: number;
  readonly bytes: Buffer;
  /** The generator's intent, when it knows it (valid, invalid, truncated): the differential oracle. */
  readonly expected?: readonly ParseEvent[];
}

/** Per-case message limits; 70,000 lets valid streams use the 64-bit length form (§5.2). */
const LIMITS = [125, 200, 1024, 4096, 4096, 4096, 16_384] as const;
const BIG_LIMIT = 70_000;

const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

class StreamBuilder {
  readonly frames: Buffer[] = [];
  readonly events: ParseEvent[] = [];
  constructor(
    readonly rng: Rng,
    readonly limit: number,
  ) {}

  frame(spec: FrameSpec): void {
    this.frames.push(frameBytes(spec, this.rng));
  }

  /** 0-2 pings/pongs, which §5.4 allows between the fragments of a message. */
  controls(maxCount = 2): void {
    const n = this.rng.chance(0.6) ? 0 : this.rng.range(1, maxCount);
    for (let i = 0; i < n; i++) {
      const ping = this.rng.chance(0.5);
      const r = this.rng.next();
      const payload = this.rng.bytes(r < 0.3 ? 0 : r < 0.9 ? this.rng.range(1, 16) : this.rng.range(17, 125));
      this.frame({ fin: true, opcode: ping ? OP.ping : OP.pong, payload });
      this.events.push({ kind: ping ? 'ping' : 'pong', data: payload });
    }
  }

  /** A message size: mostly small, some in the 16-bit form, rarely in the 64-bit one. */
  size(): number {
    const r = this.rng.next();
    const limit = this.limit;
    if (r < 0.05) return 0;
    if (r < 0.7 || limit < 126) return this.rng.range(1, Math.min(40, limit));
    if (r < 0.8) return this.rng.range(41, Math.min(125, limit));
    if (limit > 0xffff && r > 0.95) return this.rng.range(0x10000, limit);
    // The 16-bit form: mostly just above its threshold, sometimes up to a few KiB.
    return this.rng.range(126, Math.min(limit, r > 0.99 ? 4096 : 200));
  }

  /** Fragments a payload (§5.4) at random offsets, empty fragments included, with controls between. */
  fragments(opcode: number, payload: Buffer, fragmented: boolean): void {
    const cuts: number[] = [];
    if (fragmented) {
      const n = this.rng.range(1, 5);
      for (let i = 0; i < n; i++) cuts.push(this.rng.int(payload.length + 1));
      cuts.sort((x, y) => x - y);
    }
    cuts.push(payload.length);
    let from = 0;
    for (let i = 0; i < cuts.length; i++) {
      const last = i === cuts.length - 1;
      this.frame({ fin: last, opcode: i === 0 ? opcode : OP.cont, payload: payload.subarray(from, cuts[i]) });
      from = cuts[i]!;
      if (!last) this.controls();
    }
  }

  message(): void {
    const binary = this.rng.chance(0.4);
    const size = this.size();
    const payload = binary ? this.rng.bytes(size) : utf8Text(this.rng, size);
    this.fragments(binary ? OP.binary : OP.text, payload, this.rng.chance(0.4));
    this.events.push({ kind: 'message', binary, data: payload });
  }

  /** Several whole messages with controls around them. */
  prefix(maxMessages: number): void {
    const n = this.rng.int(maxMessages + 1);
    for (let i = 0; i < n; i++) {
      this.controls();
      this.message();
    }
    this.controls();
  }

  bytes(): Buffer {
    return Buffer.concat(this.frames);
  }
}

function validCase(rng: Rng, limit: number): FuzzCase {
  const s = new StreamBuilder(rng, limit);
  s.prefix(6);
  if (rng.chance(0.3)) {
    // §5.5.1: a close frame, after which nothing is parsed: trailing garbage must be ignored.
    if (rng.chance(0.2)) {
      s.frame({ fin: true, opcode: OP.close, payload: Buffer.alloc(0) });
      s.events.push({ kind: 'close', code: 1005, reason: '' });
    } else {
      const code = rng.pick(VALID_CLOSE_CODES);
      const reason = utf8Text(rng, rng.int(124));
      const payload = Buffer.alloc(2 + reason.length);
      payload.writeUInt16BE(code, 0);
      reason.copy(payload, 2);
      s.frame({ fin: true, opcode: OP.close, payload });
      s.events.push({ kind: 'close', code, reason: reason.toString('utf8') });
    }
    if (rng.chance(0.5)) s.frames.push(rng.bytes(rng.range(1, 64)));
  }
  return { kind: 'valid', note: 'valid', maxMessageBytes: limit, bytes: s.bytes(), expected: s.events };
}

type Violation = (s: StreamBuilder) => { code: number; note: string };

/** One protocol violation after a valid prefix: the parser must report exactly `code` and stop. */
const VIOLATIONS: readonly Violation[] = [
  (s) => {
    const control = s.rng.chance(0.3);
    s.frame({
      fin: true,
      rsv: s.rng.range(1, 7),
      opcode: control ? OP.ping : s.rng.pick([OP.text, OP.binary]),
      payload: s.rng.bytes(s.rng.int(20)),
    });
    return { code: 1002, note: 'RSV bits set (§5.2)' };
  },
  (s) => {
    const opcode = s.rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]);
    s.frame({ fin: true, opcode, payload: s.rng.bytes(s.rng.int(20)) });
    return { code: 1002, note: 'reserved opcode (§5.2)' };
  },
  (s) => {
    const opcode = s.rng.pick([OP.text, OP.binary, OP.ping, OP.pong, OP.close]);
    s.frame({ fin: true, masked: false, opcode, payload: Buffer.from('hi') });
    return { code: 1002, note: 'unmasked client frame (§5.1)' };
  },
  (s) => {
    const opcode = s.rng.pick([OP.ping, OP.pong, OP.close]);
    s.frame({ fin: true, opcode, payload: s.rng.bytes(s.rng.range(126, 300)) });
    return { code: 1002, note: 'control frame longer than 125 bytes (§5.5)' };
  },
  (s) => {
    s.frame({ fin: false, opcode: s.rng.pick([OP.ping, OP.pong, OP.close]), payload: s.rng.bytes(s.rng.int(10)) });
    return { code: 1002, note: 'fragmented control frame (§5.5)' };
  },
  (s) => {
    s.frame({ fin: s.rng.chance(0.5), opcode: OP.cont, payload: s.rng.bytes(s.rng.int(10)) });
    return { code: 1002, note: 'continuation without a message (§5.4)' };
  },
  (s) => {
    const opcode = s.rng.pick([OP.text, OP.binary]);
    s.frame({ fin: false, opcode, payload: utf8Text(s.rng, s.rng.int(Math.min(50, s.limit))) });
    s.controls();
    s.frame({ fin: true, opcode: s.rng.pick([OP.text, OP.binary]), payload: Buffer.from('x') });
    return { code: 1002, note: 'new message inside a fragmented one (§5.4)' };
  },
  (s) => {
    // §8.1: invalid UTF-8, maybe split over fragments; nothing after the break so the oracle is exact.
    const size = s.rng.range(5, Math.min(s.limit, 600));
    const text = s.rng.chance(0.25) ? truncatedUtf8Text(s.rng, size) : invalidUtf8Text(s.rng, size);
    const payload = text.subarray(0, Math.min(text.length, s.limit));
    const cut = s.rng.chance(0.5) ? s.rng.int(payload.length + 1) : payload.length;
    if (cut < payload.length) {
      s.frame({ fin: false, opcode: OP.text, payload: payload.subarray(0, cut) });
      s.frame({ fin: true, opcode: OP.cont, payload: payload.subarray(cut) });
    } else {
      s.frame({ fin: true, opcode: OP.text, payload });
    }
    return { code: 1007, note: 'invalid UTF-8 in a text message (§8.1)' };
  },
  (s) => {
    // §10.4: the declared length alone is over the limit; few or no payload bytes follow.
    const declared = s.rng.chance(0.3)
      ? s.rng.range(2 ** 32, 2 ** 53 - 1)
      : s.rng.range(s.limit + 1, s.limit + 100_000);
    const form = declared > 0xffff ? 64 : s.rng.pick([16, 64] as const);
    s.frame({
      fin: s.rng.chance(0.5),
      opcode: s.rng.pick([OP.text, OP.binary]),
      payload: s.rng.bytes(s.rng.int(8)),
      declared: Math.max(declared, 126),
      form,
    });
    return { code: 1009, note: 'declared length over the limit (§10.4)' };
  },
  (s) => {
    // §10.4: fragments that each fit but together do not.
    const first = s.rng.range(1, s.limit);
    s.frame({ fin: false, opcode: OP.binary, payload: s.rng.bytes(first) });
    s.controls();
    s.frame({ fin: true, opcode: OP.cont, payload: s.rng.bytes(s.limit - first + 1) });
    return { code: 1009, note: 'fragments over the limit (§10.4)' };
  },
  (s) => {
    s.frame({
      fin: true,
      opcode: s.rng.pick([OP.text, OP.binary]),
      payload: Buffer.alloc(0),
      form: 64,
      declared64: [0x80000000 | s.rng.int(0x80000000), s.rng.int(2 ** 32)],
    });
    return { code: 1002, note: '64-bit length with its most significant bit set (§5.2)' };
  },
  (s) => {
    s.frame({ fin: true, opcode: OP.close, payload: s.rng.bytes(1) });
    return { code: 1002, note: 'close frame with a 1-byte body (§5.5.1)' };
  },
  (s) => {
    const payload = Buffer.alloc(2 + s.rng.int(10), 0x61);
    payload.writeUInt16BE(s.rng.pick(INVALID_CLOSE_CODES), 0);
    s.frame({ fin: true, opcode: OP.close, payload });
    return { code: 1002, note: 'close code not allowed on the wire (§7.4)' };
  },
  (s) => {
    const reason = invalidUtf8Text(s.rng, s.rng.range(5, 100));
    const payload = Buffer.alloc(2 + reason.length);
    payload.writeUInt16BE(1000, 0);
    reason.copy(payload, 2);
    s.frame({ fin: true, opcode: OP.close, payload });
    return { code: 1007, note: 'invalid UTF-8 in a close reason (§5.5.1)' };
  },
];

function invalidCase(rng: Rng, limit: number): FuzzCase {
  const s = new StreamBuilder(rng, limit);
  s.prefix(3);
  const { code, note } = rng.pick(VIOLATIONS)(s);
  s.events.push({ kind: 'error', code });
  // Whatever follows a violation is never parsed.
  if (rng.chance(0.5)) s.frames.push(rng.bytes(rng.range(1, 64)));
  return { kind: 'invalid', note, maxMessageBytes: limit, bytes: s.bytes(), expected: s.events };
}

/** A valid prefix, then a frame cut short: in its header, or a payload shorter than declared (a lie). */
function truncatedCase(rng: Rng, limit: number): FuzzCase {
  const s = new StreamBuilder(rng, limit);
  s.prefix(3);
  const before = s.bytes();
  const binary = rng.chance(0.5);
  const size = Math.max(1, s.size());
  const payload = binary ? rng.bytes(size) : utf8Text(rng, size);
  const opcode = rng.chance(0.15) ? OP.ping : binary ? OP.binary : OP.text;
  const body = opcode === OP.ping ? payload.subarray(0, 125) : payload;
  const frame = frameBytes({ fin: true, opcode, payload: body }, rng);
  const keep = rng.int(frame.length); // 0 .. length-1: always short of the whole frame
  return {
    kind: 'truncated',
    note: keep < 2 ? 'truncated header' : 'declared length larger than the bytes sent',
    maxMessageBytes: limit,
    bytes: Buffer.concat([before, frame.subarray(0, keep)]),
    expected: s.events,
  };
}

/** A frame with every field random: any opcode, RSV, mask bit, length form and a length that may lie. */
function randomFrame(rng: Rng): Buffer {
  const r = rng.next();
  const size = r < 0.7 ? rng.int(20) : r < 0.95 ? rng.int(130) : rng.int(3000);
  const form = rng.pick([7, 16, 64, undefined] as const);
  let declared: number | undefined;
  if (rng.chance(0.3)) {
    if (form === 7) declared = rng.int(128);
    else if (form === 16) declared = rng.int(0x10000);
    else declared = rng.chance(0.5) ? rng.int(2 ** 53) : rng.int(5000);
  } else if (form === 7 && size > 127) declared = rng.int(128);
  if (form === 16 && declared === undefined && size > 0xffff) declared = rng.int(0x10000);
  return frameBytes(
    {
      fin: rng.chance(0.7),
      rsv: rng.chance(0.9) ? 0 : rng.int(8),
      opcode: rng.chance(0.8) ? rng.pick([0, 1, 2, 8, 9, 10]) : rng.int(16),
      masked: rng.chance(0.95),
      payload: rng.bytes(size),
      ...(form !== undefined ? { form } : {}),
      ...(declared !== undefined ? { declared } : {}),
      ...(rng.chance(0.02) ? { declared64: [rng.int(2 ** 32), rng.int(2 ** 32)] as const } : {}),
    },
    rng,
  );
}

function randomFramesCase(rng: Rng, limit: number): FuzzCase {
  const frames: Buffer[] = [];
  const n = rng.range(1, 8);
  for (let i = 0; i < n; i++) frames.push(randomFrame(rng));
  return { kind: 'random-frames', note: 'random frames', maxMessageBytes: limit, bytes: Buffer.concat(frames) };
}

/** Mutations of a generated stream: flips, overwrites, insertions, deletions, splices, truncation. */
function mutate(rng: Rng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = rng.range(1, 4);
  for (let i = 0; i < n; i++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(7)) {
      case 0: // flip one bit (often in a header: headers are where the decisions are)
        if (b.length > 0) b[Math.min(at, b.length - 1)]! ^= 1 << rng.int(8);
        break;
      case 1: // overwrite a byte with an interesting value
        if (b.length > 0) {
          b[Math.min(at, b.length - 1)] = rng.pick([0x00, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x88, 0xff, rng.int(256)]);
        }
        break;
      case 2: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 16)), b.subarray(at)]);
        break;
      case 3: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 16)))]);
        break;
      case 4: // duplicate a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + rng.range(1, 32)), b.subarray(at)]);
        break;
      case 5: // splice in a random frame
        b = Buffer.concat([b.subarray(0, at), randomFrame(rng), b.subarray(at)]);
        break;
      default: // truncate
        b = b.subarray(0, at);
    }
  }
  return b;
}

function mutatedCase(rng: Rng, limit: number): FuzzCase {
  const base = rng.chance(0.5)
    ? validCase(rng, limit)
    : rng.chance(0.5)
      ? invalidCase(rng, limit)
      : randomFramesCase(rng, limit);
  return { kind: 'mutated', note: `mutated ${base.kind}`, maxMessageBytes: limit, bytes: mutate(rng, base.bytes) };
}

function randomBytesCase(rng: Rng, limit: number): FuzzCase {
  return { kind: 'random-bytes', note: 'random bytes', maxMessageBytes: limit, bytes: rng.bytes(rng.int(300)) };
}

/** One fuzz case from its seed. */
export function generateCase(seed: number): FuzzCase {
  const rng = mulberry32(seed);
  const limit = rng.chance(0.01) ? BIG_LIMIT : rng.pick(LIMITS);
  const r = rng.next();
  if (r < 0.3) return validCase(rng, limit);
  if (r < 0.5) return invalidCase(rng, limit);
  if (r < 0.6) return truncatedCase(rng, limit);
  if (r < 0.82) return mutatedCase(rng, limit);
  if (r < 0.94) return randomFramesCase(rng, limit);
  return randomBytesCase(rng, limit);
}

/**
 * Ways to cut a stream into socket chunks, as lists of cut points (so runs can share the stream):
 *   1. one byte at a time: the whole stream if short, else a random 48-byte window (plus a few
 *      coarse cuts) - over many cases the windows land on every header byte of every frame type;
 *   2. small random pieces (1-16 bytes; proportionally larger on long streams);
 *   3. a couple of random cuts anywhere.
 */
export function chunkings(rng: Rng, length: number): number[][] {
  const cuts = (maxPiece: number, from = 0, to = length): number[] => {
    const c: number[] = [];
    for (let at = from + rng.range(1, maxPiece); at < to; at += rng.range(1, maxPiece)) c.push(at);
    return c;
  };
  const WINDOW = 48;
  let fine: number[];
  if (length <= WINDOW) {
    fine = Array.from({ length: Math.max(0, length - 1) }, (_, i) => i + 1);
  } else {
    const w = rng.int(length - WINDOW);
    fine = [
      ...cuts(Math.max(2, length >> 2), 0, w),
      w,
      ...Array.from({ length: WINDOW }, (_, i) => w + 1 + i),
      ...cuts(Math.max(2, length >> 2), w + WINDOW + 1),
    ];
    fine = fine.filter((at, i) => at > 0 && at < length && (i === 0 || at > fine[i - 1]!));
  }
  return [fine, cuts(length <= 300 ? 16 : Math.ceil(length / 20)), cuts(Math.max(2, length >> 1))];
}
