/**
 * The RESP parser: an incremental state machine over socket chunks, for RESP2 and RESP3 replies.
 * Section names below are those of the RESP3 specification (redis/redis-specifications, RESP3.md),
 * which also describes the RESP2 types.
 *
 * It gives the same result however the bytes are split: a line (`+OK`, `:42`, `$5`...) is gathered
 * across chunks, a bulk payload is read as a count of bytes (so it may contain CRLF), and only the new
 * bytes of each chunk are ever scanned. Limits are checked on declared lengths before anything is
 * kept, and nothing is reserved on a declared length: a bulk string split across chunks goes into a
 * buffer that grows with the bytes that arrived, an aggregate grows with its elements, so a lying
 * length costs nothing.
 *
 * push() never throws: a violation is reported once to onProtocolError() and everything after it is
 * ignored (a RESP stream cannot be resynchronised; the connection must be dropped).
 *
 * Ownership: with `bulkAs: 'buffer'`, a bulk string that arrived whole in one chunk is a view into that
 * chunk (socket chunks are never reused, so this saves a copy).
 */
import { RedisReplyError, VerbatimString, type RespValue } from './values';

export interface RespHandler {
  /** A complete reply, in order. Error replies arrive here too, as RedisReplyError values. */
  onReply(value: RespValue): void;
  /** RESP3 "Push type": out-of-band data (pub/sub messages, invalidations), never a command's reply. */
  onPush(value: RespValue[]): void;
  /** The stream broke RESP; called at most once, nothing is parsed after it. */
  onProtocolError(message: string): void;
  /** RESP3 "Attribute type": auxiliary data about the value that follows. Skipped when absent. */
  onAttribute?(attributes: Map<RespValue, RespValue>): void;
}

export interface RespParserOptions {
  /** Bulk strings as UTF-8 strings (default) or as Buffers (binary data). */
  bulkAs?: 'string' | 'buffer';
  /** Largest bulk string accepted (default 512 MiB, Redis's own proto-max-bulk-len). */
  maxBulkBytes?: number;
  /** Largest element count of an array, set, map (in pairs) or push (default 2^24). */
  maxAggregateLength?: number;
  /** Deepest nesting of aggregates (default 64; Redis's own replies nest a few levels). */
  maxDepth?: number;
  /** Longest line: simple string, error, number (default 1 MiB). */
  maxLineBytes?: number;
}

const CR = 13;
const LF = 10;

// States.
const TYPE = 0; // expecting a type byte
const LINE = 1; // reading the rest of a line, up to CRLF
const BULK = 2; // reading a bulk payload
const BULK_CR = 3; // expecting the CR after a bulk payload
const BULK_LF = 4; // expecting the LF after it
const DONE = 5; // a protocol error ended parsing

// Type bytes.
const SIMPLE = 0x2b; // +
const ERROR = 0x2d; // -
const INTEGER = 0x3a; // :
const BULK_STRING = 0x24; // $
const ARRAY = 0x2a; // *
const NULL = 0x5f; // _
const BOOLEAN = 0x23; // #
const DOUBLE = 0x2c; // ,
const BIG_NUMBER = 0x28; // (
const BULK_ERROR = 0x21; // !
const VERBATIM = 0x3d; // =
const MAP = 0x25; // %
const SET = 0x7e; // ~
const ATTRIBUTE = 0x7c; // |
const PUSH = 0x3e; // >

/** The type bytes of RESP2 and RESP3, by byte value. */
const KNOWN_TYPE = new Uint8Array(256);
const TYPES = [SIMPLE, ERROR, INTEGER, BULK_STRING, ARRAY, NULL, BOOLEAN, DOUBLE, BIG_NUMBER, BULK_ERROR, VERBATIM];
for (const t of [...TYPES, MAP, SET, ATTRIBUTE, PUSH]) KNOWN_TYPE[t] = 1;

/** An aggregate being filled. */
interface Frame {
  readonly type: number;
  /** Elements still to come (a map or attribute counts keys and values). */
  remaining: number;
  readonly items: RespValue[];
}

// RESP3 spec, "Double": an integral part, an optional fraction, an optional exponent.
const DOUBLE_FORMAT = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;
// RESP3 spec, "Double": inf, -inf, nan; Redis before 7.2 may send any libc NaN (-nan, NAN, nan(...)).
const NAN_FORMAT = /^[+-]?nan(\(\w*\))?$/i;
const BIG_NUMBER_FORMAT = /^[+-]?\d+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const EMPTY = Buffer.alloc(0);

export class RespParser {
  private state = TYPE;
  private readonly bulkAsBuffer: boolean;
  private readonly maxBulkBytes: number;
  private readonly maxAggregateLength: number;
  private readonly maxDepth: number;
  private readonly maxLineBytes: number;

  // The line being read (type byte kept apart), when it spans chunks.
  private lineType = 0;
  private line: Buffer = EMPTY;
  private lineLength = 0;

  // The bulk payload being read: a buffer that grows with what arrived, up to the declared length.
  private bulkType = 0;
  private bulkLength = 0;
  private bulkReceived = 0;
  private bulkBytes: Buffer = EMPTY;

  // Open aggregates, innermost last.
  private readonly stack: Frame[] = [];

  constructor(
    private readonly handler: RespHandler,
    options: RespParserOptions = {},
  ) {
    this.bulkAsBuffer = options.bulkAs === 'buffer';
    this.maxBulkBytes = options.maxBulkBytes ?? 512 * 1024 * 1024;
    this.maxAggregateLength = options.maxAggregateLength ?? 1 << 24;
    this.maxDepth = options.maxDepth ?? 64;
    this.maxLineBytes = options.maxLineBytes ?? 1024 * 1024;
  }

  /** True once a protocol error has ended parsing. */
  get done(): boolean {
    return this.state === DONE;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end && this.state !== DONE) {
      switch (this.state) {
        case TYPE: {
          const type = chunk[pos++]!;
          if (KNOWN_TYPE[type] === 0) return this.fail(`unknown type byte 0x${type.toString(16).padStart(2, '0')}`);
          // Fast path: the whole line is in this chunk, parse it in place.
          const lf = chunk.indexOf(LF, pos);
          if (lf !== -1) {
            if (lf - pos > this.maxLineBytes + 1) return this.fail(`line longer than ${this.maxLineBytes} bytes`);
            if (lf === pos || chunk[lf - 1] !== CR) return this.fail('line not terminated by CRLF');
            this.onLine(type, chunk, pos, lf - 1);
            pos = lf + 1;
          } else {
            this.lineType = type;
            this.lineLength = 0;
            this.state = LINE;
          }
          break;
        }
        case LINE:
          pos = this.readLine(chunk, pos);
          break;
        case BULK: {
          const want = this.bulkLength - this.bulkReceived;
          const take = Math.min(want, end - pos);
          if (take === this.bulkLength) {
            // The whole payload is in this chunk: no copy.
            this.bulkBytes = chunk.subarray(pos, pos + take);
          } else {
            this.gather(chunk, pos, take);
          }
          pos += take;
          if (take === want) this.state = BULK_CR;
          break;
        }
        case BULK_CR:
          // RESP3 spec, "Blob string": the payload is followed by CRLF.
          if (chunk[pos++] !== CR) return this.fail('bulk string not followed by CRLF');
          this.state = BULK_LF;
          break;
        case BULK_LF: {
          if (chunk[pos++] !== LF) return this.fail('bulk string not followed by CRLF');
          this.state = TYPE;
          const bytes = this.bulkBytes;
          this.bulkBytes = EMPTY;
          this.bulkValue(bytes);
          break;
        }
      }
    }
  }

  /**
   * Appends a piece of a bulk payload that spans chunks. The buffer doubles as bytes arrive (at least
   * 1 KiB, never beyond the declared length), so memory stays within twice what was received whatever
   * the chunk sizes, and the finished buffer is exactly the payload.
   */
  private gather(chunk: Buffer, pos: number, take: number): void {
    const size = this.bulkReceived + take;
    if (size > this.bulkBytes.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.bulkLength, Math.max(size, 1024, 2 * this.bulkBytes.length)));
      this.bulkBytes.copy(grown, 0, 0, this.bulkReceived);
      this.bulkBytes = grown;
    }
    chunk.copy(this.bulkBytes, this.bulkReceived, pos, pos + take);
    this.bulkReceived = size;
  }

  /** Gathers a line that started in an earlier chunk; returns the position after what it consumed. */
  private readLine(chunk: Buffer, pos: number): number {
    const lf = chunk.indexOf(LF, pos);
    const stop = lf === -1 ? chunk.length : lf;
    const size = this.lineLength + (stop - pos);
    if (size > this.maxLineBytes + 1) {
      this.fail(`line longer than ${this.maxLineBytes} bytes`);
      return chunk.length;
    }
    if (size > this.line.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.maxLineBytes + 1, Math.max(64, size, 2 * this.line.length)));
      this.line.copy(grown, 0, 0, this.lineLength);
      this.line = grown;
    }
    chunk.copy(this.line, this.lineLength, pos, stop);
    this.lineLength = size;
    if (lf === -1) return chunk.length;
    if (size === 0 || this.line[size - 1] !== CR) {
      this.fail('line not terminated by CRLF');
      return chunk.length;
    }
    this.state = TYPE;
    this.onLine(this.lineType, this.line, 0, size - 1);
    return lf + 1;
  }

  /** A complete line: `type` and the bytes [from, to) before its CRLF. */
  private onLine(type: number, buf: Buffer, from: number, to: number): void {
    // RESP3 spec, "Simple string": it cannot contain CR or LF (LF ends the line, so look for CR).
    const cr = buf.indexOf(CR, from);
    if (cr !== -1 && cr < to) return this.fail('CR inside a line');
    switch (type) {
      case SIMPLE:
        return this.value(buf.toString('utf8', from, to));
      case ERROR:
        return this.value(new RedisReplyError(buf.toString('utf8', from, to)));
      case INTEGER:
        return this.integer(buf, from, to);
      case BULK_STRING:
      case BULK_ERROR:
      case VERBATIM:
        return this.bulkHeader(type, buf, from, to);
      case ARRAY:
      case MAP:
      case SET:
      case ATTRIBUTE:
      case PUSH:
        return this.aggregateHeader(type, buf, from, to);
      case NULL:
        // RESP3 spec, "Null": exactly `_\r\n`.
        if (to !== from) return this.fail('null with a payload');
        return this.value(null);
      case BOOLEAN: {
        // RESP3 spec, "Boolean": `#t` or `#f`.
        const b = to - from === 1 ? buf[from] : -1;
        if (b === 0x74) return this.value(true);
        if (b === 0x66) return this.value(false);
        return this.fail('boolean other than #t or #f');
      }
      case DOUBLE:
        return this.double(buf.toString('latin1', from, to));
      case BIG_NUMBER: {
        // RESP3 spec, "Big number": an optional sign and decimal digits, no fraction.
        const text = buf.toString('latin1', from, to);
        if (!BIG_NUMBER_FORMAT.test(text)) return this.fail('malformed big number');
        return this.value(BigInt(text));
      }
      default:
        // Unreachable: the type byte was checked on arrival.
        return this.fail(`unknown type byte 0x${type.toString(16).padStart(2, '0')}`);
    }
  }

  private integer(buf: Buffer, from: number, to: number): void {
    // RESP3 spec, "Number": a signed 64-bit integer. Exact as a number up to 2^53, a bigint beyond.
    // Fast path (every PUBLISH answers with one): up to 15 digits, read in place.
    const negative = buf[from] === 0x2d;
    const start = negative ? from + 1 : from;
    if (to > start && to - start <= 15) {
      let n = 0;
      for (let i = start; i < to; i++) {
        const d = buf[i]! - 0x30;
        if (d < 0 || d > 9) return this.fail('malformed integer');
        n = n * 10 + d;
      }
      return this.value(negative ? -n : n);
    }
    const text = buf.toString('latin1', from, to);
    if (!BIG_NUMBER_FORMAT.test(text) || text[0] === '+') return this.fail('malformed integer');
    if (text.length <= 15) return this.value(Number(text));
    const big = BigInt(text);
    if (big < INT64_MIN || big > INT64_MAX) return this.fail('integer outside the signed 64-bit range');
    const n = Number(big);
    this.value(Number.isSafeInteger(n) ? n : big);
  }

  private double(text: string): void {
    let n: number;
    if (DOUBLE_FORMAT.test(text)) n = Number(text);
    else if (text === 'inf' || text === '+inf') n = Infinity;
    else if (text === '-inf') n = -Infinity;
    else if (NAN_FORMAT.test(text)) n = NaN;
    else return this.fail('malformed double');
    this.value(n);
  }

  /**
   * A length field: decimal digits, or -1 where a null is allowed. Returns -2 when malformed.
   * RESP3 spec, "Streamed strings" / "Streamed aggregated data types" (`$?`, `*?`): not supported, and
   * Redis does not send them.
   */
  private length(buf: Buffer, from: number, to: number, allowNull: boolean): number {
    if (to - from === 2 && buf[from] === 0x2d && buf[from + 1] === 0x31) return allowNull ? -1 : -2;
    if (to === from) return -2;
    let n = 0;
    for (let i = from; i < to; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) return -2;
      n = n * 10 + d;
    }
    // Beyond 2^53 the digits are no longer exact, but such a length is far above any limit anyway.
    return n;
  }

  private bulkHeader(type: number, buf: Buffer, from: number, to: number): void {
    // RESP2: `$-1` is the null bulk string; RESP3 uses `_` but Redis still sends `$-1` to RESP2 clients.
    const length = this.length(buf, from, to, type === BULK_STRING);
    if (length === -1) return this.value(null);
    if (length === -2) {
      return this.fail(isStreamed(buf, from, to) ? 'streamed strings are not supported' : 'malformed bulk length');
    }
    if (length > this.maxBulkBytes) {
      return this.fail(`bulk length ${length} above the limit of ${this.maxBulkBytes} bytes`);
    }
    // RESP3 spec, "Verbatim string": three bytes of format, a colon, then the text.
    if (type === VERBATIM && length < 4) return this.fail('verbatim string shorter than its format');
    this.bulkType = type;
    this.bulkLength = length;
    this.bulkReceived = 0;
    // Each empty bulk string is a Buffer of its own: a shared one would be one Map key for all.
    this.bulkBytes = length === 0 ? Buffer.alloc(0) : EMPTY;
    this.state = length === 0 ? BULK_CR : BULK;
  }

  /** A complete bulk payload, CRLF checked. */
  private bulkValue(bytes: Buffer): void {
    switch (this.bulkType) {
      case BULK_ERROR:
        return this.value(new RedisReplyError(bytes.toString('utf8')));
      case VERBATIM:
        if (bytes[3] !== 0x3a) return this.fail('verbatim string without a colon after its format');
        return this.value(
          new VerbatimString(
            bytes.toString('latin1', 0, 3),
            this.bulkAsBuffer ? bytes.subarray(4) : bytes.toString('utf8', 4),
          ),
        );
      default:
        return this.value(this.bulkAsBuffer ? bytes : bytes.toString('utf8'));
    }
  }

  private aggregateHeader(type: number, buf: Buffer, from: number, to: number): void {
    // RESP2: `*-1` is the null array.
    const count = this.length(buf, from, to, type === ARRAY);
    if (count === -1) return this.value(null);
    if (count === -2) {
      const streamed = isStreamed(buf, from, to);
      return this.fail(streamed ? 'streamed aggregates are not supported' : 'malformed aggregate length');
    }
    if (count > this.maxAggregateLength) {
      return this.fail(`aggregate length ${count} above the limit of ${this.maxAggregateLength}`);
    }
    // RESP3 spec, "Push type": push data appears only at the top level.
    if (type === PUSH && this.stack.length > 0) return this.fail('push data inside an aggregate');
    if (this.stack.length >= this.maxDepth) return this.fail(`aggregates nested deeper than ${this.maxDepth}`);
    // RESP3 spec, "Map type" / "Attribute type": the count is of pairs.
    const frame: Frame = { type, remaining: type === MAP || type === ATTRIBUTE ? 2 * count : count, items: [] };
    if (frame.remaining === 0) return this.complete(frame);
    this.stack.push(frame);
  }

  /** A value is complete: it goes into the innermost open aggregate, or out if there is none. */
  private value(v: RespValue): void {
    if (this.state === DONE) return;
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) {
      this.handler.onReply(v);
      return;
    }
    top.items.push(v);
    if (--top.remaining === 0) {
      this.stack.pop();
      this.complete(top);
    }
  }

  private complete(frame: Frame): void {
    const items = frame.items;
    switch (frame.type) {
      case ARRAY:
        return this.value(items);
      case SET:
        return this.value(new Set(items));
      case MAP:
        return this.value(pairs(items));
      case ATTRIBUTE:
        // RESP3 spec, "Attribute type": not part of the reply; it informs the value that follows.
        this.handler.onAttribute?.(pairs(items));
        return;
      case PUSH:
        this.handler.onPush(items);
        return;
    }
  }

  private fail(message: string): void {
    if (this.state === DONE) return;
    this.state = DONE;
    this.stack.length = 0;
    this.bulkBytes = EMPTY;
    this.line = EMPTY;
    this.handler.onProtocolError(message);
  }
}

/** `?` as a length: RESP3 spec, "Streamed strings" / "Streamed aggregated data types". */
function isStreamed(buf: Buffer, from: number, to: number): boolean {
  return to - from === 1 && buf[from] === 0x3f;
}

function pairs(items: RespValue[]): Map<RespValue, RespValue> {
  const map = new Map<RespValue, RespValue>();
  for (let i = 0; i < items.length; i += 2) map.set(items[i]!, items[i + 1]!);
  return map;
}
