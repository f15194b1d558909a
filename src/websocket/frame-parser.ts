/**
 * The frame parser: an incremental state machine over socket chunks (RFC 6455 §5).
 *
 * It gives the same result however the bytes are split, down to one byte per chunk: the header is
 * gathered across chunks, payloads are unmasked piece by piece with the mask phase carried along,
 * and text is UTF-8 checked as it arrives. Every limit is checked on the declared length before a
 * single payload byte is buffered, and a fragmented message costs one growing buffer (never more
 * than the message limit), not one object per fragment.
 *
 * push() never throws: a violation is reported once to onProtocolError() with its close code, and
 * the parser then ignores everything that follows. So does a close frame (§5.5.1: nothing is read
 * after it).
 *
 * Ownership: push() unmasks the chunk in place, so the caller hands the chunk over (socket data is
 * never reused, so this saves a copy on the hot path). Messages delivered from the fast path are
 * views into that chunk.
 *
 * With permessage-deflate negotiated (RFC 7692), a message whose first frame has RSV1 set is
 * inflated piece by piece as its payload arrives; the inflated size counts against the message limit
 * as it grows, and inflated text is UTF-8 checked as it is produced.
 */
import { CloseCode, isValidCloseCode } from './close-codes';
import { RSV1 } from './frame-writer';
import { Inflater } from './inflater';
import { applyPackedMask, packMaskKey } from './mask';
import { isControl, MAX_CONTROL_PAYLOAD, Opcode } from './opcodes';
import { isUtf8, Utf8Validator } from './utf8';

export interface FrameHandler {
  /** A complete data message. Text has been validated as UTF-8. */
  onMessage(binary: boolean, data: Buffer): void;
  onPing(payload: Buffer): void;
  onPong(payload: Buffer): void;
  /** §5.5.1: the peer's close frame; code is 1005 (NoStatus) when the frame had no payload. */
  onClose(code: number, reason: string): void;
  /** The peer broke the protocol: close with `code` (1002, 1007 or 1009). Called at most once. */
  onProtocolError(code: number, reason: string): void;
}

export interface FrameParserOptions {
  /** Largest message accepted, in bytes, summed over its fragments (§10.4). Above it: 1009. */
  maxMessageBytes: number;
  /** true on the server: §5.1 client frames must be masked. false on the client: server frames must not be. */
  expectMasked: boolean;
  /**
   * permessage-deflate was negotiated (RFC 7692): RSV1 marks compressed messages. `inflateTakeover`:
   * the peer may refer to its earlier messages (§7.1.1), so the inflater keeps its window.
   */
  deflate?: { readonly inflateTakeover: boolean };
}

const HEADER = 0;
const PAYLOAD = 1;
const DONE = 2;

const EMPTY = Buffer.alloc(0);
/** The longest frame header: 2 bytes, a 64-bit length, a masking key (§5.2). */
const MAX_HEADER = 14;
/** A fragmented message's buffer starts at this size and doubles (capped by the limit and known sizes). */
const MIN_MESSAGE_BUFFER = 1024;

/**
 * The compressed size allowed for a message of at most `limit` bytes: a compressor may expand
 * incompressible data, by up to 1/8 with 9-bit fixed-Huffman literals (RFC 1951 §3.2.6).
 */
export function maxCompressedBytes(limit: number): number {
  return limit + Math.ceil(limit / 8) + 64;
}

export class FrameParser {
  private state = HEADER;

  // Header bytes gathered across chunks (2 + 8 + 4 at most); made the first time a header is split.
  private header: Buffer | null = null;
  private headerLength = 0;

  // The frame being read.
  private fin = false;
  private opcode = 0;
  private masked = false;
  /** The frame's masking key, packed (packMaskKey): a number, not a buffer per connection. */
  private maskKey = 0;
  private remaining = 0;
  private payloadOffset = 0;

  // The data message being assembled (§5.4); messageOpcode 0 means none is in progress.
  private messageOpcode = 0;
  private messageBuffer: Buffer | null = null;
  private messageLength = 0;
  /** Made for the first text message that is fragmented or compressed (whole ones are checked at once). */
  private utf8: Utf8Validator | null = null;

  // RFC 7692: the message in progress is compressed (its first frame had RSV1); its compressed size so far.
  private compressed = false;
  private compressedLength = 0;
  private inflater: Inflater | null = null;

  // The control frame being read (§5.5: ≤ 125 bytes, never fragmented).
  private control: Buffer = EMPTY;

  // hold(): the rest of the current chunk, parsed on resume().
  private held = false;
  private pending: Buffer | null = null;

  constructor(
    private readonly options: FrameParserOptions,
    private readonly handler: FrameHandler,
  ) {}

  /** True once a close frame or a protocol error has ended parsing. */
  get done(): boolean {
    return this.state === DONE;
  }

  /** Stops parsing: later chunks are ignored (used once the connection is closing). */
  stop(): void {
    this.state = DONE;
    this.messageBuffer = null;
    this.control = EMPTY;
    this.inflater?.close();
    this.inflater = null;
    this.pending = null;
  }

  /**
   * Stops delivering after the current message: the rest of the chunk waits for resume(). The reader
   * uses it when it falls behind, so a chunk of small compressed messages, each inflating to the limit,
   * is not inflated all at once (uncompressed messages are views into the chunk; inflated ones are not).
   */
  hold(): void {
    this.held = true;
  }

  /** Parses what hold() left, until the next hold() or its end. */
  resume(): void {
    this.held = false;
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) this.push(pending);
  }

  /** Feeds one socket chunk. Takes ownership of it (see the file comment). Never throws. */
  push(chunk: Buffer): void {
    if (this.pending !== null) {
      // Held, and the socket had one more chunk on its way: keep it behind the rest.
      this.pending = Buffer.concat([this.pending, chunk]);
      return;
    }
    let offset = 0;
    const end = chunk.length;
    while (offset < end && this.state !== DONE) {
      if (this.held) {
        this.pending = chunk.subarray(offset);
        return;
      }
      offset = this.state === HEADER ? this.readHeader(chunk, offset) : this.readPayload(chunk, offset);
    }
  }

  private readHeader(chunk: Buffer, offset: number): number {
    let src: Buffer;
    let at: number;
    let next: number;
    const available = chunk.length - offset;
    if (this.headerLength === 0 && available >= 2 && available >= headerLengthOf(chunk[offset + 1]!)) {
      // Fast path: the whole header is in this chunk.
      src = chunk;
      at = offset;
      next = offset + headerLengthOf(chunk[offset + 1]!);
      if (!this.checkFirstBytes(chunk[offset]!, chunk[offset + 1]!)) return chunk.length;
    } else {
      // Slow path: gather the header across chunks; check the first two bytes as soon as they are here.
      let i = offset;
      const header = (this.header ??= Buffer.allocUnsafe(MAX_HEADER));
      while (this.headerLength < 2 && i < chunk.length) header[this.headerLength++] = chunk[i++]!;
      if (this.headerLength < 2) return i;
      if (this.headerLength === 2 && i > offset && !this.checkFirstBytes(header[0]!, header[1]!)) return chunk.length;
      const needed = headerLengthOf(header[1]!);
      while (this.headerLength < needed && i < chunk.length) header[this.headerLength++] = chunk[i++]!;
      if (this.headerLength < needed) return i;
      this.headerLength = 0;
      src = header;
      at = 0;
      next = i;
    }

    const b0 = src[at]!;
    const b1 = src[at + 1]!;
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    this.masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    at += 2;
    if (length === 126) {
      length = (src[at]! << 8) | src[at + 1]!;
      at += 2;
    } else if (length === 127) {
      const hi = src.readUInt32BE(at);
      const lo = src.readUInt32BE(at + 4);
      at += 8;
      // §5.2: "the most significant bit MUST be 0".
      if (hi & 0x80000000) return this.fail(CloseCode.ProtocolError, 'invalid 64-bit payload length', chunk);
      // Anything ≥ 2^32 is far above any limit we allow; checking here keeps the arithmetic exact.
      if (hi !== 0) return this.fail(CloseCode.MessageTooBig, 'message too big', chunk);
      length = lo;
    }
    if (this.masked) this.maskKey = packMaskKey(src, at);

    if (isControl(this.opcode)) {
      this.control = length === 0 ? EMPTY : Buffer.allocUnsafe(length);
    } else {
      if (this.opcode !== Opcode.Continuation) {
        this.messageOpcode = this.opcode;
        this.messageLength = 0;
        this.compressed = (b0 & RSV1) !== 0;
        this.compressedLength = 0;
        this.utf8?.reset();
      }
      // §10.4: enforce the limit on the declared length, summed over fragments, before buffering.
      // A compressed message is held to its inflated size as it inflates, and to a bound on its input.
      if (this.compressed) {
        this.compressedLength += length;
        if (this.compressedLength > maxCompressedBytes(this.options.maxMessageBytes)) {
          return this.fail(CloseCode.MessageTooBig, 'message too big', chunk);
        }
      } else if (this.messageLength + length > this.options.maxMessageBytes) {
        return this.fail(CloseCode.MessageTooBig, 'message too big', chunk);
      }
    }

    this.remaining = length;
    this.payloadOffset = 0;
    this.state = PAYLOAD;
    if (length === 0) this.endFrame();
    return next;
  }

  /** The checks that need only the first two header bytes, so a bad frame fails as early as possible. */
  private checkFirstBytes(b0: number, b1: number): boolean {
    const opcode = b0 & 0x0f;
    // §5.2: RSV1-3 MUST be 0 unless an extension defining them was negotiated. RFC 7692 §6 defines
    // RSV1, on the first frame of a data message only: not on control frames, not on continuations.
    if (b0 & 0x30) return this.failEarly(CloseCode.ProtocolError, 'reserved bits set');
    if (b0 & RSV1) {
      if (this.options.deflate === undefined) return this.failEarly(CloseCode.ProtocolError, 'reserved bits set');
      if (isControl(opcode)) return this.failEarly(CloseCode.ProtocolError, 'RSV1 on a control frame');
      if (opcode === Opcode.Continuation) {
        return this.failEarly(CloseCode.ProtocolError, 'RSV1 on a continuation frame');
      }
    }
    if (isControl(opcode)) {
      // §5.2: opcodes 0xB-0xF are reserved for further control frames.
      if (opcode > Opcode.Pong) return this.failEarly(CloseCode.ProtocolError, 'reserved opcode');
      // §5.5: control frames MUST NOT be fragmented and have a payload of 125 bytes or less.
      if (!(b0 & 0x80)) return this.failEarly(CloseCode.ProtocolError, 'fragmented control frame');
      if ((b1 & 0x7f) > MAX_CONTROL_PAYLOAD) return this.failEarly(CloseCode.ProtocolError, 'control frame too long');
    } else if (opcode > Opcode.Binary) {
      // §5.2: opcodes 0x3-0x7 are reserved for further data frames.
      return this.failEarly(CloseCode.ProtocolError, 'reserved opcode');
    } else if (opcode === Opcode.Continuation) {
      // §5.4: a continuation frame belongs to a message started by a text or binary frame.
      if (this.messageOpcode === 0) return this.failEarly(CloseCode.ProtocolError, 'continuation without a message');
    } else if (this.messageOpcode !== 0) {
      // §5.4: fragments of one message are not interleaved with another data message.
      return this.failEarly(CloseCode.ProtocolError, 'new message inside a fragmented message');
    }
    // §5.1: a client masks every frame it sends, a server masks none.
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.options.expectMasked) {
      const why = masked ? 'masked frame from server' : 'unmasked frame from client';
      return this.failEarly(CloseCode.ProtocolError, why);
    }
    return true;
  }

  private readPayload(chunk: Buffer, offset: number): number {
    const n = Math.min(this.remaining, chunk.length - offset);
    const end = offset + n;

    if (isControl(this.opcode)) {
      chunk.copy(this.control, this.payloadOffset, offset, end);
      const at = this.payloadOffset;
      if (this.masked) applyPackedMask(this.control, at, at + n, this.maskKey, at);
    } else if (this.compressed) {
      // RFC 7692 §7.2.2: inflate as it arrives (unmasked in place, like the fast path below).
      if (this.masked) applyPackedMask(chunk, offset, end, this.maskKey, this.payloadOffset);
      if (!this.inflate(chunk, offset, end)) return chunk.length;
    } else if (this.fin && this.opcode !== Opcode.Continuation && n === this.remaining && this.payloadOffset === 0) {
      // Fast path: a whole unfragmented message inside this chunk is unmasked in place, not copied.
      if (this.masked) applyPackedMask(chunk, offset, end, this.maskKey, 0);
      const data = chunk.subarray(offset, end);
      this.remaining = 0;
      this.state = HEADER;
      this.messageOpcode = 0;
      if (this.opcode === Opcode.Text && !isUtf8(data)) {
        return this.fail(CloseCode.InvalidPayload, 'invalid UTF-8 in text message', chunk);
      }
      this.handler.onMessage(this.opcode === Opcode.Binary, data);
      return end;
    } else {
      const buffer = this.reserve(n);
      const at = this.messageLength;
      chunk.copy(buffer, at, offset, end);
      if (this.masked) applyPackedMask(buffer, at, at + n, this.maskKey, this.payloadOffset);
      this.messageLength += n;
      // §8.1: fail fast: a text message is invalid from its first bad byte, whatever follows.
      if (this.messageOpcode === Opcode.Text && !this.validator().update(buffer, at, at + n)) {
        return this.fail(CloseCode.InvalidPayload, 'invalid UTF-8 in text message', chunk);
      }
    }

    this.remaining -= n;
    this.payloadOffset += n;
    if (this.remaining === 0) this.endFrame();
    return end;
  }

  /** Room for `n` more message bytes; grows geometrically, never past the limit or the known final size. */
  private reserve(n: number): Buffer {
    const needed = this.messageLength + n;
    const current = this.messageBuffer;
    if (current !== null && current.length >= needed) return current;
    let size = Math.max(needed, current === null ? MIN_MESSAGE_BUFFER : current.length * 2);
    // A final frame tells us the message's exact size; a limit bounds every other case.
    const bound = this.fin ? this.messageLength + this.remaining : this.options.maxMessageBytes;
    size = Math.max(needed, Math.min(size, bound));
    const grown = Buffer.allocUnsafe(size);
    if (current !== null) current.copy(grown, 0, 0, this.messageLength);
    this.messageBuffer = grown;
    return grown;
  }

  private endFrame(): void {
    this.state = HEADER;
    const opcode = this.opcode;
    if (isControl(opcode)) {
      const payload = this.control;
      this.control = EMPTY;
      if (opcode === Opcode.Ping) this.handler.onPing(payload);
      else if (opcode === Opcode.Pong) this.handler.onPong(payload);
      else this.endClose(payload);
      return;
    }
    if (!this.fin) return;
    if (this.compressed) {
      this.endCompressed();
      return;
    }
    // §8.1: the message must not end inside a code point.
    if (this.messageOpcode === Opcode.Text && this.utf8 !== null && !this.utf8.complete) {
      this.fail(CloseCode.InvalidPayload, 'invalid UTF-8 in text message');
      return;
    }
    const data = this.messageBuffer === null ? EMPTY : this.messageBuffer.subarray(0, this.messageLength);
    const binary = this.messageOpcode === Opcode.Binary;
    this.messageBuffer = null;
    this.messageLength = 0;
    this.messageOpcode = 0;
    this.handler.onMessage(binary, data);
  }

  /** The UTF-8 state of the text message in progress, made on first need. */
  private validator(): Utf8Validator {
    return (this.utf8 ??= new Utf8Validator());
  }

  /** The connection's inflater, made on its first compressed message (it holds zlib only while in use). */
  private inflaterOf(): Inflater {
    return (this.inflater ??= new Inflater(this.options.deflate!.inflateTakeover, this.options.maxMessageBytes));
  }

  /** Inflates a piece of a compressed message; false when that failed the connection. */
  private inflate(input: Buffer, start: number, end: number): boolean {
    const inflater = this.inflaterOf();
    const before = inflater.length;
    let within: boolean;
    try {
      within = inflater.write(input, start, end);
    } catch {
      // The payload is not the DEFLATE data RSV1 announced (as ws and others, 1007: inconsistent data).
      this.fail(CloseCode.InvalidPayload, 'invalid compressed data');
      return false;
    }
    if (!within) {
      this.fail(CloseCode.MessageTooBig, 'message too big');
      return false;
    }
    // §8.1: fail fast on the inflated text, as for uncompressed fragments.
    const text = this.messageOpcode === Opcode.Text;
    if (text && !this.validator().update(inflater.output ?? EMPTY, before, inflater.length)) {
      this.fail(CloseCode.InvalidPayload, 'invalid UTF-8 in text message');
      return false;
    }
    return true;
  }

  /** RFC 7692 §7.2.2: the last frame is in: append the empty-block tail, inflate, deliver. */
  private endCompressed(): void {
    const inflater = this.inflaterOf();
    const before = inflater.length;
    let data: Buffer | null;
    try {
      data = inflater.finish();
    } catch {
      this.fail(CloseCode.InvalidPayload, 'invalid compressed data');
      return;
    }
    if (data === null) {
      this.fail(CloseCode.MessageTooBig, 'message too big');
      return;
    }
    const binary = this.messageOpcode === Opcode.Binary;
    const utf8 = binary ? null : this.validator();
    if (utf8 !== null && !(utf8.update(data, before, data.length) && utf8.complete)) {
      this.fail(CloseCode.InvalidPayload, 'invalid UTF-8 in text message');
      return;
    }
    this.messageOpcode = 0;
    this.compressed = false;
    this.handler.onMessage(binary, data);
  }

  private endClose(payload: Buffer): void {
    // §5.5.1: nothing after a close frame is processed.
    this.stop();
    if (payload.length === 0) {
      this.handler.onClose(CloseCode.NoStatus, '');
      return;
    }
    // §5.5.1: a body starts with a 2-byte code, so a 1-byte body is malformed.
    if (payload.length === 1) {
      this.fail(CloseCode.ProtocolError, 'close frame with a 1-byte payload');
      return;
    }
    const code = payload.readUInt16BE(0);
    // §7.4: only codes that may be sent on the wire are accepted.
    if (!isValidCloseCode(code)) {
      this.fail(CloseCode.ProtocolError, `invalid close code ${code}`);
      return;
    }
    // §5.5.1: the reason is UTF-8 text.
    const reason = payload.subarray(2);
    if (!isUtf8(reason)) {
      this.fail(CloseCode.InvalidPayload, 'invalid UTF-8 in close reason');
      return;
    }
    this.handler.onClose(code, reason.toString('utf8'));
  }

  private failEarly(code: number, reason: string): false {
    this.fail(code, reason);
    return false;
  }

  /** Ends parsing with a protocol error; returns an offset past the chunk so push() stops. */
  private fail(code: number, reason: string, chunk?: Buffer): number {
    this.stop();
    this.handler.onProtocolError(code, reason);
    return chunk ? chunk.length : 0;
  }
}

/** Header size announced by the second byte: 2, plus the extended length, plus the mask key. */
function headerLengthOf(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}
