/**
 * Helpers for the hardening tests (abuse, floods, slow consumers, disconnects): an app on port 0 with
 * a recording logger, chat clients built on our own connect(), raw TCP peers that can misbehave at any
 * byte (half a request, half a frame, stop reading), and a few waiting primitives.
 *
 * Self-contained on purpose: these tests lean on exact failure modes and must not change when the
 * shared helpers do.
 */
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config';
import { createApp, type App } from '../../src/http/app';
import { connect, encodeFrame, FrameParser, Opcode, type CloseInfo, type ConnectOptions, type WebSocketConnection } from '../../src/websocket';

// ---------------------------------------------------------------------------------------------
// Waiting

/** Polls `condition` every `everyMs` until it holds; fails after `timeoutMs` with `what`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Rejects after `ms` with `what`: a guard so a broken server fails a test instead of hanging it. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms))),
  ]);
}

// ---------------------------------------------------------------------------------------------
// The app

export interface TestServer {
  readonly app: App;
  readonly port: number;
  readonly logs: string[];
  /** Resolves with the first logged line matching `pattern` (past or future). */
  logged(pattern: RegExp): Promise<string>;
  wsUrl(path?: string): string;
  /** GET /clients -> count. */
  clientCount(): Promise<number>;
  stop(): Promise<void>;
}

export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const logs: string[] = [];
  const watchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const log = (line: string): void => {
    logs.push(line);
    for (let i = watchers.length - 1; i >= 0; i--) {
      if (watchers[i]!.pattern.test(line)) watchers.splice(i, 1)[0]!.resolve(line);
    }
  };
  const app = createApp(loadConfig({ PORT: '0', HOST: '127.0.0.1', ...env }), log);
  const { port } = await app.listen();
  return {
    app,
    port,
    logs,
    logged(pattern) {
      const found = logs.find((l) => pattern.test(l));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve) => watchers.push({ pattern, resolve }));
    },
    wsUrl: (path = '/ws') => `ws://127.0.0.1:${port}${path}`,
    async clientCount() {
      const body = await httpGet(port, '/clients');
      return (JSON.parse(body.body) as { count: number }).count;
    },
    async stop() {
      await app.shutdown(500);
      if (app.server.listening) await new Promise((r) => app.server.close(r));
    },
  };
}

export function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Chat clients on our own connect()

export interface ChatMsg {
  readonly type: 'join' | 'leave' | 'chat' | 'private' | 'error';
  readonly user: string;
  readonly message: string;
  readonly to?: string;
  readonly time: string;
}

/** A named chat client that records everything the server says. */
export class ChatPeer {
  readonly received: ChatMsg[] = [];
  readonly closed: Promise<CloseInfo>;
  private waiters: { predicate: (m: ChatMsg) => boolean; resolve: (m: ChatMsg) => void; reject: (e: Error) => void }[] = [];
  private ended = false;

  private constructor(
    readonly name: string,
    readonly conn: WebSocketConnection,
  ) {
    this.closed = conn.closed;
    void this.pump();
  }

  /** Connects, sends the name, and waits for its own join notice (so it is registered). */
  static async join(url: string, name: string, options: ConnectOptions = {}): Promise<ChatPeer> {
    const conn = await connect(url, options);
    const peer = new ChatPeer(name, conn);
    conn.send(name);
    await peer.next((m) => m.type === 'join' && m.message === `${name} joined the chat`);
    return peer;
  }

  private async pump(): Promise<void> {
    for await (const m of this.conn) {
      if (m.binary) continue;
      const msg = JSON.parse(m.data) as ChatMsg;
      this.received.push(msg);
      for (let i = 0; i < this.waiters.length; i++) {
        const w = this.waiters[i]!;
        if (w.predicate(msg)) {
          this.waiters.splice(i--, 1);
          w.resolve(msg);
        }
      }
    }
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.name}: connection ended while waiting for a message`));
  }

  /** The first message (already received or still to come) matching `predicate`. */
  next(predicate: (m: ChatMsg) => boolean, timeoutMs = 10_000): Promise<ChatMsg> {
    const found = this.received.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    if (this.ended) return Promise.reject(new Error(`${this.name}: connection ended`));
    return within(new Promise<ChatMsg>((resolve, reject) => this.waiters.push({ predicate, resolve, reject })), timeoutMs, `${this.name} waiting for a message`);
  }

  chats(from?: string): string[] {
    return this.received.filter((m) => m.type === 'chat' && (from === undefined || m.user === from)).map((m) => m.message);
  }

  say(text: string): void {
    this.conn.send(text);
  }

  async leave(): Promise<CloseInfo> {
    this.conn.close(1000, '');
    return this.closed;
  }
}

/** Two clients prove the chat works: `a` says something unique and `b` hears it. */
export async function roundTrip(a: ChatPeer, b: ChatPeer, tag: string): Promise<void> {
  const text = `${tag} ${randomBytes(4).toString('hex')}`;
  a.say(text);
  await b.next((m) => m.type === 'chat' && m.user === a.name && m.message === text);
}

// ---------------------------------------------------------------------------------------------
// Raw TCP peers

/** A TCP client that records what it receives and when it closes. */
export class RawPeer {
  private chunks: Buffer[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  /** A FIN came before the close (vs. a reset or our own destroy). */
  ended = false;
  error: NodeJS.ErrnoException | undefined;
  private onData: (() => void) | null = null;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.onData?.();
    });
    socket.on('end', () => (this.ended = true));
    socket.on('error', (e: NodeJS.ErrnoException) => (this.error = e));
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.onData?.();
        resolve();
      }),
    );
  }

  static open(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawPeer(socket));
      });
      socket.once('error', reject);
    });
  }

  get received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  text(): string {
    return this.received.toString('latin1');
  }

  /** Writes, ignoring the EPIPE/ECONNRESET a closed peer causes (the tests look at `closed`). */
  write(data: string | Buffer): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    return this.socket.write(data);
  }

  /** Waits until `predicate(received)` holds or the socket closes. */
  waitFor(predicate: (b: Buffer) => boolean, timeoutMs = 10_000): Promise<boolean> {
    return within(
      new Promise<boolean>((resolve) => {
        const check = (): void => {
          if (predicate(this.received)) {
            this.onData = null;
            resolve(true);
          } else if (this.isClosed) {
            this.onData = null;
            resolve(false);
          }
        };
        this.onData = check;
        check();
      }),
      timeoutMs,
      'raw peer waiting for data',
    );
  }

  /** The status of the HTTP response received so far, or undefined. */
  status(): number | undefined {
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(this.text());
    return m ? Number(m[1]) : undefined;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A valid §4.1 handshake request for `path`, with extra header lines. */
export function upgradeRequest(port: number, path = '/ws', extra: readonly string[] = []): string {
  return (
    [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      ...extra,
    ].join('\r\n') + '\r\n\r\n'
  );
}

export type ServerFrame =
  | { readonly kind: 'message'; readonly binary: boolean; readonly data: Buffer }
  | { readonly kind: 'ping' | 'pong'; readonly data: Buffer }
  | { readonly kind: 'close'; readonly code: number; readonly reason: string }
  | { readonly kind: 'error'; readonly code: number; readonly reason: string };

/**
 * A WebSocket client on a raw socket: handshake by hand, frames through our own parser in client
 * role. It can pause reading, send any bytes, and vanish at any point.
 */
export class RawWs {
  readonly frames: ServerFrame[] = [];
  private readonly parser: FrameParser;
  private wake: (() => void) | null = null;

  private constructor(readonly peer: RawPeer) {
    this.parser = new FrameParser(
      { maxMessageBytes: 64 * 1024 * 1024, expectMasked: false },
      {
        onMessage: (binary, data) => this.add({ kind: 'message', binary, data: Buffer.from(data) }),
        onPing: (data) => this.add({ kind: 'ping', data: Buffer.from(data) }),
        onPong: (data) => this.add({ kind: 'pong', data: Buffer.from(data) }),
        onClose: (code, reason) => this.add({ kind: 'close', code, reason }),
        onProtocolError: (code, reason) => this.add({ kind: 'error', code, reason }),
      },
    );
  }

  private add(f: ServerFrame): void {
    this.frames.push(f);
    this.wake?.();
  }

  /** Opens a socket and completes the handshake; frames after the 101 go to the parser. */
  static async open(port: number, path = '/ws'): Promise<RawWs> {
    const peer = await RawPeer.open(port);
    peer.write(upgradeRequest(port, path));
    const ok = await peer.waitFor((b) => b.includes('\r\n\r\n'));
    const head = peer.text();
    if (!ok || !head.startsWith('HTTP/1.1 101 ')) throw new Error(`handshake refused: ${head.slice(0, 200)}`);
    const ws = new RawWs(peer);
    const rest = peer.received.subarray(peer.received.indexOf('\r\n\r\n') + 4);
    peer.socket.removeAllListeners('data');
    peer.socket.on('data', (c: Buffer) => ws.parser.push(c));
    peer.closed.then(() => ws.wake?.());
    if (rest.length > 0) ws.parser.push(Buffer.from(rest));
    return ws;
  }

  /** Opens /ws and chooses a name; resolves once the join notice for it arrived. */
  static async join(port: number, name: string): Promise<RawWs> {
    const ws = await RawWs.open(port);
    ws.send(Opcode.Text, name);
    await ws.waitFor((f) => f.kind === 'message' && f.data.toString().includes(`"${name} joined the chat"`));
    return ws;
  }

  /** One masked frame (§5.3), or any header the test asks for. */
  send(opcode: number, payload: string | Buffer = Buffer.alloc(0), fin = true): boolean {
    return this.peer.write(encodeFrame(opcode, payload, true, fin));
  }

  /** Waits for a frame matching `predicate` (already received or to come); false if the socket closed first. */
  waitFor(predicate: (f: ServerFrame) => boolean, timeoutMs = 10_000): Promise<boolean> {
    return within(
      new Promise<boolean>((resolve) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < this.frames.length; seen++) {
            if (predicate(this.frames[seen]!)) {
              this.wake = null;
              resolve(true);
              return;
            }
          }
          if (this.peer.isClosed) {
            this.wake = null;
            resolve(false);
          }
        };
        this.wake = check;
        check();
      }),
      timeoutMs,
      'raw WebSocket waiting for a frame',
    );
  }

  /** Chat messages (JSON) received so far. */
  messages(): ChatMsg[] {
    return this.frames.filter((f) => f.kind === 'message').map((f) => JSON.parse((f as { data: Buffer }).data.toString('utf8')) as ChatMsg);
  }

  pause(): void {
    this.peer.socket.pause();
  }

  resume(): void {
    this.peer.socket.resume();
  }

  destroy(): void {
    this.peer.destroy();
  }

  get closed(): Promise<void> {
    return this.peer.closed;
  }
}

// ---------------------------------------------------------------------------------------------
// Unhandled errors

/** Records unhandled rejections and uncaught exceptions while installed; `stop()` removes the listeners. */
export function watchUnhandled(): { readonly errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    errors.push(reason);
  };
  const onException = (error: unknown): void => {
    errors.push(error);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    errors,
    stop() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}
