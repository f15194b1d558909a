/**
 * RedisClient against a real redis-server (started by the tests on a free loopback port, no
 * persistence): pipelining, every RESP type from real commands in RESP3 and RESP2, AUTH and ACL users,
 * the RESP2 fallback, SELECT, timeouts, the queue bound, restarts, reconnect backoff, links that drop
 * or go silent (through a TCP proxy), and scripts after SCRIPT FLUSH.
 *
 * No fixed sleeps: every wait is for an event or a reply. Backoff is checked by counting attempts and
 * by the delays the client chose, never by the clock.
 *
 * Without redis-server the file is skipped locally; in CI (CI set) a missing server fails it.
 */
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisClient, RedisClientError, RedisReplyError, RedisScript, VerbatimString } from '../src/redis';
import type { RedisClientEvents, RedisClientOptions, RespValue } from '../src/redis';
import { within } from './helpers/wait';
import { findRedisServer, startRedis, type RedisServer } from './helpers/redis-server';
import { sharedRedis } from './helpers/shared-redis';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';

const binary = findRedisServer();
if (binary === undefined && process.env.CI) {
  describe('redis-server', () => {
    it('is installed', () => {
      throw new Error('CI needs redis-server for the Redis tests: apt-get install redis-server');
    });
  });
}

const clients: RedisClient[] = [];
const cleanups: (() => Promise<void>)[] = [];

/** A client that is closed after the test. */
function client(options: RedisClientOptions | string): RedisClient {
  const c = new RedisClient(options);
  clients.push(c);
  return c;
}

async function open(options: RedisClientOptions | string): Promise<RedisClient> {
  const c = client(options);
  await within(c.connect(), 10_000, 'connect');
  return c;
}

function next<K extends keyof RedisClientEvents>(c: RedisClient, event: K, ms = 10_000): Promise<RedisClientEvents[K]> {
  return within(once(c, event) as Promise<RedisClientEvents[K]>, ms, `event ${event}`);
}

/** The first `count` events `event`, in order. */
function collect<K extends keyof RedisClientEvents>(
  c: RedisClient,
  event: K,
  count: number,
  ms = 10_000,
): Promise<RedisClientEvents[K][]> {
  const seen: RedisClientEvents[K][] = [];
  return within(
    new Promise((resolve) => {
      const listener = (...args: RedisClientEvents[K]): void => {
        seen.push(args);
        if (seen.length === count) {
          (c.off as (e: K, l: typeof listener) => void)(event, listener);
          resolve(seen);
        }
      };
      (c.on as (e: K, l: typeof listener) => void)(event, listener);
    }),
    ms,
    `${count} ${event} events`,
  );
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.skipIf(binary === undefined)('RedisClient with a real redis-server', () => {
  const redis = sharedRedis();
  let server: RedisServer;
  let admin: RedisClient;
  beforeAll(() => ({ server, admin } = redis));

  describe('pipelining', () => {
    it('answers 10,000 commands sent in one turn in order, in one socket write', async () => {
      const c = await open(server.url());
      const writes = c.stats.writes;
      const n = 9999;
      const replies: Promise<RespValue>[] = [];
      for (let i = 0; i < n; i++) {
        if (i % 3 === 0) replies.push(c.send(['INCR', 'pipe:counter']));
        else if (i % 3 === 1) replies.push(c.send(['SET', `pipe:${i}`, `value ${i}\r\n`]));
        else replies.push(c.send(['GET', `pipe:${i - 1}`]));
      }
      const values = await Promise.all(replies);
      expect(c.stats.writes - writes).toBe(1);
      for (let i = 0; i < n; i++) {
        if (i % 3 === 0) expect(values[i]).toBe(i / 3 + 1);
        else if (i % 3 === 1) expect(values[i]).toBe('OK');
        else expect(values[i]).toBe(`value ${i - 1}\r\n`);
      }
    });

    it('keeps order under load: bursts from many turns, some replies errors, nothing awaited in between', async () => {
      const c = await open(server.url());
      const replies: Promise<RespValue>[] = [];
      for (let turn = 0; turn < 40; turn++) {
        for (let i = 0; i < 250; i++) {
          replies.push(c.send(['INCR', 'load:n']));
          // An error reply in the middle must not shift the others.
          if (i === 100) replies.push(c.send(['NOSUCHCOMMAND']).catch((e: RedisReplyError) => e.code));
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      const values = await Promise.all(replies);
      const counts = values.filter((v) => typeof v === 'number');
      expect(counts).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
      expect(values.filter((v) => v === 'ERR')).toHaveLength(40);
      expect(c.stats.writes).toBeLessThan(c.stats.commands);
      expect(c.stats.latency.count).toBe(c.stats.replies);
    });
  });

  describe('RESP types from real commands', () => {
    it('RESP3: every type (DEBUG PROTOCOL, scripts, data commands)', async () => {
      const c = await open(server.url());
      expect(c.protocol).toBe(3);
      const debug = (type: string): Promise<RespValue> => c.send(['DEBUG', 'PROTOCOL', type]);
      expect(await debug('string')).toBe('Hello World');
      expect(await debug('integer')).toBe(12345);
      expect(await debug('double')).toBe(3.141);
      expect(await debug('bignum')).toBe(1234567999999999999999999999999999999n);
      expect(await debug('null')).toBeNull();
      expect(await debug('array')).toEqual([0, 1, 2]);
      expect(await debug('set')).toEqual(new Set([0, 1, 2]));
      expect(await debug('map')).toEqual(new Map([[0, false], [1, true], [2, false]]));
      expect(await debug('true')).toBe(true);
      expect(await debug('false')).toBe(false);
      const verbatim = await debug('verbatim');
      expect(verbatim).toBeInstanceOf(VerbatimString);
      expect([(verbatim as VerbatimString).format, String(verbatim)]).toEqual(['txt', 'This is a verbatim\nstring']);

      // An attribute comes before its reply, as an event; the reply is unchanged.
      const attribute = next(c, 'attribute');
      expect(await debug('attrib')).toBe('Some real reply following the attribute');
      const [attrs] = await attribute;
      expect([...attrs.keys()]).toEqual(['key-popularity']);

      // A push comes apart from the reply that follows it.
      const push = next(c, 'push');
      expect(await debug('push')).toBe('Some real reply following the push reply');
      expect(await push).toEqual([['server-cpu-usage', 42]]);

      // Data commands.
      await c.send(['DEL', 't3:h', 't3:s', 't3:z']);
      await c.send(['HSET', 't3:h', 'a', '1', 'b', '2']);
      expect(await c.send(['HGETALL', 't3:h'])).toEqual(new Map([['a', '1'], ['b', '2']]));
      await c.send(['SADD', 't3:s', 'x']);
      expect(await c.send(['SMEMBERS', 't3:s'])).toEqual(new Set(['x']));
      await c.send(['ZADD', 't3:z', 'inf', 'up', '-inf', 'down', '1.5', 'mid']);
      expect(await c.send(['ZSCORE', 't3:z', 'up'])).toBe(Infinity);
      expect(await c.send(['ZSCORE', 't3:z', 'down'])).toBe(-Infinity);
      expect(await c.send(['ZSCORE', 't3:z', 'mid'])).toBe(1.5);
      expect(await c.send(['EVAL', 'redis.setresp(3); return {double=0/0}', 0])).toBeNaN();
      expect(await c.send(['EVAL', "redis.setresp(3); return {big_number='-123456789012345678901234567890'}", 0])).toBe(
        -123456789012345678901234567890n,
      );
      expect(await c.send(['EVAL', "return {1,{2,{3,'x'}}}", 0])).toEqual([1, [2, [3, 'x']]]);
      expect(await c.send(['GET', 't3:missing'])).toBeNull();
      expect(await c.send(['BLPOP', 't3:nolist', '0.01'])).toBeNull();
      expect(await c.send(['LRANGE', 't3:nolist', 0, -1])).toEqual([]);
      expect(String(await c.send(['CLIENT', 'INFO']))).toMatch(/ resp=3\n?$/);
    });

    it('RESP2 (protocol: 2): the same commands give RESP2 types', async () => {
      const c = await open({ url: server.url(), protocol: 2 });
      expect(c.protocol).toBe(2);
      const debug = (type: string): Promise<RespValue> => c.send(['DEBUG', 'PROTOCOL', type]);
      expect(await debug('double')).toBe('3.141');
      expect(await debug('bignum')).toBe('1234567999999999999999999999999999999');
      expect(await debug('null')).toBeNull();
      expect(await debug('set')).toEqual([0, 1, 2]);
      expect(await debug('map')).toEqual([0, 0, 1, 1, 2, 0]);
      expect(await debug('true')).toBe(1);
      expect(await debug('verbatim')).toBe('This is a verbatim\nstring');
      await c.send(['DEL', 't2:h']);
      await c.send(['HSET', 't2:h', 'a', '1']);
      expect(await c.send(['HGETALL', 't2:h'])).toEqual(['a', '1']);
      await c.send(['ZADD', 't2:z', 'inf', 'up']);
      expect(await c.send(['ZSCORE', 't2:z', 'up'])).toBe('inf');
      expect(await c.send(['GET', 't2:missing'])).toBeNull(); // $-1
      expect(await c.send(['BLPOP', 't2:nolist', '0.01'])).toBeNull(); // *-1
      expect(await c.send(['EVAL', "return {1,{2,{3,'x'}}}", 0])).toEqual([1, [2, [3, 'x']]]);
      expect(String(await c.send(['CLIENT', 'INFO']))).toMatch(/ resp=2\n?$/);
    });

    it('binary values, CRLF inside, 64-bit integers, error replies', async () => {
      const c = await open({ url: server.url(), bulkAs: 'buffer' });
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await c.send(['SET', 'bin:k', bytes]);
      expect((await c.send(['GET', 'bin:k'])) as Buffer).toEqual(bytes);
      await c.send(['SET', 'bin:n', '9223372036854775806']);
      expect(await c.send(['INCR', 'bin:n'])).toBe(9223372036854775807n);
      const overflow = await rejection(c.send(['INCR', 'bin:n']));
      expect(overflow).toBeInstanceOf(RedisReplyError);
      expect((overflow as RedisReplyError).message).toBe('ERR increment or decrement would overflow');
      await c.send(['SADD', 'bin:set', 'x']);
      const wrongType = await rejection(c.send(['GET', 'bin:set']));
      expect((wrongType as RedisReplyError).code).toBe('WRONGTYPE');
      expect(c.stats.errorReplies).toBe(2);
    });

    it('client-side caching invalidations arrive as push events', async () => {
      const c = await open(server.url());
      await c.send(['SET', 'track:k', '1']);
      await c.send(['CLIENT', 'TRACKING', 'on']);
      await c.send(['GET', 'track:k']);
      const push = next(c, 'push');
      await admin.send(['SET', 'track:k', '2']);
      expect(await push).toEqual([['invalidate', ['track:k']]]);
    });
  });

  describe('commands that do not get their reply', () => {
    it('a timed-out command is rejected at once and its reply, when it comes, is consumed in order', async () => {
      const c = await open({ url: server.url(), commandTimeoutMs: 200, deadLinkAfterMs: 60_000 });
      await admin.send(['DEL', 'to:list', 'to:key']);
      // Default timeout (the queue's sweep), then a timeout of its own: both block the connection.
      const first = rejection(c.send(['BLPOP', 'to:list', '0']));
      const second = rejection(c.send(['BLPOP', 'to:list', '0'], { timeoutMs: 50 }));
      expect(await first).toMatchObject({ code: 'TIMEOUT', sent: true });
      expect(await second).toMatchObject({ code: 'TIMEOUT', sent: true });
      // These wait behind the blocked BLPOPs on the server.
      const get = c.send(['GET', 'to:key'], { timeoutMs: 10_000 });
      const incr = c.send(['INCR', 'to:n'], { timeoutMs: 10_000 });
      await admin.send(['SET', 'to:key', 'value']);
      await admin.send(['RPUSH', 'to:list', 'a', 'b']);
      // Had a late BLPOP reply been handed on, GET would get ['to:list', 'b'].
      expect(await get).toBe('value');
      expect(await incr).toBe(1);
      expect(c.stats.timeouts).toBe(2);
      expect(c.stats.lateReplies).toBe(2);
      expect(await c.send(['LLEN', 'to:list'])).toBe(0);
    });

    it('a full queue refuses at once, and frees up as replies arrive', async () => {
      const c = await open({ url: server.url(), maxPending: 5 });
      await admin.send(['DEL', 'q:list']);
      const blocked = c.send(['BLPOP', 'q:list', '0'], { timeoutMs: Infinity });
      const waiting = [1, 2, 3, 4].map((i) => c.send(['ECHO', `w${i}`]));
      const refused = await rejection(c.send(['ECHO', 'one too many']));
      expect(refused).toBeInstanceOf(RedisClientError);
      expect(refused).toMatchObject({ code: 'QUEUE_FULL', sent: false });
      expect(refused.message).toBe('5 commands already waiting for replies');
      expect(c.stats.rejectedQueueFull).toBe(1);
      await admin.send(['RPUSH', 'q:list', 'x']);
      expect(await blocked).toEqual(['q:list', 'x']);
      expect(await Promise.all(waiting)).toEqual(['w1', 'w2', 'w3', 'w4']);
      expect(await c.send(['ECHO', 'room again'])).toBe('room again');
    });

    it('a command sent before connect() or while down fails fast with NOT_CONNECTED', async () => {
      const c = client(server.url());
      const error = await rejection(c.send(['PING']));
      expect(error).toMatchObject({ code: 'NOT_CONNECTED', sent: false });
      expect(error.message).toBe('not connected to Redis (idle): PING not sent');
      expect(c.stats.rejectedNotConnected).toBe(1);
      await c.connect();
      expect(await c.send(['PING'])).toBe('PONG');
    });

    it('bad arguments are refused without touching the connection', async () => {
      const c = await open(server.url());
      await expect(c.send(['SET', 'k', undefined as unknown as string])).rejects.toThrow(TypeError);
      expect(await c.send(['PING'])).toBe('PONG');
    });

    it('commands whose effect a reconnect would undo, or that make a push stream, are refused', async () => {
      const c = await open(server.url());
      await expect(c.send(['select', 1])).rejects.toThrow(
        'SELECT is not sent by send(): set the database in the URL or the db option, so that every reconnect',
      );
      await expect(c.send(['AUTH', 'pw'])).rejects.toThrow(TypeError);
      await expect(c.send(['HELLO', '2'])).rejects.toThrow('use the protocol option');
      await expect(c.send(['QUIT'])).rejects.toThrow('use close()');
      await expect(c.send(['SUBSCRIBE', 'ch'])).rejects.toThrow(
        'SUBSCRIBE: use RedisSubscriber, on a connection of its own',
      );
      await expect(c.send(['PUNSUBSCRIBE'])).rejects.toThrow(TypeError);
      expect(await c.send(['ECHO', 'still in step'])).toBe('still in step');
      expect(c.stats.commands).toBe(2); // HELLO of the handshake, ECHO
    });
  });

  describe('scripts', () => {
    it('EVALSHA loads the script on NOSCRIPT, once for concurrent calls, again after SCRIPT FLUSH', async () => {
      const c = await open(server.url());
      await admin.send(['SCRIPT', 'FLUSH']);
      await admin.send(['DEL', 'lua:n']);
      const incrBy = new RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
      expect(await c.evalScript(incrBy, ['lua:n'], [5])).toBe(5);
      expect(c.stats.scriptLoads).toBe(1);
      expect(await c.evalScript(incrBy, ['lua:n'], [5])).toBe(10);
      expect(c.stats.scriptLoads).toBe(1);
      expect(await admin.send(['SCRIPT', 'EXISTS', incrBy.sha1])).toEqual([1]);

      await admin.send(['SCRIPT', 'FLUSH']);
      const results = await Promise.all(Array.from({ length: 50 }, () => c.evalScript(incrBy, ['lua:n'], [1])));
      expect(results.sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 50 }, (_, i) => 11 + i));
      expect(c.stats.scriptLoads).toBe(2);
    });

    it('a script error is the caller error, not a reload', async () => {
      const c = await open(server.url());
      const failing = new RedisScript("return redis.error_reply('MYERR something broke')");
      await c.loadScript(failing);
      const error = await rejection(c.evalScript(failing));
      expect(error).toBeInstanceOf(RedisReplyError);
      expect((error as RedisReplyError).code).toBe('MYERR');
      expect(c.stats.scriptLoads).toBe(1);
    });
  });

  describe('close()', () => {
    it('lets sent commands get their replies, then closes; later commands fail with CLOSED', async () => {
      const c = await open(server.url());
      const pending = c.send(['BLPOP', 'close:nolist', '0.05']);
      const closed = next(c, 'closed');
      await c.close();
      await closed;
      expect(await pending).toBeNull();
      expect(c.state).toBe('closed');
      expect(await rejection(c.send(['PING']))).toMatchObject({ code: 'CLOSED', sent: false });
      await expect(c.whenReady()).rejects.toMatchObject({ code: 'CLOSED' });
    });

    it('does not wait for ever: a command without a timeout fails after the grace (commandTimeoutMs)', async () => {
      const c = await open({ url: server.url(), commandTimeoutMs: 100 });
      const forever = rejection(c.send(['BLPOP', 'close:never', '0'], { timeoutMs: Infinity }));
      await c.close();
      const error = await forever;
      expect(error).toMatchObject({ code: 'CONNECTION_LOST', sent: true });
      expect(error.message).toBe(
        'connection lost before the reply to BLPOP; it may or may not have run (the Redis client is closed)',
      );
    });
  });
});

describe.skipIf(binary === undefined)('authentication and databases', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await startRedis({ config: ['requirepass s3cret', 'user alice on >wonder#land ~app:* &* +@all'] });
  });

  afterAll(async () => {
    await server?.dispose();
  });

  it('a password for the default user (HELLO 3 AUTH default ...)', async () => {
    const c = await open(server.url(':s3cret'));
    expect(c.protocol).toBe(3);
    expect(await c.send(['ACL', 'WHOAMI'])).toBe('default');
  });

  it('an ACL user with a percent-encoded password, held to its key patterns', async () => {
    const c = await open(server.url('alice:wonder%23land'));
    expect(await c.send(['ACL', 'WHOAMI'])).toBe('alice');
    expect(await c.send(['SET', 'app:x', '1'])).toBe('OK');
    const denied = await rejection(c.send(['SET', 'other:x', '1']));
    expect((denied as RedisReplyError).code).toBe('NOPERM');
  });

  it('an ACL user in RESP2 (AUTH user password)', async () => {
    const c = await open({ url: server.url('alice:wonder%23land'), protocol: 2 });
    expect(c.protocol).toBe(2);
    expect(await c.send(['ACL', 'WHOAMI'])).toBe('alice');
  });

  it('a wrong password or none: connectError with the server reason, then backoff, never ready', async () => {
    const wrong = client({ url: server.url(':nope'), reconnect: { minDelayMs: 10_000, maxDelayMs: 10_000 } });
    const failed = next(wrong, 'connectError');
    const retrying = next(wrong, 'reconnecting'); // emitted right after connectError
    wrong.connect().catch(() => undefined);
    const [error] = await failed;
    expect(error).toBeInstanceOf(RedisReplyError);
    expect((error as RedisReplyError).code).toBe('WRONGPASS');
    const [retry] = await retrying;
    expect(retry.attempt).toBe(0);
    expect(wrong.state).toBe('waiting');

    const none = client({ url: server.url(), reconnect: { minDelayMs: 10_000, maxDelayMs: 10_000 } });
    none.connect().catch(() => undefined);
    const [noAuth] = await next(none, 'connectError');
    expect((noAuth as RedisReplyError).code).toBe('NOAUTH');
  });

  it('SELECT from the URL: keys live in that database', async () => {
    const db5 = await open({ url: server.url(':s3cret', 5), clientName: 'wschat-test' });
    const db0 = await open(server.url(':s3cret'));
    await db5.send(['SET', 'where', 'five']);
    expect(await db0.send(['GET', 'where'])).toBeNull();
    expect(await db5.send(['GET', 'where'])).toBe('five');
    expect(String(await db5.send(['CLIENT', 'INFO']))).toMatch(/ name=wschat-test .* db=5 /);
  });
});

describe.skipIf(binary === undefined)('a server without HELLO (RESP2 only, like Redis 5)', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await startRedis({ config: ['requirepass old-school', 'rename-command HELLO ""'] });
  });

  afterAll(async () => {
    await server?.dispose();
  });

  it("auto falls back to RESP2 with AUTH, CLIENT SETNAME and SELECT when HELLO is 'unknown command'", async () => {
    const c = await open({ url: server.url(':old-school', 2), clientName: 'fallback' });
    expect(c.protocol).toBe(2);
    expect(await c.send(['ACL', 'WHOAMI'])).toBe('default');
    expect(String(await c.send(['CLIENT', 'INFO']))).toMatch(/ name=fallback .* db=2 .* resp=2/);
  });

  it('protocol: 3 refuses to fall back', async () => {
    const c = client({
      url: server.url(':old-school'),
      protocol: 3,
      reconnect: { minDelayMs: 10_000, maxDelayMs: 10_000 },
    });
    c.connect().catch(() => undefined);
    const [error] = await next(c, 'connectError');
    expect(error.message).toMatch(/unknown command 'HELLO'/);
  });
});

describe.skipIf(binary === undefined)('reconnecting', () => {
  it('server restarted: in-flight commands fail, attempts back off, commands work again', async () => {
    const server = await startRedis();
    cleanups.push(() => server.dispose());
    const c = await open({ url: server.url(), reconnect: { minDelayMs: 20, maxDelayMs: 160 } });
    const inFlight = rejection(c.send(['BLPOP', 'restart:list', '0'], { timeoutMs: Infinity }));
    const down = next(c, 'down');
    const retries = collect(c, 'reconnecting', 6);
    const attemptsBefore = c.stats.connectAttempts;
    await server.stop();

    const lost = await inFlight;
    expect(lost).toMatchObject({ code: 'CONNECTION_LOST', sent: true });
    expect(lost.message).toMatch(/^connection lost before the reply to BLPOP; it may or may not have run/);
    await down;
    expect(c.state === 'waiting' || c.state === 'connecting').toBe(true);
    expect(await rejection(c.send(['PING']))).toMatchObject({ code: 'NOT_CONNECTED', sent: false });

    // Six scheduled retries: attempts numbered in order, each delay within [ceiling/2, ceiling].
    const seen = (await retries).map(([info]) => info);
    expect(seen.map((r) => r.attempt)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const r of seen) {
      const ceiling = Math.min(160, 20 * 2 ** r.attempt);
      expect(r.delayMs).toBeGreaterThanOrEqual(ceiling / 2);
      expect(r.delayMs).toBeLessThanOrEqual(ceiling);
    }
    // Every attempt was a scheduled one: no attempt without a delay before it.
    expect(c.stats.connectAttempts - attemptsBefore).toBeLessThanOrEqual(seen.length);

    const ready = next(c, 'ready');
    await server.start();
    const [info] = await ready;
    expect(info).toEqual({ protocol: 3, reconnect: true });
    expect(await c.send(['PING'])).toBe('PONG');
    const { connects, reconnects, disconnects, failedOnDisconnect } = c.stats;
    expect([connects, reconnects, disconnects, failedOnDisconnect]).toEqual([2, 1, 1, 1]);
  });

  it('a server that accepts and closes at once: every attempt is delayed, the delays grow', async () => {
    const proxy = await startTcpProxy(1);
    cleanups.push(() => proxy.close());
    proxy.closeOnAccept(true);
    const c = client({ port: proxy.port, reconnect: { minDelayMs: 10, maxDelayMs: 80 } });
    const retries = collect(c, 'reconnecting', 7);
    c.connect().catch(() => undefined);
    const seen = (await retries).map(([info]) => info);
    // One accepted connection per attempt, one attempt per scheduled delay.
    expect(proxy.accepted).toBe(7);
    expect(c.stats.connectAttempts).toBe(7);
    expect(seen.map((r) => r.attempt)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(seen.map((r) => r.delayMs >= Math.min(80, 10 * 2 ** r.attempt) / 2)).toEqual(Array(7).fill(true));
    await expect(c.whenReady(1)).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
  });

  it('a link that comes up and drops at once does not reset the backoff', async () => {
    const server = await startRedis();
    cleanups.push(() => server.dispose());
    const proxy = await startTcpProxy(server.port);
    cleanups.push(() => proxy.close());
    const c = client({ port: proxy.port, reconnect: { minDelayMs: 10, maxDelayMs: 1000, stableAfterMs: 60_000 } });
    c.on('ready', () => proxy.cut());
    const retries = collect(c, 'reconnecting', 4);
    c.connect().catch(() => undefined);
    const seen = (await retries).map(([info]) => info.attempt);
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(c.stats.connects).toBeGreaterThanOrEqual(4);
  });
});

describe.skipIf(binary === undefined)('a silent link (blackholed by a proxy)', () => {
  let server: RedisServer;
  let proxy: TcpProxy;

  beforeAll(async () => {
    server = await startRedis();
  });

  afterAll(async () => {
    await server?.dispose();
  });

  afterEach(async () => {
    await proxy?.close();
  });

  it('commands time out, the link is declared dead and replaced once the network heals', async () => {
    proxy = await startTcpProxy(server.port);
    const c = await open({
      port: proxy.port,
      commandTimeoutMs: 150,
      deadLinkAfterMs: 150,
      connectTimeoutMs: 300,
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
    });
    await c.send(['SET', 'bh:k', 'before']);
    proxy.blackhole();
    const down = next(c, 'down');
    expect(await rejection(c.send(['GET', 'bh:k']))).toMatchObject({ code: 'TIMEOUT', sent: true });
    const [reason] = await down;
    expect(reason.message).toMatch(/^no reply to GET for \d+ ms: the link is presumed dead$/);
    // New connections get through TCP but not through the handshake.
    const [handshake] = await next(c, 'connectError');
    expect(handshake.message).toBe('connect and handshake took over 300 ms');
    const ready = next(c, 'ready');
    proxy.heal();
    await ready;
    expect(await c.send(['GET', 'bh:k'])).toBe('before');
  });

  it('healed before the link is given up: late replies are dropped in order, the link stays', async () => {
    proxy = await startTcpProxy(server.port);
    const c = await open({ port: proxy.port, commandTimeoutMs: 5000, deadLinkAfterMs: 60_000 });
    await c.send(['SET', 'bh2:k', 'kept']);
    proxy.blackhole();
    expect(await rejection(c.send(['INCR', 'bh2:n'], { timeoutMs: 50 }))).toMatchObject({ code: 'TIMEOUT' });
    const get = c.send(['GET', 'bh2:k']);
    proxy.heal();
    expect(await get).toBe('kept');
    // The INCR did run (its reply was dropped): this is why timed-out commands are not retried.
    expect(await c.send(['GET', 'bh2:n'])).toBe('1');
    expect([c.stats.lateReplies, c.stats.connects, c.stats.disconnects]).toEqual([1, 1, 0]);
  });
});
