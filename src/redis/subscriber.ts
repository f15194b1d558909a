/**
 * RedisSubscriber: SUBSCRIBE and PSUBSCRIBE on a connection of their own (in RESP2 a subscribed
 * connection can run nothing else; in RESP3 it could, but a publisher stuck behind a slow subscriber,
 * or the reverse, is not worth it).
 *
 * The set of channels and patterns kept here is the truth; the server's copy is rebuilt from it on
 * every connection, before the link is reported ready. Redis pub/sub keeps nothing for a subscriber
 * that is away, so every reconnect may have lost messages: after each one the subscriber emits
 * `resubscribed`, the signal for its user to repair what it missed (re-read state, ask peers).
 *
 * Messages arrive as RESP3 push data (`>3 message channel payload`), or in RESP2 as arrays on the
 * subscribed connection; both give the same events. A message for a channel no longer in the set
 * (it was in flight when unsubscribe() was called) is dropped, so none arrives after unsubscribe().
 *
 * A subscriber whose link died silently would wait for ever: the client's idle PING (pingIntervalMs,
 * default 5 s here) and dead-link check find it.
 */
import { EventEmitter } from 'node:events';
import { RedisClient, type ClientState, type RedisClientOptions } from './client';
import type { CommandOptions } from './connection';
import { pushKind } from './connection';
import { RedisClientError } from './errors';
import type { RedisArg } from './resp-writer';
import type { RedisStats } from './stats';
import { RedisReplyError, type RespValue } from './values';

export interface RedisSubscriberEvents {
  /** A message on a subscribed channel. */
  message: [channel: string, message: string | Buffer];
  /** A message matching a subscribed pattern. */
  pmessage: [pattern: string, channel: string, message: string | Buffer];
  /** Subscriptions restored after a reconnect: messages published while down are lost. */
  resubscribed: [info: { channels: string[]; patterns: string[] }];
  ready: [info: { protocol: 2 | 3; reconnect: boolean }];
  down: [error: Error];
  connectError: [error: Error];
  reconnecting: [info: { attempt: number; delayMs: number }];
  closed: [];
}

type Send = (args: readonly RedisArg[], options?: CommandOptions) => Promise<RespValue>;

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** One channel or pattern we want. */
interface Subscription {
  /** Confirmed by the server on the current connection. */
  active: boolean;
  /** The connection (by number) it was last sent on. */
  sentOn: number;
  waiters: Waiter[];
}

/** Channels per SUBSCRIBE when restoring many: keeps each command a sane size. */
const BATCH = 1000;

class SubscriptionSet {
  readonly entries = new Map<string, Subscription>();

  constructor(
    readonly subscribeCommand: 'SUBSCRIBE' | 'PSUBSCRIBE',
    readonly unsubscribeCommand: 'UNSUBSCRIBE' | 'PUNSUBSCRIBE',
  ) {}

  confirm(name: string): void {
    const entry = this.entries.get(name);
    if (entry === undefined) return;
    entry.active = true;
    const waiters = entry.waiters;
    entry.waiters = [];
    for (const w of waiters) w.resolve();
  }

  remove(name: string, error: Error): boolean {
    const entry = this.entries.get(name);
    if (entry === undefined) return false;
    this.entries.delete(name);
    for (const w of entry.waiters) w.reject(error);
    return true;
  }
}

export class RedisSubscriber extends EventEmitter<RedisSubscriberEvents> {
  private readonly client: RedisClient;
  private readonly channels = new SubscriptionSet('SUBSCRIBE', 'UNSUBSCRIBE');
  private readonly patterns = new SubscriptionSet('PSUBSCRIBE', 'PUNSUBSCRIBE');
  /** Number of the current connection; subscriptions sent on an older one must be sent again. */
  private generation = 0;
  /** send() on the connection being set up, before the client reports it ready. */
  private setupSend: Send | undefined;
  private closed = false;

  constructor(options: RedisClientOptions | string = {}) {
    super();
    const o: RedisClientOptions = typeof options === 'string' ? { url: options } : options;
    this.client = new RedisClient(
      { ...o, pingIntervalMs: o.pingIntervalMs ?? 5000 },
      { pubsub: true, setup: (send) => this.restore(send) },
    );
    this.client.on('push', (value) => this.onPush(value));
    this.client.on('ready', (info) => {
      this.emit('ready', info);
      if (info.reconnect) {
        this.emit('resubscribed', { channels: this.subscribedChannels, patterns: this.subscribedPatterns });
      }
    });
    this.client.on('down', (error) => {
      this.markInactive();
      this.emit('down', error);
    });
    // A connection that confirmed some subscriptions and then failed its setup holds none of them.
    this.client.on('connectError', (error) => {
      this.markInactive();
      this.emit('connectError', error);
    });
    this.client.on('reconnecting', (info) => this.emit('reconnecting', info));
    this.client.on('closed', () => this.emit('closed'));
  }

  get state(): ClientState {
    return this.client.state;
  }

  get stats(): RedisStats {
    return this.client.stats;
  }

  get protocol(): 2 | 3 | undefined {
    return this.client.protocol;
  }

  get subscribedChannels(): string[] {
    return [...this.channels.entries.keys()];
  }

  get subscribedPatterns(): string[] {
    return [...this.patterns.entries.keys()];
  }

  /** Starts connecting; resolves at the first ready link (with the set subscribed). */
  connect(): Promise<void> {
    return this.client.connect();
  }

  whenReady(timeoutMs?: number): Promise<void> {
    return this.client.whenReady(timeoutMs);
  }

  /**
   * Adds channels to the set; resolves once the server has confirmed them all. If the link is down,
   * or drops before the confirmation, it resolves when a new link has restored them. Rejects when the
   * server refuses them (NOPERM: they leave the set), when they are unsubscribed first, or on close().
   */
  subscribe(...channels: string[]): Promise<void> {
    return this.add(this.channels, channels);
  }

  psubscribe(...patterns: string[]): Promise<void> {
    return this.add(this.patterns, patterns);
  }

  /** Removes channels from the set; no message for them is emitted from now on. */
  unsubscribe(...channels: string[]): Promise<void> {
    return this.removeAll(this.channels, channels);
  }

  punsubscribe(...patterns: string[]): Promise<void> {
    return this.removeAll(this.patterns, patterns);
  }

  async close(): Promise<void> {
    this.closed = true;
    const error = new RedisClientError('CLOSED', 'the Redis subscriber is closed', false);
    for (const set of [this.channels, this.patterns]) {
      for (const name of [...set.entries.keys()]) set.remove(name, error);
    }
    await this.client.close();
  }

  private add(set: SubscriptionSet, names: string[]): Promise<void> {
    if (this.closed) return Promise.reject(new RedisClientError('CLOSED', 'the Redis subscriber is closed', false));
    if (names.length === 0 || names.some((n) => typeof n !== 'string' || n === '')) {
      return Promise.reject(new TypeError(`${set.subscribeCommand} needs non-empty names`));
    }
    const fresh: string[] = [];
    const waits: Promise<void>[] = [];
    for (const name of new Set(names)) {
      let entry = set.entries.get(name);
      if (entry === undefined) {
        entry = { active: false, sentOn: 0, waiters: [] };
        set.entries.set(name, entry);
        fresh.push(name);
      }
      if (!entry.active) {
        const e = entry;
        waits.push(new Promise((resolve, reject) => e.waiters.push({ resolve, reject })));
      }
    }
    const send = this.liveSend();
    if (send !== undefined && fresh.length > 0) this.sendSubscribe(set, fresh, send).catch(() => undefined);
    return Promise.all(waits).then(() => undefined);
  }

  private async removeAll(set: SubscriptionSet, names: string[]): Promise<void> {
    const error = new Error(`${set.unsubscribeCommand} before the server confirmed the subscription`);
    const removed = names.filter((name) => set.remove(name, error));
    const send = this.liveSend();
    if (send === undefined || removed.length === 0) return;
    try {
      await send([set.unsubscribeCommand, ...removed]);
    } catch (e) {
      // The set is the truth and messages are filtered by it; a lost link drops the server's copy anyway.
      if (!(e instanceof RedisClientError)) throw e;
    }
  }

  private markInactive(): void {
    for (const set of [this.channels, this.patterns]) for (const entry of set.entries.values()) entry.active = false;
  }

  /** The send() that reaches the server now, if any. */
  private liveSend(): Send | undefined {
    if (this.setupSend !== undefined) return this.setupSend;
    if (this.client.state === 'ready') return (args, options) => this.client.send(args, options);
    return undefined;
  }

  private async sendSubscribe(set: SubscriptionSet, names: string[], send: Send): Promise<void> {
    for (const name of names) set.entries.get(name)!.sentOn = this.generation;
    try {
      await send([set.subscribeCommand, ...names]);
    } catch (error) {
      // Refused (NOPERM...): those names leave the set and their callers hear why. Anything else
      // (timeout, lost link) is repaired by the next connection.
      if (error instanceof RedisReplyError) for (const name of names) set.remove(name, error);
      throw error;
    }
  }

  /** Rebuilds the server's subscriptions on a new connection (the client's setup step). */
  private async restore(send: Send): Promise<void> {
    const generation = ++this.generation;
    this.setupSend = send;
    try {
      // Loop: subscribe() calls made while this runs add names that must go out too.
      for (;;) {
        const batches: Promise<void>[] = [];
        for (const set of [this.channels, this.patterns]) {
          const due = [...set.entries].filter(([, e]) => e.sentOn !== generation).map(([name]) => name);
          for (let i = 0; i < due.length; i += BATCH) {
            batches.push(
              this.sendSubscribe(set, due.slice(i, i + BATCH), send).catch((error: unknown) => {
                if (!(error instanceof RedisReplyError)) throw error;
              }),
            );
          }
        }
        if (batches.length === 0) return;
        await Promise.all(batches);
      }
    } finally {
      if (this.setupSend === send) this.setupSend = undefined;
    }
  }

  private onPush(value: RespValue[]): void {
    const kind = pushKind(value);
    const text = (v: RespValue | undefined): string =>
      typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : '';
    switch (kind) {
      case 'message': {
        const channel = text(value[1]);
        if (this.channels.entries.has(channel)) this.emit('message', channel, value[2] as string | Buffer);
        return;
      }
      case 'pmessage': {
        const pattern = text(value[1]);
        if (this.patterns.entries.has(pattern)) {
          this.emit('pmessage', pattern, text(value[2]), value[3] as string | Buffer);
        }
        return;
      }
      case 'subscribe':
        return this.channels.confirm(text(value[1]));
      case 'psubscribe':
        return this.patterns.confirm(text(value[1]));
    }
  }
}
