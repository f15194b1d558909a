/**
 * RedisClient: one logical link to Redis that stays up by itself.
 *
 * Life of a link: TCP connect, then the handshake: `HELLO 3 [AUTH user pass] [SETNAME name]` (RESP3 when
 * the server has it; on "unknown command" it falls back to RESP2 with AUTH and CLIENT SETNAME), then
 * SELECT when the URL names a database. Only then is the client `ready`. When the link goes down it
 * reconnects after a delay from Backoff (exponential, capped, jittered, never a tight loop), for ever,
 * until close().
 *
 * What happens to commands:
 *  - ready: written at the end of the event-loop turn with everything else sent in that turn, answered
 *    in order (connection.ts);
 *  - not ready (connecting, waiting to reconnect): rejected at once with NOT_CONNECTED. No offline queue:
 *    for a chat bridge a message replayed seconds later is worse than one reported lost now, a queue
 *    hides an outage from the caller until it fills, and replaying it after a reconnect is how other
 *    clients lose or duplicate data. A caller that prefers to wait says so, with a bound: whenReady(ms);
 *  - unanswered when the link drops: rejected with CONNECTION_LOST, never re-sent (Redis may have run
 *    them); `error.sent` says whether the bytes had left;
 *  - too many unanswered: rejected at once with QUEUE_FULL (maxPending);
 *  - no reply within the timeout: rejected with TIMEOUT; the reply is discarded when it arrives, and a
 *    link that stays silent well past that (deadLinkAfterMs) is dropped and made again.
 *
 * Events (plain counters are in `stats`): connecting, ready, down, connectError, reconnecting, push,
 * attribute, closed. A listener that throws does not stall the client: the error is rethrown on its own.
 */
import { EventEmitter } from 'node:events';
import { connect as netConnect } from 'node:net';
import { Backoff, type BackoffOptions } from './backoff';
import { Connection, SUBSCRIPTION_COMMANDS, type CommandOptions } from './connection';
import { RedisClientError } from './errors';
import type { RespParserOptions } from './resp-parser';
import type { RedisArg } from './resp-writer';
import { ScriptRunner, type RedisScript } from './script';
import { RedisStats } from './stats';
import { DEFAULT_PORT, parseRedisUrl } from './url';
import { RedisReplyError, type RespValue } from './values';

export interface RedisClientOptions {
  /** `redis://[[user]:password@]host[:port][/db]`; the fields below override its parts. */
  url?: string;
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  db?: number;
  /** 3: RESP3 or fail; 2: RESP2 (no HELLO); 'auto' (default): RESP3 when the server has HELLO. */
  protocol?: 2 | 3 | 'auto';
  /** CLIENT SETNAME, shown by CLIENT LIST: tells operators which process a connection belongs to. */
  clientName?: string;
  /** Per-command timeout (default 5000 ms). */
  commandTimeoutMs?: number;
  /** TCP connect plus handshake (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Drop the link when the oldest command is this far past its timeout (default: commandTimeoutMs). */
  deadLinkAfterMs?: number;
  /** PING an idle link this often to find a dead one (default 15000 ms; 0: never). */
  pingIntervalMs?: number;
  /** Commands waiting for replies before send() refuses more (default 10000). */
  maxPending?: number;
  reconnect?: BackoffOptions;
  /** Bulk strings as UTF-8 strings (default) or Buffers. */
  bulkAs?: 'string' | 'buffer';
  /** Parser limits (maxBulkBytes, maxAggregateLength, maxDepth, maxLineBytes). */
  limits?: Omit<RespParserOptions, 'bulkAs'>;
}

/** For the subscriber, which builds on this client. */
export interface ClientInternals {
  /** RESP2 pub/sub arrays are pushes on this connection. */
  pubsub?: boolean;
  /** Runs after the handshake and before `ready`, with a send() on the new connection. */
  setup?: (send: (args: readonly RedisArg[], options?: CommandOptions) => Promise<RespValue>) => Promise<void>;
}

export type ClientState = 'idle' | 'connecting' | 'ready' | 'waiting' | 'closed';

export interface RedisClientEvents {
  /** A connection attempt starts; `attempt` counts failures since the last stable link. */
  connecting: [info: { attempt: number }];
  /** The link is up. `reconnect` is false the first time. */
  ready: [info: { protocol: 2 | 3; reconnect: boolean }];
  /** A ready link was lost. */
  down: [error: Error];
  /** An attempt failed before the link was ready (refused, timed out, wrong password...). */
  connectError: [error: Error];
  /** The next attempt is scheduled. */
  reconnecting: [info: { attempt: number; delayMs: number }];
  /** Out-of-band data: RESP3 pushes, and pub/sub messages on a RESP2 subscriber. */
  push: [value: RespValue[]];
  /** RESP3 attributes: auxiliary data about the reply (or element) that follows them. */
  attribute: [attributes: Map<RespValue, RespValue>];
  closed: [];
}

/**
 * Commands send() refuses: they change the connection's state, which the next reconnect would
 * silently undo (the client replays only what its options say), or they turn it into a push stream.
 */
const REFUSED: Readonly<Record<string, string>> = {
  SELECT: 'set the database in the URL or the db option, so that every reconnect selects it',
  AUTH: 'set the credentials in the URL or the options, so that every reconnect authenticates',
  HELLO: 'use the protocol option',
  RESET: 'it would undo the handshake',
  QUIT: 'use close()',
  MONITOR: 'a monitored connection is a stream, not replies',
};

function refusal(args: readonly RedisArg[], pubsub: boolean): string | undefined {
  if (args.length === 0) return undefined;
  const name = String(args[0]).toUpperCase();
  if (SUBSCRIPTION_COMMANDS.has(name)) {
    return pubsub ? undefined : `${name}: use RedisSubscriber, on a connection of its own`;
  }
  const why = REFUSED[name];
  return why === undefined ? undefined : `${name} is not sent by send(): ${why}`;
}

interface ReadyWaiter {
  resolve(): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export class RedisClient extends EventEmitter<RedisClientEvents> {
  readonly stats = new RedisStats();
  private readonly host: string;
  private readonly port: number;
  private readonly username: string | undefined;
  private readonly password: string | undefined;
  private readonly db: number;
  private readonly options: RedisClientOptions;
  private readonly backoff: Backoff;
  private readonly scripts: ScriptRunner;
  private currentState: ClientState = 'idle';
  private connection: Connection | undefined;
  private negotiated: 2 | 3 | undefined;
  private everReady = false;
  private readyAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private readyWaiters: ReadyWaiter[] = [];
  private closing: Promise<void> | undefined;

  constructor(
    options: RedisClientOptions | string = {},
    private readonly internals: ClientInternals = {},
  ) {
    super();
    this.options = typeof options === 'string' ? { url: options } : options;
    const o = this.options;
    const fromUrl = o.url !== undefined ? parseRedisUrl(o.url) : undefined;
    this.host = o.host ?? fromUrl?.host ?? '127.0.0.1';
    this.port = o.port ?? fromUrl?.port ?? DEFAULT_PORT;
    this.username = o.username ?? fromUrl?.username;
    this.password = o.password ?? fromUrl?.password;
    this.db = o.db ?? fromUrl?.db ?? 0;
    if (this.username !== undefined && this.password === undefined) {
      throw new TypeError('a Redis username needs a password');
    }
    this.backoff = new Backoff(o.reconnect);
    this.scripts = new ScriptRunner((args, opts) => this.send(args, opts), this.stats);
  }

  /** Link state: `ready` is up; everything else is down. */
  get state(): ClientState {
    return this.currentState;
  }

  /** The RESP version of the current link (undefined before the first handshake). */
  get protocol(): 2 | 3 | undefined {
    return this.negotiated;
  }

  /** Starts connecting (once) and resolves at the first `ready`; retries until close(). */
  connect(): Promise<void> {
    if (this.currentState === 'idle') this.attempt();
    return this.whenReady();
  }

  /** Resolves when the link is ready (at once if it is); rejects after `timeoutMs`, or on close(). */
  whenReady(timeoutMs?: number): Promise<void> {
    if (this.currentState === 'ready') return Promise.resolve();
    if (this.currentState === 'closed') return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      const waiter: ReadyWaiter = { resolve, reject, timer: undefined };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
          reject(new RedisClientError('NOT_CONNECTED', `Redis not ready within ${timeoutMs} ms`, false));
        }, timeoutMs);
      }
      this.readyWaiters.push(waiter);
    });
  }

  /** Sends one command: `send(['SET', 'k', 'v'])`. See the top of this file for how it can fail. */
  send(args: readonly RedisArg[], options?: CommandOptions): Promise<RespValue> {
    const refused = refusal(args, this.internals.pubsub ?? false);
    if (refused !== undefined) return Promise.reject(new TypeError(refused));
    if (this.currentState !== 'ready' || this.connection === undefined) {
      if (this.currentState === 'closed') return Promise.reject(this.closedError());
      this.stats.rejectedNotConnected++;
      return Promise.reject(
        new RedisClientError(
          'NOT_CONNECTED',
          `not connected to Redis (${this.currentState}): ${commandName(args)} not sent`,
          false,
        ),
      );
    }
    return this.connection.send(args, options);
  }

  /** EVALSHA, loading the script when Redis does not have it (NOSCRIPT). */
  evalScript(
    script: RedisScript,
    keys: readonly RedisArg[] = [],
    args: readonly RedisArg[] = [],
    options?: CommandOptions,
  ): Promise<RespValue> {
    return this.scripts.run(script, keys, args, options);
  }

  /** SCRIPT LOAD now (evalScript also does it when needed). */
  loadScript(script: RedisScript): Promise<void> {
    return this.scripts.load(script);
  }

  /**
   * Stops reconnecting, refuses new commands, lets the commands already sent get their replies, then
   * closes the socket; resolves when it is closed. The wait is bounded by commandTimeoutMs (a BLPOP 0
   * or a silent link would otherwise hold it for ever): then what is still owed fails, CONNECTION_LOST.
   * An open client keeps the process alive, as a server socket does, until close().
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    const wasReady = this.currentState === 'ready';
    this.currentState = 'closed';
    clearTimeout(this.retryTimer);
    clearTimeout(this.connectTimer);
    this.settleReadyWaiters(this.closedError());
    const connection = this.connection;
    this.closing = (async () => {
      if (connection !== undefined && !connection.isClosed) {
        if (wasReady) {
          const graceMs = this.options.commandTimeoutMs ?? 5000;
          const timer = setTimeout(() => connection.destroy(this.closedError()), graceMs);
          await connection.whenIdle();
          await connection.end();
          clearTimeout(timer);
        } else {
          connection.destroy(this.closedError());
        }
      }
      this.safeEmit('closed');
    })();
    return this.closing;
  }

  private attempt(): void {
    this.retryTimer = undefined;
    this.currentState = 'connecting';
    this.stats.connectAttempts++;
    this.safeEmit('connecting', { attempt: this.backoff.attempt });
    const o = this.options;
    const socket = netConnect({ host: this.host, port: this.port });
    const connection = new Connection(
      socket,
      {
        parser: { ...o.limits, bulkAs: o.bulkAs ?? 'string' },
        pubsub: this.internals.pubsub ?? false,
        maxPending: o.maxPending ?? 10_000,
        commandTimeoutMs: o.commandTimeoutMs ?? 5000,
        deadLinkAfterMs: o.deadLinkAfterMs ?? o.commandTimeoutMs ?? 5000,
        pingIntervalMs: o.pingIntervalMs ?? 15_000,
      },
      this.stats,
      {
        onPush: (value) => this.safeEmit('push', value),
        onAttribute: (attributes) => this.safeEmit('attribute', attributes),
        onClose: (error) => this.onConnectionClosed(connection, error),
      },
    );
    this.connection = connection;
    const connectTimeoutMs = o.connectTimeoutMs ?? 5000;
    this.connectTimer = setTimeout(
      () => connection.destroy(new Error(`connect and handshake took over ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    this.handshake(connection).then(
      () => {
        if (connection.isClosed || this.currentState === 'closed') return;
        clearTimeout(this.connectTimer);
        const reconnect = this.everReady;
        this.everReady = true;
        this.currentState = 'ready';
        this.readyAt = performance.now();
        this.stats.connects++;
        if (reconnect) this.stats.reconnects++;
        this.settleReadyWaiters();
        this.safeEmit('ready', { protocol: this.negotiated!, reconnect });
      },
      (error: unknown) => connection.destroy(error instanceof Error ? error : new Error(String(error))),
    );
  }

  private async handshake(connection: Connection): Promise<void> {
    const o = this.options;
    // The connect timer bounds the whole handshake, so its commands need no timeout of their own.
    const send = (args: readonly RedisArg[], opts?: CommandOptions): Promise<RespValue> =>
      connection.send(args, { timeoutMs: Infinity, ...opts });
    const protocol = o.protocol ?? 'auto';
    let resp3 = false;
    if (protocol !== 2) {
      const hello: RedisArg[] = ['HELLO', '3'];
      if (this.password !== undefined) hello.push('AUTH', this.username ?? 'default', this.password);
      if (o.clientName !== undefined) hello.push('SETNAME', o.clientName);
      try {
        const reply = await send(hello);
        if (!(reply instanceof Map)) throw new RedisClientError('PROTOCOL', 'HELLO 3 did not answer with a map', true);
        resp3 = true;
      } catch (error) {
        // RESP3 spec, "The HELLO command and connection handshake": a RESP2-only server answers
        // "unknown command" (Redis < 6) or NOPROTO; the client then continues in RESP2 with AUTH.
        const old =
          error instanceof RedisReplyError && (error.code === 'NOPROTO' || /unknown command/i.test(error.message));
        if (!old || protocol === 3) throw error;
      }
    }
    if (!resp3) {
      if (this.password !== undefined) {
        // The two-argument AUTH needs Redis 6 (ACL); the default user authenticates the old way.
        const user = this.username === undefined || this.username === 'default' ? [] : [this.username];
        await send(['AUTH', ...user, this.password]);
      }
      if (o.clientName !== undefined) await send(['CLIENT', 'SETNAME', o.clientName]);
    }
    // HELLO does not select a database.
    if (this.db !== 0) await send(['SELECT', this.db]);
    this.negotiated = resp3 ? 3 : 2;
    await this.internals.setup?.(send);
  }

  private onConnectionClosed(connection: Connection, error: Error): void {
    if (connection !== this.connection) return;
    this.connection = undefined;
    clearTimeout(this.connectTimer);
    if (this.currentState === 'ready') {
      this.stats.disconnects++;
      this.backoff.linkLost(performance.now() - this.readyAt);
      this.currentState = 'waiting';
      this.safeEmit('down', error);
    } else if (this.currentState === 'connecting') {
      this.currentState = 'waiting';
      this.safeEmit('connectError', error);
    }
    if (this.currentState === 'closed') return;
    const attempt = this.backoff.attempt;
    const delayMs = this.backoff.next();
    this.retryTimer = setTimeout(() => this.attempt(), delayMs);
    this.safeEmit('reconnecting', { attempt, delayMs });
  }

  private settleReadyWaiters(error?: Error): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      if (error === undefined) w.resolve();
      else w.reject(error);
    }
  }

  private closedError(): RedisClientError {
    return new RedisClientError('CLOSED', 'the Redis client is closed', false);
  }

  /** emit(), but a throwing listener cannot leave the client half-way through a state change. */
  private safeEmit<K extends keyof RedisClientEvents>(event: K, ...args: RedisClientEvents[K]): void {
    try {
      (this.emit as (event: K, ...a: RedisClientEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

function commandName(args: readonly RedisArg[]): string {
  return args.length === 0 ? '(empty command)' : String(args[0]).toUpperCase();
}
