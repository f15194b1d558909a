/**
 * WORKERS=N: N server processes on this machine sharing the port (node:cluster; the primary accepts and
 * hands connections out in turn), each a cluster node joined to the others through Redis. This primary
 * only supervises: it serves nothing and knows nothing of the chat.
 *
 *   - a worker that dies is replaced, after a delay that grows while workers keep dying (never a tight
 *     fork loop); its clients resume on the other workers, and its sessions are reaped by them;
 *   - SIGTERM/SIGINT go to every worker (each closes its clients with 1001), and the primary exits 0
 *     once they have all exited.
 *
 * METRICS_PORT: the primary serves /metrics, its own process figures and each worker's families (asked
 * over IPC at scrape time), every sample labelled `worker` (`primary`, or the worker's slot).
 *
 * Each worker gets its own NODE_ID: NODE_ID (or the host name and the primary's pid), the worker's slot
 * and its generation, so a replacement is a new node and never inherits a dead one's lease.
 */
import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';
import type { Config } from '../config';
import type { EventLog } from '../log';
import { merge, type Family } from '../metrics/exposition';
import { createMetricsListener } from '../metrics/listener';
import { ProcessCollector } from '../metrics/process';
import { askWorker } from '../metrics/workers';
import { Backoff } from '../redis';

/** Workers get this long to exit after SIGTERM (they need 2 s); then they are killed. */
const STOP_BUDGET_MS = 5_000;

export function superviseWorkers(config: Config, log: EventLog): void {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '') || 'node';
  const base = config.nodeId !== '' ? config.nodeId : `${host}-${process.pid}`;
  const backoff = new Backoff({ minDelayMs: 100, maxDelayMs: 10_000, stableAfterMs: 10_000 });
  const slots = new Map<Worker, { slot: number; started: number }>();
  const generation = new Array<number>(config.workers).fill(0);
  let stopping = false;

  const fork = (slot: number): void => {
    const nodeId = `${base}.${slot}.${generation[slot]!++}`;
    const worker = cluster.fork({ NODE_ID: nodeId });
    slots.set(worker, { slot, started: performance.now() });
  };

  cluster.on('exit', (worker, code, signal) => {
    const info = slots.get(worker);
    slots.delete(worker);
    if (stopping) {
      if (slots.size === 0) process.exit(0);
      return;
    }
    if (info === undefined) return;
    backoff.linkLost(performance.now() - info.started);
    const delay = Math.round(backoff.next());
    log('worker_died', { pid: worker.process.pid, exit: signal ?? `code ${code}`, restartInMs: delay }, 'warn');
    setTimeout(() => {
      if (!stopping) fork(info.slot);
    }, delay);
  });

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log('shutdown', { signal });
    log('workers_stopping', { workers: slots.size });
    if (slots.size === 0) process.exit(0);
    for (const worker of slots.keys()) worker.process.kill('SIGTERM');
    setTimeout(() => {
      for (const worker of slots.keys()) worker.process.kill('SIGKILL');
      process.exit(0);
    }, STOP_BUDGET_MS).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  log('primary', { pid: process.pid, workers: config.workers });
  for (let slot = 0; slot < config.workers; slot++) fork(slot);
  if (config.metricsPort !== null) serveMetrics(config, log, () => slots);
}

/** The primary's /metrics: its own process figures, then every worker's, merged under a `worker` label. */
function serveMetrics(config: Config, log: EventLog, workers: () => ReadonlyMap<Worker, { slot: number }>): void {
  const own = new ProcessCollector();
  const collect = async (): Promise<Family[]> => {
    const asked = [...workers()].map(async ([worker, { slot }]) => ({
      labels: { worker: String(slot) },
      families: (await askWorker(worker)) ?? [],
    }));
    const answers = (await Promise.all(asked)).sort((a, b) => Number(a.labels.worker) - Number(b.labels.worker));
    return merge([{ labels: { worker: 'primary' }, families: own.collect() }, ...answers]);
  };
  createMetricsListener(collect)
    .listen(config.metricsPort!, config.metricsHost)
    .then(
      (address) => log('metrics', { url: `http://${hostPort(address.address, address.port)}/metrics` }),
      (error: Error) => log('metrics_failed', { reason: error.message }, 'error'),
    );
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
