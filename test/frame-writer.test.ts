/**
 * Frame encoding (RFC 6455 §5.2): exact header bytes for each length form, server frames unmasked,
 * client frames masked (§5.1, §5.3), PreparedFrame, and the close payload (§5.5.1).
 */
import { describe, it, expect } from 'vitest';
import {
  closePayload,
  encodeFrame,
  headerSize,
  nextMaskKey,
  PreparedFrame,
  writeHeader,
} from '../src/websocket/frame-writer';
import { FrameParser } from '../src/websocket/frame-parser';
import { Opcode } from '../src/websocket/opcodes';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('encodeFrame (server: unmasked)', () => {
  const cases: [number, string][] = [
    [0, '8200'],
    [1, '8201'],
    [125, '827d'],
    [126, '827e007e'],
    [127, '827e007f'],
    [65535, '827effff'],
    [65536, '827f0000000000010000'],
    [70000, '827f0000000000011170'],
  ];
  for (const [length, header] of cases) {
    it(`length ${length}: header ${header}`, () => {
      const payload = Buffer.alloc(length, 0x5a);
      const frame = encodeFrame(Opcode.Binary, payload);
      expect(hex(frame.subarray(0, header.length / 2))).toBe(header);
      expect(frame.length).toBe(header.length / 2 + length);
      expect(frame.subarray(header.length / 2).equals(payload)).toBe(true);
      expect(headerSize(length, false)).toBe(header.length / 2);
    });
  }

  it('text, FIN and opcode bits', () => {
    expect(hex(encodeFrame(Opcode.Text, 'Hello'))).toBe('810548656c6c6f'); // §5.7 example
    expect(hex(encodeFrame(Opcode.Text, 'Hel', false, false))).toBe('010348656c');
    expect(hex(encodeFrame(Opcode.Continuation, 'lo', false, true))).toBe('80026c6f');
    expect(hex(encodeFrame(Opcode.Ping, 'Hello'))).toBe('890548656c6c6f');
    expect(hex(encodeFrame(Opcode.Pong, ''))).toBe('8a00');
    expect(hex(encodeFrame(Opcode.Close, Buffer.from([0x03, 0xe8])))).toBe('880203e8');
    // A string's length is its UTF-8 byte length.
    expect(hex(encodeFrame(Opcode.Text, '€'))).toBe('8103e282ac');
  });

  it('does not modify the payload', () => {
    const payload = Buffer.from('unchanged');
    encodeFrame(Opcode.Binary, payload, true);
    expect(payload.toString()).toBe('unchanged');
  });
});

describe('encodeFrame (client: masked)', () => {
  for (const length of [0, 5, 125, 126, 65535, 65536]) {
    it(`length ${length}: mask bit, key, masked payload that unmasks back`, () => {
      const payload = Buffer.alloc(length);
      for (let i = 0; i < length; i++) payload[i] = (i * 13) & 0xff;
      const frame = encodeFrame(Opcode.Binary, payload, true);
      const ext = length < 126 ? 0 : length <= 0xffff ? 2 : 8;
      expect(frame[0]).toBe(0x82);
      expect(frame[1]! & 0x80).toBe(0x80);
      expect(frame[1]! & 0x7f).toBe(length < 126 ? length : length <= 0xffff ? 126 : 127);
      expect(frame.length).toBe(2 + ext + 4 + length);
      expect(headerSize(length, true)).toBe(2 + ext + 4);
      const key = frame.subarray(2 + ext, 6 + ext);
      const body = Buffer.from(frame.subarray(6 + ext));
      for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3]!;
      expect(body.equals(payload)).toBe(true);
      // Our own parser, in server role, reads it back.
      let got: Buffer | null = null;
      const parser = new FrameParser({ maxMessageBytes: 1 << 20, expectMasked: true }, {
        onMessage: (_b, data) => (got = Buffer.from(data)),
        onPing: () => {},
        onPong: () => {},
        onClose: () => {},
        onProtocolError: (code) => expect.fail(`protocol error ${code}`),
      });
      parser.push(Buffer.from(frame));
      expect(got!.equals(payload)).toBe(true);
    });
  }

  it('uses a fresh key per frame (§5.3)', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 64; i++) keys.add(hex(encodeFrame(Opcode.Text, 'x', true).subarray(2, 6)));
    expect(keys.size).toBeGreaterThan(60); // 32-bit random keys: collisions are vanishingly rare
    const a = nextMaskKey();
    const b = nextMaskKey();
    expect(a.length).toBe(4);
    expect(a.buffer === b.buffer && a.byteOffset === b.byteOffset).toBe(false);
  });
});

describe('writeHeader', () => {
  it('writes at an offset and returns the offset after the header', () => {
    const target = Buffer.alloc(20, 0xee);
    expect(writeHeader(target, 3, Opcode.Text, 300, false, Uint8Array.from([1, 2, 3, 4]))).toBe(3 + 2 + 2 + 4);
    expect(hex(target.subarray(0, 12))).toBe('eeeeee' + '01fe012c01020304' + 'ee');
    const big = Buffer.alloc(10);
    expect(writeHeader(big, 0, Opcode.Binary, 2 ** 32 + 5)).toBe(10);
    expect(hex(big)).toBe('827f0000000100000005');
  });
});

describe('PreparedFrame', () => {
  it('holds exactly the bytes encodeFrame produces (unmasked)', () => {
    const texts = ['', 'hi', 'x'.repeat(126), '{"type":"chat","user":"ann","message":"héllo"}', 'y'.repeat(70000)];
    for (const text of texts) {
      expect(PreparedFrame.text(text).bytes.equals(encodeFrame(Opcode.Text, text))).toBe(true);
    }
    const data = Buffer.from([0, 1, 2, 3, 250]);
    expect(hex(encodeFrame(Opcode.Binary, data))).toBe('8205' + '00010203fa');
  });
});

describe('closePayload', () => {
  it('is empty without a code, code + UTF-8 reason otherwise', () => {
    expect(closePayload(undefined).length).toBe(0);
    expect(hex(closePayload(1000))).toBe('03e8');
    expect(hex(closePayload(4000, 'bye'))).toBe('0fa0627965');
    expect(hex(closePayload(1009, '€'))).toBe('03f1e282ac');
  });

  it('truncates a long reason to 123 bytes without splitting a code point', () => {
    // §5.5: a control payload is at most 125 bytes, the code takes 2: 123 bytes of reason fit, 124 do not.
    expect(closePayload(1000, 'r'.repeat(123)).subarray(2).toString()).toBe('r'.repeat(123));
    expect(closePayload(1000, 'r'.repeat(124)).subarray(2).toString()).toBe('r'.repeat(123));
    const ascii = closePayload(1000, 'a'.repeat(500));
    expect(ascii.length).toBe(125);
    expect(ascii.subarray(2).toString()).toBe('a'.repeat(123));
    // 3-byte characters: 41 of them are exactly 123 bytes.
    expect(closePayload(1000, '€'.repeat(50)).subarray(2).toString()).toBe('€'.repeat(41));
    // 4-byte characters: 30 fit (120 bytes); the 31st would end at 124.
    for (const pad of [0, 1, 2, 3]) {
      const reason = 'p'.repeat(pad) + '𝄞'.repeat(40);
      const payload = closePayload(1000, reason);
      expect(payload.length).toBeLessThanOrEqual(125);
      const kept = payload.subarray(2);
      expect(kept.toString('utf8')).toBe('p'.repeat(pad) + '𝄞'.repeat(Math.floor((123 - pad) / 4)));
      expect(Buffer.from(kept.toString('utf8')).equals(kept)).toBe(true); // no half code point
    }
    // The result is a valid control payload: the frame header stays in the 7-bit form.
    expect(encodeFrame(Opcode.Close, closePayload(1000, 'z'.repeat(999)))[1]).toBe(125);
  });
});
