/**
 * The load client: many chat connections in one process, built on our own codec but without the
 * per-message promises of WebSocketConnection.read(). Each socket gets a minimal client handshake
 * (RFC 6455 §4.1) and then a FrameParser (client role: server frames are unmasked, §5.1) whose
 * handler only counts messages and reads the send timestamp out of chat messages. Frames we send
 * are masked with encodeFrame(..., masked = true) (§5.3).
 *
 * A chat message's text is "t=<µs> s=<sender> q=<seq> <padding>", where <µs> is this process's
 * clock (performance.now() in microseconds) at send time; the latency of a delivery is the clock
 * when its socket chunk arrived minus that number.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameParser, type FrameHandler } from '../websocket/frame-parser';
import { encodeFrame } from '../websocket/frame-writer';
import { acceptKey } from '../websocket/handshake';
import { Opcode } from '../websocket/opcodes';
import { Histogram } from './histogram';

/** Microseconds on this process's monotonic clock. */
export function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

/** Counters shared by every client of one scenario (one object: the handler touches it per message). */
export class Totals {
  chats = 0;
  joins = 0;
  leaves = 0;
  errors = 0;
  privates = 0;
  /** Chat messages seen out of order or twice on one connection (should stay 0). */
  reordered = 0;
  bytes = 0;
  /** Latency of chat deliveries, only while `recording` is true. */
  readonly latency = new Histogram();
  recording = false;
  /** Leave notices, by the name that left ("<name> left the chat"), when `watchLeaves` is set. */
  readonly leftNames: string[] = [];
  watchLeaves = false;
}

export interface SenderHooks {
  /** A chat message this client sent came back to it. */
  onOwnMessage(client: BenchClient, seq: number): void;
}

// The clock is read once per socket chunk, not once per message.
let chunkTimeUs = 0;

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
    const key = randomBytes(16).toString('base64');
    const expected = acceptKey(key);
    const request =
      'GET /ws HTTP/1.1\r\n' +
      `Host: 127.0.0.1:${this.options.port}\r\n` +
      'Upgrade: websocket\r\n' +
      'Connection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${key}\r\n` +
      'Sec-WebSocket-Version: 13\r\n\r\n';
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port: this.options.port });
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
      const onData = (chunk: Buffer): void => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) {
          if (head.length > 16384) fail(new Error(`${this.name}: handshake response too large`));
          return;
        }
        const text = head.subarray(0, end).toString('latin1');
        if (!text.startsWith('HTTP/1.1 101')) {
          fail(new Error(`${this.name}: ${text.split('\r\n')[0]} ${head.subarray(end + 4).toString('utf8').trim()}`));
          return;
        }
        // §4.1: the client checks Sec-WebSocket-Accept against its key.
        const m = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text);
        if (m === null || m[1] !== expected) {
          fail(new Error(`${this.name}: bad Sec-WebSocket-Accept`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onEarlyClose);
        this.attach(head.subarray(end + 4));
        resolve();
      };
      const onEarlyClose = (): void => fail(new Error(`${this.name}: closed during the handshake`));
      socket.on('data', onData);
      socket.on('error', fail);
      socket.on('close', onEarlyClose);
      socket.write(request);
    });
  }

  private attach(rest: Buffer): void {
    const socket = this.socket;
    this.parser = new FrameParser({ maxMessageBytes: 16 * 1024 * 1024, expectMasked: false }, this);
    socket.removeAllListeners('error');
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      chunkTimeUs = nowUs();
      this.bytes += chunk.length;
      this.totals.bytes += chunk.length;
      this.parser!.push(chunk);
    });
    socket.on('close', () => {
      this.ended = true;
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
        totals.joins++;
        return;
      case CH_L:
        totals.leaves++;
        if (totals.watchLeaves) this.noteLeave(data);
        return;
      case CH_E:
        totals.errors++;
        return;
      case CH_P:
        totals.privates++;
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
    totals.chats++;
    if (totals.recording) totals.latency.record(chunkTimeUs - t);
    if (s < this.lastSeq.length) {
      if (q <= this.lastSeq[s]!) totals.reordered++;
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
