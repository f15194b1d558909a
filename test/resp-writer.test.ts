/**
 * Command encoding: exact bytes of RESP arrays of bulk strings, binary-safe arguments, clear refusals.
 */
import { describe, expect, it } from 'vitest';
import { RespParser } from '../src/redis/resp-parser';
import { encodeCommand } from '../src/redis/resp-writer';
import type { RespValue } from '../src/redis/values';

describe('encodeCommand', () => {
  it('writes an array of bulk strings (RESP spec, "Sending commands to a Redis server")', () => {
    const bytes = encodeCommand(['SET', 'key', 'value']).toString('latin1');
    expect(bytes).toBe('*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n');
    expect(encodeCommand(['PING']).toString('latin1')).toBe('*1\r\n$4\r\nPING\r\n');
    expect(encodeCommand(['SET', 'k', '']).toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n');
  });

  it('counts UTF-8 bytes, not characters, and keeps CRLF inside arguments', () => {
    const bytes = encodeCommand(['SET', 'é', 'a\r\nb']).toString('utf8');
    expect(bytes).toBe('*3\r\n$3\r\nSET\r\n$2\r\né\r\n$4\r\na\r\nb\r\n');
    expect(encodeCommand(['X', '😀']).toString('utf8')).toBe('*2\r\n$1\r\nX\r\n$4\r\n😀\r\n');
  });

  it('sends Buffers byte for byte, numbers and bigints in decimal', () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const out = encodeCommand(['SET', bytes, 12]);
    expect(out.subarray(0, 19).toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$256\r\n');
    expect(out.subarray(19, 275).equals(bytes)).toBe(true);
    expect(out.subarray(275).toString('latin1')).toBe('\r\n$2\r\n12\r\n');
    expect(encodeCommand(['INCRBY', 'k', -5, 2n ** 63n - 1n]).toString('latin1')).toBe(
      '*4\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$2\r\n-5\r\n$19\r\n9223372036854775807\r\n',
    );
    expect(encodeCommand(['X', 1.5]).toString('latin1')).toBe('*2\r\n$1\r\nX\r\n$3\r\n1.5\r\n');
  });

  it('sizes the buffer exactly, for long and many arguments', () => {
    const args = ['MSET', ...Array.from({ length: 1000 }, (_, i) => `key:${i}:${'v'.repeat(i % 50)}`)];
    const out = encodeCommand(args);
    // Parsed back as an array of bulk strings, it is the command.
    const got: RespValue[] = [];
    new RespParser({
      onReply: (v) => got.push(v),
      onPush: () => undefined,
      onProtocolError: (m) => got.push(m),
    }).push(out);
    expect(got).toEqual([args]);
    const big = 'x'.repeat(100_000);
    const header = '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n';
    expect(encodeCommand(['SET', 'k', big]).length).toBe(header.length + 100_000 + 2);
  });

  it('refuses what it would have to guess', () => {
    expect(() => encodeCommand([])).toThrow('a Redis command needs at least its name');
    expect(() => encodeCommand(['SET', 'k', undefined as unknown as string])).toThrow(
      'argument 2 must be a string, Buffer, number or bigint, got undefined',
    );
    expect(() => encodeCommand(['SET', 'k', null as unknown as string])).toThrow('got null');
    expect(() => encodeCommand(['SET', 'k', { a: 1 } as unknown as string])).toThrow('got object');
    expect(() => encodeCommand(['ZADD', 'z', Infinity, 'm'])).toThrow(
      "argument 2 is Infinity: pass Redis's 'inf'/'-inf' as strings",
    );
    expect(() => encodeCommand(['X', NaN])).toThrow('argument 1 is NaN');
  });
});
