/**
 * One redis-server and an admin client for all the tests of a describe block (vitest only; the bench
 * and the soak use redis-server.ts directly).
 */
import { afterAll, beforeAll } from 'vitest';
import { RedisClient } from '../../src/redis';
import { startRedis, type RedisServer, type RedisServerOptions } from './redis-server';

/** Started in beforeAll, stopped in afterAll. Read the fields inside the tests (set once beforeAll has run). */
export function sharedRedis(options: RedisServerOptions = {}): { server: RedisServer; admin: RedisClient } {
  const shared = {} as { server: RedisServer; admin: RedisClient };
  beforeAll(async () => {
    shared.server = await startRedis(options);
    shared.admin = new RedisClient(shared.server.url());
    await shared.admin.connect();
  });
  afterAll(async () => {
    await shared.admin?.close();
    await shared.server?.dispose();
  });
  return shared;
}
