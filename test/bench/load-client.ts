/**
 * The load client: many chat connections in one process, built on our own codec but without the
 * per-message promises of WebSocketConnection.read(). Each socket gets a minimal client handshake
 * (RFC 6455 §4.1) and then a FrameParser (client role: server frames are unmasked, §5.1) whose
 * handler only counts messages and reads the send timestamp out of chat messages. Frames we send
 * are masked with encodeFrame(..., masked = true) (§5.3).
 *
 * A chat message's text is "t=<µs> s=<sender> q=<seq> <padding>", where <µs> is nowUs() at send
 * time; the latency of a delivery is nowUs() when its socket chunk arrived minus that number. The
 * clients of one scenario may be spread over several threads (load-threads.ts): the clock is the
 * same in all of them.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { FrameParser, type FrameHandler } from '../../src/websocket/frame-parser';
import { encodeFrame } from '../../src/websocket/frame-writer';
import { checkHandshakeAnswer, clientRequest, newClientKey } from '../../src/websocket/handshake';
import { Opcode } from '../../src/websocket/opcodes';
import { Histogram } from './histogram';

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

// ---- counters shared between threads ----

/**
 * Int32 slots per block of the shared counters: 16 × 4 bytes is one cache line, so threads never
 * write to the same line. Block 0 is the control block (written by the main thread), block t + 1
 * holds the counters of the clients of thread t (written by that thread only).
 */
const BLOCK = 16;
export const CHATS = 0;
export const JOINS = 1;
export const LEAVES = 2;
export const ERRORS = 3;
export const PRIVATES = 4;
/** Chat messages seen out of order or twice on one connection (should stay 0). */
export const REORDERED = 5;
/** Connections whose TCP connection is gone. */
export const ENDED = 6;
/** Control word: the number of the measurement in progress, 0 when latency is not recorded. */
const RECORDING = 0;

/** The counters of `threads` threads and the control block, to hand to every thread. */
export function sharedCounters(threads: number): SharedArrayBuffer {
  return new SharedArrayBuffer((threads + 1) * BLOCK * 4);
}

/** Reads slot `slot` of thread `thread` (from any thread). */
export function readCounter(shared: Int32Array, thread: number, slot: number): number {
  return Atomics.load(shared, (thread + 1) * BLOCK + slot);
}

/** Starts measurement number `generation` (> 0) in every thread, or stops it (0). */
export function setRecording(shared: Int32Array, generation: number): void {
  Atomics.store(shared, RECORDING, generation);
}

/**
 * The counters of the clients of one thread (one object: the handler touches it per message). They
 * sit in this thread's block of the shared counters, so the main thread can follow every thread's
 * progress (joins, deliveries) while it runs, without messages; latency stays in a local histogram
 * that is sent over once at the end.
 */
export class Totals {
  /** This thread's block: counts[CHATS], counts[JOINS], ... Written with Atomics, read from anywhere. */
  readonly counts: Int32Array;
  private readonly control: Int32Array;
  /** Latency of chat deliveries during measurement number `generation`. */
  readonly latency = new Histogram();
  generation = 0;
  /** Leave notices, by the name that left ("<name> left the chat"), when `watchLeaves` is set. */
  readonly leftNames: string[] = [];
  watchLeaves = false;

  constructor(shared: SharedArrayBuffer = sharedCounters(1), thread = 0) {
    this.control = new Int32Array(shared, 0, BLOCK);
    this.counts = new Int32Array(shared, (thread + 1) * BLOCK * 4, BLOCK);
  }

  count(slot: number): void {
    Atomics.add(this.counts, slot, 1);
  }

  /** Records one delivery's latency if a measurement is in progress (the first sample of a new one resets). */
  recordLatency(us: number): void {
    const generation = Atomics.load(this.control, RECORDING);
    if (generation === 0) return;
    if (generation !== this.generation) {
      this.latency.reset();
      this.generation = generation;
    }
    this.latency.record(us);
  }
}

export interface SenderHooks {
  /** A chat message this client sent came back to it. */
  onOwnMessage(client: BenchClient, seq: number): void;
}

// The clock is read once per socket chunk, not once per message.
let chunkTimeUs = 0;

/**
 * Every socket of this thread reads into this one buffer (net's `onread` option): no Buffer is
 * allocated per read and the data skips the stream machinery (a fifth of the load client's CPU per
 * delivery: about 4.2 µs instead of 5.5). Safe because a chunk is used up before the next read: the handler is
 * synchronous, FrameParser copies whatever it keeps of an incomplete frame (the header, a partial
 * payload), the messages it hands over are read at once, and the handshake phase copies its bytes.
 */
const readBuffer = Buffer.allocUnsafe(64 * 1024);

// Byte offsets in the server's JSON: {"type":"chat","user":"<name>","message":"t=...
const TYPE_AT = 9; // data[9] is the first letter of the type
const USER_AT = 23; // after {"type":"chat","user":"
const AFTER_USER = 13; // length of ","message":"
const CH_QUOTE = 0x22;
const CH_J = 0x6a; // join
const CH_L = 0x6c; // leave
const CH_C = 0x63; // chat
const CH_E = 0x65; // error
const CH_P = 0x70; // private

const LEFT_SUFFIX = ' left the chat';

export interface ClientOptions {
  port: number;
  name: string;
  totals: Totals;
  /** This client's index among the senders, or -1. */
  senderIndex?: number;
  /** Number of senders, to size the per-sender ordering check. */
  senders: number;
  hooks?: SenderHooks;
  timeoutMs?: number;
}

export class BenchClient implements FrameHandler {
  readonly name: string;
  readonly senderIndex: number;
  socket!: Socket;
  private parser: FrameParser | null = null;
  /** Reads before the handshake is complete go here. */
  private onHandshakeData: ((chunk: Buffer) => void) | null = null;
  private readonly totals: Totals;
  private readonly hooks: SenderHooks | undefined;
  /** Chat messages received on this connection. */
  chats = 0;
  /** Last seq seen from each sender (ordering check). */
  private readonly lastSeq: Int32Array;
  /** Chat messages sent by this client. */
  sent = 0;
  /** The server's close code, if a close frame arrived. */
  closeCode: number | undefined;
  closeReason = '';
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
    this.senderIndex = options.senderIndex ?? -1;
    this.lastSeq = new Int32Array(Math.max(1, options.senders)).fill(-1);
    this.endedPromise = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** Opens the TCP connection, does the handshake, and sends the name (the chat's first message). */
  open(): Promise<void> {
    const key = newClientKey();
    const request = clientRequest(new URL(`ws://127.0.0.1:${this.options.port}/ws`), key);
    return new Promise((resolve, reject) => {
      const socket = netConnect({
        host: '127.0.0.1',
        port: this.options.port,
        onread: { buffer: readBuffer, callback: (n: number, buffer: Uint8Array) => this.onRead(n, buffer as Buffer) },
      });
      this.socket = socket;
      socket.setNoDelay(true);
      let head: Buffer = Buffer.alloc(0);
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`${this.name}: handshake timed out`)), this.options.timeoutMs ?? 30_000);
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      // `chunk` is in the shared read buffer: copied before it is kept.
      this.onHandshakeData = (chunk: Buffer): void => {
        head = head.length === 0 ? Buffer.from(chunk) : Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) {
          if (head.length > 16384) fail(new Error(`${this.name}: handshake response too large`));
          return;
        }
        const answer = checkHandshakeAnswer(head.subarray(0, end).toString('latin1'), key);
        if (answer.problem !== undefined) {
          fail(new Error(`${this.name}: ${answer.problem} ${head.subarray(end + 4).toString('utf8').trim()}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        this.onHandshakeData = null;
        socket.off('close', onEarlyClose);
        this.attach(head.subarray(end + 4));
        resolve();
      };
      const onEarlyClose = (): void => fail(new Error(`${this.name}: closed during the handshake`));
      socket.on('error', fail);
      socket.on('close', onEarlyClose);
      socket.write(request);
    });
  }

  /** Handles the bytes of one read from the socket (they are in the shared readBuffer). true: keep reading. */
  private onRead(n: number, buffer: Buffer): boolean {
    const chunk = buffer.subarray(0, n);
    if (this.parser !== null) {
      chunkTimeUs = nowUs();
      this.bytes += n;
      this.parser.push(chunk);
    } else {
      this.onHandshakeData?.(chunk);
    }
    return true;
  }

  private attach(rest: Buffer): void {
    const socket = this.socket;
    this.parser = new FrameParser({ maxMessageBytes: 16 * 1024 * 1024, expectMasked: false }, this);
    socket.removeAllListeners('error');
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.totals.count(ENDED);
      this.parser?.stop();
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
    if (this.ended || this.socket.destroyed) return false;
    return this.socket.write(encodeFrame(Opcode.Text, text, true));
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
    switch (data[TYPE_AT]) {
      case CH_C:
        this.onChat(data);
        return;
      case CH_J:
        totals.count(JOINS);
        return;
      case CH_L:
        totals.count(LEAVES);
        if (totals.watchLeaves) this.noteLeave(data);
        return;
      case CH_E:
        totals.count(ERRORS);
        return;
      case CH_P:
        totals.count(PRIVATES);
        return;
    }
  }

  private onChat(data: Buffer): void {
    // Skip the user name (our names have no quote or escape), then ","message":"t=.
    let i = USER_AT;
    const n = data.length;
    while (i < n && data[i] !== CH_QUOTE) i++;
    i += AFTER_USER + 2; // past "t="
    let t = 0;
    let b = data[i]!;
    while (b >= 0x30 && b <= 0x39) {
      t = t * 10 + (b - 0x30);
      b = data[++i]!;
    }
    i += 3; // past " s="
    let s = 0;
    b = data[i]!;
    while (b >= 0x30 && b <= 0x39) {
      s = s * 10 + (b - 0x30);
      b = data[++i]!;
    }
    i += 3; // past " q="
    let q = 0;
    b = data[i]!;
    while (b >= 0x30 && b <= 0x39) {
      q = q * 10 + (b - 0x30);
      b = data[++i]!;
    }
    this.chats++;
    const totals = this.totals;
    totals.count(CHATS);
    totals.recordLatency(chunkTimeUs - t);
    if (s < this.lastSeq.length) {
      if (q <= this.lastSeq[s]!) totals.count(REORDERED);
      this.lastSeq[s] = q;
    }
    if (s === this.senderIndex && this.hooks !== undefined) this.hooks.onOwnMessage(this, q);
  }

  private noteLeave(data: Buffer): void {
    // {"type":"leave","user":"System","message":"<name> left the chat",...
    const text = data.toString('utf8');
    const at = text.indexOf('"message":"');
    const end = text.indexOf(LEFT_SUFFIX, at);
    if (at !== -1 && end !== -1) this.totals.leftNames.push(text.slice(at + 11, end));
  }

  onPing(payload: Buffer): void {
    // §5.5.2: answer with a pong carrying the same payload.
    if (!this.ended) this.socket.write(encodeFrame(Opcode.Pong, payload, true));
  }

  onPong(): void {}

  onClose(code: number, reason: string): void {
    this.closeCode = code;
    this.closeReason = reason;
    // §5.5.1: echo the close; the server then closes TCP.
    if (!this.ended && !this.socket.destroyed) {
      const body = Buffer.allocUnsafe(2);
      body.writeUInt16BE(code === 1005 ? 1000 : code, 0);
      this.socket.write(encodeFrame(Opcode.Close, body, true));
    }
  }

  onProtocolError(code: number, reason: string): void {
    this.closeCode = code;
    this.closeReason = `protocol error (ours): ${reason}`;
    this.socket.destroy();
  }
}

/**
 * Opens `count` clients, `concurrency` handshakes at a time. Resolves with all of them, or rejects
 * with the first failure (the ones already open are destroyed by the caller through `opened`).
 */
export async function openClients(
  count: number,
  make: (i: number) => BenchClient,
  opened: BenchClient[],
  concurrency = 200,
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
