/**
 * Soak test: the real server (node dist/server.js) as its own process on 127.0.0.1, a crowd of
 * chatters joining, talking and leaving, a few misbehaving peers, and the server's memory over time.
 *
 *   npm run soak -- --seconds 60            (default 60; runs for hours just as well)
 *   npm run soak -- --nodes 3               a cluster over Redis, with a node killed and Redis restarted
 *                                           during the run (soak-cluster.ts; --clients default 30)
 *   options: --clients 200  --rate 1 (broadcasts/s per chatter)  --sample 5 (s between RSS samples)
 *            --seed N  --stayers 0.7 (share of chatters that never leave)  --no-misbehave
 *            --resumers 20 (v2 clients in rooms whose connections are cut at random and resume)
 *
 * Every broadcast is accounted for (see soak-ledger.ts): it must reach every chatter that had joined
 * before it was sent and stayed connected at least 2 s after, in order; private messages to chatters
 * that never leave must all arrive. Resuming clients must see every message of their streams exactly
 * once. Exit status 1 when a message was lost or reordered, a well-behaved client was dropped or
 * scolded, the server died, logged an error, or kept a client after the end.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { mulberry32 } from '../helpers/rng';
import { FlagError, Flags } from './flags';
import { runClusterSoak } from './soak-cluster';
import { Ledger } from './soak-ledger';
import { abrupt, chatter, flooder, garbage, newCounters, slowReader, type SoakContext } from './soak-peers';
import { Resumers } from './soak-resumers';
import { formatSoakReport, soakFailures, type Sample, type SoakResult } from './soak-report';
import { describeExit, killAllServers, type ServerProcess } from './server-process';
import { ownServer, startTarget } from './targets';
import { settlesWithin, sleep, waitFor } from './time';

interface Options {
  readonly seconds: number;
  readonly clients: number;
  readonly rate: number;
  readonly sample: number;
  readonly seed: number;
  readonly stayers: number;
  readonly misbehave: boolean;
  readonly resumers: number;
  /** 0: one server process; N: a cluster of N nodes (soak-cluster.ts). */
  readonly nodes: number;
  readonly clientsGiven: boolean;
}

function options(argv: readonly string[]): Options {
  const flags = new Flags(argv, {
    seconds: 'number',
    clients: 'number',
    rate: 'number',
    sample: 'number',
    seed: 'number',
    stayers: 'number',
    misbehave: 'switch',
    resumers: 'number',
    nodes: 'number',
  });
  const o: Options = {
    seconds: flags.number('seconds', 60),
    clients: flags.number('clients', 200, { min: 1, integer: true }),
    rate: flags.number('rate', 1, { min: 0.01 }),
    sample: flags.number('sample', 5, { min: 0.1 }),
    seed: flags.number('seed', Date.now() >>> 0, { integer: true }),
    stayers: flags.number('stayers', 0.7),
    misbehave: flags.switch('misbehave') ?? true,
    resumers: flags.number('resumers', 20, { min: 0, integer: true }),
    nodes: flags.number('nodes', 0, { min: 0, integer: true }),
    clientsGiven: flags.has('clients'),
  };
  if (o.stayers > 1) throw new FlagError('--stayers: a share, from 0 to 1');
  return o;
}

/** The server's settings for the run: short heartbeat and handshake timeouts so misbehavers are found. */
const SERVER_ENV: Readonly<Record<string, string>> = {
  PING_INTERVAL_MS: '5000',
  PONG_TIMEOUT_MS: '15000',
  HANDSHAKE_TIMEOUT_MS: '2000',
  JOIN_TIMEOUT_MS: '5000',
  RATE_LIMIT_PER_SEC: '20',
  RATE_LIMIT_BURST: '40',
  // Every cut of a resuming client comes back well within this: none of them ever leaves.
  RESUME_GRACE_MS: '30000',
};
/** A chatter that leaves owes nothing sent in its last 2 s (it was in flight). */
const LEAVE_GRACE_MS = 2_000;
/** A sender's log is settled this long after its session ended. */
const FINAL_GRACE_MS = 5_000;
/** Slow readers hold still longer than PONG_TIMEOUT_MS + PING_INTERVAL_MS. */
const SLOW_HOLD_MS = 30_000;

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

/** One soak run: the phases of main(), and what they share. */
class Soak {
  readonly ctx: SoakContext;
  readonly samples: Sample[] = [];
  private stopped = false;
  private release!: () => void;
  private readonly t0 = performance.now();
  private runStart = 0;
  private last = { delivered: 0, t: 0 };

  constructor(
    readonly o: Options,
    readonly server: ServerProcess,
  ) {
    this.ctx = {
      port: server.port,
      url: `ws://127.0.0.1:${server.port}/ws`,
      rng: mulberry32(o.seed),
      ledger: new Ledger(LEAVE_GRACE_MS),
      counters: newCounters(),
      rate: o.rate,
      privateShare: 0.1,
      stayers: new Set(),
      finalGraceMs: FINAL_GRACE_MS,
      stopped: () => this.stopped,
      released: new Promise((r) => (this.release = r)),
      now: () => performance.now(),
      pendingSettles: new Set(),
    };
  }

  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  say(line: string): void {
    process.stdout.write(`[soak ${this.elapsed().toFixed(0).padStart(5)}s] ${line}\n`);
  }

  stop(): void {
    this.stopped = true;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** The chatters, started 20 at a time; resolves when the stayers have joined, with their sessions. */
  async crowd(): Promise<Promise<void>[]> {
    const stayerCount = Math.round(this.o.clients * this.o.stayers);
    const chatters: Promise<void>[] = [];
    for (let i = 0; i < this.o.clients; i++) {
      chatters.push(chatter(this.ctx, { index: i, stayer: i < stayerCount }));
      if (i % 20 === 19) await sleep(100); // no thundering herd
    }
    await waitFor(() => this.ctx.stayers.size >= stayerCount || this.server.exit !== undefined, 30_000, 100);
    this.say(`${this.ctx.stayers.size} stayers joined; the run starts`);
    this.runStart = this.last.t = this.elapsed();
    return chatters;
  }

  /** One RSS sample, and a progress line. */
  async sample(): Promise<void> {
    const t = this.elapsed();
    const kib = this.server.usage().rssKiB;
    this.samples.push({ t: t - this.runStart, kib });
    const online = await this.online();
    const { delivered, lost, privateLost } = this.ctx.ledger.totals;
    const c = this.ctx.counters;
    const dt = t - this.last.t;
    const rate = dt >= 0.5 ? `+${Math.round((delivered - this.last.delivered) / dt)}/s` : 'just now';
    this.say(
      `rss ${mib(kib).padStart(10)}  online ${String(online).padStart(4)}  delivered ${delivered} (${rate})  ` +
        `lost ${lost + privateLost}  sessions ${c.sessions}  ` +
        `bad: flood ${c.flood.started} slow ${c.slow.started} garbage ${c.garbage.started} abrupt ${c.abrupt.started}`,
    );
    this.last = { delivered, t };
  }

  /** Misbehaving peers on their own schedules until the run stops; resolves when the last one is done. */
  async misbehave(): Promise<void> {
    if (!this.o.misbehave) return;
    const ctx = this.ctx;
    const bad: Promise<void>[] = [];
    const every = (ms: number, max: number, run: (n: number) => Promise<void>): NodeJS.Timeout => {
      let n = 0;
      let live = 0;
      return setInterval(() => {
        if (this.stopped || live >= max) return;
        live++;
        bad.push(run(n++).finally(() => live--));
      }, ms);
    };
    const schedules = [
      every(5_000, 2, (n) => flooder(ctx, n)),
      every(10_000, 3, (n) => slowReader(ctx, n, SLOW_HOLD_MS)),
      every(1_000, 5, (n) => garbage(ctx, n)),
      every(700, 5, (n) => abrupt(ctx, n)),
    ];
    await waitFor(() => this.stopped, Infinity, 250);
    for (const s of schedules) clearInterval(s);
    await settlesWithin(Promise.all(bad), 40_000);
  }

  /** Waits (up to 30 s) until nothing is owed to anyone, then settles the ledger. */
  async settle(): Promise<void> {
    const ledger = this.ctx.ledger;
    await waitFor(() => ledger.pending() === 0 || this.server.exit !== undefined, 30_000, 250);
    const pending = ledger.pending();
    if (pending > 0) this.say(`${pending} message(s) still owed after 30 s: counted as lost`);
    for (const settle of [...this.ctx.pendingSettles]) settle();
    ledger.settleAll();
  }

  /** Everyone leaves; resolves with how many clients the server still lists (0 when nothing stayed behind). */
  async everyoneLeaves(chatters: readonly Promise<void>[]): Promise<number> {
    this.release();
    await settlesWithin(Promise.all(chatters), 15_000);
    let online = await this.online();
    for (let i = 0; i < 50 && online !== 0 && this.server.exit === undefined; i++) {
      await sleep(100);
      online = await this.online();
    }
    return online;
  }

  /** GET /clients, NaN when the server does not answer. */
  private online(): Promise<number> {
    return this.server.clientCount().catch(() => NaN);
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  process.on('exit', killAllServers);
  if (o.nodes > 0) {
    const clients = o.clientsGiven ? o.clients : 30;
    const code = await runClusterSoak({ seconds: o.seconds, clients, rate: o.rate, nodes: o.nodes, seed: o.seed,
      rng: mulberry32(o.seed) });
    process.exit(code);
  }
  const logFile = join(tmpdir(), `wschat-soak-${process.pid}`, 'server.log');
  const server = await startTarget(ownServer(), { env: SERVER_ENV, nodeArgs: [], openFiles: 4096, logFile });
  const soak = new Soak(o, server);
  soak.say(
    `server pid ${server.pid} on 127.0.0.1:${server.port} (log ${logFile}); ${o.clients} chatters ` +
      `(${Math.round(o.stayers * 100)}% stay), ${o.rate} msg/s each, ${o.seconds} s, seed ${o.seed}` +
      (o.misbehave ? ', with misbehaving peers' : ''),
  );
  process.once('SIGINT', () => {
    soak.say('SIGINT: ending the run early');
    soak.stop();
  });

  const chatters = await soak.crowd();
  const resumers = new Resumers({
    url: soak.ctx.url,
    port: server.port,
    rng: mulberry32(o.seed ^ 0x5eed),
    count: o.resumers,
    rate: o.rate,
    cutEveryMs: 500,
    stopped: () => soak.isStopped,
  });
  await resumers.start();
  await soak.sample();
  const sampler = setInterval(() => void soak.sample(), o.sample * 1000);
  const bad = soak.misbehave();
  await waitFor(() => server.exit !== undefined || soak.isStopped, o.seconds * 1000, 250);
  soak.stop();
  await soak.sample(); // the last sample of the run proper
  const runEnd = soak.samples[soak.samples.length - 1]!.t;
  if (server.exit !== undefined) soak.say(`the server died: ${describeExit(server.exit)}`);
  else soak.say('time is up: stopping the senders and waiting for in-flight messages');

  await bad;
  await soak.settle();
  const resumed = await resumers.finish();
  clearInterval(sampler);
  await soak.sample();
  const leaked = await soak.everyoneLeaves(chatters);

  // SIGTERM: the server must exit 0.
  const died = server.exit !== undefined;
  const exit = await server.stop();
  const result: SoakResult = {
    clients: o.clients,
    stayers: Math.round(o.clients * o.stayers),
    seed: o.seed,
    ledger: soak.ctx.ledger.totals,
    examples: soak.ctx.ledger.examples,
    counters: soak.ctx.counters,
    samples: soak.samples,
    runEnd,
    died,
    exit,
    leaked,
    log: server.log(),
    resumers: resumed,
  };
  const failures = soakFailures(result);
  process.stdout.write(formatSoakReport(result, failures) + '\n');
  if (failures.length === 0) rmSync(dirname(logFile), { recursive: true, force: true });
  else process.stdout.write(`server log: ${logFile}\n`);
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? (error instanceof FlagError ? error.message : error.stack) : String(error);
  process.stderr.write(`soak: ${message}\n`);
  process.exit(error instanceof FlagError ? 2 : 1);
});
