/**
 * One TCP connection to Redis: commands out, replies in, matched in order. It does not reconnect
 * (client.ts does); when it dies, it fails what it owes and reports once, through onClose().
 *
 * Pipelining: send() encodes the command at once and queues its bytes; everything queued in the same
 * event-loop turn goes out in one socket write at the end of the turn (setImmediate), and the reply
 * promises wait in the ReplyQueue in send order.
 *
 * On close, every command still owed a reply is rejected with CONNECTION_LOST, never re-sent: one that
 * was written may have run (a retried INCR counts twice). Its error says whether it was written.
 */
import type { Socket } from 'node:net';
import { RedisClientError } from './errors';
import { RespParser, type RespParserOptions } from './resp-parser';
import { encodeCommand, type RedisArg } from './resp-writer';
import { ReplyQueue, type PendingCommand } from './reply-queue';
import type { RedisStats } from './stats';
import { RedisReplyError, type RespValue } from './values';

export interface ConnectionOptions {
  readonly parser: RespParserOptions;
  /** RESP2 subscriber connection: pub/sub arrays are pushes, not replies. */
  readonly pubsub: boolean;
  readonly maxPending: number;
  readonly commandTimeoutMs: number;
  readonly deadLinkAfterMs: number;
  /** Send a PING after this long without traffic, so a silent dead link is found (0: never). */
  readonly pingIntervalMs: number;
}

export interface ConnectionEvents {
  onPush(value: RespValue[]): void;
  onAttribute?(attributes: Map<RespValue, RespValue>): void;
  /** Called once, when the connection is gone, with the reason. */
  onClose(error: Error): void;
}

export interface CommandOptions {
  /** This command's timeout (default: the client's commandTimeoutMs; Infinity for none). */
  timeoutMs?: number;
}

/**
 * Pub/sub commands answered by one confirmation per channel (a push in RESP3, an array in RESP2)
 * instead of a reply; the FIFO entry waits for all of them.
 */
export const SUBSCRIPTION_COMMANDS = new Set([
  'SUBSCRIBE',
  'PSUBSCRIBE',
  'SSUBSCRIBE',
  'UNSUBSCRIBE',
  'PUNSUBSCRIBE',
  'SUNSUBSCRIBE',
]);

/** RESP2 pub/sub (no push type): in subscribed mode these arrays are messages and confirmations. */
const PUBSUB_KINDS = new Set([
  'message',
  'pmessage',
  'smessage',
  'subscribe',
  'unsubscribe',
  'psubscribe',
  'punsubscribe',
  'ssubscribe',
  'sunsubscribe',
]);

export function pushKind(value: RespValue[]): string {
  const first = value[0];
  return typeof first === 'string' || Buffer.isBuffer(first) ? first.toString('latin1').toLowerCase() : '';
}

export class Connection {
  private readonly parser: RespParser;
  private readonly replies: ReplyQueue;
  private outbox: Buffer[] = [];
  /** Commands at the tail of the reply queue whose bytes are still in the outbox. */
  private unwritten = 0;
  private flushScheduled = false;
  private closed = false;
  private connected: boolean;
  private lastError: Error | undefined;
  private readAt = performance.now();
  private readonly pinger: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly socket: Socket,
    private readonly options: ConnectionOptions,
    private readonly stats: RedisStats,
    private readonly events: ConnectionEvents,
  ) {
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    this.parser = new RespParser(
      {
        onReply: (value) => this.onReply(value),
        onPush: (value) => this.onPush(value),
        onProtocolError: (message) =>
          this.destroy(new RedisClientError('PROTOCOL', `Redis protocol error: ${message}`, true)),
        onAttribute: events.onAttribute && ((attributes) => events.onAttribute!(attributes)),
      },
      options.parser,
    );
    this.replies = new ReplyQueue(options.commandTimeoutMs, options.deadLinkAfterMs, {
      onTimeout: (command) => this.onTimeout(command),
      onDeadLink: (command) => {
        const waited = Math.round(performance.now() - command.sentAt);
        const message = `no reply to ${command.name} for ${waited} ms: the link is presumed dead`;
        this.destroy(new RedisClientError('CONNECTION_LOST', message, true));
      },
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.readAt = performance.now();
      this.parser.push(chunk);
    });
    socket.on('error', (error) => (this.lastError ??= error));
    socket.on('close', () => this.destroy(this.lastError ?? new Error('connection closed by the server')));
    // Nothing is written before TCP is up: a command that never reached Redis must say sent: false.
    // (socket.connecting alone will not do: it turns false on a refused connect too.)
    this.connected = !socket.connecting;
    if (!this.connected) {
      socket.once('connect', () => {
        this.connected = true;
        this.flush();
      });
    }
    if (options.pingIntervalMs > 0) {
      this.pinger = setInterval(() => this.ping(), options.pingIntervalMs);
      this.pinger.unref();
    }
  }

  /** Commands waiting for a reply (timed-out ones included, until their reply is read). */
  get pending(): number {
    return this.replies.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(args: readonly RedisArg[], options: CommandOptions = {}): Promise<RespValue> {
    if (this.closed) {
      return Promise.reject(new RedisClientError('CONNECTION_LOST', 'the connection is closed', false));
    }
    // The bound counts timed-out commands too: their replies are still owed, so on a stuck link
    // memory stays bounded and callers hear "queue full" rather than wait.
    if (this.replies.size >= this.options.maxPending) {
      this.stats.rejectedQueueFull++;
      return Promise.reject(
        new RedisClientError('QUEUE_FULL', `${this.replies.size} commands already waiting for replies`, false),
      );
    }
    let bytes: Buffer;
    try {
      bytes = encodeCommand(args);
    } catch (error) {
      return Promise.reject(error);
    }
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs;
    const name = String(args[0]).toUpperCase();
    const confirmations = SUBSCRIPTION_COMMANDS.has(name) ? args.length - 1 : 0;
    if (SUBSCRIPTION_COMMANDS.has(name) && confirmations === 0) {
      // Without names, the number of confirmations depends on server state: the FIFO could not count them.
      return Promise.reject(new TypeError(`${name} needs the channels or patterns it applies to`));
    }
    return new Promise<RespValue>((resolve, reject) => {
      const sentAt = performance.now();
      const command: PendingCommand = {
        name,
        resolve,
        reject,
        sentAt,
        deadline: sentAt + timeoutMs,
        pushReplies: confirmations,
        timedOut: false,
        ownTimeout: false,
        ownTimer: undefined,
      };
      this.replies.add(command, timeoutMs);
      this.stats.commands++;
      this.outbox.push(bytes);
      this.unwritten++;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Resolves when no reply is owed (for a graceful close). */
  whenIdle(): Promise<void> {
    if (this.replies.size === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Graceful end: FIN after what is queued; resolves once the socket is closed. */
  end(): Promise<void> {
    if (!this.closed) {
      this.flush();
      this.socket.end();
    }
    return this.closedPromise;
  }

  /** Immediate end: fails everything owed with `error` (unless closed already). */
  destroy(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pinger !== undefined) clearInterval(this.pinger);
    this.socket.destroy();
    const firstUnwritten = this.replies.size - this.unwritten;
    this.outbox = [];
    this.unwritten = 0;
    this.replies.drain((command, index) => {
      if (command.timedOut) return;
      const sent = index < firstUnwritten;
      if (sent) this.stats.failedOnDisconnect++;
      command.reject(
        new RedisClientError(
          'CONNECTION_LOST',
          sent
            ? `connection lost before the reply to ${command.name}; it may or may not have run (${error.message})`
            : `connection lost before ${command.name} was sent (${error.message})`,
          sent,
          { cause: error },
        ),
      );
    });
    this.wakeIdle();
    this.resolveClosed();
    this.events.onClose(error);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || !this.connected || this.outbox.length === 0) return;
    const batch = this.outbox.length === 1 ? this.outbox[0]! : Buffer.concat(this.outbox);
    this.outbox = [];
    this.unwritten = 0;
    this.stats.writes++;
    this.socket.write(batch);
  }

  private onReply(value: RespValue): void {
    if (this.options.pubsub && Array.isArray(value) && value.length >= 3 && PUBSUB_KINDS.has(pushKind(value))) {
      this.onPush(value);
      return;
    }
    const command = this.replies.peek();
    if (command === undefined || command.pushReplies > 0) {
      // Either nothing was asked, or a pub/sub command got a reply where confirmations were due
      // (only an error can do that, e.g. NOPERM): an error settles it; anything else is out of step.
      if (command !== undefined && value instanceof RedisReplyError) {
        this.settle(this.replies.shift()!, value);
        return;
      }
      this.destroy(new RedisClientError('PROTOCOL', 'Redis sent a reply no command was waiting for', true));
      return;
    }
    this.settle(this.replies.shift()!, value);
  }

  private onPush(value: RespValue[]): void {
    this.stats.pushes++;
    // A confirmation (subscribe, unsubscribe...) answers the pub/sub command at the head of the queue.
    const command = this.replies.peek();
    if (command !== undefined && command.pushReplies > 0 && pushKind(value) === command.name.toLowerCase()) {
      if (--command.pushReplies === 0) this.settle(this.replies.shift()!, null);
    }
    this.events.onPush(value);
  }

  private settle(command: PendingCommand, value: RespValue): void {
    if (command.timedOut) {
      this.stats.lateReplies++;
    } else {
      this.stats.replies++;
      this.stats.latency.record(performance.now() - command.sentAt);
      if (value instanceof RedisReplyError) {
        this.stats.errorReplies++;
        command.reject(value);
      } else {
        command.resolve(value);
      }
    }
    if (this.replies.size === 0) this.wakeIdle();
  }

  private onTimeout(command: PendingCommand): void {
    this.stats.timeouts++;
    const ms = Math.round(command.deadline - command.sentAt);
    const message = `${command.name} got no reply within ${ms} ms (its reply will be discarded)`;
    command.reject(new RedisClientError('TIMEOUT', message, true));
  }

  /** Health check: a PING when nothing has been read for a whole interval and nothing is owed. */
  private ping(): void {
    if (this.replies.size > 0 || performance.now() - this.readAt < this.options.pingIntervalMs) return;
    this.send(['PING']).catch(() => undefined); // a missing PONG is found by the dead-link check
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
