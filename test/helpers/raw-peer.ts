/**
 * The raw wire peer: a TCP client that sends exact bytes (requests, frames from wire.ts, garbage)
 * and reads exact bytes back (HTTP response heads, WebSocket frames decoded here, not by src/). It
 * can misbehave at any byte: stop reading, half-close, keep its side open, vanish.
 *
 * Two ways to read frames: `readFrame()` pulls the next one; after `record()` every frame is read as
 * it arrives into `frames`, and `waitForFrame()` waits for one.
 */
import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { expect } from 'vitest';
import { Signal } from './wait';
import { frame, upgradeRequest, type FrameOptions, type HeaderValues } from './wire';

export interface HttpResponse {
  readonly status: number;
  readonly statusLine: string;
  /** Lower-case header name -> every value, in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: Buffer;
  /** The head as sent, up to and including the blank line. */
  readonly head: string;
}

export interface Frame {
  readonly fin: boolean;
  /** RSV1-3 as the 3-bit value (b0 >> 4) & 7. */
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  /** Payload, unmasked if the frame was masked. */
  readonly payload: Buffer;
  /** The frame exactly as it came off the wire. */
  readonly raw: Buffer;
}

export interface OpenOptions {
  /** Keep our side open when the server sends FIN (Node's default ends it at once). */
  allowHalfOpen?: boolean;
}

export class RawPeer {
  /** The server sent FIN. */
  ended = false;
  /** The socket is fully closed. */
  isClosed = false;
  /** Resolves when the socket is closed; `ended` says whether a FIN came first (vs. a reset). */
  readonly closed: Promise<{ ended: boolean }>;
  /** With record(): every frame received, in order. */
  readonly frames: Frame[] = [];

  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly arrived = new Signal();
  private recording = false;
  private recordEnd: Error | undefined;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.arrived.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.arrived.notify();
    });
    socket.on('error', () => {}); // 'close' follows; tests look at `closed` and `ended`
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.arrived.notify();
        resolve({ ended: this.ended });
      }),
    );
  }

  static open(port: number, options: OpenOptions = {}): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawPeer(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Wraps an already connected socket (one end of a socket pair). */
  static wrap(socket: Socket): RawPeer {
    return new RawPeer(socket);
  }

  /** Opens a socket and completes the handshake on `path`; the 101 head has been read. */
  static async upgrade(port: number, path = '/echo', headers: HeaderValues = {}): Promise<RawPeer> {
    const peer = await RawPeer.open(port);
    peer.write(upgradeRequest(port, path, headers));
    const response = await peer.readHttpResponse();
    if (response.status !== 101) {
      peer.destroy();
      throw new Error(`handshake refused: ${response.statusLine} ${response.body.toString()}`);
    }
    return peer;
  }

  // ---- writing ----

  /** Writes unless the socket is gone (a test that writes to a closed peer looks at `closed`). */
  write(data: Buffer | string): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    return this.socket.write(data);
  }

  /** One frame from wire.ts (masked, as a client sends it, unless `options` says otherwise). */
  send(opcode: number, payload: Uint8Array | string = Buffer.alloc(0), options: FrameOptions = {}): boolean {
    return this.write(frame(opcode, payload, options));
  }

  /** Sends FIN (after `data`, if given). */
  end(data?: Buffer | string): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (data === undefined) this.socket.end();
    else this.socket.end(data);
  }

  /** Stops reading the socket: what the server sends piles up in the kernel buffers. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- reading bytes ----

  /** Nothing more can arrive. */
  private get over(): boolean {
    return this.ended || this.isClosed;
  }

  /** Every byte received and not yet read, without taking it. */
  received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  text(): string {
    return this.received().toString('latin1');
  }

  /** The status of the HTTP response received so far, or undefined. */
  status(): number | undefined {
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(this.text());
    return m ? Number(m[1]) : undefined;
  }

  /** Resolves once `predicate` holds for the unread bytes; rejects if the stream ends first. */
  waitForBytes(predicate: (unread: Buffer) => boolean): Promise<Buffer> {
    return this.arrived.until(
      () => (predicate(this.received()) ? this.received() : undefined),
      () => (this.over ? new Error(`stream ended; unread: ${JSON.stringify(this.text())}`) : undefined),
    );
  }

  /** Exactly `n` bytes; rejects if the stream ends first. */
  async read(n: number): Promise<Buffer> {
    await this.arrived.until(
      () => (this.buffered >= n ? true : undefined),
      () => (this.over ? new Error(`stream ended with ${this.buffered} unread bytes, wanted ${n}`) : undefined),
    );
    return this.take(n);
  }

  private take(n: number): Buffer {
    const all = this.received();
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return all.subarray(0, n);
  }

  /** One complete HTTP response: head, then a body of Content-Length bytes. */
  async readHttpResponse(): Promise<HttpResponse> {
    const end = (await this.waitForBytes((b) => b.includes('\r\n\r\n'))).indexOf('\r\n\r\n');
    const head = this.take(end + 4).toString('latin1');
    const [statusLine = '', ...lines] = head.slice(0, -4).split('\r\n');
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
    }
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? NaN);
    const body = await this.read(Number(headers.get('content-length')?.[0] ?? 0));
    return { status, statusLine, headers, body, head };
  }

  /** The next WebSocket frame (§5.2), decoded here; masked payloads are unmasked in `payload`. */
  async readFrame(): Promise<Frame> {
    const first = await this.read(2);
    const b0 = first[0]!;
    const b1 = first[1]!;
    const len7 = b1 & 0x7f;
    const masked = (b1 & 0x80) !== 0;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const rest = await this.read(ext + (masked ? 4 : 0));
    const length = len7 === 126 ? rest.readUInt16BE(0) : len7 === 127 ? Number(rest.readBigUInt64BE(0)) : len7;
    const body = await this.read(length);
    const payload = Buffer.from(body);
    if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= rest[ext + (i & 3)]!;
    const raw = Buffer.concat([first, rest, body]);
    return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload, raw };
  }

  /** Waits for the socket to close and returns every byte received that nobody read. */
  async untilClosed(): Promise<{ ended: boolean; rest: Buffer }> {
    const { ended } = await this.closed;
    return { ended, rest: this.take(this.buffered) };
  }

  // ---- recording frames ----

  /**
   * From now on every frame is read as it arrives and kept in `frames`. With `answerClose`, a close
   * from the server is answered with the same code (§5.5.1) and our side ended (the server closes TCP
   * first, §7.1.1). Pings are never answered: a recording peer looks like a dead link to a heartbeat.
   */
  record(options: { answerClose?: boolean } = {}): this {
    if (this.recording) return this;
    this.recording = true;
    void (async () => {
      try {
        for (;;) {
          const f = await this.readFrame();
          if (f.masked) throw new Error('the server sent a masked frame (§5.1)');
          if (f.rsv !== 0) throw new Error('the server set RSV bits without an extension (§5.2)');
          this.frames.push(f);
          this.arrived.notify();
          if (f.opcode === 0x8 && options.answerClose) this.end(frame(0x8, f.payload.subarray(0, 2)));
        }
      } catch (error) {
        this.recordEnd = error as Error;
        this.arrived.notify();
      }
    })();
    return this;
  }

  /** With record(): the first frame so far or to come that matches; rejects if the stream ends first. */
  waitForFrame(predicate: (f: Frame) => boolean): Promise<Frame> {
    let seen = 0;
    return this.arrived.until(
      () => {
        for (; seen < this.frames.length; seen++) if (predicate(this.frames[seen]!)) return this.frames[seen];
        return undefined;
      },
      () => this.recordEnd && new Error(`no matching frame before the end (${this.recordEnd.message})`),
    );
  }

  /** With record(): waits until `condition` holds for the frames so far; rejects if the stream ends first. */
  async untilFrames(condition: (frames: readonly Frame[]) => boolean): Promise<void> {
    await this.arrived.until(
      () => (condition(this.frames) ? true : undefined),
      () => this.recordEnd && new Error(`the stream ended before the condition held (${this.recordEnd.message})`),
    );
  }

  /** With record(): the text messages received so far (a fragmented message joined). */
  texts(): string[] {
    const out: string[] = [];
    let parts: Buffer[] | null = null;
    for (const f of this.frames) {
      if (f.opcode === 0x1) parts = [f.payload];
      else if (f.opcode === 0x0 && parts !== null) parts.push(f.payload);
      else continue;
      if (f.fin) {
        out.push(Buffer.concat(parts).toString('utf8'));
        parts = null;
      }
    }
    return out;
  }

  /** With record(): the server's close frame, if one came: its code and reason. */
  closeFrame(): { code: number; reason: string } | undefined {
    const f = this.frames.find((x) => x.opcode === 0x8);
    if (f === undefined) return undefined;
    const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
    return { code, reason: f.payload.subarray(2).toString('utf8') };
  }
}

/** Two connected TCP sockets on loopback, [accepted side (half-open allowed, as in node:http), connecting side]. */
export async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const connecting = netConnect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => connecting.once('connect', resolve).once('error', reject));
  const pair: [Socket, Socket] = [await accepted, connecting];
  server.close();
  return pair;
}

/** Sends one request on a fresh connection and reads one complete response. */
export async function ask(port: number, request: string | Buffer): Promise<{ peer: RawPeer; response: HttpResponse }> {
  const peer = await RawPeer.open(port);
  peer.write(request);
  return { peer, response: await peer.readHttpResponse() };
}

/**
 * A refusal: a complete HTTP response with this status and a plain-text body whose length matches
 * Content-Length and `Connection: close`, then the server closes the connection (FIN) with nothing
 * after the body.
 */
export async function expectRefusal(port: number, request: string | Buffer, status: number): Promise<HttpResponse> {
  const { peer, response } = await ask(port, request);
  expect(response.status, response.head).toBe(status);
  expect(response.headers.get('content-type')).toEqual(['text/plain; charset=utf-8']);
  expect(Number(response.headers.get('content-length')![0])).toBe(response.body.length);
  expect(response.body.length).toBeGreaterThan(1);
  expect(response.headers.get('connection')).toEqual(['close']);
  const { ended, rest } = await peer.untilClosed();
  expect(ended).toBe(true);
  expect(rest.length).toBe(0);
  return response;
}

/** The upgrade request is answered with 101. */
export async function expectAccepted(port: number, path: string, headers: HeaderValues = {}): Promise<void> {
  const { peer, response } = await ask(port, upgradeRequest(port, path, headers));
  expect(response.status, response.body.toString()).toBe(101);
  peer.destroy();
}
