/**
 * Configuration: environment variables -> a validated, frozen Config.
 * Every variable is documented in the README with its default. A bad value is a ConfigError that
 * names the variable; the entry point prints it and exits with code 2.
 */

import { isIP } from 'node:net';
import { formatCidr, parseCidr } from './http/client-address';
import { LOG_FORMATS, type LogFormat } from './log';
import { parseRedisUrl, RedisUrlError } from './redis/url';

export interface Config {
  /** TCP port to listen on (0 picks a free one). */
  readonly port: number;
  /** Interface to bind; empty means all interfaces. */
  readonly host: string;
  /** Largest WebSocket message accepted, in bytes; larger ones close with 1009. */
  readonly maxMessageBytes: number;
  /** Capacity of each client's send channel (the lesson's make(chan []byte, 256)). */
  readonly sendQueue: number;
  /** Extra origins allowed to open /ws besides same-origin and no-Origin requests; '*' allows all. */
  readonly allowedOrigins: readonly string[] | '*';
  /** Heartbeat: ping period (gorilla's pingPeriod). */
  readonly pingIntervalMs: number;
  /** Heartbeat: drop a peer that has not answered for this long (gorilla's pongWait). */
  readonly pongTimeoutMs: number;
  /** Chat messages a client may send per second, on average (token bucket refill rate). */
  readonly rateLimitPerSec: number;
  /** Chat messages a client may send in a burst (token bucket size). */
  readonly rateLimitBurst: number;
  /** Concurrent WebSocket connections; more get 503 before the upgrade. */
  readonly maxConnections: number;
  /** Unsent bytes queued on one socket before that client is dropped as too slow. */
  readonly maxBufferedBytes: number;
  /** Time a client has to send its full HTTP request head (slowloris guard). */
  readonly handshakeTimeoutMs: number;
  /** Time a chat client has to send its name after the WebSocket handshake. */
  readonly joinTimeoutMs: number;
  /** Messages each stream (room or private inbox) keeps for newcomers and for clients that resume. */
  readonly historySize: number;
  /** Messages a v2 client gets from a stream it joins without a position to resume from. */
  readonly historyOnJoin: number;
  /** Rooms on the server; when all have members, a new room is refused. */
  readonly maxRooms: number;
  /** Rooms one client may be in at once (the lobby counts). */
  readonly maxRoomsPerClient: number;
  /** How long a v2 client that vanished (no close frame) keeps its name, rooms and inbox. */
  readonly resumeGraceMs: number;
  /** After sending a close frame, time the peer has to answer before its socket is destroyed. */
  readonly closeTimeoutMs: number;
  /** PEM certificate (chain) and key files: serve https:// and wss://; empty for plain http:// and ws://. */
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  /** Proxies (addresses and CIDR ranges, normalised) whose X-Forwarded-For names the client. */
  readonly trustProxy: readonly string[];
  /** WebSocket connections open at once from one client address; 0: no limit. */
  readonly maxConnectionsPerIp: number;
  /** WebSocket upgrades per second from one client address; 0: no limit. */
  readonly handshakeRatePerIp: number;
  /** One line per event: `text` (key=value) or `json` (one object per line). */
  readonly logFormat: LogFormat;
  /** Accept permessage-deflate (RFC 7692) from clients that offer it. */
  readonly compression: boolean;
  /** Cluster mode: the Redis that nodes share the chat through; empty: one process, no Redis. */
  readonly redisUrl: string;
  /** Server processes on this machine sharing the port (node:cluster); 0: this process serves. */
  readonly workers: number;
  /** This node's id in logs, /healthz and Redis; empty: generated (host name, pid, random). */
  readonly nodeId: string;
  /** A node that has not renewed its lease for this long is dead: another node ends its sessions. */
  readonly nodeTtlMs: number;
  /** The metrics listener's port (0 picks a free one); null: no metrics listener. */
  readonly metricsPort: number | null;
  /** The metrics listener's address: loopback unless the operator says otherwise. */
  readonly metricsHost: string;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULTS: Config = Object.freeze({
  port: 8080,
  host: '',
  maxMessageBytes: 4096,
  sendQueue: 256,
  allowedOrigins: Object.freeze([]) as readonly string[],
  pingIntervalMs: 54_000,
  pongTimeoutMs: 60_000,
  rateLimitPerSec: 10,
  rateLimitBurst: 20,
  maxConnections: 10_000,
  maxBufferedBytes: 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  joinTimeoutMs: 30_000,
  historySize: 1000,
  historyOnJoin: 50,
  maxRooms: 1000,
  maxRoomsPerClient: 20,
  resumeGraceMs: 5000,
  closeTimeoutMs: 5_000,
  tlsCertFile: '',
  tlsKeyFile: '',
  trustProxy: Object.freeze([]) as readonly string[],
  maxConnectionsPerIp: 0,
  handshakeRatePerIp: 0,
  logFormat: 'text',
  compression: true,
  redisUrl: '',
  workers: 0,
  nodeId: '',
  nodeTtlMs: 15_000,
  metricsPort: null,
  metricsHost: '127.0.0.1',
});

type Env = Readonly<Record<string, string | undefined>>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const text = raw.trim();
  if (!/^\d+$/.test(text)) {
    throw new ConfigError(name, `expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  const value = Number(text);
  if (value < min || value > max) throw new ConfigError(name, `must be from ${min} to ${max}, got ${value}`);
  return value;
}

function onOff(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const text = raw.trim().toLowerCase();
  if (text === 'on') return true;
  if (text === 'off') return false;
  throw new ConfigError(name, `expected on or off, got ${JSON.stringify(raw)}`);
}

function origins(env: Env, name: string): readonly string[] | '*' {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return DEFAULTS.allowedOrigins;
  const list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.includes('*')) return '*';
  for (const origin of list) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new ConfigError(name, `${JSON.stringify(origin)} is not an origin like https://chat.example.com`);
    }
    // An origin is scheme://host[:port], nothing more (RFC 6454). Letter case and a default port are
    // fine: the list is normalised below to the form browsers send (RFC 6454 §6.1).
    const extra =
      url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '';
    if (extra || url.origin === 'null') {
      const why = 'is not an origin like https://chat.example.com (scheme, host and port only)';
      throw new ConfigError(name, `${JSON.stringify(origin)} ${why}`);
    }
  }
  return Object.freeze(list.map((o) => new URL(o).origin));
}

/** TRUST_PROXY: comma-separated addresses and CIDR ranges, IPv4 or IPv6. */
function proxies(env: Env, name: string): readonly string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return DEFAULTS.trustProxy;
  const list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return Object.freeze(
    list.map((entry) => {
      const cidr = parseCidr(entry);
      if (cidr === undefined) {
        const why = 'is not an IP address or a CIDR range like 10.0.0.0/8 or 2001:db8::/32';
        throw new ConfigError(name, `${JSON.stringify(entry)} ${why}`);
      }
      return formatCidr(cidr);
    }),
  );
}

/** TLS_CERT_FILE and TLS_KEY_FILE go together (the files themselves are read by the server: src/http/tls.ts). */
function tlsFiles(env: Env): { tlsCertFile: string; tlsKeyFile: string } {
  const tlsCertFile = (env.TLS_CERT_FILE ?? '').trim();
  const tlsKeyFile = (env.TLS_KEY_FILE ?? '').trim();
  if (tlsCertFile !== '' && tlsKeyFile === '') throw new ConfigError('TLS_KEY_FILE', 'is needed with TLS_CERT_FILE');
  if (tlsKeyFile !== '' && tlsCertFile === '') throw new ConfigError('TLS_CERT_FILE', 'is needed with TLS_KEY_FILE');
  return { tlsCertFile, tlsKeyFile };
}

function logFormat(env: Env, name: string): LogFormat {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return DEFAULTS.logFormat;
  const format = LOG_FORMATS.find((f) => f === raw.toLowerCase());
  if (format === undefined) throw new ConfigError(name, `expected text or json, got ${JSON.stringify(env[name])}`);
  return format;
}

/** An IP address (v4 or v6) or a host name; "localhost:8080" is a classic slip (the port goes in `portName`). */
function hostName(env: Env, name: string, portName: string, fallback: string): string {
  const host = (env[name] ?? fallback).trim();
  if (host !== '' && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) {
    const why = `expected a host name or IP address (the port goes in ${portName}), got ${JSON.stringify(env[name])}`;
    throw new ConfigError(name, why);
  }
  return host;
}

/** Reads the environment. Throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const pingIntervalMs = integer(env, 'PING_INTERVAL_MS', DEFAULTS.pingIntervalMs, 10, 86_400_000);
  const pongTimeoutMs = integer(env, 'PONG_TIMEOUT_MS', DEFAULTS.pongTimeoutMs, 10, 86_400_000);
  if (pongTimeoutMs <= pingIntervalMs && (env.PONG_TIMEOUT_MS ?? '').trim() !== '') {
    const why = `must be greater than PING_INTERVAL_MS (${pingIntervalMs}), got ${pongTimeoutMs}`;
    throw new ConfigError('PONG_TIMEOUT_MS', why);
  }
  if (pongTimeoutMs <= pingIntervalMs) {
    const why = `must be less than PONG_TIMEOUT_MS (${pongTimeoutMs}), got ${pingIntervalMs}`;
    throw new ConfigError('PING_INTERVAL_MS', why);
  }
  const host = hostName(env, 'HOST', 'PORT', DEFAULTS.host);
  const port = integer(env, 'PORT', DEFAULTS.port, 0, 65_535);
  // Unset: no metrics listener. 0 picks a free port, as PORT does (tests use it).
  const metricsPort = (env.METRICS_PORT ?? '').trim() === '' ? null : integer(env, 'METRICS_PORT', 0, 0, 65_535);
  const metricsHost = hostName(env, 'METRICS_HOST', 'METRICS_PORT', DEFAULTS.metricsHost) || DEFAULTS.metricsHost;
  if (metricsPort !== null && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError('METRICS_PORT', `must differ from PORT (${port}): the metrics have a listener of their own`);
  }
  const historySize = integer(env, 'HISTORY_SIZE', DEFAULTS.historySize, 1, 1_000_000);
  // More than the history holds cannot be sent; a history page is at most 100 messages.
  const historyOnJoin = integer(env, 'HISTORY_ON_JOIN', Math.min(DEFAULTS.historyOnJoin, historySize), 0, 100);
  if (historyOnJoin > historySize) {
    throw new ConfigError('HISTORY_ON_JOIN', `must not exceed HISTORY_SIZE (${historySize}), got ${historyOnJoin}`);
  }
  const redisUrl = (env.REDIS_URL ?? '').trim();
  if (redisUrl !== '') {
    try {
      parseRedisUrl(redisUrl);
    } catch (error) {
      if (error instanceof RedisUrlError) throw new ConfigError('REDIS_URL', error.message);
      throw error;
    }
  }
  const workers = integer(env, 'WORKERS', DEFAULTS.workers, 1, 256);
  if (workers > 0 && redisUrl === '') {
    throw new ConfigError('WORKERS', 'needs REDIS_URL: the worker processes share the chat through Redis');
  }
  const nodeId = (env.NODE_ID ?? '').trim();
  if (nodeId !== '' && !/^[A-Za-z0-9._:-]{1,64}$/.test(nodeId)) {
    const why = `expected 1-64 letters, digits, ".", "_", ":" or "-", got ${JSON.stringify(nodeId)}`;
    throw new ConfigError('NODE_ID', why);
  }
  return Object.freeze({
    port,
    host,
    // 125 bytes is the smallest sensible limit (a control frame's size); 1 GiB the largest we buffer.
    maxMessageBytes: integer(env, 'MAX_MESSAGE_BYTES', DEFAULTS.maxMessageBytes, 125, 1024 * 1024 * 1024),
    sendQueue: integer(env, 'SEND_QUEUE', DEFAULTS.sendQueue, 1, 1_000_000),
    allowedOrigins: origins(env, 'ALLOWED_ORIGINS'),
    pingIntervalMs,
    pongTimeoutMs,
    rateLimitPerSec: integer(env, 'RATE_LIMIT_PER_SEC', DEFAULTS.rateLimitPerSec, 1, 1_000_000),
    rateLimitBurst: integer(env, 'RATE_LIMIT_BURST', DEFAULTS.rateLimitBurst, 1, 1_000_000),
    maxConnections: integer(env, 'MAX_CONNECTIONS', DEFAULTS.maxConnections, 1, 1_000_000),
    maxBufferedBytes: integer(env, 'MAX_BUFFERED_BYTES', DEFAULTS.maxBufferedBytes, 1024, 1024 * 1024 * 1024),
    handshakeTimeoutMs: integer(env, 'HANDSHAKE_TIMEOUT_MS', DEFAULTS.handshakeTimeoutMs, 100, 600_000),
    joinTimeoutMs: integer(env, 'JOIN_TIMEOUT_MS', DEFAULTS.joinTimeoutMs, 100, 3_600_000),
    historySize,
    historyOnJoin,
    maxRooms: integer(env, 'MAX_ROOMS', DEFAULTS.maxRooms, 1, 1_000_000),
    maxRoomsPerClient: integer(env, 'MAX_ROOMS_PER_CLIENT', DEFAULTS.maxRoomsPerClient, 1, 1000),
    resumeGraceMs: integer(env, 'RESUME_GRACE_MS', DEFAULTS.resumeGraceMs, 0, 3_600_000),
    closeTimeoutMs: integer(env, 'CLOSE_TIMEOUT_MS', DEFAULTS.closeTimeoutMs, 100, 3_600_000),
    ...tlsFiles(env),
    trustProxy: proxies(env, 'TRUST_PROXY'),
    maxConnectionsPerIp: integer(env, 'MAX_CONNECTIONS_PER_IP', DEFAULTS.maxConnectionsPerIp, 0, 1_000_000),
    handshakeRatePerIp: integer(env, 'HANDSHAKE_RATE_PER_IP', DEFAULTS.handshakeRatePerIp, 0, 1_000_000),
    logFormat: logFormat(env, 'LOG_FORMAT'),
    compression: onOff(env, 'COMPRESSION', DEFAULTS.compression),
    redisUrl,
    workers,
    nodeId,
    nodeTtlMs: integer(env, 'NODE_TTL_MS', DEFAULTS.nodeTtlMs, 200, 3_600_000),
    metricsPort,
    metricsHost,
  });
}
