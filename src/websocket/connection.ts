/**
 * One WebSocket connection over a TCP socket, for either role (RFC 6455).
 *
 * Reading mirrors gorilla's ReadMessage: `read()` (or `for await`) yields whole messages. Control
 * frames are handled here: pings are answered (§5.5.2), a close is echoed (§5.5.1), and protocol
 * errors fail the connection with the parser's close code (§7.1.7). A small inbound queue pauses the
 * socket when the reader falls behind, so a fast sender cannot make us buffer without bound.
 *
 * Writing is synchronous and reports backpressure: `send*()` returns false once the socket's buffer
 * is above its high-water mark, and `drained()` says when to go on. Above `maxBufferedBytes` of
 * unsent data the peer is too slow to keep: the connection is closed with 1008 and dropped.
 *
 * A heartbeat (gorilla's pingPeriod/pongWait) pings the peer and drops it when no pong arrived within
 * `pongTimeoutMs`, which finds peers that vanished without a FIN.
 */
import type { Socket } from 'node:net';
import { CloseCode, isValidCloseCode } from './close-codes';
import { FrameParser, type FrameHandler } from './frame-parser';
import { bytesOf, FrameBatch } from './frame-batch';
import { closePayload, encodeFrame, encodeMessageFrame, RSV1, type PreparedFrame } from './frame-writer';
import { Opcode } from './opcodes';
import type { DeflateSettings } from './permessage-deflate';
import { countCode, UNOBSERVED, type WebSocketStats } from './stats';

export type Role = 'server' | 'client';

export interface ConnectionOptions {
  role: Role;
  /** Largest inbound message (§10.4). */
  maxMessageBytes: number;
  /** Ping period; 0 turns the heartbeat off. */
  pingIntervalMs?: number;
  /** Drop the peer when nothing answered our pings for this long. */
  pongTimeoutMs?: number;
  /** After sending a close frame, wait this long for the peer's before destroying the socket. */
  closeTimeoutMs?: number;
  /** Unsent outbound bytes above which the peer is too slow to keep. */
  maxBufferedBytes?: number;
  /** Messages read from the socket but not yet taken by read(); above it the socket is paused. */
  readQueueSize?: number;
  /** permessage-deflate as negotiated in the handshake (RFC 7692); absent: not negotiated. */
  deflate?: DeflateSettings;
  /** Counters shared by a server's connections (see ./stats.ts); absent: counted where nobody looks. */
  stats?: WebSocketStats;
}

export type Message =
  | { readonly binary: false; readonly data: string }
  | { readonly binary: true; readonly data: Buffer };

/** §7.1.5/§7.1.6: the close code the peer sent, 1005 for an empty close, 1006 if none came. */
export interface CloseInfo {
  readonly code: number;
  /** The peer's reason; without a close frame from the peer, why we dropped the connection. */
  readonly reason: string;
  /** Both sides exchanged close frames (§7.1.5's "cleanly"). */
  readonly wasClean: boolean;
  /** The code we sent, if we sent a close frame. */
  readonly sentCode: number | undefined;
}

export type ReadyState = 'open' | 'closing' | 'closed';

/** Five seconds is ample for a close echo on a live link; a dead one must not hold the socket. */
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/** Messages the reader may fall behind by before we stop reading the socket. */
const DEFAULT_READ_QUEUE = 16;
/** 1 MiB of unsent data is ~250 full-size chat messages: a peer that far behind is not reading. */
const DEFAULT_MAX_BUFFERED = 1024 * 1024;

/** One listener for every connection's socket errors, not a closure each. */
const ignore = (): void => {};

export class WebSocketConnection implements FrameHandler {
  readonly role: Role;
  /** Resolves once the TCP connection is gone. Never rejects. */
  readonly closed: Promise<CloseInfo>;

  private readonly socket: Socket;
  private readonly parser: FrameParser;
  private readonly masked: boolean;
  private readonly closeTimeoutMs: number;
  private readonly maxBufferedBytes: number;
  private readonly readQueueSize: number;
  /** RFC 7692: the window our compressed messages use; 0 when permessage-deflate was not negotiated. */
  private readonly deflateWindowBits: number;
  private readonly stats: WebSocketStats;

  private state: ReadyState = 'open';
  private sentCode: number | undefined;
  private receivedClose = false;
  /** Set when the peer broke the protocol: the close code we fail the connection with. */
  private failCode: number | undefined;
  private closeCode: number = CloseCode.Abnormal;
  private closeReason = '';
  private resolveClosed!: (info: CloseInfo) => void;

  private readonly inbox: Message[] = [];
  private reader: ((message: Message | null) => void) | null = null;
  private paused = false;

  private closeTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly pingIntervalMs: number;
  private readonly pongTimeoutMs: number;
  private lastSeen = 0;
  private nextPingAt = 0;

  constructor(socket: Socket, options: ConnectionOptions, head?: Buffer) {
    this.socket = socket;
    this.role = options.role;
    this.masked = options.role === 'client'; // §5.1: clients mask, servers do not
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    this.readQueueSize = options.readQueueSize ?? DEFAULT_READ_QUEUE;
    this.pingIntervalMs = options.pingIntervalMs ?? 0;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 0;
    this.deflateWindowBits = options.deflate?.windowBits ?? 0;
    this.stats = options.stats ?? UNOBSERVED;
    this.stats.opened++;
    this.parser = new FrameParser(
      {
        maxMessageBytes: options.maxMessageBytes,
        expectMasked: options.role === 'server',
        ...(options.deflate ? { deflate: options.deflate } : {}),
      },
      this,
    );
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));

    socket.setNoDelay(true); // chat messages are small and latency matters more than packet count
    socket.setTimeout(0);
    socket.on('data', (chunk: Buffer) => {
      this.stats.bytesIn += chunk.length;
      this.parser.push(chunk);
    });
    socket.on('error', ignore); // 'close' follows every error; the cause is not the peer's business
    socket.on('end', () => this.onSocketEnd());
    socket.on('close', () => this.onSocketClose());
    if (head && head.length > 0) {
      this.stats.bytesIn += head.length;
      this.parser.push(head);
    }
    if (this.pingIntervalMs > 0 && this.pongTimeoutMs > 0) this.startHeartbeat();
  }

  get readyState(): ReadyState {
    return this.state;
  }

  /**
   * The connection ended with no close frame either way: the peer just went away (TCP closed under us,
   * or the heartbeat gave up on it), rather than closing or being closed.
   */
  get vanished(): boolean {
    return this.state !== 'open' && !this.receivedClose && this.sentCode === undefined && this.failCode === undefined;
  }

  /** Bytes written but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  // ---- reading ----

  /** The next message, or null once the connection is closing or closed (gorilla's ReadMessage). */
  read(): Promise<Message | null> {
    const message = this.inbox.shift();
    if (message !== undefined) {
      if (this.paused && this.inbox.length < this.readQueueSize) {
        this.paused = false;
        this.socket.resume();
        this.parser.resume();
      }
      return Promise.resolve(message);
    }
    if (this.state !== 'open' || this.receivedClose || this.failCode !== undefined) return Promise.resolve(null);
    return new Promise((resolve) => (this.reader = resolve));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    for (let m = await this.read(); m !== null; m = await this.read()) yield m;
  }

  // ---- writing ----

  /** permessage-deflate was negotiated (RFC 7692). */
  get compression(): boolean {
    return this.deflateWindowBits !== 0;
  }

  /**
   * Sends one text (string) or binary message, compressed when permessage-deflate was negotiated and
   * that makes it smaller. Returns false when the caller should await drained().
   */
  send(data: string | Uint8Array, binary = typeof data !== 'string'): boolean {
    if (this.state !== 'open') return false;
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const bits = this.deflateWindowBits;
    this.stats.messagesOut++;
    if (bits === 0) return this.write(encodeFrame(opcode, data, this.masked));
    const frame = encodeMessageFrame(opcode, data, this.masked, bits);
    if ((frame[0]! & RSV1) !== 0) this.stats.compressedOut++;
    return this.write(frame);
  }

  /**
   * Writes frames encoded once for many sockets (server role: §5.1 server frames are unmasked) with one
   * write: a batch goes out as a single buffer, which costs less than a corked chunk per frame, and
   * connections writing the same batch share that buffer (FrameBatch). With permessage-deflate, each
   * frame's compressed bytes: computed by the first connection that needs them, shared by all the others.
   */
  sendFrames(frames: readonly PreparedFrame[]): boolean {
    const count = frames.length;
    if (this.state !== 'open' || count === 0) return false;
    this.stats.messagesOut += count;
    const bits = this.deflateWindowBits;
    if (count === 1) {
      const frame = frames[0]!;
      const bytes = bytesOf(frame, bits);
      if (bits !== 0) this.countDeflate(frame.bytes.length, bytes.length, bytes !== frame.bytes ? 1 : 0);
      return this.write(bytes);
    }
    // Sizes and counts come with the batch: worked out once, not again by every connection that writes it.
    const batch = FrameBatch.of(frames, bits);
    if (bits !== 0) this.countDeflate(batch.plainBytes, batch.bytes.length, batch.compressed);
    return this.write(batch.bytes, batch.largest);
  }

  /** Compression on this connection: sizes before and after, and how many messages went compressed. */
  private countDeflate(before: number, after: number, compressed: number): void {
    this.stats.deflateBefore += before;
    this.stats.deflateAfter += after;
    this.stats.compressedOut += compressed;
  }

  /** Resolves when the socket has room again (or the connection is gone). */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  ping(payload: Uint8Array | string = ''): void {
    if (this.state !== 'open') return;
    this.writeControl(Opcode.Ping, typeof payload === 'string' ? Buffer.from(payload) : payload);
  }

  /**
   * Starts the closing handshake (§7.1.2): send a close frame, then wait for the peer's close
   * (§7.1.3) for at most closeTimeoutMs before dropping the TCP connection.
   */
  close(code: number = CloseCode.Normal, reason = ''): void {
    // §7.4.1: 1005, 1006 and 1015 are for reports, never for the wire.
    if (!isValidCloseCode(code)) throw new RangeError(`close code ${code} may not be sent`);
    if (this.state !== 'open') return;
    // Already ending for the peer's reason: the close we owe is theirs, not the caller's.
    if (this.receivedClose) return this.answerClose();
    if (this.failCode !== undefined) return this.failConnection();
    this.sendClose(code, reason);
    this.armCloseTimer();
  }

  /** Drops the TCP connection at once, without a closing handshake. */
  terminate(): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    this.socket.destroy();
  }

  // ---- FrameHandler: called by the parser ----

  onMessage(binary: boolean, data: Buffer): void {
    this.lastSeen = this.heartbeat ? Date.now() : 0;
    this.stats.messagesIn++;
    if (this.state !== 'open') return; // §7.1.4: after our close, data is discarded
    const message: Message = binary ? { binary: true, data } : { binary: false, data: data.toString('utf8') };
    if (this.reader !== null) {
      const reader = this.reader;
      this.reader = null;
      reader(message);
      return;
    }
    this.inbox.push(message);
    if (this.inbox.length >= this.readQueueSize && !this.paused) {
      this.paused = true;
      this.socket.pause();
      this.parser.hold(); // the rest of this chunk too: no more messages until read() takes some
    }
  }

  onPing(payload: Buffer): void {
    this.lastSeen = this.heartbeat ? Date.now() : 0;
    // §5.5.2: a pong carries the ping's payload; none is owed once we sent a close.
    if (this.state === 'open') this.writeControl(Opcode.Pong, payload);
  }

  onPong(): void {
    // §5.5.3: an unsolicited pong is allowed and needs no answer; any pong proves the peer is alive.
    this.lastSeen = this.heartbeat ? Date.now() : 0;
  }

  onClose(code: number, reason: string): void {
    this.receivedClose = true;
    this.closeCode = code;
    this.closeReason = reason;
    this.wakeReader();
    // The application may still be answering messages that came before the close (an echo, say):
    // let this turn's replies go out first, then answer the close.
    setImmediate(() => this.answerClose());
  }

  onProtocolError(code: number, reason: string): void {
    this.failCode = code;
    const drops = this.stats.drops;
    if (code === CloseCode.MessageTooBig) drops.tooBig++;
    else if (code === CloseCode.InvalidPayload) drops.invalidPayload++;
    else drops.protocolError++;
    this.closeReason = reason;
    this.wakeReader();
    // As for a close: replies to the messages before the bad frame go out first (Autobahn "strict").
    setImmediate(() => this.failConnection());
  }

  /** §5.5.1: answer the peer's close with a close frame echoing its code (none for 1005). */
  private answerClose(): void {
    if (this.state === 'closed') return;
    if (this.sentCode === undefined) {
      this.sendClose(this.closeCode === CloseCode.NoStatus ? undefined : this.closeCode, '');
    }
    // §7.1.1: the server closes the TCP connection first; a client waits for it, but not forever.
    if (this.role === 'server') this.socket.end();
    this.armCloseTimer();
  }

  /** §7.1.7 "Fail the WebSocket Connection": send a close frame with the code, then close TCP. */
  private failConnection(): void {
    if (this.state === 'closed') return;
    if (this.sentCode === undefined) this.sendClose(this.failCode, this.closeReason);
    this.socket.end();
    this.armCloseTimer();
  }

  // ---- internals ----

  /**
   * Writes, then enforces the bound on unsent bytes: above maxBufferedBytes the peer is not reading.
   * `largest` is the biggest message in `bytes`: one message larger than the bound may still be on
   * its way (an 8 MiB echo, say); anything beyond that is backlog.
   */
  private write(bytes: Buffer, largest = bytes.length): boolean {
    if (this.socket.writableLength > this.maxBufferedBytes) {
      this.dropSlowPeer();
      return false;
    }
    this.stats.bytesOut += bytes.length;
    const ok = this.socket.write(bytes);
    if (!ok && this.socket.writableLength > Math.max(this.maxBufferedBytes, largest)) {
      this.dropSlowPeer();
      return false;
    }
    return ok;
  }

  private writeControl(opcode: number, payload: Uint8Array): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.write(encodeFrame(opcode, payload, this.masked));
  }

  private sendClose(code: number | undefined, reason: string): void {
    this.state = 'closing';
    this.sentCode = code ?? CloseCode.NoStatus;
    this.wakeReader();
    if (!this.socket.destroyed && !this.socket.writableEnded) {
      const frame = encodeFrame(Opcode.Close, closePayload(code, reason), this.masked);
      this.stats.bytesOut += frame.length;
      countCode(this.stats.closeSent, this.sentCode);
      this.socket.write(frame);
    }
    // Keep reading so the peer's close reaches us even if nobody takes messages any more (§7.1.4:
    // the messages still held are discarded).
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
      this.parser.resume();
    }
  }

  private dropSlowPeer(): void {
    if (this.state === 'closed') return;
    // The close frame joins a queue the peer is not reading: say why, but do not wait for an answer.
    this.closeReason = 'too slow: outbound buffer full';
    this.stats.drops.bufferFull++;
    if (this.sentCode === undefined) this.sendClose(CloseCode.PolicyViolation, this.closeReason);
    this.socket.destroy();
  }

  private armCloseTimer(): void {
    if (this.closeTimer !== null || this.state === 'closed') return;
    this.closeTimer = setTimeout(() => {
      this.stats.drops.closeTimeout++;
      this.socket.destroy();
    }, this.closeTimeoutMs);
    this.closeTimer.unref();
  }

  private onSocketEnd(): void {
    // The peer half-closed. A server that sent its close is done; otherwise end our side too (§7.1.1).
    if (!this.socket.writableEnded) this.socket.end();
    this.armCloseTimer();
  }

  private onSocketClose(): void {
    this.state = 'closed';
    this.parser.stop();
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    if (this.heartbeat !== null) clearTimeout(this.heartbeat);
    this.closeTimer = this.heartbeat = null;
    this.wakeReader();
    const code = this.receivedClose ? this.closeCode : CloseCode.Abnormal;
    this.stats.closed++;
    countCode(this.stats.closeReceived, code);
    this.resolveClosed({
      code,
      reason: this.closeReason,
      wasClean: this.receivedClose && this.sentCode !== undefined,
      sentCode: this.sentCode,
    });
  }

  /** A pending read() learns that no more messages will come (it still drains the inbox first). */
  private wakeReader(): void {
    if (this.reader !== null && this.inbox.length === 0) {
      const reader = this.reader;
      this.reader = null;
      reader(null);
    }
  }

  // gorilla's chat: ping every pingPeriod, give up when no pong within pongWait. One timer per
  // connection, re-armed lazily: a pong only stamps lastSeen, it does not touch the timer.
  private startHeartbeat(): void {
    const now = Date.now();
    this.lastSeen = now;
    this.nextPingAt = now + this.pingIntervalMs;
    this.heartbeat = setTimeout(() => this.onHeartbeat(), Math.min(this.pingIntervalMs, this.pongTimeoutMs));
    this.heartbeat.unref();
  }

  private onHeartbeat(): void {
    if (this.state === 'closed') return;
    const now = Date.now();
    const deadline = this.lastSeen + this.pongTimeoutMs;
    if (now >= deadline) {
      // The peer is gone or hopelessly stuck: no closing handshake can succeed, so drop it.
      this.closeReason = 'pong timeout';
      this.stats.drops.heartbeat++;
      this.terminate();
      return;
    }
    if (now >= this.nextPingAt) {
      this.ping();
      this.nextPingAt = now + this.pingIntervalMs;
    }
    this.heartbeat = setTimeout(() => this.onHeartbeat(), Math.max(1, Math.min(this.nextPingAt, deadline) - now));
    this.heartbeat.unref();
  }
}
