/**
 * A real redis-server for a test: on a free loopback port, in a temporary directory, with no
 * persistence (`save ""`, `appendonly no`), started by the test and stopped at its end. Never a
 * system service.
 *
 * Extra redis.conf lines configure it: `requirepass`, `user alice on >pw ~* &* +@all`,
 * `rename-command HELLO ""` (a server without RESP3)... The server is ready when it logs "Ready to
 * accept connections"; restart() brings it back on the same port with the same configuration.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CANDIDATES = [process.env.REDIS_SERVER, '/usr/bin/redis-server', '/usr/local/bin/redis-server'];

/** The redis-server binary, or undefined when none is installed. */
export function findRedisServer(): string | undefined {
  for (const candidate of CANDIDATES) {
    if (candidate === undefined || candidate === '') continue;
    if (spawnSync(candidate, ['--version'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  return undefined;
}

export interface RedisServerOptions {
  /** redis.conf lines added to the base configuration. */
  config?: readonly string[];
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** The running process's pid (undefined while stopped): the bench counts its CPU. */
  readonly pid: number | undefined;
  /** Everything the server logged so far. */
  readonly log: string;
  /** `redis://[userinfo@]127.0.0.1:port[/db]`; userinfo as written in a URL (`:pw`, `alice:pw`). */
  url(userinfo?: string, db?: number): string;
  /** SIGTERM, and wait for the process to exit. Connections are closed by the server. */
  stop(): Promise<void>;
  /** Start again on the same port, with the same configuration. */
  start(): Promise<void>;
  /** stop() and remove the directory. */
  dispose(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer();
  if (binary === undefined) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const dir = mkdtempSync(join(tmpdir(), 'wschat-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  let log = '';

  const launch = async (): Promise<boolean> => {
    const conf = join(dir, 'redis.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        'save ""',
        'appendonly no',
        'daemonize no',
        'logfile ""',
        'enable-debug-command yes',
        ...(options.config ?? []),
        '',
      ].join('\n'),
    );
    const proc = spawn(binary, [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const from = log.length; // on a restart, only this run's lines count
    return new Promise<boolean>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        log += chunk.toString();
        if (/Ready to accept connections/.test(log.slice(Math.max(from, log.length - 4096)))) resolve(true);
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('error', reject);
      proc.once('exit', (code) => {
        if (child === proc) child = undefined;
        // Another process took the port between freePort() and the bind: the caller picks another.
        if (/Address already in use/.test(log.slice(from))) resolve(false);
        else reject(new Error(`redis-server exited with ${code} before it was ready:\n${log}`));
      });
    });
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const force = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(force);
  };

  for (let tries = 0; ; tries++) {
    port = await freePort();
    log = '';
    if (await launch()) break;
    if (tries === 5) throw new Error(`redis-server could not bind a port:\n${log}`);
  }

  return {
    host: '127.0.0.1',
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    get log() {
      return log;
    },
    url: (userinfo, db) =>
      `redis://${userinfo === undefined ? '' : `${userinfo}@`}127.0.0.1:${port}${db === undefined ? '' : `/${db}`}`,
    stop,
    start: async () => {
      if (!(await launch())) throw new Error(`redis-server could not bind port ${port} again:\n${log}`);
    },
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

