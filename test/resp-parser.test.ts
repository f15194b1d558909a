/**
 * The RESP parser on hand-written bytes: every RESP2 and RESP3 type (RESP3 spec examples), the same
 * result at every split point and byte by byte, limits refused on the declared length, and each
 * malformed form refused once with a specific message.
 */
import { describe, expect, it } from 'vitest';
import { RespParser, type RespParserOptions } from '../src/redis/resp-parser';
import { RedisReplyError, VerbatimString, type RespValue } from '../src/redis/values';

interface Parsed {
  replies: RespValue[];
  pushes: RespValue[][];
  attributes: Map<RespValue, RespValue>[];
  errors: string[];
  order: string[];
}

function parser(options: RespParserOptions = {}): { parser: RespParser; out: Parsed } {
  const out: Parsed = { replies: [], pushes: [], attributes: [], errors: [], order: [] };
  const p = new RespParser(
    {
      onReply: (v) => (out.replies.push(v), out.order.push('reply')),
      onPush: (v) => (out.pushes.push(v), out.order.push('push')),
      onAttribute: (a) => (out.attributes.push(a), out.order.push('attribute')),
      onProtocolError: (m) => (out.errors.push(m), out.order.push('error')),
    },
    options,
  );
  return { parser: p, out };
}

/** Parses `bytes` in the given chunks (a list of cut points). */
function parse(bytes: string | Buffer, options: RespParserOptions = {}, cuts: number[] = []): Parsed {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  const { parser: p, out } = parser(options);
  let from = 0;
  for (const to of [...cuts, buf.length]) {
    p.push(buf.subarray(from, to));
    from = to;
  }
  return out;
}

function one(bytes: string, options: RespParserOptions = {}): RespValue {
  const out = parse(bytes, options);
  expect(out.errors).toEqual([]);
  expect(out.replies).toHaveLength(1);
  return out.replies[0]!;
}

describe('RESP2 types', () => {
  it('simple string, error, integer', () => {
    expect(one('+OK\r\n')).toBe('OK');
    expect(one('+\r\n')).toBe('');
    const error = one('-WRONGTYPE Operation against a key holding the wrong kind of value\r\n');
    expect(error).toBeInstanceOf(RedisReplyError);
    expect((error as RedisReplyError).code).toBe('WRONGTYPE');
    expect((error as RedisReplyError).message).toMatch(/^WRONGTYPE Operation against a key holding the wrong kind/);
    expect(one(':0\r\n')).toBe(0);
    expect(one(':-1000\r\n')).toBe(-1000);
  });

  it('64-bit integers: a number up to 2^53, a bigint beyond, the full signed range', () => {
    expect(one(':9007199254740991\r\n')).toBe(9007199254740991);
    expect(one(':9007199254740993\r\n')).toBe(9007199254740993n);
    expect(one(':9223372036854775807\r\n')).toBe(9223372036854775807n);
    expect(one(':-9223372036854775808\r\n')).toBe(-9223372036854775808n);
  });

  it('bulk strings: binary safe, CRLF inside, empty, null', () => {
    expect(one('$11\r\nhello world\r\n')).toBe('hello world');
    expect(one('$8\r\na\r\nb\r\n\r\n\r\n')).toBe('a\r\nb\r\n\r\n');
    expect(one('$0\r\n\r\n')).toBe('');
    expect(one('$-1\r\n')).toBeNull();
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const value = one(`$256\r\n${bytes.toString('latin1')}\r\n`, { bulkAs: 'buffer' });
    expect(Buffer.isBuffer(value) && value.equals(bytes)).toBe(true);
  });

  it('arrays: empty, null, nested, mixed', () => {
    expect(one('*0\r\n')).toEqual([]);
    expect(one('*-1\r\n')).toBeNull();
    expect(one('*2\r\n*3\r\n:1\r\n$5\r\nhello\r\n:2\r\n#f\r\n')).toEqual([[1, 'hello', 2], false]);
    const value = one('*3\r\n$-1\r\n-ERR inside\r\n*0\r\n') as RespValue[];
    expect(value[0]).toBeNull();
    expect(value[1]).toBeInstanceOf(RedisReplyError);
    expect(value[2]).toEqual([]);
  });
});

describe('RESP3 types', () => {
  it('null, booleans', () => {
    expect(one('_\r\n')).toBeNull();
    expect(one('#t\r\n')).toBe(true);
    expect(one('#f\r\n')).toBe(false);
  });

  it('doubles, with inf, -inf and every NaN spelling Redis has used', () => {
    expect(one(',1.23\r\n')).toBe(1.23);
    expect(one(',10\r\n')).toBe(10);
    expect(one(',-1.5e-10\r\n')).toBe(-1.5e-10);
    expect(one(',1.0000000000000001e+300\r\n')).toBe(1e300);
    expect(one(',inf\r\n')).toBe(Infinity);
    expect(one(',-inf\r\n')).toBe(-Infinity);
    for (const nan of ['nan', '-nan', 'NAN', 'nan(0x1)']) expect(one(`,${nan}\r\n`)).toBeNaN();
  });

  it('big number, bulk error, verbatim string', () => {
    expect(one('(3492890328409238509324850943850943825024385\r\n')).toBe(3492890328409238509324850943850943825024385n);
    expect(one('(-12\r\n')).toBe(-12n);
    const error = one('!21\r\nSYNTAX invalid syntax\r\n') as RedisReplyError;
    expect(error).toBeInstanceOf(RedisReplyError);
    expect([error.code, error.message]).toEqual(['SYNTAX', 'SYNTAX invalid syntax']);
    const verbatim = one('=15\r\ntxt:Some string\r\n') as VerbatimString;
    expect(verbatim).toBeInstanceOf(VerbatimString);
    expect([verbatim.format, verbatim.text, String(verbatim)]).toEqual(['txt', 'Some string', 'Some string']);
    const raw = one('=6\r\nmkd:\r\n\r\n', { bulkAs: 'buffer' }) as VerbatimString;
    expect(Buffer.isBuffer(raw.text) && raw.text.equals(Buffer.from('\r\n'))).toBe(true);
  });

  it('map (count of pairs), set, and maps with aggregate keys', () => {
    const map = new Map<RespValue, RespValue>([['first', 1], ['second', 2]]);
    expect(one('%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n')).toEqual(map);
    const set = new Set<RespValue>(['orange', 'apple', true, 100, 999]);
    expect(one('~5\r\n+orange\r\n+apple\r\n#t\r\n:100\r\n:999\r\n')).toEqual(set);
    expect(one('%0\r\n')).toEqual(new Map());
    expect(one('~0\r\n')).toEqual(new Set());
    const nested = one('%1\r\n*1\r\n:1\r\n~1\r\n_\r\n') as Map<RespValue, RespValue>;
    expect([...nested]).toEqual([[[1], new Set([null])]]);
  });

  it('push data goes apart from replies, in stream order (RESP3 spec, "Push type")', () => {
    const out = parse('>3\r\n+message\r\n+somechannel\r\n+this is the message\r\n$9\r\nGet-Reply\r\n>1\r\n+x\r\n');
    expect(out.pushes).toEqual([['message', 'somechannel', 'this is the message'], ['x']]);
    expect(out.replies).toEqual(['Get-Reply']);
    expect(out.order).toEqual(['push', 'reply', 'push']);
  });

  it('attributes are reported before the value they inform and are not part of it (RESP3 spec example)', () => {
    const out = parse(
      '|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n' +
        '*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n',
    );
    expect(out.errors).toEqual([]);
    expect(out.replies).toEqual([[2039123, 9543892], [1, 2, 3]]);
    expect(out.attributes).toEqual([
      new Map([['key-popularity', new Map<RespValue, RespValue>([['a', 0.1923], ['b', 0.0012]])]]),
      new Map([['ttl', 3600]]),
    ]);
    expect(out.order).toEqual(['attribute', 'reply', 'attribute', 'reply']);
  });

  it('attributes are skipped when nobody listens', () => {
    const values: RespValue[] = [];
    const p = new RespParser({
      onReply: (v) => values.push(v),
      onPush: () => undefined,
      onProtocolError: (m) => values.push(m),
    });
    p.push(Buffer.from('|1\r\n+ttl\r\n:3600\r\n+OK\r\n'));
    expect(values).toEqual(['OK']);
  });
});

describe('chunking', () => {
  const corpus =
    '+OK\r\n-ERR x\r\n:-42\r\n:9223372036854775807\r\n$8\r\na\r\nb\r\n\r\n\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n' +
    '*2\r\n*1\r\n$4\r\n\r\n\r\n\r\n%1\r\n+k\r\n~2\r\n#t\r\n_\r\n,-inf\r\n,3.25e2\r\n' +
    '(-123456789012345678901234567890\r\n' +
    '!5\r\nERR x\r\n=8\r\ntxt:a\r\nb\r\n>2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n|1\r\n+a\r\n:1\r\n:2\r\n';
  const whole = parse(corpus, { bulkAs: 'buffer' });

  it('the corpus parses whole', () => {
    expect(whole.errors).toEqual([]);
    expect(whole.replies).toHaveLength(16);
    expect(whole.pushes).toHaveLength(1);
    expect(whole.attributes).toHaveLength(1);
  });

  it('gives the same result cut in two at every point', () => {
    for (let cut = 1; cut < corpus.length; cut++) {
      expect(parse(corpus, { bulkAs: 'buffer' }, [cut]), `cut at ${cut}`).toEqual(whole);
    }
  });

  it('gives the same result one byte at a time', () => {
    const cuts = Array.from({ length: corpus.length - 1 }, (_, i) => i + 1);
    expect(parse(corpus, { bulkAs: 'buffer' }, cuts)).toEqual(whole);
  });

  it('a 1 MiB bulk string in 1-byte chunks arrives whole (linear: only new bytes are looked at)', () => {
    const payload = Buffer.alloc(1 << 20, 0x0a); // all LF: a rescan for line ends would be quadratic
    const stream = Buffer.concat([Buffer.from(`$${payload.length}\r\n`), payload, Buffer.from('\r\n')]);
    const { parser: p, out } = parser({ bulkAs: 'buffer' });
    for (let i = 0; i < stream.length; i++) p.push(stream.subarray(i, i + 1));
    expect(out.errors).toEqual([]);
    expect((out.replies[0] as Buffer).equals(payload)).toBe(true);
  });

  it('a simple string split over many chunks', () => {
    const text = 'x'.repeat(10_000);
    const stream = Buffer.from(`+${text}\r\n`);
    const cuts = Array.from({ length: stream.length / 7 }, (_, i) => (i + 1) * 7).filter((c) => c < stream.length);
    expect(parse(stream, {}, cuts).replies).toEqual([text]);
  });
});

describe('limits: refused on the declared length, before anything is kept', () => {
  /** Records the largest Buffer.allocUnsafe() while `run` runs. */
  function largestAllocation(run: () => void): number {
    let largest = 0;
    const allocUnsafe = Buffer.allocUnsafe;
    Buffer.allocUnsafe = ((n: number) => {
      largest = Math.max(largest, n);
      return allocUnsafe(n);
    }) as typeof Buffer.allocUnsafe;
    try {
      run();
    } finally {
      Buffer.allocUnsafe = allocUnsafe;
    }
    return largest;
  }

  it('a bulk string above maxBulkBytes', () => {
    const largest = largestAllocation(() => {
      const out = parse('$1000000000\r\n' + 'a'.repeat(5000), { maxBulkBytes: 1024 });
      expect(out.errors).toEqual(['bulk length 1000000000 above the limit of 1024 bytes']);
    });
    expect(largest).toBe(0);
  });

  it('a lying bulk length within the limit reserves only what arrives', () => {
    const largest = largestAllocation(() => {
      const { parser: p, out } = parser({ maxBulkBytes: 100_000_000 });
      p.push(Buffer.from('$90000000\r\n'));
      p.push(Buffer.alloc(3000, 0x61));
      p.push(Buffer.alloc(3000, 0x61));
      expect(out.replies).toEqual([]);
    });
    expect(largest).toBeLessThanOrEqual(2 * 6000);
  });

  it('aggregates above maxAggregateLength, nesting above maxDepth, lines above maxLineBytes', () => {
    expect(parse('*1000001\r\n', { maxAggregateLength: 1_000_000 }).errors).toEqual([
      'aggregate length 1000001 above the limit of 1000000',
    ]);
    expect(parse('%3\r\n', { maxAggregateLength: 2 }).errors).toEqual(['aggregate length 3 above the limit of 2']);
    expect(parse('*1\r\n*1\r\n*1\r\n:1\r\n', { maxDepth: 2 }).errors).toEqual(['aggregates nested deeper than 2']);
    expect(parse('*1\r\n*1\r\n:1\r\n', { maxDepth: 2 }).replies).toEqual([[[1]]]);
    expect(parse(`+${'a'.repeat(65)}\r\n`, { maxLineBytes: 64 }).errors).toEqual(['line longer than 64 bytes']);
    expect(parse(`+${'a'.repeat(64)}\r\n`, { maxLineBytes: 64 }).replies).toHaveLength(1);
    // A line that never ends is refused as soon as it is too long.
    const { parser: p, out } = parser({ maxLineBytes: 64 });
    for (let i = 0; i < 100; i++) p.push(Buffer.from(i === 0 ? '+aa' : 'aa'));
    expect(out.errors).toEqual(['line longer than 64 bytes']);
  });
});

describe('malformed input: one specific error, then nothing', () => {
  const cases: [string, string][] = [
    ['?\r\n', 'unknown type byte 0x3f'],
    ['\r\n', 'unknown type byte 0x0d'],
    ['+a\nb\r\n', 'line not terminated by CRLF'],
    ['+a\rb\r\n', 'CR inside a line'],
    ['$3\r\nabcd\r\n', 'bulk string not followed by CRLF'],
    ['$-2\r\n', 'malformed bulk length'],
    ['$ 3\r\nabc\r\n', 'malformed bulk length'],
    ['$?\r\n', 'streamed strings are not supported'],
    ['*?\r\n', 'streamed aggregates are not supported'],
    ['~-1\r\n', 'malformed aggregate length'],
    [':12a\r\n', 'malformed integer'],
    [':9223372036854775808\r\n', 'integer outside the signed 64-bit range'],
    ['#T\r\n', 'boolean other than #t or #f'],
    ['_0\r\n', 'null with a payload'],
    [',1,5\r\n', 'malformed double'],
    [',Infinity\r\n', 'malformed double'],
    ['(12e3\r\n', 'malformed big number'],
    ['=2\r\nab\r\n', 'verbatim string shorter than its format'],
    ['=4\r\ntxt!\r\n', 'verbatim string without a colon after its format'],
    ['*2\r\n:1\r\n>1\r\n:2\r\n', 'push data inside an aggregate'],
  ];
  for (const [bytes, message] of cases) {
    it(`${JSON.stringify(bytes)} -> ${message}`, () => {
      const { parser: p, out } = parser();
      p.push(Buffer.from(`+before\r\n${bytes}+after\r\n`, 'latin1'));
      p.push(Buffer.from('+later\r\n'));
      expect(out.replies).toEqual(['before']);
      expect(out.errors).toEqual([message]);
      expect(p.done).toBe(true);
    });
  }
});
