/**
 * Test helpers for the chat layer, over real sockets: start an app on port 0, connect named chat
 * clients with our own `connect()`, read the server's JSON messages with a filter, wait for the close.
 * Plus a raw TCP chat client (handshake + name by hand) for peers that stop reading.
 */
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createApp, type App } from '../../src/http/app';
import { loadConfig } from '../../src/config';
import type { Logger } from '../../src/log';
import {
  closePayload,
  connect,
  encodeFrame,
  FrameParser,
  Opcode,
  type CloseInfo,
  type ConnectOptions,
  type WebSocketConnection,
} from '../../src/websocket';

/** A server message, as the chat protocol defines it. */
export interface ChatMsg {
  type: 'join' | 'leave' | 'chat' | 'private' | 'error';
  user: string;
  message: string;
  to?: string;
  time: string;
}

export interface TestApp {
  readonly app: App;
  readonly port: number;
  /** Every line the app logged, in order. */
  readonly log: string[];
  /** Resolves once `predicate` holds for some logged line (checked on every new line). */
  logged(predicate: (line: string) => boolean, count?: number): Promise<string[]>;
  url(path?: string): string;
  close(): Promise<void>;
}

/** Starts createApp() on 127.0.0.1, port 0, with a recording logger. `env` overrides the config. */
export async function startApp(env: Record<string, string> = {}): Promise<TestApp> {
  const log: string[] = [];
  const watchers: { predicate: (line: string) => boolean; count: number; found: string[]; resolve: (l: string[]) => void }[] = [];
  const logger: Logger = (line) => {
    log.push(line);
    for (let i = watchers.length - 1; i >= 0; i--) {
      const w = watchers[i]!;
      if (w.predicate(line)) {
        w.found.push(line);
        if (w.found.length >= w.count) {
          watchers.splice(i, 1);
          w.resolve(w.found);
        }
      }
    }
  };
  const app = createApp(loadConfig({ PORT: '0', HOST: '127.0.0.1', ...env }), logger);
  const { port } = await app.listen();
  return {
    app,
    port,
    log,
    logged(predicate, count = 1) {
      const found = log.filter(predicate);
      if (found.length >= count) return Promise.resolve(found);
      return new Promise((resolve) => watchers.push({ predicate, count, found, resolve }));
    },
    url: (path = '/ws') => `ws://127.0.0.1:${port}${path}`,
    async close() {
      await app.shutdown();
      if (app.server.listening) await new Promise((r) => app.server.close(r));
    },
  };
}

type Filter = ChatMsg['type'] | ((m: ChatMsg) => boolean);

/** A chat client: records every message the server sends; next() reads them in order. */
export class ChatClient {
  /** Everything received so far, in order. */
  readonly messages: ChatMsg[] = [];
  /** Resolves after the last message has been recorded and the TCP connection is gone. */
  readonly closed: Promise<CloseInfo>;
  private cursor = 0;
  private waiters: (() => void)[] = [];
  private ended = false;

  constructor(readonly conn: WebSocketConnection) {
    this.closed = this.pump();
  }

  private async pump(): Promise<CloseInfo> {
    for await (const m of this.conn) {
      if (m.binary) throw new Error('the chat server sent a binary frame');
      this.messages.push(JSON.parse(m.data) as ChatMsg);
      this.wake();
    }
    this.ended = true;
    this.wake();
    return this.conn.closed;
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  /** The next message after the last one next() returned that matches `filter` (any, if none). */
  async next(filter?: Filter): Promise<ChatMsg> {
    const match = (m: ChatMsg): boolean =>
      filter === undefined ? true : typeof filter === 'string' ? m.type === filter : filter(m);
    for (;;) {
      while (this.cursor < this.messages.length) {
        const m = this.messages[this.cursor++]!;
        if (match(m)) return m;
      }
      if (this.ended) throw new Error(`connection ended before a matching message; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Resolves once `condition` holds for everything received so far (re-checked on each message). */
  async until(condition: (all: readonly ChatMsg[]) => boolean): Promise<void> {
    while (!condition(this.messages)) {
      if (this.ended) throw new Error(`connection ended before the condition held; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Messages received so far that match `filter`. */
  received(filter?: Filter): ChatMsg[] {
    if (filter === undefined) return [...this.messages];
    return this.messages.filter((m) => (typeof filter === 'string' ? m.type === filter : filter(m)));
  }

  send(text: string): void {
    this.conn.send(text);
  }

  /** Closes with 1000 and waits for the TCP connection to end. */
  async close(): Promise<CloseInfo> {
    this.conn.close();
    return this.closed;
  }
}

/** Opens /ws (or `path`) without sending a name. */
export async function openChat(port: number, options: ConnectOptions = {}, path = '/ws'): Promise<ChatClient> {
  return new ChatClient(await connect(`ws://127.0.0.1:${port}${path}`, options));
}

/** Opens /ws, sends `name` and waits for its own join notice. */
export async function joinChat(port: number, name: string, options: ConnectOptions = {}): Promise<ChatClient> {
  const client = await openChat(port, options);
  client.send(name);
  await client.next((m) => m.type === 'join' && m.message === `${name} joined the chat`);
  return client;
}

/** A message matcher for `next()`/`received()`. */
export const joined = (name: string) => (m: ChatMsg): boolean => m.type === 'join' && m.message === `${name} joined the chat`;
export const left = (name: string) => (m: ChatMsg): boolean => m.type === 'leave' && m.message === `${name} left the chat`;
export const chatFrom = (user: string, text?: string) => (m: ChatMsg): boolean =>
  m.type === 'chat' && m.user === user && (text === undefined || m.message === text);

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One plain HTTP request (a fresh connection, closed afterwards). */
export function httpRequest(port: number, path: string, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    // agent: false sends Connection: close; we resolve once that socket is gone, so a test that
    // counts open handles afterwards does not see it.
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const result = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
        if (req.socket === null || req.socket.destroyed) resolve(result);
        else req.socket.once('close', () => resolve(result));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A masked client frame, as a browser would send it (§5.3). */
export function clientFrame(opcode: number, payload: string | Uint8Array): Buffer {
  return encodeFrame(opcode, payload, true);
}

/**
 * A chat peer on a raw TCP socket: it does the handshake and sends its name by hand, then reads
 * only when told to. `pause()` stops reading the socket (the kernel buffers then fill); it never
 * answers pings. Received frames are parsed with our FrameParser (client side: unmasked frames).
 */
export class RawChatPeer {
  readonly texts: string[] = [];
  closeCode: number | undefined;
  /** Resolves when the TCP connection is gone. */
  readonly ended: Promise<void>;
  private readonly parser: FrameParser;
  private onText: (() => void) | null = null;
  private isEnded = false;

  private constructor(readonly socket: Socket) {
    this.parser = new FrameParser(
      { maxMessageBytes: 64 * 1024 * 1024, expectMasked: false },
      {
        onMessage: (binary, data) => {
          if (!binary) this.texts.push(data.toString('utf8'));
          this.onText?.();
        },
        onPing: () => {}, // a vanished peer does not answer
        onPong: () => {},
        onClose: (code) => {
          // §5.5.1: answer the close, then let the server end TCP (§7.1.1).
          this.closeCode = code;
          if (!socket.destroyed) socket.end(clientFrame(Opcode.Close, closePayload(code === 1005 ? undefined : code)));
        },
        onProtocolError: (code, reason) => {
          throw new Error(`server broke the protocol: ${code} ${reason}`);
        },
      },
    );
    this.ended = new Promise((resolve) =>
      socket.once('close', () => {
        this.isEnded = true;
        this.onText?.();
        resolve();
      }),
    );
    socket.on('error', () => {});
  }

  /** Connects to /ws, completes the handshake, sends `name` and waits for its join notice. */
  static async join(port: number, name: string): Promise<RawChatPeer> {
    const peer = await RawChatPeer.open(port);
    peer.write(clientFrame(Opcode.Text, name));
    await peer.waitForText((t) => t.includes(`"${name} joined the chat"`));
    return peer;
  }

  /** Connects to /ws and completes the handshake; sends nothing. */
  static async open(port: number): Promise<RawChatPeer> {
    const socket = netConnect({ host: '127.0.0.1', port });
    const key = randomBytes(16).toString('base64');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const rest = await new Promise<Buffer>((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        if (!head.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) reject(new Error(head.toString('latin1')));
        else resolve(head.subarray(end + 4));
      };
      socket.on('data', onData);
    });
    const peer = new RawChatPeer(socket);
    socket.on('data', (chunk: Buffer) => peer.parser.push(chunk));
    if (rest.length > 0) peer.parser.push(rest);
    return peer;
  }

  /** Resolves once some received text frame satisfies `predicate`. */
  async waitForText(predicate: (text: string) => boolean): Promise<string> {
    for (let seen = 0; ; ) {
      for (; seen < this.texts.length; seen++) if (predicate(this.texts[seen]!)) return this.texts[seen]!;
      if (this.isEnded) throw new Error(`connection ended before a matching message; got ${JSON.stringify(this.texts)}`);
      await new Promise<void>((r) => (this.onText = r));
      this.onText = null;
    }
  }

  /** Stops reading: what the server sends piles up in the kernel buffers. */
  pause(): void {
    this.socket.pause();
  }

  /** Reads again, to the end of the stream; resolves when the TCP connection is gone. */
  async drainToEnd(): Promise<void> {
    this.socket.resume();
    await this.ended;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
