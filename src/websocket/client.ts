/**
 * Client side of the opening handshake (RFC 6455 §4.1): used by the tests, the terminal client and
 * the benchmark. The frames themselves go through the same codec as the server's, in client role
 * (every frame masked, §5.3).
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { WebSocketConnection, type ConnectionOptions } from './connection';
import { checkHandshakeAnswer, clientRequest, newClientKey } from './handshake';
import { CLIENT_OFFER, settingsFor } from './permessage-deflate';

export interface ConnectOptions extends Omit<ConnectionOptions, 'role' | 'maxMessageBytes' | 'deflate'> {
  maxMessageBytes?: number;
  /** Offer permessage-deflate (RFC 7692), as browsers do; on unless false. */
  compression?: boolean;
  /** Sent as the Origin header (browsers always send one; tools usually do not). */
  origin?: string;
  /** Extra request headers. */
  headers?: Readonly<Record<string, string>>;
  /** Give up when the handshake has not completed in this time. */
  timeoutMs?: number;
  /** wss://: certificates to trust instead of the system's (PEM), e.g. a self-signed one. */
  ca?: string | Buffer | (string | Buffer)[];
  /** wss://: false accepts any certificate (tests only: it defeats TLS). Default true. */
  rejectUnauthorized?: boolean;
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

/** Opens a WebSocket connection to a ws:// or wss:// URL. */
export function connect(url: string | URL, options: ConnectOptions = {}): Promise<WebSocketConnection> {
  const target = typeof url === 'string' ? new URL(url) : url;
  if (target.protocol !== 'ws:' && target.protocol !== 'wss:') {
    return Promise.reject(new Error(`unsupported URL scheme ${target.protocol} (ws:// or wss:// expected)`));
  }
  const secure = target.protocol === 'wss:';
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(target.port || (secure ? 443 : 80));
  const key = newClientKey();
  const headers: Record<string, string> = {};
  if (options.origin !== undefined) headers.Origin = options.origin; // first, as browsers send it
  Object.assign(headers, options.headers);
  const offer = options.compression === false ? undefined : CLIENT_OFFER;
  const request = clientRequest(target, key, headers, offer);

  return new Promise((resolve, reject) => {
    const socket: Socket = secure ? openTls(host, port, options) : netConnect({ host, port });
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
      const answer = checkHandshakeAnswer(received.subarray(0, end).toString('latin1'), key, offer);
      const rest = received.subarray(end + 4);
      if (answer.status !== 101) {
        // A refusal: collect the body (Content-Length) so the caller can show the server's reason.
        const length = Number(answer.headers.get('content-length') ?? 0);
        if (rest.length < length) return;
        fail(new HandshakeError(answer.problem!, answer.status, rest.subarray(0, length).toString('utf8')));
        return;
      }
      if (answer.problem !== undefined) {
        fail(new HandshakeError(answer.problem, answer.status));
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      socket.off('close', onClose);
      const {
        maxMessageBytes = DEFAULT_CLIENT_MAX_MESSAGE,
        origin: _o,
        headers: _h,
        timeoutMs: _t,
        compression: _c,
        ca: _ca,
        rejectUnauthorized: _r,
        ...connection
      } = options;
      const deflate = answer.deflate ? { deflate: settingsFor('client', answer.deflate) } : {};
      resolve(new WebSocketConnection(socket, { ...connection, ...deflate, maxMessageBytes, role: 'client' }, rest));
    };
    const onClose = (): void => fail(new HandshakeError('connection closed during the WebSocket handshake'));

    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('close', onClose);
    socket.write(request);
  });
}

/** §4.1: wss:// is the same handshake over TLS; the certificate is checked against the URL's host. */
function openTls(host: string, port: number, options: ConnectOptions): Socket {
  return tlsConnect({
    host,
    port,
    // SNI names a host, never an address (RFC 6066 §3).
    ...(isIP(host) === 0 ? { servername: host } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    rejectUnauthorized: options.rejectUnauthorized ?? true,
  });
}
