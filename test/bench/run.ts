/**
 * `npm run bench`: load scenarios against real server processes, ours and others side by side,
 * plus codec micro-benchmarks. Prints tables and writes bench-results/<timestamp>.json and
 * bench-results/latest.json.
 *
 *   npm run bench                                   everything on our server (~2-3 min with idle=10000)
 *   npm run bench -- --quick                        short smoke run (~30 s)
 *   npm run bench -- --targets=wschat,go-seed,ws-node,ws-node-deflate    the same run on each (targets.ts)
 *   npm run bench -- --targets=wschat@/tmp/base,wschat                   a baseline build against this one
 *   npm run bench -- --scenario=saturate --profile  saturate under --cpu-prof, with a summary
 *
 * Flags: --scenario=fixed,saturate,idle,slow,history,micro  --targets=wschat  --env=KEY=VALUE (repeatable: our
 *   server's settings, on every wschat target)  --anchors=DIR (where shared/anchors is)
 *   --seconds=10 --warmup=1 --clients=500 --senders=10 --window=4 --rate=10 --padding=0 --idle=10000
 *   --batch=250 --slow-clients=100 --slow-rate=40 (quick: 80) --slow-padding=3500 --slow-max-seconds=30
 *   --micro-ms=500 --workers=N (load-client threads for fixed, saturate and slow; default fixed 2,
 *   saturate 1, slow 2) --profile[=/tmp/prof] --profile-scenario=saturate|fixed|idle|slow --top=25
 *   --open-files=20000 --server-args="--max-semi-space-size=1" (node options for Node.js servers)
 *   --history-rooms=95 --history-size=1000 (history: rooms filled, HISTORY_SIZE)
 *   --compression (the load client offers permessage-deflate, as browsers do: compare
 *   wschat+COMPRESSION=off,wschat,ws-node-deflate in one run; "wire B/deliv" shows the bytes)
 *
 * Each scenario runs on every target in turn, so that whatever else loads the machine at that time
 * weighs on all of them alike. Ratios in the side-by-side table are against the first target.
 *
 * Load-client threads: with --workers=N the receiving connections are spread over N threads, this
 * one and N-1 worker threads (load-threads.ts), so that the load client does not process every
 * socket of a fan-out one after the other. "load CPU%" is the CPU of the whole process, all threads.
 *
 * Open files: 10,000 idle connections need that many descriptors in this process and in the
 * server. Servers are started under `ulimit -n` (server-process.ts); this process re-executes
 * itself the same way when its own soft limit is too low. If the hard limit is lower, the figures
 * say what limit was used.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { FlagError, Flags, type FlagKind } from './flags';
import { runMicro, type MicroResult } from './micro';
import { procOpenFilesLimit } from './proc';
import { newestProfile, summarize, type ProfileSummary } from './profile-summary';
import { formatReport } from './report';
import { profileDirOf, type BenchArgs, type Scenario, type ScenarioResult } from './scenarios/common';
import { fixed } from './scenarios/fixed';
import { history } from './scenarios/history';
import { idle } from './scenarios/idle';
import { saturate } from './scenarios/saturate';
import { slow } from './scenarios/slow';
import { killAllServers, withOpenFilesLimit } from './server-process';
import { gitCommit, ROOT, setUpTargets, TargetError, type Target } from './targets';

const SCENARIOS: readonly Scenario[] = [fixed, saturate, idle, slow, history];
const ALL = [...SCENARIOS.map((s) => s.name), 'micro'];
/** More load threads than this only compete with the server for the cores. */
const MAX_WORKERS = 16;

const FLAGS: Readonly<Record<string, FlagKind>> = {
  scenario: 'string', targets: 'string', env: 'list', anchors: 'string', quick: 'switch',
  seconds: 'number', warmup: 'number', clients: 'number', senders: 'number', window: 'number', rate: 'number',
  padding: 'number', idle: 'number', batch: 'number', 'slow-clients': 'number', 'slow-rate': 'number',
  'slow-padding': 'number', 'slow-max-seconds': 'number', 'micro-ms': 'number', 'open-files': 'number',
  top: 'number', workers: 'number', 'server-args': 'string', profile: 'optional', 'profile-scenario': 'string',
  'history-rooms': 'number', 'history-size': 'number', compression: 'switch',
};

interface Plan {
  readonly args: BenchArgs;
  readonly scenarios: readonly string[];
  readonly targets: string;
  readonly anchors: string | undefined;
  readonly microMs: number;
  readonly top: number;
}

/** KEY=VALUE pairs of --env. */
function envPairs(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new FlagError(`--env: expected KEY=VALUE, got ${JSON.stringify(pair)}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

function plan(flags: Flags): Plan {
  const quick = flags.switch('quick') ?? false;
  const scenarios = (flags.string('scenario') ?? ALL.join(',')).split(',').map((s) => s.trim());
  for (const s of scenarios) {
    if (!ALL.includes(s)) throw new FlagError(`unknown scenario ${s} (one of ${ALL.join(', ')})`);
  }
  const profile = flags.string('profile');
  const count = (name: string, fallback: number): number => flags.number(name, fallback, { min: 1, integer: true });
  const args: BenchArgs = {
    quick,
    seconds: flags.number('seconds', quick ? 2 : 10, { min: 0.1 }),
    warmup: flags.number('warmup', quick ? 0.5 : 1),
    clients: count('clients', 500),
    senders: count('senders', 10),
    window: count('window', 4),
    rate: flags.number('rate', 10, { min: 0.1 }),
    padding: flags.number('padding', 0, { integer: true }),
    idle: count('idle', quick ? 1000 : 10_000),
    batch: count('batch', 250),
    historyRooms: count('history-rooms', quick ? 19 : 95),
    historySize: count('history-size', quick ? 200 : 1000),
    slowClients: count('slow-clients', 100),
    slowRate: flags.number('slow-rate', quick ? 80 : 40, { min: 0.1 }),
    slowPadding: flags.number('slow-padding', 3500, { integer: true }),
    slowMaxSeconds: flags.number('slow-max-seconds', quick ? 10 : 30, { min: 1 }),
    openFiles: flags.number('open-files', 20_000, { min: 256, integer: true }),
    serverArgs: (flags.string('server-args') ?? '').split(' ').filter((a) => a !== ''),
    env: envPairs(flags.list('env')),
    profileDir: profile === undefined ? undefined : profile === '' ? '/tmp/prof' : resolve(profile),
    profileScenario: flags.string('profile-scenario') ?? 'saturate',
    workers: flags.has('workers') ? count('workers', 1) : undefined,
    // Created by the first server that logs there; removed at the end unless something failed.
    logDir: join(tmpdir(), `wschat-bench-logs-${process.pid}`),
    compression: flags.switch('compression') ?? false,
  };
  if (args.workers !== undefined && args.workers > MAX_WORKERS) {
    throw new FlagError(`--workers: at most ${MAX_WORKERS}`);
  }
  if (!SCENARIOS.some((s) => s.name === args.profileScenario)) {
    throw new FlagError('--profile-scenario: fixed, saturate, idle or slow');
  }
  if (args.senders > args.clients) throw new FlagError('--senders must not exceed --clients');
  if (args.senders > args.slowClients) throw new FlagError('--senders must not exceed --slow-clients');
  return {
    args,
    scenarios,
    targets: flags.string('targets') ?? 'wschat',
    anchors: flags.string('anchors'),
    microMs: flags.number('micro-ms', quick ? 100 : 500, { min: 10 }),
    top: count('top', 25),
  };
}

/** Re-runs this script under `ulimit -n` when our own limit is too low; returns true if it did. */
function reexecWithLimit({ args, scenarios }: Plan): boolean {
  const needed = (scenarios.includes('idle') ? args.idle : Math.max(args.clients, args.slowClients)) + 512;
  if (!(procOpenFilesLimit('self') < needed) || process.env.WSCHAT_BENCH_REEXEC === '1') return false;
  const [file, argv] = withOpenFilesLimit(Math.max(needed, args.openFiles), process.execPath, [
    ...process.execArgv,
    __filename,
    ...process.argv.slice(2),
  ]);
  const child = spawn(file, argv, { stdio: 'inherit', env: { ...process.env, WSCHAT_BENCH_REEXEC: '1' } });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  return true;
}

interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly os: string;
  readonly totalMemMiB: number;
  readonly loadavgAtStart: number[];
  readonly openFilesLimit: number;
}

function machine(): Machine {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    os: `${process.platform} ${release()}`,
    totalMemMiB: Math.round(totalmem() / 1048576),
    loadavgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    openFilesLimit: procOpenFilesLimit('self'),
  };
}

interface Outcome {
  readonly results: ScenarioResult[];
  readonly failures: { scenario: string; target: string; error: string }[];
  readonly skipped: string[];
  micro: MicroResult[] | null;
}

/** Runs one step, timed; a failure is reported and recorded, and the run goes on. */
async function step(
  outcome: Outcome,
  label: string,
  at: { scenario: string; target: string },
  work: () => Promise<void>,
): Promise<void> {
  const t0 = Date.now();
  process.stdout.write(`running ${label} ... `);
  try {
    await work();
    console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (error) {
    console.log(`FAILED: ${(error as Error).message}`);
    outcome.failures.push({ ...at, error: (error as Error).stack ?? String(error) });
  }
}

/** Every scenario on every target in turn (micro once: it measures the codec in this process). */
async function runAll({ args, scenarios, microMs }: Plan, targets: readonly Target[]): Promise<Outcome> {
  const outcome: Outcome = { results: [], failures: [], skipped: [], micro: null };
  for (const name of scenarios) {
    const scenario = SCENARIOS.find((s) => s.name === name);
    if (scenario === undefined) {
      await step(outcome, name, { scenario: name, target: 'this process' }, async () => {
        outcome.micro = runMicro(microMs);
      });
      continue;
    }
    for (const target of targets) {
      const why = scenario.skip?.(target);
      if (why !== undefined) outcome.skipped.push(`${name} skipped on ${target.name}: ${why}`);
      else {
        await step(outcome, `${name} on ${target.name}`, { scenario: name, target: target.name }, async () => {
          outcome.results.push(await scenario.run(args, target));
        });
      }
    }
  }
  return outcome;
}

/** The CPU profile of each Node.js target, if --profile was given. */
function profiles({ args, scenarios, top }: Plan, targets: readonly Target[]): ProfileSummary[] {
  if (args.profileDir === undefined || !scenarios.includes(args.profileScenario)) return [];
  const summaries: ProfileSummary[] = [];
  for (const target of targets.filter((t) => t.node)) {
    const file = newestProfile(profileDirOf(args, target));
    if (file !== undefined) summaries.push(summarize(file, top));
    else console.log(`NOTE no .cpuprofile was written for ${target.name} to ${profileDirOf(args, target)}`);
  }
  return summaries;
}

/** bench-results/<timestamp>.json and latest.json; returns the first's name. */
function writeResults(json: Record<string, unknown>, started: Date): string {
  const dir = join(ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const name = `${started.toISOString().replace(/[:.]/g, '-')}.json`;
  const text = JSON.stringify(json, null, 2) + '\n';
  writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, 'latest.json'), text);
  return name;
}

async function main(): Promise<void> {
  const p = plan(new Flags(process.argv.slice(2), FLAGS));
  if (reexecWithLimit(p)) return;
  process.on('exit', killAllServers);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

  const started = new Date();
  const m = machine();
  const commit = gitCommit(ROOT);
  console.log(
    `wschat bench: ${m.cpu}, ${m.cores} cores, node ${m.node}, commit ${commit ?? '?'}, ` +
      `loadavg ${m.loadavgAtStart.join(' ')}, open files ${m.openFilesLimit}`,
  );
  const targets = await setUpTargets(p.targets, { anchors: p.anchors, say: (line) => console.log(line) });
  for (const t of targets) console.log(`target ${t.name}: ${t.description}`);
  if (p.args.profileDir !== undefined) {
    rmSync(p.args.profileDir, { recursive: true, force: true });
    mkdirSync(p.args.profileDir, { recursive: true });
  }

  const outcome = await runAll(p, targets);
  const summaries = profiles(p, targets);
  const names = targets.map((t) => t.name);
  const { results, micro, skipped } = outcome;
  console.log('\n' + formatReport({ targets: names, results, micro, profiles: summaries, notes: skipped }));

  const json = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    commit,
    machine: { ...m, loadavgAtEnd: loadavg().map((x) => Number(x.toFixed(2))) },
    args: p.args,
    targets: targets.map((t) => ({ name: t.name, description: t.description, env: t.env })),
    results: outcome.results,
    micro: outcome.micro,
    profiles: summaries,
    skipped: outcome.skipped,
    failures: outcome.failures,
  };
  console.log(`\nresults: bench-results/${writeResults(json, started)} (and bench-results/latest.json)`);
  if (outcome.failures.length > 0) {
    for (const f of outcome.failures) {
      console.error(`\n${f.scenario} on ${f.target} failed (logs in ${p.args.logDir}):\n${f.error}`);
    }
    process.exitCode = 1;
  } else {
    rmSync(p.args.logDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  const expected = error instanceof FlagError || error instanceof TargetError;
  console.error(expected ? `bench: ${(error as Error).message}` : error);
  killAllServers();
  process.exit(expected ? 2 : 1);
});
