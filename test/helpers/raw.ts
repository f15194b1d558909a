/**
 * Raw-socket helpers for protocol tests: a TCP client that reads exact bytes (HTTP response heads,
 * WebSocket frames), hand-made client frames with any header bits, and waiting for the socket to close.
 * Nothing here goes through our own WebSocket client, so the server is checked against bytes alone.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

/** The RFC 6455 §1.3 sample key and its accept value. */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

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

/** A TCP client that buffers everything it receives and hands it out in exact amounts. */
export class RawClient {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private wake: (() => void) | null = null;
  /** The peer sent FIN. */
  ended = false;
  /** The socket is fully closed. */
  isClosed = false;
  /** Resolves when the socket is closed; `ended` says whether a FIN came first (vs. a reset). */
  readonly closed: Promise<{ ended: boolean }>;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.notify();
        resolve({ ended: this.ended });
      }),
    );
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ port, host });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Wraps an already connected socket (e.g. one end of a socket pair). */
  static wrap(socket: Socket): RawClient {
    return new RawClient(socket);
  }

  write(data: Buffer | string): void {
    this.socket.write(data);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Waits until `n` unread bytes are here; rejects if the stream ends first. */
  private async need(n: number): Promise<void> {
    while (this.buffered < n) {
      if (this.ended || this.isClosed) {
        throw new Error(`stream ended with ${this.buffered} unread bytes, wanted ${n}`);
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Removes and returns the first `n` buffered bytes (they must be there). */
  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  /** Exactly `n` bytes. */
  async read(n: number): Promise<Buffer> {
    await this.need(n);
    return this.take(n);
  }

  /** One complete HTTP response: head, then a body of Content-Length bytes. */
  async readHttpResponse(): Promise<HttpResponse> {
    let end = -1;
    for (;;) {
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
      this.chunks = all.length > 0 ? [all] : [];
      end = all.indexOf('\r\n\r\n');
      if (end !== -1) break;
      if (this.ended || this.isClosed) throw new Error(`stream ended inside an HTTP head: ${JSON.stringify(all.toString('latin1'))}`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const head = this.take(end + 4).toString('latin1');
    const [statusLine = '', ...lines] = head.slice(0, -4).split('\r\n');
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const values = headers.get(name) ?? [];
      values.push(line.slice(colon + 1).trim());
      headers.set(name, values);
    }
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? NaN);
    const length = Number(headers.get('content-length')?.[0] ?? 0);
    const body = await this.read(length);
    return { status, statusLine, headers, body, head };
  }

  /** One complete WebSocket frame (any mask bit; masked payloads are unmasked in `payload`). */
  async readFrame(): Promise<Frame> {
    await this.need(2);
    const first = this.take(2);
    const b0 = first[0]!;
    const b1 = first[1]!;
    const len7 = b1 & 0x7f;
    const masked = (b1 & 0x80) !== 0;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const rest = await this.read(ext + (masked ? 4 : 0));
    let length = len7;
    if (len7 === 126) length = rest.readUInt16BE(0);
    else if (len7 === 127) length = Number(rest.readBigUInt64BE(0));
    const body = await this.read(length);
    const raw = Buffer.concat([first, rest, body]);
    const payload = Buffer.from(body);
    if (masked) {
      const key = rest.subarray(ext, ext + 4);
      for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!;
    }
    return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload, raw };
  }

  /** Waits for the socket to close and returns every byte received that nobody read. */
  async untilClosed(): Promise<{ ended: boolean; rest: Buffer }> {
    const { ended } = await this.closed;
    return { ended, rest: this.take(this.buffered) };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * An upgrade request. `headers` overrides or adds header lines; a null value removes a default
 * header. An array value sends the header once per element (duplicates).
 */
export function upgradeRequest(
  port: number,
  path = '/echo',
  headers: Readonly<Record<string, string | readonly string[] | null>> = {},
  method = 'GET',
): string {
  const defaults: Record<string, string | readonly string[] | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': SAMPLE_KEY,
    'Sec-WebSocket-Version': '13',
  };
  // Overrides are matched case-insensitively so a test can send `UPGRADE: WebSocket`.
  for (const name of Object.keys(headers)) {
    for (const d of Object.keys(defaults)) if (d.toLowerCase() === name.toLowerCase()) delete defaults[d];
  }
  const all = { ...defaults, ...headers };
  let text = `${method} ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(all)) {
    if (value === null) continue;
    for (const v of typeof value === 'string' ? [value] : value) text += `${name}: ${v}\r\n`;
  }
  return text + '\r\n';
}

/** Opens a raw socket and completes the handshake on `path`; the 101 head has been read. */
export async function openWebSocket(
  port: number,
  path = '/echo',
  headers: Readonly<Record<string, string | readonly string[] | null>> = {},
): Promise<RawClient> {
  const client = await RawClient.open(port);
  client.write(upgradeRequest(port, path, headers));
  const response = await client.readHttpResponse();
  if (response.status !== 101) {
    client.destroy();
    throw new Error(`handshake refused: ${response.statusLine} ${response.body.toString()}`);
  }
  return client;
}

export interface FrameOptions {
  fin?: boolean;
  /** RSV1-3 as a 3-bit value. */
  rsv?: number;
  /** false: no mask bit (a server frame, or a broken client); a Buffer: this key; default: a random key. */
  mask?: boolean | Uint8Array;
  /** Force the 16- or 64-bit length form (or lie about the length with `declaredLength`). */
  lengthForm?: 7 | 16 | 64;
  /** Length written in the header instead of the payload's real length. */
  declaredLength?: number | bigint;
}

/** A hand-made frame (masked by default, as a client sends it, RFC 6455 §5.2/§5.3). */
export function frame(opcode: number, payload: Uint8Array | string = Buffer.alloc(0), options: FrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const fin = options.fin ?? true;
  const key: Uint8Array | null = options.mask === false ? null : options.mask instanceof Uint8Array ? options.mask : randomBytes(4);
  const declared = BigInt(options.declaredLength ?? data.length);
  const form = options.lengthForm ?? (declared < 126n ? 7 : declared <= 0xffffn ? 16 : 64);
  const head: number[] = [(fin ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode];
  const maskBit = key ? 0x80 : 0;
  if (form === 7) head.push(maskBit | Number(declared));
  else if (form === 16) head.push(maskBit | 126, Number(declared >> 8n) & 0xff, Number(declared) & 0xff);
  else {
    head.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((declared >> shift) & 0xffn));
  }
  if (key) head.push(...key);
  const body = Buffer.from(data);
  if (key) for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([Buffer.from(head), body]);
}

/** A close frame's payload: 2-byte code + UTF-8 reason. */
export function closeBody(code: number, reason = ''): Buffer {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason));
  body.writeUInt16BE(code, 0);
  body.write(reason, 2, 'utf8');
  return body;
}

/** The unmasked server frame we expect on the wire for a short (< 126 bytes) payload. */
export function serverFrame(opcode: number, payload: Uint8Array | string = Buffer.alloc(0)): Buffer {
  return frame(opcode, payload, { mask: false });
}
