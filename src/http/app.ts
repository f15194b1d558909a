/**
 * The server assembled: config -> Hub -> HTTP server with its routes (the lesson's main.go and the
 * Upgrader). `createApp` does not listen by itself, so tests can start it on port 0.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handleWebSocket } from '../chat/handlers/websocket';
import { Hub, hubDirectory, type HubChannels } from '../chat/models/hub';
import { createClusterNode, type ClusterNode } from '../cluster/node';
import type { Config } from '../config';
import { silentLogger, type Logger } from '../log';
import { CloseCode, rejectUpgrade, upgrade, type WebSocketConnection } from '../websocket';
import { handleEcho } from './echo';
import { originPolicy } from './origin';
import { handleRequest, rejectUnknownUpgrade, upgradeRoute } from './routes';
import { loadPage } from './static';

export interface App {
  readonly server: Server;
  readonly hub: HubChannels;
  /** The cluster node, when REDIS_URL is set. */
  readonly node: ClusterNode | undefined;
  /** Listens on config.port/host; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** Stops accepting, closes every client with 1001, waits for them (at most `graceMs`). */
  shutdown(graceMs?: number): Promise<void>;
  /** Open WebSocket connections (chat and echo). */
  readonly connections: ReadonlySet<WebSocketConnection>;
}

/** TCP connections allowed beyond MAX_CONNECTIONS, for page loads, /clients and pending handshakes. */
const TCP_HEADROOM = 256;

/** Our own HTTP parser limit: request heads larger than this get 431. */
const MAX_HEADER_BYTES = 16 * 1024;

export function createApp(config: Config, log: Logger = silentLogger): App {
  // One process owns the chat, or a cluster node shares it through Redis (src/cluster).
  const node = config.redisUrl === '' ? undefined : createClusterNode(config, log);
  const hub: HubChannels = node?.hub ?? new Hub({
    log,
    sendQueue: config.sendQueue,
    historySize: config.historySize,
    historyOnJoin: config.historyOnJoin,
    maxRooms: config.maxRooms,
    maxRoomsPerClient: config.maxRoomsPerClient,
    resumeGraceMs: config.resumeGraceMs,
  });
  const running = hub.run().catch((error: unknown) => {
    // The Hub is the chat: without it nothing works, so fail loudly and let the supervisor restart us.
    log(`fatal: the Hub stopped: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    throw error;
  });
  const page = loadPage(undefined, { maxMessageBytes: config.maxMessageBytes });
  const connections = new Set<WebSocketConnection>();
  let accepting = true;

  const server = createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    // Slowloris: a client must deliver its whole request head within the handshake timeout.
    headersTimeout: config.handshakeTimeoutMs,
    requestTimeout: config.handshakeTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, config.handshakeTimeoutMs),
    keepAliveTimeout: 5_000,
  });
  // MAX_CONNECTIONS caps WebSockets (503 before the upgrade); this caps raw TCP connections too, so
  // sockets still in their handshake cannot pile up (the headroom serves pages and /clients).
  server.maxConnections = config.maxConnections + TCP_HEADROOM;
  const checkOrigin = originPolicy(config.allowedOrigins);
  const ctx = {
    directory: node?.directory ?? hubDirectory(hub as Hub),
    page,
    accepting: () => accepting,
    ...(node !== undefined ? { health: node.health } : {}),
  };

  server.on('request', (req, res) => handleRequest(ctx, req, res));

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const peer = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const refused = rejectUnknownUpgrade(req, socket);
    if (refused !== undefined) {
      log(`refused peer=${peer} path=${JSON.stringify(req.url)} reason=${JSON.stringify(refused)}`);
      return;
    }
    if (!accepting) {
      rejectUpgrade(socket, 503, 'server shutting down');
      return;
    }
    if (connections.size >= config.maxConnections) {
      log(`refused peer=${peer} reason="connection limit ${config.maxConnections}"`);
      rejectUpgrade(socket, 503, 'too many connections: try again later', { 'Retry-After': '5' });
      return;
    }
    const route = upgradeRoute(req.url);
    const conn = upgrade(req, socket, head, {
      maxMessageBytes: config.maxMessageBytes,
      pingIntervalMs: config.pingIntervalMs,
      pongTimeoutMs: config.pongTimeoutMs,
      maxBufferedBytes: config.maxBufferedBytes,
      // The echo demo answers anyone; the chat applies the Origin policy.
      ...(route === 'chat' ? { checkOrigin } : {}),
    });
    if (conn === null) {
      log(`refused peer=${peer} path=${req.url} origin=${JSON.stringify(req.headers.origin ?? '')} reason="handshake"`);
      return;
    }
    connections.add(conn);
    void conn.closed.then(() => connections.delete(conn));
    log(`connect peer=${peer} path=${req.url}`);
    const done =
      route === 'chat'
        ? handleWebSocket(conn, hub, {
            sendQueue: config.sendQueue,
            rateLimitPerSec: config.rateLimitPerSec,
            rateLimitBurst: config.rateLimitBurst,
            joinTimeoutMs: config.joinTimeoutMs,
            log,
          })
        : handleEcho(conn).then(async () => {
            const info = await conn.closed;
            log(`disconnect path=/echo code=${info.code} reason=${JSON.stringify(info.reason)}`);
          });
    done.catch((error: unknown) => {
      log(`error peer=${peer} ${String(error)}`);
      conn.terminate();
    });
  });

  // Malformed HTTP, oversized heads, request timeouts: answer with the right status, then drop.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const peer = (socket as Socket).remoteAddress ?? '?';
    log(`refused peer=${peer} status=${status} reason=${JSON.stringify(error.code ?? error.message)}`);
    const why = status === 431 ? 'request header too large' : status === 408 ? 'request timeout' : 'bad request';
    rejectUpgrade(socket, status, why);
  });

  return {
    server,
    hub,
    node,
    connections,
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        const done = (): void => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        };
        if (config.host === '') server.listen(config.port, done);
        else server.listen(config.port, config.host, done);
      });
    },
    async shutdown(graceMs = 1_500) {
      if (!accepting) return;
      accepting = false;
      server.close(); // stop accepting; idle keep-alive sockets go below
      server.closeIdleConnections();
      await hub.quit.send({ code: CloseCode.GoingAway, reason: 'server shutting down' });
      await running;
      // Connections still choosing a name, and echo connections, are not the Hub's.
      for (const conn of connections) conn.close(CloseCode.GoingAway, 'server shutting down');
      const all = Promise.all([...connections].map((c) => c.closed));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const conn of connections) conn.terminate();
      // A destroyed socket reports 'close' a tick later: resolve only once every connection is released.
      await Promise.all([...connections].map((c) => c.closed));
      server.closeAllConnections();
      await node?.close();
    },
  };
}
