/**
 * `npm run bench`: load scenarios against a real server process, plus codec micro-benchmarks.
 * Prints a table and writes bench-results/<timestamp>.json and bench-results/latest.json.
 *
 *   npm run bench                                  everything, full length (~2-3 min with idle=10000)
 *   npm run bench -- --quick                       short smoke run (~20 s)
 *   npm run bench -- --scenario=saturate --profile saturate under --cpu-prof, with a summary
 *
 * Flags: --scenario=fixed,saturate,idle,slow,micro  --seconds=10 --warmup=1 --clients=500
 *   --senders=10 --window=4 --rate=10 --padding=0 --idle=10000 --batch=250 --settle=3 --slow-clients=100
 *   --slow-rate=40 (quick: 80) --slow-padding=3500 --slow-max-seconds=30 --micro-ms=500
 *   --workers=N (load-client threads for fixed, saturate and slow; default fixed 2, saturate 1, slow 2)
 *   --profile[=/tmp/prof] --profile-scenario=saturate|fixed|idle|slow --top=25
 *   --open-files=20000 --server-args="--max-semi-space-size=1" (node options for the server)
 *
 * Load-client threads: with --workers=N the receiving connections are spread over N threads, this
 * one and N-1 worker threads (load-threads.ts), so that the load client does not process every
 * socket of a fan-out one after the other. "load CPU%" is the CPU of the whole process, all threads.
 *
 * Open files: 10,000 idle connections need that many descriptors in this process and in the
 * server. The server is started as `sh -c 'ulimit -n N; exec node dist/server.js'`; this process
 * re-executes itself the same way when its own soft limit is too low (a process cannot raise its
 * own limit from JavaScript). If the hard limit is lower, the figures say what limit was used.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { formatMicro, runMicro, type MicroResult } from './micro';
import { killAllServers, procOpenFilesLimit } from './proc';
import { formatSummary, newestProfile, summarize, type ProfileSummary } from './profile-summary';
import { fixedRate, idle, saturate, slowConsumer, type BenchArgs, type Figures, type ScenarioResult } from './scenarios';

const ROOT = resolve(__dirname, '..', '..', '..');
const ALL = ['fixed', 'saturate', 'idle', 'slow', 'micro'] as const;
/** More load threads than this only compete with the server for the cores. */
const MAX_WORKERS = 16;
type ScenarioName = (typeof ALL)[number];

function parseFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (m === null) throw new Error(`unknown argument ${a}`);
    flags.set(m[1]!, m[2] ?? 'true');
  }
  return flags;
}

const KNOWN = new Set([
  'scenario', 'quick', 'seconds', 'warmup', 'clients', 'senders', 'window', 'rate', 'padding', 'idle', 'batch', 'settle',
  'slow-clients', 'slow-rate', 'slow-padding', 'slow-max-seconds', 'micro-ms', 'profile', 'open-files', 'top', 'server-args', 'profile-scenario', 'workers',
]);

function num(flags: Map<string, string>, name: string, fallback: number, min = 0): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new Error(`--${name}: expected a number >= ${min}, got ${JSON.stringify(raw)}`);
  return v;
}

function buildArgs(flags: Map<string, string>): { args: BenchArgs; scenarios: ScenarioName[]; microMs: number; top: number } {
  for (const k of flags.keys()) if (!KNOWN.has(k)) throw new Error(`unknown flag --${k}`);
  const quick = flags.has('quick');
  const scenarios = (flags.get('scenario') ?? ALL.join(',')).split(',').map((s) => s.trim()) as ScenarioName[];
  for (const s of scenarios) if (!ALL.includes(s)) throw new Error(`unknown scenario ${s} (one of ${ALL.join(', ')})`);
  const profile = flags.get('profile');
  const args: BenchArgs = {
    root: ROOT,
    quick,
    seconds: num(flags, 'seconds', quick ? 2 : 10, 0.1),
    warmup: num(flags, 'warmup', quick ? 0.5 : 1),
    clients: Math.round(num(flags, 'clients', 500, 1)),
    senders: Math.round(num(flags, 'senders', 10, 1)),
    window: Math.round(num(flags, 'window', 4, 1)),
    rate: num(flags, 'rate', 10, 0.1),
    padding: Math.round(num(flags, 'padding', 0)),
    idle: Math.round(num(flags, 'idle', quick ? 1000 : 10_000, 1)),
    batch: Math.round(num(flags, 'batch', 250, 1)),
    settle: num(flags, 'settle', quick ? 1 : 3, 0),
    slowClients: Math.round(num(flags, 'slow-clients', 100, 1)),
    slowRate: num(flags, 'slow-rate', quick ? 80 : 40, 0.1),
    slowPadding: Math.round(num(flags, 'slow-padding', 3500)),
    slowMaxSeconds: num(flags, 'slow-max-seconds', quick ? 10 : 30, 1),
    openFiles: Math.round(num(flags, 'open-files', 20_000, 256)),
    serverArgs: (flags.get('server-args') ?? '').split(' ').filter((a) => a !== ''),
    profileDir: profile === undefined ? undefined : profile === 'true' ? '/tmp/prof' : resolve(profile),
    profileScenario: flags.get('profile-scenario') ?? 'saturate',
    workers: flags.has('workers') ? Math.round(num(flags, 'workers', 1, 1)) : undefined,
  };
  if (args.workers !== undefined && args.workers > MAX_WORKERS) throw new Error(`--workers: at most ${MAX_WORKERS}`);
  if (!['fixed', 'saturate', 'idle', 'slow'].includes(args.profileScenario)) throw new Error('--profile-scenario: fixed, saturate, idle or slow');
  if (args.senders > args.clients) throw new Error('--senders must not exceed --clients');
  if (args.senders > args.slowClients) throw new Error('--senders must not exceed --slow-clients');
  return { args, scenarios, microMs: num(flags, 'micro-ms', quick ? 100 : 500, 10), top: num(flags, 'top', 25, 1) };
}

/** Re-runs this script under `ulimit -n` when our own limit is too low; returns true if it did. */
function reexecWithLimit(args: BenchArgs, scenarios: readonly ScenarioName[]): boolean {
  const needed = scenarios.includes('idle') ? args.idle + 512 : Math.max(args.clients, args.slowClients) + 512;
  const limit = procOpenFilesLimit('self');
  if (!(limit < needed) || process.env.WSCHAT_BENCH_REEXEC === '1') return false;
  const want = Math.max(needed, args.openFiles);
  const quoted = [process.execPath, ...process.execArgv, __filename, ...process.argv.slice(2)]
    .map((s) => `'${s.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  // If the hard limit is lower, take the hard limit and go on: the figures report what we had.
  const child = spawn('sh', ['-c', `ulimit -n ${want} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${quoted}`], {
    stdio: 'inherit',
    env: { ...process.env, WSCHAT_BENCH_REEXEC: '1' },
  });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  return true;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

// ---- output ----

function fmt(v: Figures[string] | undefined): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) >= 10_000 ? v.toLocaleString('en-US') : String(v);
  return String(v);
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function report(results: readonly ScenarioResult[], micro: readonly MicroResult[] | null, profile: ProfileSummary | null): string {
  const out: string[] = [];
  const flow = results.filter((r) => r.name === 'fixed' || r.name === 'saturate' || r.name === 'slow');
  if (flow.length > 0) {
    const cols: [string, string][] = [
      ['deliveries/s', 'deliveriesPerSec'],
      ['p50 ms', 'p50Ms'],
      ['p90 ms', 'p90Ms'],
      ['p99 ms', 'p99Ms'],
      ['max ms', 'maxMs'],
      ['lost', 'lost'],
      ['srv µs/deliv', 'serverUsPerDelivery'],
      ['srv CPU%', 'serverCpuPct'],
      ['load CPU%', 'clientCpuPct'],
      ['other CPU%', 'otherCpuPct'],
    ];
    out.push(
      table(
        ['scenario', ...cols.map((c) => c[0])],
        flow.map((r) => {
          const f = r.figures;
          const tail = ` ${f.loadThreads}t${f.profiled ? ' (profiled)' : ''}`;
          const label =
            r.name === 'fixed'
              ? `fixed ${f.clients}c ${f.senders}x${f.ratePerSender}/s${tail}`
              : r.name === 'saturate'
                ? `saturate ${f.clients}c ${f.senders}s w${f.window}${tail}`
                : `slow ${f.healthyClients}+1c ${f.senders}x${f.ratePerSender}/s${tail}`;
          return [label, ...cols.map(([, k]) => fmt(k === 'lost' && r.name === 'slow' ? f.healthyLost : f[k]))];
        }),
      ),
    );
    out.push('  (CPU% = % of one core; the machine has ' + cpus().length + ' cores. "other" = everything but server and load client.');
    out.push('   Nt = the load client ran its connections in N threads; its CPU% covers all of them.)');
  }
  const idleResult = results.find((r) => r.name === 'idle');
  if (idleResult) {
    const f = idleResult.figures;
    out.push('');
    out.push(
      table(
        ['idle', 'connections', 'RSS before', 'settled', 'after gc MiB', 'KiB/conn', 'no gc', 'join notices', 'join s', 'join deliv/s', 'srv µs/deliv'],
        [
          [
            'idle',
            fmt(f.registered),
            (Number(f.rssBeforeKiB) / 1024).toFixed(1),
            (Number(f.rssSettledKiB) / 1024).toFixed(1),
            (Number(f.rssAfterGcKiB) / 1024).toFixed(1),
            fmt(f.kibPerConnection),
            fmt(f.kibPerConnectionNoGc),
            fmt(f.joinNotices),
            fmt(f.joinSeconds),
            fmt(f.joinDeliveriesPerSec),
            fmt(f.joinServerUsPerDelivery),
          ],
        ],
      ),
    );
    out.push('  (KiB/conn = (RSS after a forced full GC - RSS before) / N; "no gc" uses the RSS after settling without one.)');
  }
  const slowResult = results.find((r) => r.name === 'slow');
  if (slowResult) {
    const f = slowResult.figures;
    out.push('');
    out.push(
      table(
        ['slow consumer', 'dropped', 'after s', 'server reason', 'close sent', 'slow saw', 'healthy lost', 'RSS before/peak/after MiB'],
        [
          [
            'slow',
            fmt(f.slowDropped),
            fmt(f.secondsToDrop),
            fmt(f.serverDropReason),
            fmt(f.serverSentCloseCode),
            f.slowSawCloseCode !== null ? `close ${f.slowSawCloseCode}` : f.slowSocketEnded ? 'socket ended' : 'nothing',
            fmt(f.healthyLost),
            [f.rssBeforeKiB, f.rssPeakKiB, f.rssAfterKiB].map((x) => (Number(x) / 1024).toFixed(1)).join(' / '),
          ],
        ],
      ),
    );
  }
  if (micro) {
    out.push('');
    out.push(formatMicro(micro));
  }
  for (const r of results) for (const n of r.notes) out.push(`NOTE ${n}`);
  if (profile) {
    out.push('');
    out.push(formatSummary(profile));
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const { args, scenarios, microMs, top } = buildArgs(parseFlags(process.argv.slice(2)));
  if (reexecWithLimit(args, scenarios)) return;

  process.on('exit', killAllServers);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killAllServers();
      process.exit(130);
    });
  }

  const ownLimit = procOpenFilesLimit('self');
  const started = new Date();
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    os: `${process.platform} ${release()}`,
    totalMemMiB: Math.round(totalmem() / 1048576),
    loadavgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    openFilesLimit: ownLimit,
  };
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--untracked-files=no']);
  console.log(
    `wschat bench: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, commit ${commit ?? '?'}${dirty ? ' (+uncommitted changes)' : ''}, ` +
      `loadavg ${machine.loadavgAtStart.join(' ')}, open files ${ownLimit}`,
  );
  if (scenarios.includes('idle') && ownLimit < args.idle + 512) {
    console.log(`NOTE open-files limit ${ownLimit} is below ${args.idle + 512}: idle will fail or be capped; raise it (ulimit -n)`);
  }

  if (args.profileDir !== undefined) {
    rmSync(args.profileDir, { recursive: true, force: true });
    mkdirSync(args.profileDir, { recursive: true });
  }

  const results: ScenarioResult[] = [];
  const failures: { scenario: string; error: string }[] = [];
  let micro: MicroResult[] | null = null;
  const runners: Record<Exclude<ScenarioName, 'micro'>, (a: BenchArgs) => Promise<ScenarioResult>> = {
    fixed: fixedRate,
    saturate,
    idle: async (a) => {
      if (a.idle + 512 <= ownLimit) return idle(a);
      const capped = Math.max(1, ownLimit - 512);
      const r = await idle({ ...a, idle: capped });
      r.notes.push(`idle: capped at ${capped} connections by the open-files limit ${ownLimit} (asked for ${a.idle})`);
      return r;
    },
    slow: slowConsumer,
  };
  for (const name of scenarios) {
    const t0 = Date.now();
    process.stdout.write(`running ${name} ... `);
    try {
      if (name === 'micro') micro = runMicro(microMs);
      else results.push(await runners[name](args));
      console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (error) {
      console.log(`FAILED: ${(error as Error).message}`);
      failures.push({ scenario: name, error: (error as Error).stack ?? String(error) });
    }
  }

  let profile: ProfileSummary | null = null;
  if (args.profileDir !== undefined && scenarios.includes(args.profileScenario as ScenarioName)) {
    const file = newestProfile(args.profileDir);
    if (file !== undefined) profile = summarize(file, top);
    else console.log(`NOTE no .cpuprofile was written to ${args.profileDir}`);
  }

  console.log('');
  console.log(report(results, micro, profile));

  const json = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    commit,
    uncommittedChanges: Boolean(dirty),
    machine: { ...machine, loadavgAtEnd: loadavg().map((x) => Number(x.toFixed(2))) },
    args: { ...args, root: undefined },
    scenarios: Object.fromEntries(results.map((r) => [r.name, { ...r.figures, notes: r.notes }])),
    micro,
    profile,
    failures,
  };
  const dir = join(ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const text = JSON.stringify(json, null, 2) + '\n';
  writeFileSync(join(dir, `${stamp}.json`), text);
  writeFileSync(join(dir, 'latest.json'), text);
  console.log(`\nresults: bench-results/${stamp}.json (and bench-results/latest.json)`);
  if (failures.length > 0) {
    for (const f of failures) console.error(`\n${f.scenario} failed:\n${f.error}`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  killAllServers();
  process.exit(1);
});
