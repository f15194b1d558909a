/**
 * Idle connections: memory per registered connection, read right after the join storm (no forced
 * GC: what the server holds when the last join notice has arrived) and after a forced full GC
 * (Node.js servers only: through the inspector; the heap otherwise keeps the slack of the join
 * storm for an unpredictable time).
 */
import { performance } from 'node:perf_hooks';
import type { LoadClients } from '../load-threads';
import { load, snapshot, window } from '../meter';
import { procOpenFilesLimit } from '../proc';
import type { ServerProcess } from '../server-process';
import type { Target } from '../targets';
import { sleep } from '../time';
import { isProfiled, joinClients, round, settledRss, withServer } from './common';
import type { BenchArgs, Figures, Scenario, ScenarioResult } from './common';

/** Descriptors this process needs besides the idle connections. */
const SPARE_FILES = 512;

/** RSS after a forced full GC, or NaN for a server that is not Node.js. */
async function rssAfterGc(server: ServerProcess, target: Target): Promise<number> {
  if (!target.node) return NaN;
  await server.collectGarbage();
  return settledRss(server, 500);
}

/** Opens `n` idle clients, `batch` at a time (each batch waits for its join notices); CPU and time of it all. */
async function joinStorm(server: ServerProcess, clients: LoadClients, n: number, batch: number): Promise<Figures> {
  const a = snapshot(server, clients);
  const start = performance.now();
  for (let k = 0; k < n; k += batch) await joinClients(server, clients, { count: Math.min(batch, n - k) });
  const seconds = (performance.now() - start) / 1000;
  const b = snapshot(server, clients);
  const w = window(a, b);
  return {
    joinNotices: clients.joins,
    joinSeconds: round(seconds, 2),
    joinDeliveriesPerSec: Math.round(clients.joins / seconds),
    joinServerUsPerDelivery: round((b.serverUs - a.serverUs) / Math.max(1, clients.joins), 3),
    joinServerCpuPct: round(w.serverCpuPct),
    joinClientCpuPct: round(w.clientCpuPct),
    joinOtherCpuPct: round(w.otherCpuPct),
  };
}

/** How many connections this process can open: --idle, or fewer under a low open-files limit. */
function connectionsWithin(args: BenchArgs, notes: string[]): number {
  const ownLimit = procOpenFilesLimit('self');
  if (args.idle + SPARE_FILES <= ownLimit) return args.idle;
  const capped = Math.max(1, ownLimit - SPARE_FILES);
  notes.push(`idle: capped at ${capped} connections by the open-files limit ${ownLimit} (asked for ${args.idle})`);
  return capped;
}

async function run(args: BenchArgs, target: Target): Promise<ScenarioResult> {
  const notes: string[] = [];
  const n = connectionsWithin(args, notes);
  // One load thread: nothing is timed here, and the joins arrive in batches the server paces.
  const serverRun = { scenario: 'idle', inspect: target.node, load: { threads: 1, senders: 0 } };
  return withServer(args, target, serverRun, async (server, clients) => {
    const limit = procOpenFilesLimit(server.pid);
    if (limit < n + 100) notes.push(`idle: the server's open-files limit is ${limit}, too low for ${n} connections`);
    if (!target.node) notes.push(`idle: ${target.name} is not Node.js: no forced GC, no figure after one`);
    await sleep(500);
    const rssBefore = target.node ? await rssAfterGc(server, target) : await settledRss(server, 500);

    const loadBefore = load();
    const storm = await joinStorm(server, clients, n, args.batch);
    const rssAfterJoin = server.usage().rssKiB;
    const registered = await server.clientCount();
    if (registered !== n) notes.push(`idle: GET /clients says ${registered}, expected ${n}`);
    const rssGc = await rssAfterGc(server, target);
    if (clients.leaves > 0 || clients.ended > 0) notes.push('idle: some clients were closed while idle');
    return {
      scenario: 'idle',
      target: target.name,
      notes,
      figures: {
        connections: n,
        registered,
        profiled: isProfiled(args, target, 'idle'),
        batch: args.batch,
        serverOpenFilesLimit: limit,
        rssBeforeKiB: rssBefore,
        rssAfterJoinKiB: rssAfterJoin,
        rssAfterGcKiB: Number.isFinite(rssGc) ? rssGc : null,
        kibPerConnNoGc: round((rssAfterJoin - rssBefore) / n, 2),
        kibPerConnGc: Number.isFinite(rssGc) ? round((rssGc - rssBefore) / n, 2) : null,
        ...storm,
        loadClientRssMiB: round(process.memoryUsage().rss / 1048576),
        loadavg: `${loadBefore} -> ${load()}`,
      },
    };
  });
}

export const idle: Scenario = { name: 'idle', run };
