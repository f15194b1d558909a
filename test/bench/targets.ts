/**
 * The servers a bench run measures side by side (--targets=wschat,go-seed,...):
 *
 *   wschat            this checkout's dist/server.js
 *   wschat@<dir>      another checkout's dist/server.js (built there: npm ci && npm run build)
 *   go-seed           the lesson's Go server: ../shared/anchors/go-seed/build.sh, built into $TMPDIR
 *   ws-node           Node.js with the ws package: ../shared/anchors/ws-node/setup.sh, into $TMPDIR
 *   ws-node-deflate   ws-node with WS_DEFLATE=all: permessage-deflate on every message, for a client
 *                     that offers it (the load client does not offer it yet: raw-websocket.ts)
 *
 * Any target takes more environment as +KEY=VALUE suffixes (wschat+SEND_QUEUE=64). A wschat target with
 * WORKERS (wschat+WORKERS=2) or REDIS_URL=auto is a cluster: the bench starts a redis-server for it (free
 * loopback port, no persistence), whose CPU and memory count as the server's, and waits until every
 * node has reached Redis. The anchors
 * (shared/anchors, beside the checkout or beside one of its parent folders, or --anchors=DIR) are
 * not part of the project: they are set up on demand, outside it, and nothing of them is kept here.
 */
import { execFile, execFileSync, type StdioOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import type { Dialect } from './dialect';
import { RedisClient } from '../../src/redis';
import { startRedis } from '../helpers/redis-server';
import { ServerProcess, type Companion } from './server-process';
import { waitFor } from './time';

/** The project's root: the compiled bench runs from dist-bench/test/bench/. */
export const ROOT = resolve(__dirname, '..', '..', '..');

export const TARGET_NAMES = ['wschat', 'go-seed', 'ws-node', 'ws-node-deflate'] as const;

export interface Target {
  /** As given, e.g. "wschat@/tmp/base+SEND_QUEUE=64": its label in every table. */
  readonly name: string;
  /** Our server (any checkout): it takes our settings and writes our log lines. */
  readonly wschat: boolean;
  readonly dialect: Dialect;
  /** A Node.js program: it takes node options, --cpu-prof and the inspector (a forced GC). */
  readonly node: boolean;
  /** The executable, or for a Node.js program its script. */
  readonly program: string;
  /** What runs, for the run's header. */
  readonly description: string;
  /** Its own environment, applied after the bench's: the anchor's switches, then +KEY=VALUE. */
  readonly env: Readonly<Record<string, string>>;
}

/** A target that cannot be set up; the message says why and what to do. */
export class TargetError extends Error {}

// ---- starting one ----

export interface StartOptions {
  /** Environment before the target's own (the bench's settings for our server, say). */
  readonly env: Readonly<Record<string, string>>;
  /** Node options (Node.js targets only). */
  readonly nodeArgs: readonly string[];
  readonly openFiles: number;
  readonly logFile: string;
}

/** Our server says where it listens: "<time> listening on http://127.0.0.1:PORT ...". */
const LISTENING = /listening on http:\/\/[^\s/]*:(\d+)/;

/** Starts a target on 127.0.0.1: ours on a port it picks, an anchor on a free port we pick. */
export async function startTarget(target: Target, options: StartOptions): Promise<ServerProcess> {
  const port = target.wschat ? 0 : await freePort();
  const redis = isCluster(target) ? await startCompanionRedis() : undefined;
  const env: Record<string, string> = { ...options.env, ...target.env, HOST: '127.0.0.1', PORT: String(port) };
  if (redis !== undefined) env.REDIS_URL = redis.url;
  let server: ServerProcess;
  try {
    server = await ServerProcess.start({
      command: target.node ? process.execPath : target.program,
      args: target.node ? [...options.nodeArgs, target.program] : [],
      cwd: dirname(target.program),
      env,
      openFiles: options.openFiles,
      logFile: options.logFile,
      ready: target.wschat ? { line: LISTENING } : { port },
    });
  } catch (error) {
    await redis?.companion.dispose();
    throw error;
  }
  if (redis === undefined) return server;
  server.companion = redis.companion;
  // Every node (each worker) must have reached Redis before clients come.
  const nodes = Math.max(1, Number(env.WORKERS ?? '1'));
  const ready = (): boolean => (server.log().match(/redis_ready node=/g) ?? []).length >= nodes;
  if (!(await waitFor(() => ready() || server.exit !== undefined, 20_000, 25))) {
    await server.stop();
    throw new Error(`${target.name}: the nodes did not reach Redis within 20 s: ${server.log().slice(-500)}`);
  }
  return server;
}

/** A wschat target that runs as a cluster over a Redis the bench starts. */
export function isCluster(target: Target): boolean {
  return target.wschat && (target.env.WORKERS !== undefined || target.env.REDIS_URL === 'auto');
}

/** A redis-server for a cluster target: loopback, free port, no persistence; killed if the bench dies. */
async function startCompanionRedis(): Promise<{ url: string; companion: Companion }> {
  const redis = await startRedis();
  const pid = redis.pid;
  const kill = (): void => {
    try {
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  };
  process.once('exit', kill);
  return {
    url: redis.url(),
    companion: {
      get pid() {
        return redis.pid;
      },
      async commands() {
        const client = new RedisClient(redis.url());
        try {
          await client.connect();
          const stats = String(await client.send(['INFO', 'stats']));
          const commands = String(await client.send(['INFO', 'commandstats']));
          return {
            total: Number(/total_commands_processed:(\d+)/.exec(stats)?.[1] ?? NaN),
            scripts: Number(/cmdstat_evalsha:calls=(\d+)/.exec(commands)?.[1] ?? 0),
          };
        } finally {
          await client.close();
        }
      },
      async dispose() {
        process.off('exit', kill);
        await redis.dispose();
      },
    },
  };
}

/** A port nobody listens on now (the anchors cannot be told to pick one). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

// ---- setting them up ----

/** This checkout's server (the soak's, and the bench's default). */
export function ownServer(): Target {
  return wschatAt(ROOT, 'wschat', {});
}

/** The short commit of a checkout, with "+changes" when its tracked files differ from it. */
export function gitCommit(dir: string): string | null {
  const git = (args: string[]): string | null => {
    try {
      const stdio: StdioOptions = ['ignore', 'pipe', 'ignore'];
      return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio }).trim();
    } catch {
      return null;
    }
  };
  const commit = git(['rev-parse', '--short', 'HEAD']);
  if (commit === null) return null;
  return git(['status', '--porcelain', '--untracked-files=no']) ? `${commit}+changes` : commit;
}

function wschatAt(dir: string, name: string, env: Record<string, string>): Target {
  const program = join(dir, 'dist', 'server.js');
  if (!existsSync(program)) {
    throw new TargetError(`${name}: ${program} not found: build it first (cd ${dir} && npm ci && npm run build)`);
  }
  const description = `${relative(ROOT, program) || program} (commit ${gitCommit(dir) ?? 'unknown'})`;
  return { name, wschat: true, dialect: 'wschat', node: true, program, description, env };
}

export interface SetUpOptions {
  /** Where shared/anchors is, when not beside the checkout or one of its parents. */
  readonly anchors: string | undefined;
  /** Progress lines ("setting up go-seed ..."). */
  readonly say: (line: string) => void;
}

/** Parses and sets up every target of a --targets list; throws a TargetError for the first that fails. */
export async function setUpTargets(list: string, options: SetUpOptions): Promise<Target[]> {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new TargetError('--targets: no target given');
  if (new Set(names).size !== names.length) throw new TargetError(`--targets: a target is listed twice: ${list}`);
  const anchors = new Anchors(options);
  const targets: Target[] = [];
  for (const name of names) targets.push(await setUpTarget(name, anchors));
  return targets;
}

async function setUpTarget(name: string, anchors: Anchors): Promise<Target> {
  const [base = '', ...pairs] = name.split('+');
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new TargetError(`${name}: expected +KEY=VALUE, got +${pair}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  if (base === 'wschat') return wschatAt(ROOT, name, env);
  if (base.startsWith('wschat@')) return wschatAt(resolve(base.slice('wschat@'.length)), name, env);
  const anchor = { name, wschat: false, dialect: 'lesson' as const };
  switch (base) {
    case 'go-seed': {
      const program = await anchors.goSeed();
      return { ...anchor, node: false, program, description: `${program} (the lesson's Go server)`, env };
    }
    case 'ws-node':
    case 'ws-node-deflate': {
      const program = await anchors.wsNode();
      const deflate: Record<string, string> = base === 'ws-node-deflate' ? { WS_DEFLATE: 'all' } : {};
      const offer = ', WS_DEFLATE=all: compresses for clients that offer it, which the load client does not yet';
      const description = `${program} (Node.js + ws${base === 'ws-node-deflate' ? offer : ''})`;
      return { ...anchor, node: true, program, description, env: { ...deflate, ...env } };
    }
    default:
      throw new TargetError(`unknown target ${JSON.stringify(base)} (${TARGET_NAMES.join(', ')}, or wschat@<dir>)`);
  }
}

/** The reference servers, each set up at most once per run. */
class Anchors {
  private dir: string | undefined;
  private readonly work = join(tmpdir(), 'wschat-bench');
  private readonly done = new Map<string, Promise<string>>();

  constructor(private readonly options: SetUpOptions) {}

  /** Builds go-seed (Debian's Go; build.sh installs what is missing) and resolves with the binary. */
  goSeed(): Promise<string> {
    return this.once('go-seed', async () => {
      const out = join(this.work, 'bin', 'go-seed');
      await this.script('go-seed', 'build.sh', out);
      return out;
    });
  }

  /** Installs ws-node (npm ci) unless the copy in $TMPDIR is up to date; resolves with its server.js. */
  wsNode(): Promise<string> {
    return this.once('ws-node', async () => {
      const dir = join(this.work, 'ws-node');
      const source = join(this.anchors(), 'ws-node');
      const files = ['server.js', 'package.json', 'package-lock.json'];
      const same = (f: string): boolean =>
        existsSync(join(dir, f)) && readFileSync(join(dir, f)).equals(readFileSync(join(source, f)));
      if (!existsSync(join(dir, 'node_modules', 'ws')) || !files.every(same)) {
        await this.script('ws-node', 'setup.sh', dir);
      }
      return join(dir, 'server.js');
    });
  }

  private once(key: string, setUp: () => Promise<string>): Promise<string> {
    if (!this.done.has(key)) this.done.set(key, setUp());
    return this.done.get(key)!;
  }

  /** shared/anchors beside the checkout (as in CI: ../shared) or beside one of its parent folders. */
  private anchors(): string {
    if (this.dir !== undefined) return this.dir;
    if (this.options.anchors !== undefined) return (this.dir = resolve(this.options.anchors));
    for (let dir = dirname(ROOT); ; dir = dirname(dir)) {
      if (existsSync(join(dir, 'shared', 'anchors'))) return (this.dir = join(dir, 'shared', 'anchors'));
      if (dirname(dir) === dir) throw new TargetError(`no shared/anchors beside ${ROOT} or its parents: --anchors=DIR`);
    }
  }

  private script(anchor: string, script: string, out: string): Promise<void> {
    const path = join(this.anchors(), anchor, script);
    if (!existsSync(path)) {
      return Promise.reject(new TargetError(`${anchor} cannot be set up: ${path} not found (--anchors=DIR)`));
    }
    this.options.say(`setting up ${anchor}: ${path} ${out}`);
    return new Promise((resolve, reject) => {
      const options = { encoding: 'utf8', timeout: 600_000, maxBuffer: 16 << 20 } as const;
      execFile('bash', [path, out], options, (error, stdout, stderr) => {
        if (error === null) return resolve();
        const tail = `${stdout}${stderr}`.trim().split('\n').slice(-15).join('\n');
        const why = error.message.split('\n')[0];
        reject(new TargetError(`${anchor} cannot be set up: ${path} failed (${why})\n${tail}`));
      });
    });
  }
}
