/**
 * FrameParser against RFC 6455 §5 (framing), §5.4 (fragmentation), §5.5 (control frames), §7.4 (close
 * codes), §8.1 (UTF-8) and §10.4 (limits). Every verdict must not depend on how the bytes are split
 * into socket chunks, so each case is replayed whole, cut in two at every offset, and one byte at a time.
 */
import { describe, it, expect, vi } from 'vitest';
import { FrameParser, type FrameHandler, type FrameParserOptions } from '../src/websocket/frame-parser';
import { expectVerdict as verdict, ParseRecorder, type ParseEvent } from './helpers/parse';
import { Opcode } from '../src/websocket/opcodes';
import { closeBody, fragments, frame } from './helpers/wire';

/** The events as this file compares them: an error by its close code alone. */
type Event = ParseEvent | readonly ['error', number];
const codeOnly = (e: ParseEvent): Event => (e[0] === 'error' ? ['error', e[1]] : e);

const SERVER: FrameParserOptions = { maxMessageBytes: 1024, expectMasked: true };
const CLIENT: FrameParserOptions = { maxMessageBytes: 1024, expectMasked: false };

function expectVerdict(stream: Buffer, expected: readonly Event[], options: FrameParserOptions = SERVER): void {
  verdict(stream, expected, options, codeOnly);
}

const hex = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('hex');
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
const text = (s: string | Buffer, fin = true): Buffer => frame(Opcode.Text, s, { fin });
const binary = (b: Buffer | string, fin = true): Buffer => frame(Opcode.Binary, b, { fin });
const cont = (b: Buffer | string, fin = true): Buffer => frame(Opcode.Continuation, b, { fin });
const bytes = (...b: number[]): Buffer => Buffer.from(b);

describe('data frames', () => {
  it('delivers text and binary messages with their type', () => {
    expectVerdict(cat(text('hello'), binary(bytes(0, 1, 2, 255))), [
      ['text', hex('hello')],
      ['binary', '000102ff'],
    ]);
  });

  it('delivers empty messages', () => {
    expectVerdict(cat(text(''), binary(Buffer.alloc(0))), [
      ['text', ''],
      ['binary', ''],
    ]);
  });

  it('reads the 16-bit and 64-bit length forms (§5.2), even for short payloads', () => {
    const payload = Buffer.from('forms');
    expectVerdict(
      cat(
        frame(Opcode.Binary, payload, { lengthForm: 16 }),
        frame(Opcode.Binary, payload, { lengthForm: 64 }),
        frame(Opcode.Text, 'x'.repeat(300)),
      ),
      [
        ['binary', hex(payload)],
        ['binary', hex(payload)],
        ['text', hex('x'.repeat(300))],
      ],
    );
  });

  it('unmasks with the key of each frame (§5.3)', () => {
    const payload = Buffer.from('masked payload bytes, long enough for the word loop of applyMask');
    expectVerdict(
      cat(
        frame(Opcode.Binary, payload, { mask: bytes(0x37, 0xfa, 0x21, 0x3d) }),
        frame(Opcode.Binary, payload, { mask: bytes(0, 0, 0, 0) }),
        frame(Opcode.Binary, payload, { mask: bytes(0xff, 0xff, 0xff, 0xff) }),
      ),
      [
        ['binary', hex(payload)],
        ['binary', hex(payload)],
        ['binary', hex(payload)],
      ],
    );
    // The RFC's own example (§5.7): a masked "Hello".
    expectVerdict(bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58), [['text', hex('Hello')]]);
  });
});

describe('masking (§5.1)', () => {
  it('server role: an unmasked client frame is 1002', () => {
    expectVerdict(frame(Opcode.Text, 'hi', { mask: false }), [['error', 1002]]);
    expectVerdict(frame(Opcode.Ping, '', { mask: false }), [['error', 1002]]);
  });

  it('client role: a masked server frame is 1002, unmasked frames are read', () => {
    expectVerdict(frame(Opcode.Text, 'hi'), [['error', 1002]], CLIENT);
    expectVerdict(frame(Opcode.Close, closeBody(1000)), [['error', 1002]], CLIENT);
    expectVerdict(cat(frame(Opcode.Text, 'hi', { mask: false }), frame(Opcode.Ping, 'p', { mask: false })), [
      ['text', hex('hi')],
      ['ping', hex('p')],
    ], CLIENT);
  });
});

describe('header bits (§5.2)', () => {
  it('any RSV bit set is 1002 (no extension negotiated)', () => {
    for (const rsv of [1, 2, 4, 7]) {
      expectVerdict(frame(Opcode.Text, 'x', { rsv }), [['error', 1002]]);
      expectVerdict(frame(Opcode.Ping, 'x', { rsv }), [['error', 1002]]);
      expectVerdict(cat(text('a', false), frame(Opcode.Continuation, 'b', { rsv })), [['error', 1002]]);
    }
  });

  it('reserved opcodes 0x3-0x7 and 0xB-0xF are 1002', () => {
    for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      expectVerdict(frame(opcode, 'x'), [['error', 1002]]);
      expectVerdict(frame(opcode, ''), [['error', 1002]]);
    }
  });

  it('a 64-bit length with the most significant bit set is 1002, from the header alone', () => {
    const header = frame(Opcode.Binary, '', { lengthForm: 64, declaredLength: 0x8000000000000005n });
    expect(header.length).toBe(14);
    expectVerdict(header, [['error', 1002]]);
  });
});

describe('control frames (§5.5)', () => {
  it('ping and pong payloads are delivered, up to 125 bytes', () => {
    const max = Buffer.alloc(125, 0xab);
    expectVerdict(cat(frame(Opcode.Ping, 'ping!'), frame(Opcode.Pong, max), frame(Opcode.Ping, '')), [
      ['ping', hex('ping!')],
      ['pong', hex(max)],
      ['ping', ''],
    ]);
  });

  it('a control payload above 125 bytes is 1002, from the header alone', () => {
    expectVerdict(frame(Opcode.Ping, Buffer.alloc(126)), [['error', 1002]]);
    expectVerdict(frame(Opcode.Pong, Buffer.alloc(200)), [['error', 1002]]);
    expectVerdict(frame(Opcode.Close, Buffer.alloc(126)), [['error', 1002]]);
    // The extended length forms are above 125 by construction, whatever they declare.
    expectVerdict(frame(Opcode.Ping, 'x', { lengthForm: 16 }).subarray(0, 2), [['error', 1002]]);
    expectVerdict(frame(Opcode.Ping, 'x', { lengthForm: 64 }).subarray(0, 2), [['error', 1002]]);
  });

  it('a control frame with FIN clear is 1002', () => {
    expectVerdict(frame(Opcode.Ping, 'x', { fin: false }), [['error', 1002]]);
    expectVerdict(frame(Opcode.Pong, '', { fin: false }), [['error', 1002]]);
    expectVerdict(frame(Opcode.Close, closeBody(1000), { fin: false }), [['error', 1002]]);
  });
});

describe('fragmentation (§5.4)', () => {
  it('joins fragments into one message', () => {
    expectVerdict(cat(text('Hel', false), cont('lo', false), cont(''), binary('ab', false), cont('cd')), [
      ['text', hex('Hello')],
      ['binary', hex('abcd')],
    ]);
  });

  it('a continuation frame without a started message is 1002', () => {
    expectVerdict(cont('x'), [['error', 1002]]);
    expectVerdict(cont('x', false), [['error', 1002]]);
    // ...including right after a message has been completed.
    expectVerdict(cat(text('a', false), cont('b'), cont('c')), [['text', hex('ab')], ['error', 1002]]);
  });

  it('a new text or binary frame inside a fragmented message is 1002', () => {
    expectVerdict(cat(text('a', false), text('b')), [['error', 1002]]);
    expectVerdict(cat(text('a', false), binary('b', false)), [['error', 1002]]);
    expectVerdict(cat(binary('a', false), cont('b', false), text('c')), [['error', 1002]]);
  });

  it('control frames between fragments are delivered and the message still completes', () => {
    expectVerdict(
      cat(
        text('Hel', false),
        frame(Opcode.Ping, 'p1'),
        cont('lo', false),
        frame(Opcode.Pong, 'p2'),
        frame(Opcode.Ping, ''),
        cont(' world'),
      ),
      [
        ['ping', hex('p1')],
        ['pong', hex('p2')],
        ['ping', ''],
        ['text', hex('Hello world')],
      ],
    );
  });

  it('a close frame between fragments ends parsing; the partial message is dropped', () => {
    const close = frame(Opcode.Close, closeBody(1000, 'bye'));
    expectVerdict(cat(text('Hel', false), close, cont('lo')), [['close', 1000, 'bye']]);
  });
});

describe('message size limit (§10.4)', () => {
  const limit = (maxMessageBytes: number): FrameParserOptions => ({ maxMessageBytes, expectMasked: true });

  it('a message of exactly the limit is accepted, one byte more is 1009 from the header alone', () => {
    const ok = Buffer.alloc(100, 0x61);
    expectVerdict(frame(Opcode.Text, ok), [['text', hex(ok)]], limit(100));
    const tooBig = frame(Opcode.Binary, Buffer.alloc(101));
    expectVerdict(tooBig.subarray(0, 6), [['error', 1009]], limit(100));
    expectVerdict(tooBig, [['error', 1009]], limit(100));
  });

  it('a header declaring 2^62 bytes is 1009 before any payload (nothing is allocated)', () => {
    const header = frame(Opcode.Binary, '', { lengthForm: 64, declaredLength: 2n ** 62n });
    expect(header.length).toBe(14); // 2 + 8 + mask key: the header and nothing else
    const allocations = vi.spyOn(Buffer, 'allocUnsafe');
    try {
      expectVerdict(header, [['error', 1009]], limit(16 * 1024 * 1024));
      // Only the 14 bytes that gather a header split across chunks (one per parser), nothing for the payload.
      expect(allocations.mock.calls.map(([size]) => size).filter((size) => size !== 14)).toEqual([]);
    } finally {
      allocations.mockRestore();
    }
    // Just above 2^32 and just above the limit in the 64-bit form: both caught on the header.
    const huge = frame(Opcode.Text, '', { lengthForm: 64, declaredLength: 2n ** 32n });
    expectVerdict(huge, [['error', 1009]], limit(1024));
    expectVerdict(frame(Opcode.Text, '', { lengthForm: 64, declaredLength: 1025 }), [['error', 1009]], limit(1024));
  });

  it('the running total of fragments above the limit is 1009 on the header of the fragment that exceeds it', () => {
    const first = text('a'.repeat(600), false);
    const second = cont('b'.repeat(500));
    const secondHeader = second.subarray(0, 8); // 2 + 2 (16-bit length) + 4 (mask)
    expect(second[1]! & 0x7f).toBe(126);
    const recorder = new ParseRecorder();
    const parser = new FrameParser(limit(1024), recorder);
    parser.push(Buffer.from(first));
    parser.push(Buffer.from(frame(Opcode.Ping, 'between')));
    expect(recorder.events.map(codeOnly)).toEqual([['ping', hex('between')]]);
    parser.push(Buffer.from(secondHeader));
    expect(recorder.events.map(codeOnly)).toEqual([['ping', hex('between')], ['error', 1009]]);
    expect(parser.done).toBe(true);
    // The same verdict however the whole stream is split.
    const between = frame(Opcode.Ping, 'between');
    expectVerdict(cat(first, between, second), [['ping', hex('between')], ['error', 1009]], limit(1024));
    // Exactly at the limit over three fragments is fine; control frames do not count.
    expectVerdict(
      cat(
        text('a'.repeat(500), false),
        frame(Opcode.Pong, 'x'.repeat(125)),
        cont('b'.repeat(500), false),
        cont('c'.repeat(24)),
      ),
      [['pong', hex('x'.repeat(125))], ['text', hex('a'.repeat(500) + 'b'.repeat(500) + 'c'.repeat(24))]],
      limit(1024),
    );
  });

  it('accepts 4 MiB sent as 64-byte fragments under a 16 MiB limit, with bounded memory', () => {
    const messageBytes = 4 * 1024 * 1024;
    const fragment = 64;
    const count = messageBytes / fragment;
    const key = bytes(0x12, 0x34, 0x56, 0x78);
    const message = Buffer.alloc(messageBytes);
    for (let i = 0; i < messageBytes; i++) message[i] = (i * 7 + (i >>> 8)) & 0xff;
    // Each frame: 2-byte header + 4-byte key + 64 bytes, masked.
    const stream = fragments(message, fragment, Opcode.Binary, key);
    expect(stream.length).toBe(count * (6 + fragment));

    let received: Buffer | null = null;
    const handler: FrameHandler = {
      onMessage: (isBinary, data) => {
        expect(isBinary).toBe(true);
        received = data;
      },
      onPing: () => {},
      onPong: () => {},
      onClose: () => {},
      onProtocolError: (code, reason) => {
        throw new Error(`unexpected protocol error ${code} ${reason}`);
      },
    };
    const parser = new FrameParser({ maxMessageBytes: 16 * 1024 * 1024, expectMasked: true }, handler);
    // White box: the one growing buffer that holds the message so far.
    const inside = parser as unknown as { messageBuffer: Buffer | null; messageLength: number };

    const allocations = vi.spyOn(Buffer, 'allocUnsafe');
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const chunkSize = 64 * 1024; // what a socket typically hands over
    for (let at = 0, n = 0; at < stream.length; at += chunkSize, n++) {
      parser.push(stream.subarray(at, at + chunkSize));
      if (inside.messageBuffer !== null) {
        // Geometric growth: capacity never more than twice what has arrived (or the 1 KiB start).
        expect(inside.messageBuffer.length).toBeLessThanOrEqual(Math.max(1024, 2 * inside.messageLength));
      }
      if (n % 8 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    const all = allocations.mock.calls.map(([size]) => size);
    allocations.mockRestore();
    // Besides the message: at most once the 14 bytes that gather a header split across chunks.
    expect(all.filter((size) => size === 14).length).toBeLessThanOrEqual(1);
    const sizes = all.filter((size) => size !== 14);
    // Deterministic: one buffer doubling from 1 KiB to 4 MiB is 13 allocations, 8 MiB in all.
    expect(sizes.length).toBeGreaterThan(0);
    expect(sizes.length).toBeLessThanOrEqual(13);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 * messageBytes);

    expect(received).not.toBeNull();
    expect(received!.length).toBe(messageBytes);
    expect(received!.equals(message)).toBe(true);
    // One buffer that doubles: the garbage left behind is at most ~2x the message, never a
    // per-fragment cost (65,536 fragments). "A few times the message size" is the bound.
    expect(peak - before).toBeLessThan(4 * messageBytes);
  });
});

describe('UTF-8 in text messages (§8.1)', () => {
  it('invalid UTF-8 in a text message is 1007; the same bytes as binary are fine', () => {
    expectVerdict(text(bytes(0x61, 0xff, 0x62)), [['error', 1007]]);
    expectVerdict(binary(bytes(0x61, 0xff, 0x62)), [['binary', '61ff62']]);
  });

  it('overlongs, surrogates and code points above U+10FFFF are 1007', () => {
    const bad = [
      [0xc0, 0xaf], // overlong '/'
      [0xc1, 0xbf],
      [0xe0, 0x80, 0xaf], // overlong 3-byte
      [0xe0, 0x9f, 0xbf],
      [0xf0, 0x80, 0x80, 0xaf], // overlong 4-byte
      [0xf0, 0x8f, 0xbf, 0xbf],
      [0xed, 0xa0, 0x80], // U+D800, a surrogate
      [0xed, 0xbf, 0xbf], // U+DFFF
      [0xf4, 0x90, 0x80, 0x80], // U+110000
      [0xf5, 0x80, 0x80, 0x80],
      [0xff],
      [0x80], // stray continuation byte
      [0xe2, 0x28, 0xa1], // lead byte followed by ASCII
    ];
    for (const seq of bad) {
      // Unfragmented (native check), fragmented (incremental check), and sandwiched in valid text.
      expectVerdict(text(Buffer.from(seq)), [['error', 1007]]);
      expectVerdict(cat(text('ok', false), cont(Buffer.from(seq)), cont('')), [['error', 1007]]);
      expectVerdict(text(cat(Buffer.from('abc'), Buffer.from(seq), Buffer.from('def'))), [['error', 1007]]);
    }
  });

  it('accepts the boundary code points', () => {
    const good = ['\u007f', '\u0080', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{10ffff}'];
    good.push('héllo wörld €𝄞');
    for (const s of good) expectVerdict(text(s), [['text', hex(s)]]);
  });

  it('a code point split across two fragments is fine', () => {
    const euro = Buffer.from('€'); // e2 82 ac
    const clef = Buffer.from('𝄞'); // f0 9d 84 9e
    expectVerdict(cat(text(euro.subarray(0, 1), false), cont(euro.subarray(1))), [['text', hex(euro)]]);
    expectVerdict(cat(text(euro.subarray(0, 2), false), frame(Opcode.Ping, ''), cont(euro.subarray(2))), [
      ['ping', ''],
      ['text', hex(euro)],
    ]);
    expectVerdict(
      cat(
        text(clef.subarray(0, 1), false),
        cont(clef.subarray(1, 2), false),
        cont(Buffer.alloc(0), false),
        cont(clef.subarray(2)),
      ),
      [['text', hex(clef)]],
    );
  });

  it('a code point truncated at the end of the message is 1007', () => {
    expectVerdict(text(bytes(0x61, 0xe2, 0x82)), [['error', 1007]]);
    expectVerdict(cat(text(bytes(0x61, 0xe2), false), cont(bytes(0x82))), [['error', 1007]]);
    expectVerdict(cat(text(bytes(0xf0, 0x9d, 0x84), false), cont('')), [['error', 1007]]);
  });

  it('invalid UTF-8 in the first fragment fails at that fragment, before the rest is sent', () => {
    const recorder = new ParseRecorder();
    const parser = new FrameParser(SERVER, recorder);
    parser.push(text(bytes(0x68, 0x69, 0xc0, 0xaf), false));
    expect(recorder.events.map(codeOnly)).toEqual([['error', 1007]]);
    expect(parser.done).toBe(true);
    parser.push(cont('rest'));
    expect(recorder.events.map(codeOnly)).toEqual([['error', 1007]]);

    // Also when the first fragment arrives one byte at a time: the bad byte is enough.
    const slow = new ParseRecorder();
    const byByte = new FrameParser(SERVER, slow);
    const first = text(bytes(0x68, 0x69, 0xed, 0xa0, 0x80, 0x61), false);
    let failedAt = -1;
    for (let i = 0; i < first.length; i++) {
      byByte.push(Buffer.from(first.subarray(i, i + 1)));
      if (failedAt === -1 && slow.events.length > 0) failedAt = i;
    }
    expect(slow.events.map(codeOnly)).toEqual([['error', 1007]]);
    expect(failedAt).toBe(6 + 3); // header (6) + 'hi' + 0xED: fails at 0xA0, which cannot follow 0xED
  });

  it('an unfragmented text message split across chunks is checked incrementally too', () => {
    const recorder = new ParseRecorder();
    const parser = new FrameParser(SERVER, recorder);
    const f = text(cat(Buffer.from('valid start '), bytes(0xf4, 0x90, 0x80, 0x80), Buffer.from(' tail')));
    parser.push(Buffer.from(f.subarray(0, 6 + 14))); // header + 'valid start ' + f4 90
    expect(recorder.events.map(codeOnly)).toEqual([['error', 1007]]);
  });
});

describe('close frames (§5.5.1, §7.4)', () => {
  it('an empty close payload is reported as 1005 with no reason', () => {
    expectVerdict(frame(Opcode.Close), [['close', 1005, '']]);
  });

  it('a 1-byte close payload is 1002', () => {
    expectVerdict(frame(Opcode.Close, bytes(0x03)), [['error', 1002]]);
  });

  it('codes that may not be sent are 1002', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
      expectVerdict(frame(Opcode.Close, closeBody(code)), [['error', 1002]]);
    }
  });

  it('valid codes are delivered with their reason', () => {
    const codes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
    for (const code of codes) {
      expectVerdict(frame(Opcode.Close, closeBody(code, 'why ✓')), [['close', code, 'why ✓']]);
    }
    expectVerdict(frame(Opcode.Close, closeBody(1000)), [['close', 1000, '']]);
    const longest = 'r'.repeat(123);
    expectVerdict(frame(Opcode.Close, closeBody(4999, longest)), [['close', 4999, longest]]);
  });

  it('a close reason that is not UTF-8 is 1007', () => {
    expectVerdict(frame(Opcode.Close, cat(closeBody(1000), bytes(0xed, 0xa0, 0x80))), [['error', 1007]]);
    expectVerdict(frame(Opcode.Close, cat(closeBody(1000, 'ok'), bytes(0xe2, 0x82))), [['error', 1007]]);
  });

  it('frames after a close are ignored, valid or not', () => {
    expectVerdict(
      cat(
        frame(Opcode.Close, closeBody(1000, 'bye')),
        text('after'),
        frame(Opcode.Ping, 'p'),
        frame(Opcode.Text, 'x', { mask: false }),
      ),
      [['close', 1000, 'bye']],
    );
    const recorder = new ParseRecorder();
    const parser = new FrameParser(SERVER, recorder);
    parser.push(frame(Opcode.Close));
    expect(parser.done).toBe(true);
    parser.push(text('later'));
    parser.push(bytes(0xff, 0xff));
    expect(recorder.events.map(codeOnly)).toEqual([['close', 1005, '']]);
  });
});

describe('after a protocol error', () => {
  it('nothing more is reported, and the error is reported once', () => {
    const rsv1 = frame(Opcode.Text, 'x', { rsv: 4 });
    const stream = cat(text('first'), rsv1, text('second'), frame(Opcode.Ping, 'p'), cont('bad'));
    expectVerdict(stream, [
      ['text', hex('first')],
      ['error', 1002],
    ]);
    const recorder = new ParseRecorder();
    const parser = new FrameParser(SERVER, recorder);
    parser.push(cont('no message'));
    parser.push(cont('still none'));
    parser.push(frame(0x3, 'reserved'));
    parser.push(frame(Opcode.Close, closeBody(1000)));
    expect(recorder.events.map(codeOnly)).toEqual([['error', 1002]]);
  });

  it('stop() makes the parser ignore everything', () => {
    const recorder = new ParseRecorder();
    const parser = new FrameParser(SERVER, recorder);
    parser.push(text('one'));
    parser.stop();
    parser.push(text('two'));
    expect(recorder.events.map(codeOnly)).toEqual([['text', hex('one')]]);
    expect(parser.done).toBe(true);
  });
});
