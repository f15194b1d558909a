/**
 * A cluster for a test: a real redis-server (./redis-server.ts) and real node processes
 * (`node dist/server.js` with REDIS_URL, built by the global setup), each on a free port, optionally
 * behind its own TCP proxy to Redis (./tcp-proxy.ts) so a test can cut or blackhole one node's link.
 * Everything is stopped by close().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisServer, type RedisServerOptions } from './redis-server';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface NodeProcess {
  readonly id: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** The node's Redis link goes through this proxy, when the cluster was started with proxies. */
  readonly proxy: TcpProxy | undefined;
  /** Everything it printed so far (stdout and stderr). */
  readonly output: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first line from the `from`-th character of the output on that matches. */
  logged(pattern: RegExp, from?: number): Promise<string>;
  url(path?: string): string;
  /** SIGTERM (or another signal), and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Settings every test node starts with: no rate limit in the way, a short lease. */
const TEST_ENV: Readonly<Record<string, string>> = {
  RATE_LIMIT_PER_SEC: '100000',
  RATE_LIMIT_BURST: '100000',
  NODE_TTL_MS: '3000',
};

/** Starts `node dist/server.js` with `env`; resolves once it listens and its Redis link is ready. */
export async function startNode(
  redisUrl: string,
  id: string,
  env: Record<string, string> = {},
  proxy?: TcpProxy,
  ready: RegExp = /redis_ready node=/,
): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['dist/server.js'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', REDIS_URL: redisUrl, NODE_ID: id, ...TEST_ENV, ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let watchers: { pattern: RegExp; from: number; resolve: (line: string) => void }[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const find = (pattern: RegExp, from: number): string | undefined =>
    output.slice(from).split('\n').find((line) => pattern.test(line) && output.includes(line + '\n'));
  const onData = (chunk: string): void => {
    output += chunk;
    watchers = watchers.filter((w) => {
      const line = find(w.pattern, w.from);
      if (line === undefined) return true;
      w.resolve(line);
      return false;
    });
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  const logged = (pattern: RegExp, from = 0): Promise<string> => {
    const line = find(pattern, from);
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      watchers.push({ pattern, from, resolve });
      void exited.then(({ code, signal }) =>
        reject(new Error(`node ${id} exited (${signal ?? code}) before logging ${pattern}:\n${output}`)),
      );
    });
  };
  const listening = await logged(/listening on http:\/\/127\.0\.0\.1:(\d+) /);
  await logged(ready);
  const port = Number(/:(\d+) /.exec(listening)![1]);
  return {
    id,
    port,
    child,
    proxy,
    get output() {
      return output;
    },
    exited,
    logged,
    url: (path = '/ws') => `ws://127.0.0.1:${port}${path}`,
    stop: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface TestCluster {
  readonly redis: RedisServer;
  readonly nodes: NodeProcess[];
  /** Starts one more node (behind its own proxy when the cluster has proxies). */
  add(id: string, env?: Record<string, string>): Promise<NodeProcess>;
  close(): Promise<void>;
}

export async function startCluster(
  count: number,
  options: { env?: Record<string, string>; proxied?: boolean; redis?: RedisServerOptions } = {},
): Promise<TestCluster> {
  const redis = await startRedis(options.redis);
  const nodes: NodeProcess[] = [];
  const proxies: TcpProxy[] = [];
  const add = async (id: string, env: Record<string, string> = {}): Promise<NodeProcess> => {
    const proxy = options.proxied === true ? await startTcpProxy(redis.port) : undefined;
    if (proxy !== undefined) proxies.push(proxy);
    const url = proxy === undefined ? redis.url() : `redis://127.0.0.1:${proxy.port}`;
    const node = await startNode(url, id, { ...options.env, ...env }, proxy);
    nodes.push(node);
    return node;
  };
  try {
    await Promise.all(Array.from({ length: count }, (_, i) => add(`n${i}`)));
  } catch (error) {
    for (const node of nodes) node.child.kill('SIGKILL');
    await redis.dispose();
    throw error;
  }
  nodes.sort((a, b) => a.id.localeCompare(b.id));
  return {
    redis,
    nodes,
    add,
    async close() {
      await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
      await Promise.all(proxies.map((p) => p.close()));
      await redis.dispose();
    },
  };
}

/** GET a JSON endpoint of a node. */
export async function getJson(node: NodeProcess, path: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`);
  return { status: res.status, body: await res.json() };
}
