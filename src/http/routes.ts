/**
 * The HTTP wiring (the lesson's r.GET(...) lines): which path does what, for plain requests and for
 * WebSocket upgrades.
 *
 *   GET /          the chat page                GET /ws     the chat (WebSocket)
 *   GET /clients   who is online (JSON)         GET /echo   echo (WebSocket)
 *   GET /healthz   liveness for load balancers
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { whoIsOnline, type Hub } from '../chat/models/hub';
import { checkUpgradeRequest, rejectUpgrade } from '../websocket';
import { servePage, type StaticPage } from './static';

/** Requests with more header lines than this get 431 (Node would silently drop the rest). */
export const MAX_HEADER_LINES = 64;

export type UpgradeRoute = 'chat' | 'echo';

export function upgradeRoute(url: string | undefined): UpgradeRoute | undefined {
  const path = pathOf(url);
  return path === '/ws' ? 'chat' : path === '/echo' ? 'echo' : undefined;
}

function pathOf(url: string | undefined): string {
  const q = (url ?? '/').indexOf('?');
  return q === -1 ? (url ?? '/') : (url ?? '/').slice(0, q);
}

export function tooManyHeaders(req: IncomingMessage): boolean {
  return req.rawHeaders.length / 2 >= MAX_HEADER_LINES;
}

export interface RouteContext {
  readonly hub: Hub;
  readonly page: StaticPage;
  /** False once shutdown has begun: /healthz turns 503 so load balancers stop sending. */
  readonly accepting: () => boolean;
}

function sendJson(res: ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(head ? undefined : text);
}

function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  const body = text + '\n';
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(body);
}

/** Plain HTTP requests. */
export function handleRequest(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  if (tooManyHeaders(req)) {
    sendText(res, 431, 'too many header lines', { Connection: 'close' });
    return;
  }
  const path = pathOf(req.url);
  if (upgradeRoute(req.url) !== undefined) {
    // A WebSocket endpoint reached without a valid upgrade: explain what is missing.
    // A refusal ends the connection, as on the upgrade path.
    const verdict = checkUpgradeRequest(req);
    if (!verdict.ok) sendText(res, verdict.status, verdict.message, { ...verdict.headers, Connection: 'close' });
    else sendText(res, 400, 'WebSocket upgrade expected', { Connection: 'close' });
    return;
  }
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    if (path === '/' || path === '/clients' || path === '/healthz') {
      sendText(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    } else {
      sendText(res, 404, 'not found');
    }
    return;
  }
  switch (path) {
    case '/':
    case '/index.html':
      servePage(ctx.page, res, head);
      return;
    case '/clients':
      whoIsOnline(ctx.hub).then(
        (clients) => sendJson(res, 200, { count: clients.length, clients }, head),
        () => sendJson(res, 503, { error: 'shutting down' }, head),
      );
      return;
    case '/healthz':
      if (ctx.accepting()) sendJson(res, 200, { status: 'ok' }, head);
      else sendJson(res, 503, { status: 'shutting down' }, head);
      return;
    default:
      sendText(res, 404, 'not found');
  }
}

/**
 * Upgrade requests we refuse before looking at the handshake: too many header lines (431) or a path
 * that is not a WebSocket endpoint (404). Returns the reason it refused, or undefined.
 */
export function rejectUnknownUpgrade(req: IncomingMessage, socket: Duplex): string | undefined {
  if (tooManyHeaders(req)) {
    rejectUpgrade(socket, 431, 'too many header lines');
    return 'too many header lines';
  }
  if (upgradeRoute(req.url) === undefined) {
    rejectUpgrade(socket, 404, 'not found');
    return 'not a WebSocket endpoint';
  }
  return undefined;
}
