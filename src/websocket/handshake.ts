/**
 * The opening handshake, server side (RFC 6455 §4.2) and the pieces the client side shares (§4.1).
 *
 * `checkUpgradeRequest` decides; the callers answer. A refusal is a real HTTP response with the status
 * §4.2.1/§4.2.2 call for, then the socket is closed.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  checkAcceptance,
  formatParams,
  parseExtensions,
  type DeflateParams,
  type ExtensionOffer,
} from './permessage-deflate';

/** How long a refused peer gets to read our answer before its socket is destroyed. */
const REJECT_LINGER_MS = 5_000;

/** §1.3: the GUID appended to the key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID)). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}

/** Does a comma-separated header (§4.2.1 allows lists, tokens are case-insensitive) contain `token`? */
export function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (const part of value.split(',')) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

/** §4.1: the key is base64 of 16 bytes: 22 base64 characters and "==". */
const KEY_PATTERN = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

export type UpgradeVerdict =
  | { readonly ok: true; readonly key: string }
  | {
      readonly ok: false;
      readonly status: number;
      readonly message: string;
      readonly headers?: Readonly<Record<string, string>>;
    };

/** Raw header values by lower-case name, so duplicates are visible (Node joins some of them). */
function headerValues(req: IncomingMessage, name: string): string[] {
  const values: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  }
  return values;
}

/** Checks a request against §4.2.1, in the order the rules are listed. */
export function checkUpgradeRequest(req: IncomingMessage): UpgradeVerdict {
  // §4.2.1 (1): "An HTTP/1.1 or higher GET request".
  if (req.method !== 'GET') {
    const message = 'a WebSocket handshake must be a GET request';
    return { ok: false, status: 405, message, headers: { Allow: 'GET' } };
  }
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)) {
    return { ok: false, status: 400, message: 'a WebSocket handshake needs HTTP/1.1' };
  }
  // A GET upgrade carries no body; a length or chunked body here is a request-smuggling shape.
  if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
    return { ok: false, status: 400, message: 'a WebSocket handshake must not have a body' };
  }
  // §4.2.1 (2): a Host header.
  if (headerValues(req, 'host').length !== 1) {
    return { ok: false, status: 400, message: 'exactly one Host header is required' };
  }
  // §4.2.1 (3), (4): Upgrade contains "websocket", Connection contains "Upgrade", case-insensitive.
  if (!hasToken(req.headers.upgrade, 'websocket')) {
    return { ok: false, status: 400, message: 'the Upgrade header must contain "websocket"' };
  }
  if (!hasToken(req.headers.connection, 'upgrade')) {
    return { ok: false, status: 400, message: 'the Connection header must contain "Upgrade"' };
  }
  // §4.2.1 (6), §4.4: only version 13; otherwise say which versions we speak.
  const versions = headerValues(req, 'sec-websocket-version');
  if (versions.length !== 1 || versions[0]!.trim() !== '13') {
    return {
      ok: false,
      status: 426,
      message: 'unsupported WebSocket version: this server speaks version 13',
      headers: { 'Sec-WebSocket-Version': '13' },
    };
  }
  // §4.2.1 (5): one key, base64 of exactly 16 bytes.
  const keys = headerValues(req, 'sec-websocket-key');
  if (keys.length !== 1) {
    return { ok: false, status: 400, message: 'exactly one Sec-WebSocket-Key header is required' };
  }
  const key = keys[0]!.trim();
  if (!KEY_PATTERN.test(key)) {
    return { ok: false, status: 400, message: 'Sec-WebSocket-Key must be base64 of 16 bytes' };
  }
  return { ok: true, key };
}

/**
 * The client's Sec-WebSocket-Extensions offers (§9.1), all header lines together in order (§4.2.1
 * (9): the header may appear more than once). Null when the header is malformed.
 */
export function extensionOffers(req: IncomingMessage): ExtensionOffer[] | null {
  return parseExtensions(headerValues(req, 'sec-websocket-extensions').join(','));
}

/**
 * The 101 response (§4.2.2). No subprotocol is negotiated; `extensions` is the Sec-WebSocket-Extensions
 * value of the extensions accepted (§9.1), if any.
 */
export function handshakeResponse(key: string, extensions?: string): string {
  return (
    'HTTP/1.1 101 Switching Protocols\r\n' +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n` +
    (extensions !== undefined ? `Sec-WebSocket-Extensions: ${extensions}\r\n` : '') +
    '\r\n'
  );
}

// ---- the client side (§4.1) ----

/** §4.1: a new key for every connection: 16 random bytes, base64-encoded. */
export function newClientKey(): string {
  return randomBytes(16).toString('base64');
}

/** §4.1: the client's opening request for a ws:// URL, offering permessage-deflate with `deflate`. */
export function clientRequest(
  target: URL,
  key: string,
  extraHeaders: Readonly<Record<string, string>> = {},
  deflate?: DeflateParams,
): string {
  let request =
    `GET ${target.pathname}${target.search} HTTP/1.1\r\n` +
    `Host: ${target.host}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    'Sec-WebSocket-Version: 13\r\n' +
    (deflate !== undefined ? `Sec-WebSocket-Extensions: ${formatParams(deflate)}\r\n` : '');
  for (const [name, value] of Object.entries(extraHeaders)) request += `${name}: ${value}\r\n`;
  return request + '\r\n';
}

/** The server's answer to our opening request: its status, headers and, if it is not acceptable, why. */
export interface HandshakeAnswer {
  readonly status: number;
  readonly statusLine: string;
  readonly headers: ReadonlyMap<string, string>;
  /** Undefined when the answer completes the handshake. */
  readonly problem: string | undefined;
  /** The permessage-deflate parameters the server agreed to (RFC 7692 §7), if it accepted our offer. */
  readonly deflate?: DeflateParams;
}

/**
 * Checks a response head (up to, not including, the blank line) as §4.1 requires of a client;
 * `deflate` is the permessage-deflate offer we made, if any.
 */
export function checkHandshakeAnswer(head: string, key: string, deflate?: DeflateParams): HandshakeAnswer {
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    // A header sent twice is one comma-separated list (RFC 7230 §3.2.2): two Sec-WebSocket-Extensions lines count.
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
  }
  const answer = (problem: string | undefined): HandshakeAnswer => ({ status, statusLine, headers, problem });
  if (status !== 101) return answer(`server refused the WebSocket handshake: ${statusLine}`);
  // §4.1: the client MUST check Upgrade, Connection and Sec-WebSocket-Accept.
  if (!hasToken(headers.get('upgrade'), 'websocket') || !hasToken(headers.get('connection'), 'upgrade')) {
    return answer('101 response without Upgrade: websocket / Connection: Upgrade');
  }
  if (headers.get('sec-websocket-accept') !== acceptKey(key)) {
    return answer('Sec-WebSocket-Accept does not match the key');
  }
  // §4.1: we offered no subprotocol, so the server must not select one.
  if (headers.has('sec-websocket-protocol')) return answer('server selected a subprotocol we did not offer');
  const extensions = headers.get('sec-websocket-extensions');
  if (extensions === undefined) return answer(undefined);
  // §4.1: only an extension we offered; RFC 7692 §7: with parameters we can accept.
  if (deflate === undefined) return answer('server selected an extension we did not offer');
  const agreed = checkAcceptance(extensions, deflate);
  if (typeof agreed === 'string') return answer(agreed);
  return { status, statusLine, headers, problem: undefined, deflate: agreed };
}

/**
 * Answers a refused upgrade on the raw socket with a complete HTTP response, then closes it.
 * The body is plain text so a person with curl sees why.
 */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (socket.destroyed) return;
  const body = message + '\n';
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  head +=
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n' +
    '\r\n';
  socket.on('error', () => {});
  socket.end(head + body);
  // end() waits for the peer to read; a peer that never reads must not keep the socket.
  const timer = setTimeout(() => socket.destroy(), REJECT_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
