/**
 * RedisSubscriber against a real redis-server: messages and pattern messages in RESP3 (push data) and
 * RESP2 (arrays on the subscribed connection), confirmation before subscribe() resolves, unsubscribe,
 * re-subscription after CLIENT KILL, after a silent link and after a restart, each reported by
 * `resubscribed`, and channels the server refuses.
 *
 * Without redis-server the file is skipped (redis-client.test.ts fails in CI when it is missing).
 */
import { once } from 'node:events';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisClient, RedisReplyError, RedisSubscriber } from '../src/redis';
import type { RedisClientOptions, RedisSubscriberEvents } from '../src/redis';
import { waitUntil, within } from './helpers/wait';
import { findRedisServer, startRedis, type RedisServer } from './helpers/redis-server';
import { sharedRedis } from './helpers/shared-redis';
import { startTcpProxy } from './helpers/tcp-proxy';

const binary = findRedisServer();
const subscribers: RedisSubscriber[] = [];
const cleanups: (() => Promise<void>)[] = [];

async function subscriber(options: RedisClientOptions | string, connect = true): Promise<RedisSubscriber> {
  const s = new RedisSubscriber(options);
  subscribers.push(s);
  if (connect) await within(s.connect(), 10_000, 'subscriber connect');
  return s;
}

function next<K extends keyof RedisSubscriberEvents>(
  s: RedisSubscriber,
  event: K,
  ms = 10_000,
): Promise<RedisSubscriberEvents[K]> {
  return within(once(s, event) as Promise<RedisSubscriberEvents[K]>, ms, `event ${event}`);
}

/** The next message on `channel`. */
function message(s: RedisSubscriber, channel: string): Promise<string | Buffer> {
  return within(
    new Promise((resolve) => {
      const listener = (ch: string, payload: string | Buffer): void => {
        if (ch !== channel) return;
        s.off('message', listener);
        resolve(payload);
      };
      s.on('message', listener);
    }),
    10_000,
    `a message on ${channel}`,
  );
}

afterEach(async () => {
  await Promise.all(subscribers.splice(0).map((s) => s.close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.skipIf(binary === undefined)('RedisSubscriber with a real redis-server', () => {
  const redis = sharedRedis();
  let server: RedisServer;
  let admin: RedisClient;
  beforeAll(() => ({ server, admin } = redis));

  for (const protocol of [3, 2] as const) {
    it(`RESP${protocol}: messages and pattern messages, confirmed before subscribe() resolves`, async () => {
      const s = await subscriber({ url: server.url(), protocol });
      expect(s.protocol).toBe(protocol);
      await s.subscribe('room:1', 'room:2');
      await s.psubscribe('news.*');
      // Confirmed: the server counts this subscriber as a receiver.
      expect(await admin.send(['PUBLISH', 'room:1', 'x'])).toBe(1);
      const text = 'héllo\r\nworld 😀';
      const got = message(s, 'room:2');
      expect(await admin.send(['PUBLISH', 'room:2', text])).toBe(1);
      expect(await got).toBe(text);
      const pattern = within(once(s, 'pmessage'), 10_000, 'pmessage');
      await admin.send(['PUBLISH', 'news.sport', 'goal']);
      expect(await pattern).toEqual(['news.*', 'news.sport', 'goal']);
      expect(s.subscribedChannels).toEqual(['room:1', 'room:2']);
      expect(s.subscribedPatterns).toEqual(['news.*']);
    });

    it(`RESP${protocol}: after unsubscribe() nothing more arrives for that channel`, async () => {
      const s = await subscriber({ url: server.url(), protocol });
      const seen: string[] = [];
      s.on('message', (channel) => seen.push(channel));
      await s.subscribe('u:a', 'u:b');
      await s.unsubscribe('u:a');
      expect(await admin.send(['PUBLISH', 'u:a', '1'])).toBe(0);
      const b = message(s, 'u:b');
      await admin.send(['PUBLISH', 'u:b', '2']);
      expect(await b).toBe('2');
      // One connection delivers in order: had u:a arrived, it would be before u:b.
      expect(seen).toEqual(['u:b']);
      await s.punsubscribe('nothing.*'); // never subscribed: nothing to do
      expect(s.subscribedChannels).toEqual(['u:b']);
    });
  }

  it('RESP2: the idle PING works in subscribed mode (its reply is an array, not a message)', async () => {
    const s = await subscriber({ url: server.url(), protocol: 2, pingIntervalMs: 20 });
    await s.subscribe('ping:room');
    const replies = s.stats.replies;
    await waitUntil(() => s.stats.replies >= replies + 3, 'three PONGs');
    expect([s.state, s.stats.connects, s.stats.disconnects]).toEqual(['ready', 1, 0]);
    const got = message(s, 'ping:room');
    await admin.send(['PUBLISH', 'ping:room', 'still here']);
    expect(await got).toBe('still here');
  });

  it('binary payloads with bulkAs: buffer', async () => {
    const s = await subscriber({ url: server.url(), bulkAs: 'buffer' });
    await s.subscribe('bin:room');
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const got = message(s, 'bin:room');
    await admin.send(['PUBLISH', 'bin:room', bytes]);
    expect(await got).toEqual(bytes);
  });

  it('CLIENT KILL TYPE pubsub: re-subscribes everything and reports the gap', async () => {
    const s = await subscriber({ url: server.url(), reconnect: { minDelayMs: 10, maxDelayMs: 50 } });
    await s.subscribe('k:1', 'k:2');
    await s.psubscribe('k.*');
    const down = next(s, 'down');
    const resubscribed = next(s, 'resubscribed');
    expect(await admin.send(['CLIENT', 'KILL', 'TYPE', 'pubsub'])).toBeGreaterThanOrEqual(1);
    await down;
    const [info] = await resubscribed;
    expect(info).toEqual({ channels: ['k:1', 'k:2'], patterns: ['k.*'] });
    // Ready means restored: the server counts the subscriber again on every channel.
    expect(await admin.send(['PUBLISH', 'k:1', 'a'])).toBe(1);
    expect(await admin.send(['PUBLISH', 'k:2', 'b'])).toBe(1);
    expect(await admin.send(['PUBLISH', 'k.x', 'c'])).toBe(1);
    expect([s.stats.connects, s.stats.reconnects]).toEqual([2, 1]);
  });

  it('close() rejects waiting subscriptions and stops for good', async () => {
    const s = await subscriber(server.url(), false);
    const pending = s.subscribe('never');
    const closed = next(s, 'closed');
    await s.close();
    await closed;
    await expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(s.subscribe('x')).rejects.toMatchObject({ code: 'CLOSED' });
    expect(s.state).toBe('closed');
  });
});

describe.skipIf(binary === undefined)('RedisSubscriber when the link fails', () => {
  it('a silent link is found by the idle PING, replaced when it heals, and the gap reported', async () => {
    const server = await startRedis();
    cleanups.push(() => server.dispose());
    const proxy = await startTcpProxy(server.port);
    cleanups.push(() => proxy.close());
    const admin = new RedisClient(server.url());
    cleanups.push(() => admin.close());
    await admin.connect();
    const s = await subscriber({
      port: proxy.port,
      pingIntervalMs: 50,
      commandTimeoutMs: 100,
      deadLinkAfterMs: 100,
      connectTimeoutMs: 300,
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
    });
    await s.subscribe('silent:room');
    const down = next(s, 'down');
    proxy.blackhole();
    const [reason] = await down;
    expect(reason.message).toMatch(/^no reply to PING for \d+ ms: the link is presumed dead$/);
    await next(s, 'connectError');
    const resubscribed = next(s, 'resubscribed');
    proxy.heal();
    expect((await resubscribed)[0]).toEqual({ channels: ['silent:room'], patterns: [] });
    const got = message(s, 'silent:room');
    await admin.send(['PUBLISH', 'silent:room', 'back']);
    expect(await got).toBe('back');
  });

  it('subscribe() while the server is down resolves once a new link has subscribed', async () => {
    const server = await startRedis();
    cleanups.push(() => server.dispose());
    const s = await subscriber({ url: server.url(), reconnect: { minDelayMs: 10, maxDelayMs: 50 } });
    await s.subscribe('early');
    const down = next(s, 'down');
    await server.stop();
    await down;
    const late = s.subscribe('late');
    const resubscribed = next(s, 'resubscribed');
    await server.start();
    await within(late, 10_000, 'subscribe while down');
    expect((await resubscribed)[0]).toEqual({ channels: ['early', 'late'], patterns: [] });
    const admin = new RedisClient(server.url());
    cleanups.push(() => admin.close());
    await admin.connect();
    expect(await admin.send(['PUBLISH', 'late', 'x'])).toBe(1);
  });

  it('channels the server refuses (ACL) are rejected and leave the set; the others stay', async () => {
    const server = await startRedis({ config: ['user bob on >pw ~* &allowed:* +@all'] });
    cleanups.push(() => server.dispose());
    const s = await subscriber(server.url('bob:pw'));
    const refused = await s.subscribe('forbidden').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RedisReplyError);
    expect((refused as RedisReplyError).code).toBe('NOPERM');
    await s.subscribe('allowed:1');
    expect(s.subscribedChannels).toEqual(['allowed:1']);
    expect(s.state).toBe('ready');
  });
});
