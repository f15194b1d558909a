/**
 * Lua scripts run by their SHA1 (EVALSHA), so the source crosses the network once, not on every call.
 *
 * Redis forgets scripts on a restart, a failover or SCRIPT FLUSH; EVALSHA then answers NOSCRIPT, which
 * means the script did not run, so loading it and calling again is safe (this is not the blind retry
 * that the client refuses elsewhere). Many calls that meet NOSCRIPT together share one SCRIPT LOAD.
 *
 * Order: a call that needed a reload runs after commands sent while the load was in flight.
 */
import { createHash } from 'node:crypto';
import type { CommandOptions } from './connection';
import { RedisClientError } from './errors';
import type { RedisArg } from './resp-writer';
import type { RedisStats } from './stats';
import { RedisReplyError, type RespValue } from './values';

export class RedisScript {
  /** Lowercase hex, as Redis computes it (SCRIPT LOAD returns the same). */
  readonly sha1: string;

  constructor(readonly source: string) {
    this.sha1 = createHash('sha1').update(source, 'utf8').digest('hex');
  }
}

type Send = (args: readonly RedisArg[], options?: CommandOptions) => Promise<RespValue>;

export class ScriptRunner {
  /** Loads in flight, by SHA1. */
  private readonly loading = new Map<string, Promise<void>>();

  constructor(
    private readonly send: Send,
    private readonly stats: RedisStats,
  ) {}

  async run(
    script: RedisScript,
    keys: readonly RedisArg[],
    args: readonly RedisArg[],
    options?: CommandOptions,
  ): Promise<RespValue> {
    const command = ['EVALSHA', script.sha1, keys.length, ...keys, ...args];
    try {
      return await this.send(command, options);
    } catch (error) {
      if (!(error instanceof RedisReplyError) || error.code !== 'NOSCRIPT') throw error;
    }
    await this.load(script);
    return this.send(command, options);
  }

  load(script: RedisScript): Promise<void> {
    let loading = this.loading.get(script.sha1);
    if (loading === undefined) {
      this.stats.scriptLoads++;
      loading = this.send(['SCRIPT', 'LOAD', script.source]).then(
        (sha1) => {
          this.loading.delete(script.sha1);
          if (sha1 !== script.sha1 && !(Buffer.isBuffer(sha1) && sha1.toString('latin1') === script.sha1)) {
            const message = `SCRIPT LOAD returned ${String(sha1)}, expected ${script.sha1}`;
            throw new RedisClientError('PROTOCOL', message, true);
          }
        },
        (error: unknown) => {
          this.loading.delete(script.sha1);
          throw error;
        },
      );
      this.loading.set(script.sha1, loading);
    }
    return loading;
  }
}
