/**
 * The HTTP wiring (the lesson's r.GET(...) lines): which path does what, for plain requests and for
 * WebSocket upgrades.
 *
 *   GET /          the chat page                GET /ws     the chat (WebSocket)
 *   GET /clients   who is online (JSON)         GET /echo   echo (WebSocket)
 *   GET /rooms     the rooms (JSON)             GET /rooms/<room>/history   a room's stored messages
 *   GET /healthz   liveness for load balancers
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Directory } from '../chat/models/hub';
import { isRoomName, MAX_HISTORY_PAGE } from '../chat/models/protocol';
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
  /** Who is online, the rooms, their history: the Hub's answers, or Redis's for a cluster node. */
  readonly directory: Directory;
  readonly page: StaticPage;
  /** False once shutdown has begun: /healthz turns 503 so load balancers stop sending. */
  readonly accepting: () => boolean;
  /** A cluster node's health: 503 with the reason while it cannot reach Redis; its node id. */
  readonly health?: () => { readonly ok: boolean; readonly body: Readonly<Record<string, string>> };
}

function sendJson(res: ServerResponse, status: number, body: unknown, head: boolean): void {
  sendJsonText(res, status, JSON.stringify(body), head);
}

function sendJsonText(res: ServerResponse, status: number, text: string, head: boolean): void {
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
    if (path === '/' || path === '/clients' || path === '/healthz' || path.startsWith('/rooms')) {
      sendText(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    } else {
      sendText(res, 404, 'not found');
    }
    return;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  // The Hub has stopped (shutdown), or a cluster node cannot reach Redis.
  const gone = (): void => sendJson(res, 503, { error: ctx.accepting() ? 'unavailable' : 'shutting down' }, head);
  const history = /^\/rooms\/([^/]+)\/history$/.exec(path);
  if (history !== null) return void serveHistory(ctx.directory, res, decodeURIComponent(history[1]!), url, head);
  switch (path) {
    case '/':
    case '/index.html':
      servePage(ctx.page, res, head);
      return;
    case '/clients': {
      const room = url.searchParams.get('room') ?? undefined;
      ctx.directory.clients(room).then((clients) => {
        if (clients === undefined) sendJson(res, 404, { error: `no room ${room}` }, head);
        else sendJson(res, 200, { count: clients.length, clients }, head);
      }, gone);
      return;
    }
    case '/rooms':
      ctx.directory.rooms().then((rooms) => sendJson(res, 200, { rooms }, head), gone);
      return;
    case '/healthz': {
      const health = ctx.health?.();
      if (!ctx.accepting()) sendJson(res, 503, { ...health?.body, status: 'shutting down' }, head);
      else if (health !== undefined && !health.ok) sendJson(res, 503, health.body, head);
      else sendJson(res, 200, { status: 'ok', ...health?.body }, head);
      return;
    }
    default:
      sendText(res, 404, 'not found');
  }
}

/**
 * GET /rooms/<room>/history?after=N&limit=M (or before=N): the room's stored messages, oldest first,
 * exactly as its members received them. Private inboxes are not readable over HTTP.
 */
function serveHistory(directory: Directory, res: ServerResponse, room: string, url: URL, head: boolean): void {
  const param = (name: string): number | undefined | null => {
    const raw = url.searchParams.get(name);
    if (raw === null) return undefined;
    return /^\d{1,15}$/.test(raw) ? Number(raw) : null;
  };
  const after = param('after');
  const before = param('before');
  const limit = param('limit') ?? MAX_HISTORY_PAGE;
  if (after === null || before === null || (after !== undefined && before !== undefined)) {
    return sendJson(res, 400, { error: 'use after=<offset> or before=<offset>, not both' }, head);
  }
  if (limit === null || limit < 1 || limit > MAX_HISTORY_PAGE) {
    return sendJson(res, 400, { error: `limit must be from 1 to ${MAX_HISTORY_PAGE}` }, head);
  }
  if (!isRoomName(room)) return sendJson(res, 404, { error: 'no such room' }, head);
  const page = { limit, ...(after !== undefined ? { after } : {}), ...(before !== undefined ? { before } : {}) };
  directory.history(room, page).then(
    (h) => {
      if (h === undefined) return sendJson(res, 404, { error: 'no such room' }, head);
      const messages = h.messages.join(',');
      const body = `{"room":"${h.room}","epoch":"${h.epoch}","offset":${h.offset},"messages":[${messages}]}`;
      sendJsonText(res, 200, body, head);
    },
    () => sendJson(res, 503, { error: 'unavailable' }, head),
  );
}

/**
 * Upgrade requests we refuse before looking at the handshake: too many header lines (431) or a path
 * that is not a WebSocket endpoint (404). Returns the status and reason it refused with, or undefined.
 */
export function rejectUnknownUpgrade(
  req: IncomingMessage,
  socket: Duplex,
): { readonly status: number; readonly reason: string } | undefined {
  if (tooManyHeaders(req)) {
    rejectUpgrade(socket, 431, 'too many header lines');
    return { status: 431, reason: 'too many header lines' };
  }
  if (upgradeRoute(req.url) === undefined) {
    rejectUpgrade(socket, 404, 'not found');
    return { status: 404, reason: 'not a WebSocket endpoint' };
  }
  return undefined;
}
