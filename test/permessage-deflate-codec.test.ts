/**
 * permessage-deflate in the codec (RFC 7692 §6, §7.2): RSV1 rules and close codes in the frame parser,
 * inflation bounded by the message limit (the zip bomb), UTF-8 on inflated text, every split point of
 * compressed streams (and a seeded fuzz), and the compressing side: the threshold, the window size,
 * and PreparedFrame compressing once.
 */
import { describe, expect, it } from 'vitest';
import { constants, createDeflateRaw, deflateRawSync } from 'node:zlib';
import { deflatePayload, MAX_DEFLATE_BYTES, MIN_DEFLATE_BYTES } from '../src/websocket/deflater';
import {
  FrameParser,
  maxCompressedBytes,
  type FrameParserOptions,
} from '../src/websocket/frame-parser';
import { encodeMessageFrame, PreparedFrame } from '../src/websocket/frame-writer';
import { inflateStats } from '../src/websocket/inflater';
import { Opcode } from '../src/websocket/opcodes';
import { caseSeed } from './helpers/fuzz';
import { expectVerdict as verdict, parse, ParseRecorder, type ParseEvent } from './helpers/parse';
import { mulberry32 } from './helpers/rng';
import { compressedFragments, compressedFrame, deflate, inflate, RSV1 } from './helpers/deflate';
import { closeBody, frame } from './helpers/wire';

/** The events as this file compares them: a close by its code alone. */
type Event = ParseEvent | readonly ['close', number];
const codeOnly = (e: ParseEvent): Event => (e[0] === 'close' ? ['close', e[1]] : e);

const DEFLATE: FrameParserOptions = { maxMessageBytes: 4096, expectMasked: true, deflate: { inflateTakeover: false } };
const PLAIN: FrameParserOptions = { maxMessageBytes: 4096, expectMasked: true };

function run(stream: Buffer, cuts: readonly number[], options: FrameParserOptions = DEFLATE): Event[] {
  return parse(stream, cuts, options).map(codeOnly);
}

/** Whole, cut in two at every offset, and in 1-byte chunks: always `expected`. */
function expectVerdict(stream: Buffer, expected: readonly Event[], options: FrameParserOptions = DEFLATE): void {
  verdict(stream, expected, options, codeOnly);
}

const hex = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s) : s).toString('hex');
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
const TEXT = 'permessage-deflate: {"type":"chat","user":"alice","message":"hello hello hello"}';

describe('receiving compressed messages (RFC 7692 §6, §7.2.2)', () => {
  it('inflates text and binary, between uncompressed messages and control frames', () => {
    const bin = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 7));
    expectVerdict(
      cat(
        compressedFrame(Opcode.Text, TEXT),
        frame(Opcode.Text, 'plain'),
        frame(Opcode.Ping, 'p'),
        compressedFrame(Opcode.Binary, bin),
      ),
      [
        ['text', hex(TEXT)],
        ['text', hex('plain')],
        ['ping', hex('p')],
        ['binary', hex(bin)],
      ],
    );
  });

  it('inflates a message fragmented in 3 frames (RSV1 on the first only), with a ping between fragments', () => {
    const [a, b, c] = compressedFragments(Opcode.Text, deflate(TEXT.repeat(3)), 3);
    expectVerdict(cat(a!, b!, frame(Opcode.Ping, 'x'), c!), [
      ['ping', hex('x')],
      ['text', hex(TEXT.repeat(3))],
    ]);
  });

  it('empty compressed messages: an empty payload, and the deflate of nothing', () => {
    expectVerdict(cat(frame(Opcode.Text, Buffer.alloc(0), { rsv: RSV1 }), compressedFrame(Opcode.Binary, '')), [
      ['text', ''],
      ['binary', ''],
    ]);
  });

  it('a sender may end with a BFINAL block (§7.2.3.3): the appended tail is ignored', () => {
    const final = deflateRawSync(Buffer.from(TEXT)); // Z_FINISH: a final block, no 00 00 ff ff
    expectVerdict(cat(frame(Opcode.Text, final, { rsv: RSV1 }), compressedFrame(Opcode.Text, TEXT)), [
      ['text', hex(TEXT)],
      ['text', hex(TEXT)],
    ]);
  });

  it('with context takeover the window carries over; without it a back-reference is corrupt data (1007)', () => {
    // One DEFLATE stream, flushed after each message: the second refers back into the first.
    const stream = createDeflateRaw();
    const out: Buffer[] = [];
    stream.on('data', (d: Buffer) => out.push(d));
    return new Promise<void>((resolve) => {
      stream.write(TEXT);
      stream.flush(constants.Z_SYNC_FLUSH, () => {
        const first = Buffer.concat(out.splice(0)).subarray(0, -4);
        stream.write(TEXT);
        stream.flush(constants.Z_SYNC_FLUSH, () => {
          const second = Buffer.concat(out.splice(0)).subarray(0, -4);
          expect(second.length).toBeLessThan(first.length / 2); // it does refer back
          const wire = cat(frame(Opcode.Text, first, { rsv: RSV1 }), frame(Opcode.Text, second, { rsv: RSV1 }));
          expectVerdict(
            wire,
            [
              ['text', hex(TEXT)],
              ['text', hex(TEXT)],
            ],
            { ...DEFLATE, deflate: { inflateTakeover: true } },
          );
          expectVerdict(wire, [
            ['text', hex(TEXT)],
            ['error', 1007, 'invalid compressed data'],
          ]);
          stream.close();
          resolve();
        });
      });
    });
  });
});

describe('RSV1 rules and close codes (RFC 7692 §6.1, RFC 6455 §5.2)', () => {
  const body = deflate(TEXT);
  it.each([
    ['RSV1 without the extension', frame(Opcode.Text, body, { rsv: RSV1 }), PLAIN, 'reserved bits set'],
    ['RSV1 on a ping', frame(Opcode.Ping, 'x', { rsv: RSV1 }), DEFLATE, 'RSV1 on a control frame'],
    ['RSV1 on a close', frame(Opcode.Close, closeBody(1000), { rsv: RSV1 }), DEFLATE, 'RSV1 on a control frame'],
    [
      'RSV1 on a continuation',
      cat(
        frame(Opcode.Text, body.subarray(0, 5), { fin: false, rsv: RSV1 }),
        frame(0, body.subarray(5), { rsv: RSV1 }),
      ),
      DEFLATE,
      'RSV1 on a continuation frame',
    ],
    [
      "RSV1 on an uncompressed message's continuation",
      cat(frame(Opcode.Text, 'ab', { fin: false }), frame(0, 'cd', { rsv: RSV1 })),
      DEFLATE,
      'RSV1 on a continuation frame',
    ],
    ['RSV2 with the extension', frame(Opcode.Text, 'x', { rsv: 2 }), DEFLATE, 'reserved bits set'],
    ['RSV3 with the extension', frame(Opcode.Text, 'x', { rsv: 1 }), DEFLATE, 'reserved bits set'],
  ])('%s: 1002', (_name, stream, options, reason) => {
    expectVerdict(stream, [['error', 1002, reason]], options);
  });

  it('corrupt DEFLATE data: 1007', () => {
    expectVerdict(frame(Opcode.Binary, Buffer.from([0xff, 0xff, 0xff, 0x01]), { rsv: RSV1 }), [
      ['error', 1007, 'invalid compressed data'],
    ]);
  });

  it('invalid UTF-8 in inflated text: 1007, at the first bad fragment (fail fast)', () => {
    const bad = Buffer.concat([Buffer.from('x'.repeat(200)), Buffer.from([0xc0, 0xaf]), Buffer.from('y'.repeat(200))]);
    expectVerdict(compressedFrame(Opcode.Text, bad), [['error', 1007, 'invalid UTF-8 in text message']]);
    // The first fragment already inflates to the bad bytes: the verdict comes before the message ends.
    const [first] = compressedFragments(Opcode.Text, deflate(bad), 2);
    expectVerdict(first!, [['error', 1007, 'invalid UTF-8 in text message']]);
    // A code point cut by the end of the message.
    expectVerdict(compressedFrame(Opcode.Text, Buffer.from([0x61, 0xe2, 0x82])), [
      ['error', 1007, 'invalid UTF-8 in text message'],
    ]);
  });

  it('a message that inflates to the limit passes; one byte more is 1009', () => {
    const limit = 4096;
    expectVerdict(compressedFrame(Opcode.Binary, Buffer.alloc(limit, 7)), [['binary', hex(Buffer.alloc(limit, 7))]]);
    expectVerdict(compressedFrame(Opcode.Binary, Buffer.alloc(limit + 1, 7)), [['error', 1009, 'message too big']]);
  });

  it('the compressed size is bounded too, on the declared length, before any payload', () => {
    const declared = maxCompressedBytes(4096) + 1;
    const head = frame(Opcode.Binary, Buffer.alloc(0), { rsv: RSV1, declaredLength: declared });
    expect(run(head, [])).toEqual([['error', 1009, 'message too big']]);
  });
});

describe('hold() and resume(): the reader sets the pace', () => {
  it('each message holds the parser; resume() delivers the next one, however the input is cut', () => {
    const texts = ['one '.repeat(20), 'two '.repeat(20), 'three '.repeat(20)];
    const stream = cat(...texts.map((t) => compressedFrame(Opcode.Text, t)), frame(Opcode.Ping, 'p'));
    for (let cut = 0; cut < stream.length; cut++) {
      const recorder = new ParseRecorder();
      const parser = new FrameParser(DEFLATE, {
        onMessage: (binary, data) => {
          recorder.onMessage(binary, data);
          parser.hold();
        },
        onPing: (p) => recorder.onPing(p),
        onPong: (p) => recorder.onPong(p),
        onClose: (c, r) => recorder.onClose(c, r),
        onProtocolError: (c, r) => recorder.onProtocolError(c, r),
      });
      if (cut > 0) parser.push(Buffer.from(stream.subarray(0, cut)));
      parser.push(Buffer.from(stream.subarray(cut)));
      expect(recorder.events, `cut at ${cut}`).toEqual([['text', hex(texts[0]!)]]);
      for (let i = 1; i <= 3; i++) {
        parser.resume();
        expect(recorder.events.length, `cut at ${cut}`).toBe(i + 1);
      }
      expect(recorder.events.map(codeOnly)).toEqual([...texts.map((t) => ['text', hex(t)]), ['ping', hex('p')]]);
    }
  });
});

describe('the zip bomb: inflation stops at the limit', () => {
  it('a 1 KiB message that would inflate to 1 GiB inflates at most limit + 1 bytes', () => {
    // 1 GiB of zeros deflates to ~1 MiB; its first KiB alone inflates to ~1 MiB.
    const bomb = deflate(Buffer.alloc(4 * 1024 * 1024)).subarray(0, 1024);
    const limit = 64 * 1024;
    const before = inflateStats.bytesOut;
    const events = run(frame(Opcode.Binary, bomb, { rsv: RSV1 }), [], { ...DEFLATE, maxMessageBytes: limit });
    expect(events).toEqual([['error', 1009, 'message too big']]);
    expect(inflateStats.bytesOut - before).toBe(limit + 1);
  });

  it('fragment after fragment of a bomb: still limit + 1, however the input is cut', () => {
    const compressed = deflate(Buffer.alloc(1024 * 1024));
    const frames = compressedFragments(Opcode.Binary, compressed, 50);
    const limit = 100_000;
    for (const cuts of [[], Array.from({ length: 40 }, (_, i) => (i + 1) * 25)]) {
      const before = inflateStats.bytesOut;
      expect(run(cat(...frames), cuts, { ...DEFLATE, maxMessageBytes: limit })).toEqual([
        ['error', 1009, 'message too big'],
      ]);
      expect(inflateStats.bytesOut - before).toBe(limit + 1);
    }
  });
});

describe('fuzz: compressed streams', () => {
  /** A random stream of compressed and plain messages, fragmented at random, and what it must yield. */
  function randomStream(seed: number): { stream: Buffer; expected: Event[] } {
    const rng = mulberry32(seed);
    const parts: Buffer[] = [];
    const expected: Event[] = [];
    for (let m = rng.range(1, 4); m > 0; m--) {
      const binary = rng.chance(0.5);
      const words = Array.from({ length: rng.range(0, 40) }, () =>
        rng.pick(['chat', 'alice', 'héllo', '{"a":1}', '𝄞', ' ']),
      );
      const data = binary ? rng.bytes(rng.range(0, 300)) : Buffer.from(words.join(''));
      const opcode = binary ? Opcode.Binary : Opcode.Text;
      if (rng.chance(0.25)) {
        parts.push(frame(opcode, data));
      } else {
        parts.push(...compressedFragments(opcode, deflate(data), rng.range(1, 4)));
      }
      expected.push([binary ? 'binary' : 'text', hex(data)]);
      if (rng.chance(0.3)) {
        parts.push(frame(Opcode.Ping, 'p'));
        expected.push(['ping', hex('p')]);
      }
    }
    return { stream: Buffer.concat(parts), expected };
  }

  it('every split point of 25 random streams gives the same messages', () => {
    for (let i = 0; i < 25; i++) {
      const { stream, expected } = randomStream(caseSeed(0x7692, i));
      expectVerdict(stream, expected);
    }
  });

  it('mutated compressed streams never throw, and end in a message or 1002/1007/1009', () => {
    for (let i = 0; i < 400; i++) {
      const rng = mulberry32(caseSeed(0xdef1, i));
      const { stream } = randomStream(caseSeed(0xdef1 + 1, i));
      const mutated = Buffer.from(stream);
      for (let k = rng.range(1, 4); k > 0; k--) mutated[rng.int(mutated.length)] = rng.int(256);
      const cuts = [
        ...new Set(Array.from({ length: rng.range(0, 5) }, () => rng.range(1, Math.max(1, mutated.length - 1)))),
      ].sort((a, b) => a - b);
      const events = run(mutated, cuts);
      const errors = events.filter((e) => e[0] === 'error');
      expect(errors.length).toBeLessThanOrEqual(1);
      if (errors.length === 1) expect([1002, 1007, 1009]).toContain(errors[0]![1]);
    }
  });
});

describe('sending compressed messages (RFC 7692 §7.2.1)', () => {
  it('the payload is the sync-flushed DEFLATE stream without its 00 00 ff ff tail', () => {
    const payload = Buffer.from(TEXT);
    const ours = Buffer.from(deflatePayload(payload, 15)!);
    expect(ours).toEqual(deflate(payload));
    expect(inflate(ours).toString()).toBe(TEXT);
  });

  it(`below ${MIN_DEFLATE_BYTES} B, above ${MAX_DEFLATE_BYTES} B, or when not smaller: as it is (RSV1 clear)`, () => {
    expect(deflatePayload(Buffer.from('x'.repeat(MIN_DEFLATE_BYTES - 1)), 15)).toBeNull();
    expect(deflatePayload(Buffer.from('x'.repeat(MIN_DEFLATE_BYTES)), 15)).not.toBeNull();
    expect(deflatePayload(Buffer.alloc(MAX_DEFLATE_BYTES + 1), 15)).toBeNull();
    expect(deflatePayload(Buffer.alloc(MAX_DEFLATE_BYTES), 15)).not.toBeNull();
    const noise = mulberry32(1).bytes(1000);
    expect(deflatePayload(noise, 15)).toBeNull();
    // The frame says which: RSV1 and the compressed payload, or the message itself.
    expect(encodeMessageFrame(Opcode.Binary, noise, false, 15)).toEqual(frame(Opcode.Binary, noise, { mask: false }));
    expect(encodeMessageFrame(Opcode.Text, TEXT, false, 15)).toEqual(
      frame(Opcode.Text, deflate(TEXT), { mask: false, rsv: RSV1 }),
    );
  });

  it('a client frame is masked after compression (RFC 6455 §5.3 applies to the compressed payload)', () => {
    const events = run(encodeMessageFrame(Opcode.Text, TEXT, true, 15), []);
    expect(events).toEqual([['text', hex(TEXT)]]);
  });

  it('server_max_window_bits=8: nothing refers back further than 256 bytes (zlib raw deflate rounds 8 up to 9)', () => {
    const rng = mulberry32(8);
    const words = Array.from({ length: 40 }, () => rng.bytes(rng.range(3, 9)).toString('hex'));
    const text = Buffer.from(
      Array.from({ length: 3000 }, () => rng.pick(words))
        .join(' ')
        .slice(0, 60_000),
    );
    const eight = Buffer.from(deflatePayload(text, 8)!);
    expect(inflate(eight, 8)).toEqual(text); // an 8-bit window decodes it
    const fifteen = Buffer.from(deflatePayload(text, 15)!);
    expect(() => inflate(fifteen, 8)).toThrow(/distance too far back/); // the same text with 15 bits does not
  });

  it('PreparedFrame compresses once: every compressed connection gets the same Buffer', () => {
    const frameOnce = PreparedFrame.text(TEXT);
    const first = frameOnce.deflatedBytes(15);
    expect(frameOnce.deflatedBytes(15)).toBe(first);
    expect(first).toEqual(frame(Opcode.Text, deflate(TEXT), { mask: false, rsv: RSV1 }));
    expect(frameOnce.bytes).toEqual(frame(Opcode.Text, TEXT, { mask: false }));
    // A smaller window is a different encoding, cached too.
    expect(frameOnce.deflatedBytes(9)).toBe(frameOnce.deflatedBytes(9));
    // Not worth it: the uncompressed frame itself.
    const small = PreparedFrame.text('hi');
    expect(small.deflatedBytes(15)).toBe(small.bytes);
  });
});
