/**
 * The load client: many chat connections in one thread, without the per-message promises of
 * WebSocketConnection.read(). Each socket does the product's client handshake (raw-websocket.ts),
 * then a FrameParser (client role: server frames are unmasked, RFC 6455 §5.1) whose handler only
 * counts messages and reads the send timestamp out of chat messages. Frames we send are masked
 * (§5.3).
 *
 * A chat message's text is "t=<µs> s=<sender> q=<seq> <padding>", where <µs> is nowUs() at send
 * time; the latency of a delivery is nowUs() when its socket chunk arrived minus that number. The
 * clients of one scenario may be spread over several threads (load-threads.ts): the clock is the
 * same in all of them.
 */
import type { Socket } from 'node:net';
import { FrameParser, type FrameHandler } from '../../src/websocket/frame-parser';
import { closePayload, encodeFrame } from '../../src/websocket/frame-writer';
import { Opcode } from '../../src/websocket/opcodes';
import { CHAT, DIALECTS, ERROR, JOIN, LEAVE, type Dialect, type DialectReader } from './dialect';
import { CHATS, ENDED, ERRORS, JOINS, LEAVES, REORDERED, type Totals } from './load-counters';
import { openRawWebSocket } from './raw-websocket';

/**
 * Microseconds on the process-wide monotonic clock (CLOCK_MONOTONIC through process.hrtime), the
 * same in every thread of the process: a message stamped by a sender in one thread is timed by a
 * receiver in another. (performance.now() happens to share one origin across threads in Node 20,
 * but the web platform gives each worker its own, so we do not rely on it.) Nanoseconds since boot
 * stay exact in a double for 104 days of uptime; after that the error is a few ns.
 */
export function nowUs(): number {
  return Math.round(Number(process.hrtime.bigint()) / 1000);
}

export interface SenderHooks {
  /** A chat message this client sent came back to it. */
  onOwnMessage(client: BenchClient): void;
}

// The clock is read once per socket chunk, not once per message.
let chunkTimeUs = 0;

/** Length of `","message":"t=`, between the sender's name and the timestamp. */
const NAME_TO_STAMP = 15;
const LEFT_SUFFIX = ' left the chat';
/** 200 handshakes at once on a busy server take a while. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Just past the number readNumber() read last. */
let numberEnd = 0;

/** The decimal number at data[at...]. */
function readNumber(data: Buffer, at: number): number {
  let v = 0;
  let i = at;
  for (let b = data[i]!; b >= 0x30 && b <= 0x39; b = data[++i]!) v = v * 10 + (b - 0x30);
  numberEnd = i;
  return v;
}

export interface ClientOptions {
  readonly port: number;
  readonly name: string;
  readonly totals: Totals;
  readonly dialect: Dialect;
  /** Offer permessage-deflate, and inflate what the server compressed. */
  readonly compression?: boolean;
  /** This client's index among the senders, or -1. */
  readonly senderIndex?: number;
  /** Number of senders, to size the per-sender ordering check. */
  readonly senders: number;
  readonly hooks?: SenderHooks;
}

export class BenchClient implements FrameHandler {
  readonly name: string;
  readonly senderIndex: number;
  socket: Socket | undefined;
  private parser: FrameParser | null = null;
  private readonly totals: Totals;
  private readonly hooks: SenderHooks | undefined;
  private readonly dialect: DialectReader;
  /** Chat messages received on this connection. */
  chats = 0;
  /** Last seq seen from each sender (ordering check). */
  private readonly lastSeq: Int32Array;
  /** Chat messages sent by this client. */
  sent = 0;
  /** The server's close code, if a close frame arrived. */
  closeCode: number | undefined;
  /** The TCP connection is gone. */
  ended = false;
  /** Bytes received after the handshake. */
  bytes = 0;
  readonly endedPromise: Promise<void>;
  private resolveEnded!: () => void;

  constructor(private readonly options: ClientOptions) {
    this.name = options.name;
    this.totals = options.totals;
    this.hooks = options.hooks;
    this.dialect = DIALECTS[options.dialect];
    this.senderIndex = options.senderIndex ?? -1;
    this.lastSeq = new Int32Array(Math.max(1, options.senders)).fill(-1);
    this.endedPromise = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** Opens the connection (the product's handshake) and sends the name, the chat's first message. */
  async open(): Promise<void> {
    const { socket, rest, deflate } = await openRawWebSocket({
      port: this.options.port,
      timeoutMs: HANDSHAKE_TIMEOUT_MS,
      compression: this.options.compression === true,
      onData: (chunk) => {
        chunkTimeUs = nowUs();
        this.bytes += chunk.length;
        this.totals.received(chunk.length);
        this.parser!.push(chunk);
      },
    }).catch((error: Error) => {
      throw new Error(`${this.name}: ${error.message}`);
    });
    this.socket = socket;
    const inflate = deflate === undefined ? {} : { deflate: { inflateTakeover: deflate.inflateTakeover } };
    this.parser = new FrameParser({ maxMessageBytes: 16 * 1024 * 1024, expectMasked: false, ...inflate }, this);
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.totals.count(ENDED);
      this.parser!.stop();
      this.resolveEnded();
    });
    if (rest.length > 0) {
      chunkTimeUs = nowUs();
      this.parser.push(rest);
    }
    this.sendText(this.name);
  }

  /** Sends one masked text frame. */
  sendText(text: string): boolean {
    if (this.ended || this.socket === undefined || this.socket.destroyed) return false;
    return this.socket.write(encodeFrame(Opcode.Text, text, /* masked */ true));
  }

  /** Sends a timestamped chat message (see the file comment for the format). */
  sendChat(padding: string): boolean {
    const seq = this.sent++;
    return this.sendText(`t=${nowUs()} s=${this.senderIndex} q=${seq}${padding}`);
  }

  destroy(): void {
    this.socket?.destroy();
  }

  // ---- FrameHandler ----

  onMessage(_binary: boolean, data: Buffer): void {
    const totals = this.totals;
    switch (this.dialect.kind(data)) {
      case CHAT:
        this.onChat(data);
        return;
      case JOIN:
        totals.count(JOINS);
        return;
      case LEAVE:
        totals.count(LEAVES);
        if (totals.watchLeaves) this.noteLeave(data);
        return;
      case ERROR:
        totals.count(ERRORS);
        return;
    }
  }

  private onChat(data: Buffer): void {
    // Skip the sender's name (our names have no quote or escape), then ","message":"t=.
    let i = this.dialect.userAt;
    while (i < data.length && data[i] !== 0x22) i++;
    const t = readNumber(data, i + NAME_TO_STAMP);
    const s = readNumber(data, numberEnd + 3); // past " s="
    const q = readNumber(data, numberEnd + 3); // past " q="
    this.chats++;
    const totals = this.totals;
    totals.count(CHATS);
    totals.recordLatency(chunkTimeUs - t);
    if (s < this.lastSeq.length) {
      if (q <= this.lastSeq[s]!) totals.count(REORDERED);
      this.lastSeq[s] = q;
    }
    if (s === this.senderIndex && this.hooks !== undefined) this.hooks.onOwnMessage(this);
  }

  private noteLeave(data: Buffer): void {
    // ..."message":"<name> left the chat"...
    const text = data.toString('utf8');
    const at = text.indexOf('"message":"');
    const end = text.indexOf(LEFT_SUFFIX, at);
    if (at !== -1 && end !== -1) this.totals.leftNames.push(text.slice(at + 11, end));
  }

  onPing(payload: Buffer): void {
    // §5.5.2: answer with a pong carrying the same payload.
    if (!this.ended) this.socket!.write(encodeFrame(Opcode.Pong, payload, /* masked */ true));
  }

  onPong(): void {}

  onClose(code: number): void {
    this.closeCode = code;
    // §5.5.1: echo the close; the server then closes TCP.
    const socket = this.socket!;
    if (!this.ended && !socket.destroyed) {
      socket.write(encodeFrame(Opcode.Close, closePayload(code === 1005 ? 1000 : code), /* masked */ true));
    }
  }

  onProtocolError(code: number): void {
    this.closeCode = code;
    this.socket!.destroy();
  }
}

/**
 * Opens `count` clients, `concurrency` handshakes at a time, into `opened` (so that the caller can
 * destroy those already open when one fails: the promise rejects with the first failure).
 */
export async function openClients(
  count: number,
  make: (i: number) => BenchClient,
  opened: BenchClient[],
  concurrency: number,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const c = make(next++);
      opened.push(c);
      await c.open();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
