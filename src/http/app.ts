/**
 * The server assembled: config -> Hub -> HTTP server with its routes (the lesson's main.go and the
 * Upgrader). `createApp` does not listen by itself, so tests can start it on port 0.
 */
import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type Server, type ServerOptions } from 'node:http';
import { createServer as createTlsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handleWebSocket } from '../chat/handlers/websocket';
import { Hub, hubDirectory, type HubChannels } from '../chat/models/hub';
import { ChatStats } from '../chat/models/stats';
import { createClusterNode, type ClusterNode } from '../cluster/node';
import { ConfigError, type Config } from '../config';
import { eventLog, silentLogger, withFields, type EventLog, type LogFields, type Logger } from '../log';
import type { Family } from '../metrics/exposition';
import { createMetricsListener, type MetricsListener } from '../metrics/listener';
import { ProcessCollector } from '../metrics/process';
import { answerPrimary } from '../metrics/workers';
import { checkZlibHandle, CloseCode, rejectUpgrade, upgrade, WebSocketStats } from '../websocket';
import type { WebSocketConnection } from '../websocket';
import { clientAddress, normalizeIp, TrustedProxies } from './client-address';
import { handleEcho } from './echo';
import { HandshakeRate, limitKey, OpenConnections } from './limits';
import { originPolicy } from './origin';
import { handleRequest, rejectUnknownUpgrade, upgradeRoute } from './routes';
import { chatFamilies } from './metrics';
import { loadPage } from './static';
import { HttpStats } from './stats';
import { CertificateError, loadCertificate, type Certificate } from './tls';

export interface App {
  /** An https.Server when TLS_CERT_FILE is set. */
  readonly server: Server | HttpsServer;
  readonly hub: HubChannels;
  /** The cluster node, when REDIS_URL is set. */
  readonly node: ClusterNode | undefined;
  /** The app's log, in LOG_FORMAT (server.ts logs through it too). */
  readonly log: EventLog;
  /** Listens on config.port/host (and the metrics listener on its own); resolves with the chat's address. */
  listen(): Promise<AddressInfo>;
  /** Where /metrics is served, once listening; undefined without METRICS_PORT (or in a worker). */
  readonly metricsAddress: AddressInfo | undefined;
  /** This process's metric families, as /metrics shows them (without the worker label). */
  collectMetrics(): Promise<Family[]>;
  /** Stops accepting, closes every client with 1001, waits for them (at most `graceMs`). */
  shutdown(graceMs?: number): Promise<void>;
  /**
   * SIGHUP: reads TLS_CERT_FILE and TLS_KEY_FILE again; new connections get the new certificate, open
   * ones stay up. False (and the old certificate kept, and why logged) when the files are not usable.
   */
  reloadCertificate(): boolean;
  /** Open WebSocket connections (chat and echo). */
  readonly connections: ReadonlySet<WebSocketConnection>;
}

/** TCP connections allowed beyond MAX_CONNECTIONS, for page loads, /clients and pending handshakes. */
const TCP_HEADROOM = 256;

/** Our own HTTP parser limit: request heads larger than this get 431. */
const MAX_HEADER_BYTES = 16 * 1024;

/** A refused or failed handshake's socket errors: 'close' follows, and there is nobody to tell. */
const ignoreErrors = (): void => {};

/** A monotonic clock in whole milliseconds, for the per-address handshake rate. */
const now = (): number => Math.floor(performance.now());

/**
 * Builds the app. `out` receives the log lines, rendered in config.logFormat. Throws ConfigError when
 * the TLS certificate or key cannot be used.
 */
export function createApp(config: Config, out: Logger = silentLogger): App {
  const log = eventLog(config.logFormat, out);
  if (config.compression) checkZlibHandle(); // fail at start-up, not on the first compressed message
  let certificate = config.tlsCertFile === '' ? undefined : startupCertificate(config);
  // Each layer's plain counters, read at scrape time (src/http/metrics.ts).
  const httpStats = new HttpStats();
  const wsStats = new WebSocketStats();
  const chatStats = new ChatStats();
  // One process owns the chat, or a cluster node shares it through Redis (src/cluster).
  const node = config.redisUrl === '' ? undefined : createClusterNode(config, log, chatStats);
  const hub: HubChannels = node?.hub ?? new Hub({
    sendQueue: config.sendQueue,
    historySize: config.historySize,
    historyOnJoin: config.historyOnJoin,
    maxRooms: config.maxRooms,
    maxRoomsPerClient: config.maxRoomsPerClient,
    resumeGraceMs: config.resumeGraceMs,
    stats: chatStats,
  });
  const running = hub.run().catch((error: unknown) => {
    // The Hub is the chat: without it nothing works, so fail loudly and let the supervisor restart us.
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log('fatal', { reason: 'the Hub stopped', error: detail }, 'error');
    throw error;
  });
  const page = loadPage(undefined, { maxMessageBytes: config.maxMessageBytes });
  const connections = new Set<WebSocketConnection>();
  let accepting = true;

  const options: ServerOptions = {
    maxHeaderSize: MAX_HEADER_BYTES,
    // Slowloris: a client must deliver its whole request head within the handshake timeout.
    headersTimeout: config.handshakeTimeoutMs,
    requestTimeout: config.handshakeTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, config.handshakeTimeoutMs),
    keepAliveTimeout: 5_000,
  };
  // With TLS, the TLS handshake gets the same deadline as the HTTP request head.
  const server =
    certificate === undefined
      ? createServer(options)
      : createTlsServer({
          ...options,
          cert: certificate.cert,
          key: certificate.key,
          handshakeTimeout: config.handshakeTimeoutMs,
        });
  // MAX_CONNECTIONS caps WebSockets (503 before the upgrade); this caps raw TCP connections too, so
  // sockets still in their handshake cannot pile up (the headroom serves pages and /clients).
  server.maxConnections = config.maxConnections + TCP_HEADROOM;
  if (certificate !== undefined) log('tls_loaded', certificateFields(certificate));
  const checkOrigin = originPolicy(config.allowedOrigins);
  const ctx = {
    directory: node?.directory ?? hubDirectory(hub as Hub),
    page,
    accepting: () => accepting,
    ...(node !== undefined ? { health: node.health } : {}),
  };
  const trusted = new TrustedProxies(config.trustProxy);
  const openPerAddress = new OpenConnections(config.maxConnectionsPerIp);
  const handshakeRate = new HandshakeRate(config.handshakeRatePerIp);

  /**
   * A refusal this app decides before the handshake (limits, capacity): one `refused` event with its
   * status, then the answer. The place to count refusals by status.
   */
  const refuse = (
    socket: Duplex,
    at: LogFields,
    status: number,
    reason: string,
    message: string,
    headers: Readonly<Record<string, string>> = {},
  ): void => {
    log('refused', { ...at, status, reason });
    httpStats.refuse(status);
    rejectUpgrade(socket, status, message, headers);
  };

  server.on('request', (req, res) => handleRequest(ctx, req, res));

  server.on('connection', () => httpStats.accepted++);

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', ignoreErrors);
    httpStats.upgrades++;
    const client = clientAddress(req, trusted);
    // Where the connection comes from, on every line about it: the client, and the proxy it came through.
    const at: LogFields = { peer: client.peer, via: client.via };
    const refused = rejectUnknownUpgrade(req, socket);
    if (refused !== undefined) {
      log('refused', { ...at, path: req.url, reason: refused.reason });
      httpStats.refuse(refused.status);
      return;
    }
    if (!accepting) {
      httpStats.refuse(503);
      rejectUpgrade(socket, 503, 'server shutting down');
      return;
    }
    const key = limitKey(client.address);
    const limited = handshakeRate.check(key, now()) ?? openPerAddress.check(key);
    if (limited !== undefined) {
      const retry = { 'Retry-After': String(limited.retryAfterSec) };
      refuse(socket, { ...at, path: req.url }, 429, limited.reason, limited.message, retry);
      return;
    }
    if (connections.size >= config.maxConnections) {
      const why = 'too many connections: try again later';
      refuse(socket, at, 503, `connection limit ${config.maxConnections}`, why, { 'Retry-After': '5' });
      return;
    }
    const route = upgradeRoute(req.url);
    const conn = upgrade(req, socket, head, {
      maxMessageBytes: config.maxMessageBytes,
      pingIntervalMs: config.pingIntervalMs,
      pongTimeoutMs: config.pongTimeoutMs,
      maxBufferedBytes: config.maxBufferedBytes,
      closeTimeoutMs: config.closeTimeoutMs,
      compression: config.compression,
      stats: wsStats,
      // The handshake's own refusals (RFC 6455 §4.2.1 checks, the Origin policy) are counted and logged here.
      onRefused: (status, why) => {
        httpStats.refuse(status);
        log('refused', { ...at, path: req.url, origin: req.headers.origin ?? '', status, reason: why });
      },
      // The echo demo answers anyone; the chat applies the Origin policy.
      ...(route === 'chat' ? { checkOrigin } : {}),
    });
    if (conn === null) return;
    socket.off('error', ignoreErrors); // the connection listens for them now
    connections.add(conn);
    const release = openPerAddress.opened(key);
    void conn.closed.then(() => {
      connections.delete(conn);
      release();
    });
    log('connect', { ...at, path: req.url });
    const connLog = withFields(log, at);
    const done =
      route === 'chat'
        ? handleWebSocket(conn, hub, {
            sendQueue: config.sendQueue,
            rateLimitPerSec: config.rateLimitPerSec,
            rateLimitBurst: config.rateLimitBurst,
            joinTimeoutMs: config.joinTimeoutMs,
            log: connLog,
            stats: chatStats,
          })
        : handleEcho(conn).then(async () => {
            const info = await conn.closed;
            connLog('disconnect', { path: '/echo', code: info.code, reason: info.reason, sent: info.sentCode });
          });
    done.catch((error: unknown) => {
      log('error', { ...at, error: String(error) }, 'error');
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
    const address = (socket as Socket).remoteAddress ?? '?';
    log('refused', { peer: normalizeIp(address) ?? address, status, reason: error.code ?? error.message });
    httpStats.refuse(status);
    const why = status === 431 ? 'request header too large' : status === 408 ? 'request timeout' : 'bad request';
    rejectUpgrade(socket, status, why);
  });

  // Metrics: this process's listener, or (WORKERS=N) answers to the primary, which serves them all.
  const processCollector = config.metricsPort === null ? undefined : new ProcessCollector();
  const collectMetrics = async (): Promise<Family[]> => {
    const sockets = await new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n ?? 0)));
    const gauges = await hub.gauges();
    const links = node?.links ?? [];
    const chat = chatFamilies({ http: httpStats, sockets, websocket: wsStats, chat: chatStats, gauges, links });
    return [...(processCollector?.collect() ?? []), ...chat];
  };
  const inWorker = config.workers > 0 && cluster.isWorker;
  if (processCollector !== undefined && inWorker) answerPrimary(collectMetrics);
  const metrics: MetricsListener | undefined =
    processCollector !== undefined && !inWorker ? createMetricsListener(collectMetrics) : undefined;
  let metricsAddress: AddressInfo | undefined;

  return {
    server,
    hub,
    node,
    log,
    connections,
    get metricsAddress() {
      return metricsAddress;
    },
    collectMetrics,
    async listen() {
      const address = await new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        const done = (): void => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        };
        if (config.host === '') server.listen(config.port, done);
        else server.listen(config.port, config.host, done);
      });
      if (metrics !== undefined) {
        try {
          metricsAddress = await metrics.listen(config.metricsPort!, config.metricsHost);
        } catch (error) {
          server.close();
          const where = `METRICS_HOST:METRICS_PORT ${config.metricsHost}:${config.metricsPort}`;
          throw new Error(`${where}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      return address;
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
      processCollector?.stop();
      await Promise.all([node?.close(), metrics?.close()]);
    },
    reloadCertificate() {
      if (certificate === undefined) {
        log('tls_reload_failed', { reason: 'TLS is not configured (TLS_CERT_FILE)' }, 'warn');
        return false;
      }
      let next: Certificate;
      try {
        next = loadCertificate(config.tlsCertFile, config.tlsKeyFile);
      } catch (error) {
        if (!(error instanceof CertificateError)) throw error;
        const kept = certificate.fingerprint;
        log('tls_reload_failed', { reason: `${error.variable}: ${error.message}`, kept }, 'error');
        return false;
      }
      (server as HttpsServer).setSecureContext({ cert: next.cert, key: next.key });
      certificate = next;
      log('tls_loaded', certificateFields(next));
      return true;
    },
  };
}

function certificateFields(c: Certificate): LogFields {
  return { subject: c.subject, expires: c.validTo, fingerprint: c.fingerprint };
}

/** The certificate at start-up: a file that cannot be used is a configuration error (exit 2). */
function startupCertificate(config: Config): Certificate {
  try {
    return loadCertificate(config.tlsCertFile, config.tlsKeyFile);
  } catch (error) {
    if (error instanceof CertificateError) throw new ConfigError(error.variable, error.message);
    throw error;
  }
}
