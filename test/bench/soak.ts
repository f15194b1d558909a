#!/usr/bin/env node
/**
 * Soak test: the real server (node dist/server.js) as its own process on 127.0.0.1, a crowd of
 * chatters joining, talking and leaving, a few misbehaving peers, and the server's memory over time.
 *
 *   npm run soak -- --seconds 60            (default 60; runs for hours just as well)
 *   options: --clients 200  --rate 1 (broadcasts/s per chatter)  --sample 5 (s between RSS samples)
 *            --seed N  --stayers 0.7 (share of chatters that never leave)  --no-misbehave
 *
 * Every broadcast is accounted for (see soak-ledger.ts): it must reach every chatter that had joined
 * before it was sent and stayed connected at least 2 s after, in order; private messages to chatters
 * that never leave must all arrive. Exit status 1 when a message was lost or reordered, a well-behaved
 * client was dropped or scolded, the server died, logged an error, or kept a client after the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Ledger } from './soak-ledger';
import { abrupt, chatter, flooder, garbage, mulberry32, newCounters, settlesWithin, sleep, slowReader, type SoakContext } from './soak-peers';

interface Options {
  seconds: number;
  clients: number;
  rate: number;
  sample: number;
  seed: number;
  stayers: number;
  misbehave: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { seconds: 60, clients: 200, rate: 1, sample: 5, seed: Date.now() >>> 0, stayers: 0.7, misbehave: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--no-misbehave') {
      o.misbehave = false;
      continue;
    }
    const key = arg.replace(/^--/, '');
    const value = Number(argv[++i]);
    if (!(key in o) || key === 'misbehave' || !Number.isFinite(value) || value < 0) {
      process.stderr.write(`soak: bad option ${arg} ${argv[i] ?? ''}\n`);
      process.exit(2);
    }
    (o as unknown as Record<string, number>)[key] = value;
  }
  return o;
}

/** The server's settings for the run: short heartbeat and handshake timeouts so misbehavers are found. */
const SERVER_ENV: Readonly<Record<string, string>> = {
  PORT: '0',
  HOST: '127.0.0.1',
  PING_INTERVAL_MS: '5000',
  PONG_TIMEOUT_MS: '15000',
  HANDSHAKE_TIMEOUT_MS: '2000',
  JOIN_TIMEOUT_MS: '5000',
  RATE_LIMIT_PER_SEC: '20',
  RATE_LIMIT_BURST: '40',
};
/** A chatter that leaves owes nothing sent in its last 2 s (it was in flight). */
const LEAVE_GRACE_MS = 2_000;
/** A sender's log is settled this long after its session ended. */
const FINAL_GRACE_MS = 5_000;
/** Slow readers hold still longer than PONG_TIMEOUT_MS + PING_INTERVAL_MS. */
const SLOW_HOLD_MS = 30_000;

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

function httpJson(port: number, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function onlineCount(port: number): Promise<number> {
  try {
    return ((await httpJson(port, '/clients')) as { count: number }).count;
  } catch {
    return NaN;
  }
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

/** Least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly lines: Map<string, number>;
  readonly errorLines: string[];
  readonly stderr: string[];
  /** Set when the process exits. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;
}

async function startServer(): Promise<ServerProcess> {
  const serverJs = join(__dirname, '..', '..', '..', 'dist', 'server.js');
  const child = spawn(process.execPath, [serverJs], { env: { ...process.env, ...SERVER_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  const lines = new Map<string, number>();
  const errorLines: string[] = [];
  const stderr: string[] = [];
  let resolvePort!: (port: number) => void;
  const portKnown = new Promise<number>((r) => (resolvePort = r));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    // "<ISO time> <event> ...": count events; keep the ones that mean trouble.
    const event = line.split(' ', 2)[1] ?? '';
    lines.set(event, (lines.get(event) ?? 0) + 1);
    if (event === 'error' || event === 'fatal') errorLines.push(line);
    const m = / listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
    if (m) resolvePort(Number(m[1]));
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const server: ServerProcess = {
    child,
    port: 0,
    lines,
    errorLines,
    stderr,
    exit: undefined,
    exited: new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        server.exit = { code, signal };
        process.off('exit', killOnExit);
        resolve();
      }),
    ),
  };
  const port = await Promise.race([portKnown, server.exited.then(() => NaN), sleep(10_000).then(() => NaN)]);
  if (!Number.isFinite(port)) {
    child.kill('SIGKILL');
    throw new Error(`the server did not start: ${stderr.join('\n')}`);
  }
  (server as { port: number }).port = port;
  return server;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const server = await startServer();
  const pid = server.child.pid!;
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  const log = (line: string): void => void process.stdout.write(`[soak ${elapsed().toFixed(0).padStart(5)}s] ${line}\n`);
  log(`server pid ${pid} on 127.0.0.1:${server.port}; ${o.clients} chatters (${Math.round(o.stayers * 100)}% stay), ${o.rate} msg/s each, ${o.seconds} s, seed ${o.seed}${o.misbehave ? ', with misbehaving peers' : ''}`);

  let stopped = false;
  let release!: () => void;
  const ledger = new Ledger(LEAVE_GRACE_MS);
  const counters = newCounters();
  const ctx: SoakContext = {
    port: server.port,
    url: `ws://127.0.0.1:${server.port}/ws`,
    rng: mulberry32(o.seed),
    ledger,
    counters,
    rate: o.rate,
    privateShare: 0.1,
    stayers: new Set(),
    finalGraceMs: FINAL_GRACE_MS,
    stopped: () => stopped,
    released: new Promise((r) => (release = r)),
    now: () => performance.now(),
    pendingSettles: new Set(),
  };
  process.once('SIGINT', () => {
    log('SIGINT: ending the run early');
    stopped = true;
  });

  // ---- the crowd ----
  const chatters: Promise<void>[] = [];
  const stayerCount = Math.round(o.clients * o.stayers);
  for (let i = 0; i < o.clients; i++) {
    chatters.push(chatter(ctx, i, i < stayerCount));
    if (i % 20 === 19) await sleep(100); // no thundering herd
  }
  for (let i = 0; i < 300 && ctx.stayers.size < stayerCount && !server.exit; i++) await sleep(100);
  log(`${ctx.stayers.size} stayers joined; the run starts`);

  // ---- RSS samples ----
  const samples: { t: number; kib: number }[] = [];
  const runStart = elapsed();
  let lastDelivered = 0;
  let lastT = runStart;
  const sample = async (): Promise<void> => {
    const t = elapsed();
    const kib = rssKiB(pid);
    samples.push({ t: t - runStart, kib });
    const online = await onlineCount(server.port);
    const d = ledger.totals.delivered;
    const c = counters;
    log(
      `rss ${mib(kib).padStart(10)}  online ${String(online).padStart(4)}  delivered ${d} (+${Math.round((d - lastDelivered) / Math.max(0.001, t - lastT))}/s)  ` +
        `lost ${ledger.totals.lost + ledger.totals.privateLost}  sessions ${c.sessions}  ` +
        `bad: flood ${c.flood.started} slow ${c.slow.started} garbage ${c.garbage.started} abrupt ${c.abrupt.started}`,
    );
    lastDelivered = d;
    lastT = t;
  };
  await sample();
  const sampler = setInterval(() => void sample(), o.sample * 1000);

  // ---- misbehaving peers, on their own schedules ----
  const bad: Promise<void>[] = [];
  const every = (ms: number, max: number, run: (n: number) => Promise<void>): NodeJS.Timeout => {
    let n = 0;
    let live = 0;
    return setInterval(() => {
      if (stopped || live >= max) return;
      live++;
      const p = run(n++).finally(() => live--);
      bad.push(p);
    }, ms);
  };
  const schedules = o.misbehave
    ? [
        every(5_000, 2, (n) => flooder(ctx, n)),
        every(10_000, 3, (n) => slowReader(ctx, n, SLOW_HOLD_MS)),
        every(1_000, 5, (n) => garbage(ctx, n)),
        every(700, 5, (n) => abrupt(ctx, n)),
      ]
    : [];

  // ---- run ----
  const endAt = performance.now() + o.seconds * 1000;
  while (!stopped && performance.now() < endAt && !server.exit) await sleep(250);
  stopped = true;
  for (const s of schedules) clearInterval(s);
  await sample(); // the last sample of the run proper
  const runEnd = samples[samples.length - 1]!.t;
  const died = server.exit !== undefined;
  log(died ? `the server died: ${JSON.stringify(server.exit)}` : 'time is up: stopping the senders and waiting for in-flight messages');

  // ---- settle ----
  await settlesWithin(Promise.all(bad), 40_000);
  let pending = ledger.pending();
  for (let i = 0; i < 120 && pending > 0 && !server.exit; i++) {
    await sleep(250);
    pending = ledger.pending();
  }
  if (pending > 0) log(`${pending} message(s) still owed after 30 s: counted as lost`);
  for (const settle of [...ctx.pendingSettles]) settle();
  ledger.settleAll();
  clearInterval(sampler);
  await sample();

  // ---- everyone leaves; nothing may stay behind ----
  release();
  await settlesWithin(Promise.all(chatters), 15_000);
  let leaked = await onlineCount(server.port);
  for (let i = 0; i < 50 && leaked !== 0 && !server.exit; i++) {
    await sleep(100);
    leaked = await onlineCount(server.port);
  }

  // ---- stop the server: SIGTERM, it must exit 0 ----
  const serverDied = server.exit !== undefined;
  if (!serverDied) server.child.kill('SIGTERM');
  if (!(await settlesWithin(server.exited, 5_000))) server.child.kill('SIGKILL');
  await server.exited;

  // ---- report ----
  const t = ledger.totals;
  const c = counters;
  // RSS figures cover the run itself (the settling samples after it are printed above, not used here).
  const duration = runEnd;
  const valid = samples.filter((s) => Number.isFinite(s.kib) && s.t <= runEnd + 0.5);
  const nearest = (at: number): { t: number; kib: number } => valid.reduce((a, b) => (Math.abs(b.t - at) < Math.abs(a.t - at) ? b : a));
  const start = valid[0]!;
  const middle = nearest(duration / 2);
  const end = valid[valid.length - 1]!;
  const secondHalf = valid.filter((s) => s.t >= duration / 2).map((s) => ({ x: s.t / 60, y: s.kib }));
  const slopeKiBPerMin = slope(secondHalf);
  const peak = Math.max(...valid.map((s) => s.kib));
  const events = [...server.lines].map(([k, v]) => `${k} ${v}`).join(', ');

  const out = [
    '',
    '==== soak report ====',
    `duration            ${duration.toFixed(0)} s of traffic, ${o.clients} chatters (${stayerCount} stayers), seed ${o.seed}`,
    `sent                ${c.broadcastsSent} broadcasts, ${c.privatesSent} private messages, ${c.sessions} sessions, ${c.leaves} clean leaves`,
    `delivered           ${t.delivered} broadcast deliveries, ${t.privateDelivered} private deliveries`,
    `lost                ${t.lost} broadcast, ${t.privateLost} private; out of order ${t.disorder}`,
    `well-behaved        unexpected drops ${c.unexpectedDrops}, System errors ${c.chatErrors}, connect failures ${c.connectFailures}`,
    `misbehaving         flooders ${c.flood.started} (closed 1008: ${c.flood.closed1008}, other: ${c.flood.other}); ` +
      `slow readers ${c.slow.started} (dropped: ${c.slow.dropped}, not dropped: ${c.slow.notDropped}); ` +
      `garbage ${c.garbage.started} (closed: ${c.garbage.closed}, lingering: ${c.garbage.lingering}); abrupt ${c.abrupt.started}`,
    `server RSS          start ${mib(start.kib)} (t=${start.t.toFixed(0)} s), middle ${mib(middle.kib)} (t=${middle.t.toFixed(0)} s), ` +
      `end ${mib(end.kib)} (t=${end.t.toFixed(0)} s), peak ${mib(peak)}`,
    `RSS slope, 2nd half ${Number.isFinite(slopeKiBPerMin) ? `${slopeKiBPerMin >= 0 ? '+' : ''}${slopeKiBPerMin.toFixed(0)} KiB/min over ${secondHalf.length} samples` : 'n/a (too few samples)'}`,
    `server log          ${events}`,
    `server exit         ${serverDied ? `DIED during the run: ${JSON.stringify(server.exit)}` : `code ${server.exit?.code ?? '?'} on SIGTERM`}; clients left online after the end: ${leaked}`,
  ];
  const examples = [...ledger.examples, ...c.examples, ...server.errorLines.slice(0, 10), ...server.stderr.slice(0, 10).map((l) => `stderr: ${l}`)];
  if (examples.length > 0) out.push('details:', ...examples.map((e) => `  ${e}`));

  const failures: string[] = [];
  if (t.lost + t.privateLost > 0) failures.push('messages lost');
  if (t.disorder > 0) failures.push('messages out of order');
  if (c.unexpectedDrops > 0) failures.push('well-behaved clients dropped');
  if (c.chatErrors > 0) failures.push('well-behaved clients got System errors');
  if (serverDied || died) failures.push('the server died');
  if (!serverDied && server.exit?.code !== 0) failures.push(`the server exited with ${JSON.stringify(server.exit)} on SIGTERM`);
  if (server.errorLines.length > 0) failures.push('the server logged errors');
  if (!serverDied && leaked !== 0) failures.push(`${leaked} client(s) still listed after everyone left`);
  out.push(failures.length === 0 ? 'result              PASS' : `result              FAIL: ${failures.join('; ')}`);
  process.stdout.write(out.join('\n') + '\n');
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
