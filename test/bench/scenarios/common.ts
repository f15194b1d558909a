/**
 * What the load scenarios share. Each scenario starts its own server process (a clean heap and a
 * clean Hub), opens its clients, measures, and stops everything it started, also when it fails.
 *
 *   fixed      fixed-rate fan-out: latency and loss at a steady load
 *   saturate   closed-loop fan-out: the most deliveries per second the server sustains
 *   idle       memory per idle registered connection
 *   slow       a client that stops reading is dropped, the others lose nothing (our server only)
 */
import { join } from 'node:path';
import type { BenchClient } from '../load-client';
import { LoadClients, type LoadOptions } from '../load-threads';
import { load, snapshot, window, type Snapshot } from '../meter';
import { usageOf } from '../proc';
import type { ServerProcess } from '../server-process';
import { startTarget, type Target } from '../targets';
import { sleep, waitFor } from '../time';

export interface BenchArgs {
  readonly quick: boolean;
  /** Measurement length of the fixed and saturate scenarios. */
  readonly seconds: number;
  readonly warmup: number;
  readonly clients: number;
  readonly senders: number;
  readonly window: number;
  /** Messages per second per sender (fixed). */
  readonly rate: number;
  /** Extra bytes of text in every chat message. */
  readonly padding: number;
  readonly idle: number;
  /** Idle clients opened per batch; the next batch starts when every join notice has arrived. */
  readonly batch: number;
  /** history: rooms filled, and messages each keeps (HISTORY_SIZE). */
  readonly historyRooms: number;
  readonly historySize: number;
  readonly slowClients: number;
  readonly slowRate: number;
  readonly slowPadding: number;
  readonly slowMaxSeconds: number;
  readonly openFiles: number;
  /** Extra node options for every Node.js server (--server-args="--max-semi-space-size=1"). */
  readonly serverArgs: readonly string[];
  /** --env=KEY=VALUE: our server's settings, for every wschat target. */
  readonly env: Readonly<Record<string, string>>;
  /** --profile: run one scenario's Node.js servers under --cpu-prof, into this directory. */
  readonly profileDir: string | undefined;
  /** Which scenario --profile applies to (saturate unless --profile-scenario says otherwise). */
  readonly profileScenario: string;
  /** --workers: load-client threads for fixed, saturate and slow; undefined: DEFAULT_WORKERS. */
  readonly workers: number | undefined;
  /** Where the servers' logs go. */
  readonly logDir: string;
  /** The load client offers permessage-deflate (RFC 7692), as browsers do, and inflates. */
  readonly compression: boolean;
}

/**
 * Load-client threads (load-threads.ts) per scenario, unless --workers says otherwise; measured on
 * 2 cores. fixed: with one thread the last socket of each 500-way fan-out waits for the other 499,
 * and p50/p99 are the load client's (about 3/4.8 ms); two threads bring them to about 2/4.2 ms,
 * three add nothing more. slow (100 clients): a slightly lower p50, kept like fixed. saturate is
 * closed-loop and CPU-bound: extra threads only take CPU from the server (about 3% fewer
 * deliveries/s), so it keeps one. More threads make "srv µs/deliv" higher (on loopback the
 * server's write wakes the receiving thread, and a thread that keeps up sleeps between
 * deliveries): compare that figure between runs with the same thread count.
 */
export const DEFAULT_WORKERS = { fixed: 2, saturate: 1, slow: 2 } as const;

export type Figures = Record<string, number | string | boolean | null>;

export interface ScenarioResult {
  readonly scenario: string;
  readonly target: string;
  readonly figures: Figures;
  readonly notes: string[];
}

export interface Scenario {
  readonly name: string;
  /** Why the scenario does not run on this target; undefined when it does. */
  readonly skip?: (target: Target) => string | undefined;
  readonly run: (args: BenchArgs, target: Target) => Promise<ScenarioResult>;
}

/** Our server's settings in every scenario: no rate limit (the anchors have none), room for idle connections. */
const WSCHAT_BENCH_ENV: Readonly<Record<string, string>> = {
  RATE_LIMIT_PER_SEC: '1000000',
  RATE_LIMIT_BURST: '1000000',
  MAX_CONNECTIONS: '20000',
};

export interface ServerRun {
  readonly scenario: string;
  /** Our server's settings for this scenario (before --env and the target's own). */
  readonly env?: Readonly<Record<string, string>>;
  /** Open the inspector of a Node.js server, so that collectGarbage() can force a full GC. */
  readonly inspect?: boolean;
  readonly load: Omit<LoadOptions, 'dialect'>;
}

/** Is this scenario's server on this target run under --cpu-prof? */
export function isProfiled(args: BenchArgs, target: Target, scenario: string): boolean {
  return args.profileDir !== undefined && args.profileScenario === scenario && target.node;
}

/** A target's name as a file name. */
export const fileName = (target: Target): string => target.name.replace(/[^A-Za-z0-9._-]+/g, '_');

/** Where a target's CPU profiles go. */
export const profileDirOf = (args: BenchArgs, target: Target): string => join(args.profileDir ?? '', fileName(target));

/** Starts a server, runs `body`, and always stops the server and closes every client and load thread. */
export async function withServer<T>(
  args: BenchArgs,
  target: Target,
  run: ServerRun,
  body: (server: ServerProcess, clients: LoadClients) => Promise<T>,
): Promise<T> {
  const profiled = isProfiled(args, target, run.scenario);
  const profile = profiled ? ['--cpu-prof', `--cpu-prof-dir=${profileDirOf(args, target)}`] : [];
  if (profile.length > 0 && !target.wschat) profile.push('--require', join(__dirname, '..', 'exit-on-sigterm.js'));
  const server = await startTarget(target, {
    env: target.wschat ? { ...WSCHAT_BENCH_ENV, ...run.env, ...args.env } : {},
    nodeArgs: [...profile, ...(run.inspect === true ? ['--inspect=127.0.0.1:0'] : []), ...args.serverArgs],
    openFiles: args.openFiles,
    logFile: join(args.logDir, `${run.scenario}.${fileName(target)}.log`),
  });
  let clients: LoadClients | undefined;
  try {
    clients = new LoadClients({ ...run.load, dialect: target.dialect, compression: args.compression });
    return await body(server, clients);
  } finally {
    // Server first: clients closing one by one would make it send N² leave notices.
    await server.stop();
    await clients?.close();
  }
}

export interface JoinRequest {
  readonly count: number;
  /** Default c<i>. */
  readonly name?: (i: number) => string;
  /** Open them in this thread. */
  readonly here?: boolean;
}

/**
 * Opens more chat clients (overall the first `senders` are senders 0..senders-1) and waits for
 * their join notices: client k sees the joins of everyone registered after it, itself included, so
 * at least n(n+1)/2 in all, whatever the order and whichever thread each client is in (exactly that
 * from our server; the lesson's server registers and announces in two steps, so a client may also
 * see the join of one registered just before it). Resolves with the clients opened in this thread.
 */
export async function joinClients(
  server: ServerProcess,
  clients: LoadClients,
  request: JoinRequest,
): Promise<BenchClient[]> {
  const here = await clients.open({ port: server.port, name: (i) => `c${i}`, ...request });
  const total = clients.opened;
  const expected = (total * (total + 1)) / 2;
  const done = (): boolean => clients.joins >= expected || clients.leaves > 0 || clients.failure !== null;
  const ok = await waitFor(done, 120_000, 10);
  checkThreads(clients);
  if (!ok || clients.leaves > 0) {
    const counts = `${clients.joins} of ${expected}, leaves ${clients.leaves}`;
    throw new Error(`join notices: ${counts} (a client was dropped while joining?)`);
  }
  return here;
}

/** The smallest of a few RSS samples of the server after `waitMs`: the heap shrinks lazily. */
export async function settledRss(server: ServerProcess, waitMs: number): Promise<number> {
  await sleep(waitMs);
  let min = Infinity;
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(300);
    min = Math.min(min, server.usage().rssKiB);
  }
  return min;
}

/** Throws the error of a load thread that failed: its figures would be missing. */
function checkThreads(clients: LoadClients): void {
  const failure = clients.failure;
  if (failure !== null) throw failure;
}

/**
 * Redis's work per chat message over a window, for a cluster target (undefined for the others): script
 * calls (EVALSHA: the nodes' requests), every command Redis ran (those inside the scripts included), and
 * Redis's own CPU, per message sent in between. The nodes' leases and the bench's INFO count too.
 */
export async function redisCommands(server: ServerProcess): Promise<Counts> {
  const companion = server.companion;
  if (companion === undefined) return undefined;
  const counts = await companion.commands();
  return { ...counts, cpuUs: companion.pid === undefined ? NaN : usageOf([companion.pid]).cpuUs };
}

type Counts = { total: number; scripts: number; cpuUs: number } | undefined;

export function perMessage(before: Counts, after: Counts, sent: number): Figures {
  if (before === undefined || after === undefined || sent === 0) return {};
  return {
    redisScriptsPerMessage: round((after.scripts - before.scripts) / sent, 2),
    redisCommandsPerMessage: round((after.total - before.total) / sent, 2),
    redisUsPerMessage: round((after.cpuUs - before.cpuUs) / sent, 2),
  };
}

export const round = (x: number, digits = 1): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : NaN);
const ms = (us: number): number => round(us / 1000, 2);
/** `n` bytes of padding for a chat message. */
export const padding = (n: number): string => (n > 0 ? ' ' + 'x'.repeat(n - 1) : '');

/** Messages sender `i` of `n` owes after `elapsedMs` at `rate`/s: its k-th is due at (k + i/n) / rate. */
export function dueMessages(rate: number, elapsedMs: number, i: number, n: number): number {
  return Math.max(0, Math.floor((rate * elapsedMs) / 1000 - i / n) + 1);
}

/**
 * A measurement window of a flow scenario: from construction (latency recording starts) to end().
 * figures() then gives the window's throughput and CPU, the latency, order and error figures.
 */
export class Measurement {
  private readonly a: Snapshot;
  private b: Snapshot | undefined;
  private readonly loadBefore = load();

  constructor(
    private readonly server: ServerProcess,
    private readonly clients: LoadClients,
  ) {
    clients.startRecording();
    this.a = snapshot(server, clients);
  }

  end(): void {
    this.b = snapshot(this.server, this.clients);
    this.clients.stopRecording();
  }

  /**
   * Throws if a load thread failed (its counts would be missing). Notes what went wrong: error
   * messages, clients dropped (more than `expectedDrops`).
   */
  async figures(notes: string[], about: { scenario: string; expectedDrops?: number }): Promise<Figures> {
    const scenario = about.scenario;
    const clients = this.clients;
    checkThreads(clients);
    if (this.b === undefined) throw new Error('Measurement.figures() before end()');
    if (clients.errors > 0) notes.push(`${scenario}: the server sent ${clients.errors} error(s) (a rate limit?)`);
    if (clients.ended > (about.expectedDrops ?? 0)) notes.push(`${scenario}: ${clients.ended} client(s) dropped`);
    const w = window(this.a, this.b);
    const h = await clients.latency();
    return {
      seconds: round(w.seconds, 2),
      deliveries: w.deliveries,
      deliveriesPerSec: Math.round(w.deliveriesPerSec),
      serverUsPerDelivery: round(w.serverUsPerDelivery, 3),
      serverCpuPct: round(w.serverCpuPct),
      clientCpuPct: round(w.clientCpuPct),
      otherCpuPct: round(w.otherCpuPct),
      softirqPct: round(w.softirqPct),
      wireBytesPerDelivery: round(w.wireBytesPerDelivery),
      latencySamples: h.count,
      p50Ms: ms(h.quantile(0.5)),
      p90Ms: ms(h.quantile(0.9)),
      p99Ms: ms(h.quantile(0.99)),
      maxMs: ms(h.max),
      reordered: clients.reordered,
      errors: clients.errors,
      dropped: clients.ended,
      loadavg: `${this.loadBefore} -> ${load()}`,
    };
  }
}
