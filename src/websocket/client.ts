/**
 * Client side of the opening handshake (RFC 6455 §4.1): used by the tests, the terminal client and
 * the benchmark. The frames themselves go through the same codec as the server's, in client role
 * (every frame masked, §5.3).
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocketConnection, type ConnectionOptions } from './connection';
import { acceptKey, hasToken } from './handshake';

export interface ConnectOptions extends Omit<ConnectionOptions, 'role' | 'maxMessageBytes'> {
  maxMessageBytes?: number;
  /** Sent as the Origin header (browsers always send one; tools usually do not). */
  origin?: string;
  /** Extra request headers. */
  headers?: Readonly<Record<string, string>>;
  /** Give up when the handshake has not completed in this time. */
  timeoutMs?: number;
}

/** The server answered the handshake with something other than a valid 101. */
export class HandshakeError extends Error {
  constructor(
    message: string,
    /** The HTTP status, when the server sent a response. */
    readonly status?: number,
    /** The response body, for refusals that explain themselves. */
    readonly body?: string,
  ) {
    super(message);
    this.name = 'HandshakeError';
  }
}

/** A response head larger than this is not a WebSocket handshake answer. */
const MAX_RESPONSE_HEAD = 16 * 1024;
const DEFAULT_CLIENT_MAX_MESSAGE = 64 * 1024 * 1024;

/** Opens a WebSocket connection to a ws:// URL. */
export function connect(url: string | URL, options: ConnectOptions = {}): Promise<WebSocketConnection> {
  const target = typeof url === 'string' ? new URL(url) : url;
  if (target.protocol !== 'ws:') {
    return Promise.reject(new Error(`unsupported URL scheme ${target.protocol} (only ws:// is supported)`));
  }
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(target.port || 80);
  // §4.1: the key is 16 random bytes, base64-encoded, new for every connection.
  const key = randomBytes(16).toString('base64');
  const lines = [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
  ];
  if (options.origin !== undefined) lines.push(`Origin: ${options.origin}`);
  for (const [name, value] of Object.entries(options.headers ?? {})) lines.push(`${name}: ${value}`);
  const request = lines.join('\r\n') + '\r\n\r\n';

  return new Promise((resolve, reject) => {
    const socket: Socket = netConnect({ host, port });
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => fail(new Error('WebSocket handshake timed out')), options.timeoutMs ?? 10_000);

    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };

    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) {
        if (received.length > MAX_RESPONSE_HEAD) fail(new HandshakeError('handshake response head too large'));
        return;
      }
      const head = received.subarray(0, end).toString('latin1');
      const rest = received.subarray(end + 4);
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? NaN);
      const headers = new Map<string, string>();
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      if (status !== 101) {
        // A refusal: collect the body (Content-Length) so the caller can show the server's reason.
        const length = Number(headers.get('content-length') ?? 0);
        if (rest.length < length) return;
        fail(new HandshakeError(`server refused the WebSocket handshake: ${statusLine}`, status, rest.subarray(0, length).toString('utf8')));
        return;
      }
      // §4.1: the client MUST check Upgrade, Connection and Sec-WebSocket-Accept.
      if (!hasToken(headers.get('upgrade'), 'websocket') || !hasToken(headers.get('connection'), 'upgrade')) {
        fail(new HandshakeError('101 response without Upgrade: websocket / Connection: Upgrade', 101));
        return;
      }
      if (headers.get('sec-websocket-accept') !== acceptKey(key)) {
        fail(new HandshakeError('Sec-WebSocket-Accept does not match the key', 101));
        return;
      }
      // §4.1: we asked for no extension or subprotocol, so the server must not pick one.
      if (headers.has('sec-websocket-extensions') || headers.has('sec-websocket-protocol')) {
        fail(new HandshakeError('server selected an extension or subprotocol we did not offer', 101));
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      socket.off('close', onClose);
      const { maxMessageBytes = DEFAULT_CLIENT_MAX_MESSAGE, origin: _o, headers: _h, timeoutMs: _t, ...connection } = options;
      resolve(new WebSocketConnection(socket, { ...connection, maxMessageBytes, role: 'client' }, rest));
    };
    const onClose = (): void => fail(new HandshakeError('connection closed during the WebSocket handshake'));

    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('close', onClose);
    socket.write(request);
  });
}
