/**
 * The four load scenarios. Each starts its own server process (a clean heap and a clean Hub), opens
 * its clients, measures, and stops everything it started, also when it fails.
 *
 *   fixed      fixed-rate fan-out: latency and loss at a steady load
 *   saturate   closed-loop fan-out: the most deliveries per second the server sustains
 *   idle       memory per idle registered connection
 *   slow       a client that stops reading is dropped, the others lose nothing
 */
import { performance } from 'node:perf_hooks';
import type { Histogram } from './histogram';
import type { BenchClient, SenderHooks } from './load-client';
import { LoadClients, type LoadOptions } from './load-threads';
import { load, snapshot, window, type Window } from './meter';
import { procOpenFilesLimit, ServerProcess } from './proc';

export interface BenchArgs {
  readonly root: string;
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
  /** Seconds the idle server is left alone before RSS is read without a forced GC. */
  readonly settle: number;
  readonly slowClients: number;
  readonly slowRate: number;
  readonly slowPadding: number;
  readonly slowMaxSeconds: number;
  readonly openFiles: number;
  /** Extra node options for every server process (--server-args="--max-semi-space-size=1"). */
  readonly serverArgs: readonly string[];
  /** --profile: run one scenario's server under --cpu-prof into this directory. */
  readonly profileDir: string | undefined;
  /** Which scenario --profile applies to (saturate unless --profile-scenario says otherwise). */
  readonly profileScenario: string;
  /** --workers: load-client threads for fixed, saturate and slow; undefined: DEFAULT_WORKERS. */
  readonly workers: number | undefined;
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
  readonly name: string;
  readonly figures: Figures;
  readonly notes: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every `step` ms until it holds or `timeoutMs` passes. */
async function waitFor(cond: () => boolean, timeoutMs: number, step = 5): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) return false;
    await sleep(step);
  }
  return true;
}

const round = (x: number, digits = 1): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : NaN);
const ms = (us: number): number => round(us / 1000, 2);
const padding = (n: number): string => (n > 0 ? ' ' + 'x'.repeat(n - 1) : '');

/** Messages sender `i` of `n` owes after `elapsedMs` at `rate`/s: its k-th is due at (k + i/n) / rate. */
function dueMessages(rate: number, elapsedMs: number, i: number, n: number): number {
  return Math.max(0, Math.floor((rate * elapsedMs) / 1000 - i / n) + 1);
}

function latencyFigures(h: Histogram): Figures {
  return {
    latencySamples: h.count,
    p50Ms: ms(h.quantile(0.5)),
    p90Ms: ms(h.quantile(0.9)),
    p99Ms: ms(h.quantile(0.99)),
    maxMs: ms(h.max),
  };
}

function windowFigures(w: Window): Figures {
  return {
    seconds: round(w.seconds, 2),
    deliveries: w.deliveries,
    deliveriesPerSec: Math.round(w.deliveriesPerSec),
    serverUsPerDelivery: round(w.serverUsPerDelivery, 3),
    serverCpuPct: round(w.serverCpuPct),
    clientCpuPct: round(w.clientCpuPct),
    otherCpuPct: round(w.otherCpuPct),
    softirqPct: round(w.softirqPct),
  };
}

/** Starts a server, runs `body`, and always stops the server and closes every client and load thread. */
async function withServer<T>(
  args: BenchArgs,
  logName: string,
  env: Record<string, string>,
  profile: boolean,
  loadOptions: LoadOptions,
  body: (server: ServerProcess, clients: LoadClients) => Promise<T>,
  inspect = false,
): Promise<T> {
  const server = new ServerProcess(args.root, {
    env,
    logName,
    inspect,
    nodeArgs: args.serverArgs,
    openFiles: args.openFiles,
    ...(profile && args.profileDir !== undefined ? { profileDir: args.profileDir } : {}),
  });
  let clients: LoadClients | undefined;
  try {
    await server.ready();
    clients = new LoadClients(loadOptions);
    return await body(server, clients);
  } finally {
    // Server first: clients closing one by one would make it send N² leave notices.
    await server.stop();
    await clients?.close();
  }
}

/**
 * Opens `n` more chat clients (overall the first `senders` are senders 0..senders-1) and waits for
 * every join notice: client k sees the joins of everyone registered after it, itself included, so
 * the total is n(n+1)/2 whatever the order, and whichever thread each client is in.
 * Resolves with the clients opened in this thread.
 */
async function joinClients(
  server: ServerProcess,
  clients: LoadClients,
  n: number,
  name: (i: number) => string = (i) => `c${i}`,
  local = false,
): Promise<BenchClient[]> {
  const here = await clients.open(server.port, n, name, local);
  const total = clients.opened;
  const expected = (total * (total + 1)) / 2;
  const ok = await waitFor(() => clients.joins >= expected || clients.leaves > 0 || clients.failure !== null, 120_000, 10);
  checkThreads(clients);
  const joins = clients.joins;
  if (!ok || clients.leaves > 0 || joins !== expected) {
    throw new Error(`join notices: ${joins} of ${expected}, leaves ${clients.leaves} (a client was dropped while joining?)`);
  }
  return here;
}

/** Throws the error of a load thread that failed: its figures would be missing. */
function checkThreads(clients: LoadClients): void {
  const failure = clients.failure;
  if (failure !== null) throw failure;
}

// ---------------------------------------------------------------------------------------------
// 1. Fixed-rate fan-out

export async function fixedRate(args: BenchArgs): Promise<ScenarioResult> {
  const notes: string[] = [];
  const profiled = args.profileDir !== undefined && args.profileScenario === 'fixed';
  const threads = Math.min(args.workers ?? DEFAULT_WORKERS.fixed, args.clients);
  return withServer(args, 'fixed.log', {}, profiled, { threads, senders: args.senders }, async (server, clients) => {
    const here = await joinClients(server, clients, args.clients);
    const senders = here.slice(0, args.senders);
    const text = padding(args.padding);
    const perSender = Math.max(1, Math.round(args.rate * args.seconds));

    clients.startRecording();
    const loadBefore = load();
    const a = snapshot(server, clients);
    const start = performance.now();
    await new Promise<void>((resolve) => {
      // One timer for all senders: each one owes rate × elapsed messages, the senders' schedules
      // staggered so the messages arrive evenly spaced rather than in bursts of `senders`.
      const timer = setInterval(() => {
        const elapsed = performance.now() - start;
        for (const s of senders) {
          const due = Math.min(perSender, dueMessages(args.rate, elapsed, s.senderIndex, senders.length));
          while (s.sent < due) s.sendChat(text);
        }
        if (senders.every((s) => s.sent >= perSender)) {
          clearInterval(timer);
          resolve();
        }
      }, 2);
    });
    const sent = perSender * senders.length;
    const expected = sent * args.clients;
    const drained = await waitFor(() => clients.chats >= expected || clients.failure !== null, 15_000, 2);
    const b = snapshot(server, clients);
    clients.stopRecording();
    checkThreads(clients);
    if (!drained) notes.push(`fixed: not every delivery arrived within 15 s of the last send`);
    return {
      name: 'fixed',
      notes,
      figures: {
        clients: args.clients,
        senders: args.senders,
        ratePerSender: args.rate,
        loadThreads: threads,
        profiled,
        offeredDeliveriesPerSec: args.rate * args.senders * args.clients,
        sent,
        expected,
        lost: expected - clients.chats,
        reordered: clients.reordered,
        ...windowFigures(window(a, b)),
        ...latencyFigures(await clients.latency()),
        loadavg: `${loadBefore} -> ${load()}`,
      },
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 2. Saturating fan-out (closed loop)

export async function saturate(args: BenchArgs): Promise<ScenarioResult> {
  const notes: string[] = [];
  const profiled = args.profileDir !== undefined && args.profileScenario === 'saturate';
  const text = padding(args.padding);
  let running = true;
  // Closed loop: a sender sends its next message when its own previous one comes back. The
  // senders are in this thread (LoadClients), so the hook runs here.
  const hooks: SenderHooks = {
    onOwnMessage(client) {
      if (running) client.sendChat(text);
    },
  };
  const threads = Math.min(args.workers ?? DEFAULT_WORKERS.saturate, args.clients);
  return withServer(args, 'saturate.log', {}, profiled, { threads, senders: args.senders, hooks }, async (server, clients) => {
    const here = await joinClients(server, clients, args.clients);
    const senders = here.slice(0, args.senders);
    for (const s of senders) for (let i = 0; i < args.window; i++) s.sendChat(text);

    await sleep(args.warmup * 1000);
    clients.startRecording();
    const loadBefore = load();
    const a = snapshot(server, clients);
    await sleep(args.seconds * 1000);
    const b = snapshot(server, clients);
    clients.stopRecording();
    running = false;

    const sent = senders.reduce((n, s) => n + s.sent, 0);
    const expected = sent * args.clients;
    const drained = await waitFor(() => clients.chats >= expected || clients.failure !== null, 15_000, 2);
    checkThreads(clients);
    if (!drained) notes.push('saturate: not every delivery arrived within 15 s after the senders stopped');
    return {
      name: 'saturate',
      notes,
      figures: {
        clients: args.clients,
        senders: args.senders,
        window: args.window,
        loadThreads: threads,
        profiled,
        ...windowFigures(window(a, b)),
        ...latencyFigures(await clients.latency()),
        sent,
        lost: expected - clients.chats,
        reordered: clients.reordered,
        loadavg: `${loadBefore} -> ${load()}`,
      },
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 3. Idle connections: memory per registered connection

/** The smallest of a few RSS samples: the heap shrinks lazily and we cannot force a gc over there. */
async function settledRss(server: ServerProcess, settleMs: number, samples = 5, stepMs = 400): Promise<number> {
  await sleep(settleMs);
  let min = Infinity;
  for (let i = 0; i < samples; i++) {
    min = Math.min(min, server.rssKiB());
    if (i < samples - 1) await sleep(stepMs);
  }
  return min;
}

export async function idle(args: BenchArgs): Promise<ScenarioResult> {
  const notes: string[] = [];
  // The default config: the Hub's per-turn budget and presence window keep a join storm within the
  // default SEND_QUEUE, so no setting is raised for this scenario.
  const env = {};
  // The inspector lets us force a full GC over there (HeapProfiler.collectGarbage): without it the
  // heap keeps the slack of the join storm for an unpredictable time.
  const profiled = args.profileDir !== undefined && args.profileScenario === 'idle';
  // One load thread: nothing is timed here, and the joins arrive in batches the server paces.
  return withServer(args, 'idle.log', env, profiled, { threads: 1, senders: 0 }, async (server, clients) => {
    const limit = procOpenFilesLimit(server.pid);
    const n = args.idle;
    if (limit < n + 100) notes.push(`idle: the server's open-files limit is ${limit}, too low for ${n} connections`);
    await sleep(500);
    await server.collectGarbage();
    const rssBefore = await settledRss(server, 500, 3, 300);

    const loadBefore = load();
    const a = snapshot(server, clients);
    const joinStart = performance.now();
    for (let k = 0; k < n; k += args.batch) {
      await joinClients(server, clients, Math.min(args.batch, n - k));
    }
    const joinSeconds = (performance.now() - joinStart) / 1000;
    const b = snapshot(server, clients);
    const joinWindow = window(a, b);
    const registered = await server.clientCount();
    if (registered !== n) notes.push(`idle: GET /clients says ${registered}, expected ${n}`);

    const rssSettled = await settledRss(server, 1000, Math.max(2, Math.round(args.settle / 0.5)), 500);
    await server.collectGarbage();
    const rssAfterGc = await settledRss(server, 500, 3, 300);
    if (clients.leaves > 0 || clients.ended > 0) notes.push('idle: some clients were closed while idle');
    return {
      name: 'idle',
      notes,
      figures: {
        connections: n,
        registered,
        profiled,
        batch: args.batch,
        serverOpenFilesLimit: limit,
        rssBeforeKiB: rssBefore,
        rssSettledKiB: rssSettled,
        rssAfterGcKiB: rssAfterGc,
        kibPerConnection: round((rssAfterGc - rssBefore) / n, 2),
        kibPerConnectionNoGc: round((rssSettled - rssBefore) / n, 2),
        settleSeconds: args.settle,
        joinNotices: clients.joins,
        joinSeconds: round(joinSeconds, 2),
        joinDeliveriesPerSec: Math.round(clients.joins / joinSeconds),
        joinServerUsPerDelivery: round((b.serverUs - a.serverUs) / Math.max(1, clients.joins), 3),
        joinServerCpuPct: round(joinWindow.serverCpuPct),
        joinClientCpuPct: round(joinWindow.clientCpuPct),
        joinOtherCpuPct: round(joinWindow.otherCpuPct),
        loadClientRssMiB: round(process.memoryUsage().rss / 1048576),
        loadavg: `${loadBefore} -> ${load()}`,
      },
    };
  }, true);
}

// ---------------------------------------------------------------------------------------------
// 4. Slow consumer

export async function slowConsumer(args: BenchArgs): Promise<ScenarioResult> {
  const notes: string[] = [];
  const text = padding(args.slowPadding);
  // The default SEND_QUEUE and MAX_BUFFERED_BYTES: the point is what the server does out of the box.
  const env = { MAX_MESSAGE_BYTES: String(Math.max(4096, args.slowPadding + 256)) };
  const profiled = args.profileDir !== undefined && args.profileScenario === 'slow';
  const threads = Math.min(args.workers ?? DEFAULT_WORKERS.slow, args.slowClients);
  // The senders are in this thread and see every leave notice: watching them is enough.
  return withServer(args, 'slow.log', env, profiled, { threads, senders: args.senders, watchLeaves: true }, async (server, clients) => {
    const totals = clients.totals;
    const healthyCount = args.slowClients;
    const here = await joinClients(server, clients, healthyCount, (i) => `h${i}`);
    // The slow client stays in this thread: it is paused and resumed from here.
    const slow = (await joinClients(server, clients, 1, () => 'slow', true))[0]!;
    const senders = here.slice(0, args.senders);
    // Chat messages the healthy clients received, wherever they are.
    const healthyChats = (): number => clients.chats - slow.chats;

    // RSS every 100 ms from here on.
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(server.rssKiB()), 100);
    const rssBefore = server.rssKiB();
    slow.socket.pause(); // stops reading from the kernel: its receive window closes, the server's queue grows

    clients.startRecording();
    const loadBefore = load();
    const a = snapshot(server, clients);
    const start = performance.now();
    let droppedAt: number | null = null;
    let stopAt = start + args.slowMaxSeconds * 1000;
    const AFTER_DROP_MS = args.quick ? 1000 : 2000; // keep sending after the drop: the others must be unaffected
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        if (droppedAt === null && totals.leftNames.includes('slow')) {
          droppedAt = now;
          stopAt = Math.min(stopAt, now + AFTER_DROP_MS);
        }
        const elapsed = Math.min(now, stopAt) - start;
        for (const s of senders) {
          const due = dueMessages(args.slowRate, elapsed, s.senderIndex, senders.length);
          while (s.sent < due) s.sendChat(text);
        }
        if (now >= stopAt) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    });
    const sent = senders.reduce((n, s) => n + s.sent, 0);
    // Every healthy client should receive every message once (a duplicate would count as reordered).
    const drained = await waitFor(() => healthyChats() >= healthyCount * sent || clients.failure !== null, 15_000, 5);
    const b = snapshot(server, clients);
    clients.stopRecording();
    checkThreads(clients);
    if (!drained) notes.push('slow: healthy clients did not receive everything within 15 s');
    const lost = healthyCount * sent - healthyChats();
    const latency = latencyFigures(await clients.latency());

    // Let the slow client read again: what did the server leave it? (a 1008 close frame if the
    // server still had the socket, else only the end of the stream)
    const slowBytesBefore = slow.bytes;
    slow.socket.resume();
    await Promise.race([slow.endedPromise, sleep(10_000)]);
    const rssAfter = await settledRss(server, args.quick ? 300 : 1000, 5, 200);
    clearInterval(sampler);

    const log = server.log();
    const dropLine = /dropped name="slow" reason="([^"]*)"/.exec(log);
    const disconnectLine = /disconnect name="slow" code=(\d+) reason="([^"]*)"(?: sent=(\d+))?/.exec(log);
    const w = window(a, b);
    return {
      name: 'slow',
      notes,
      figures: {
        healthyClients: healthyCount,
        senders: args.senders,
        loadThreads: threads,
        profiled,
        ratePerSender: args.slowRate,
        messageBytes: args.slowPadding,
        slowDropped: droppedAt !== null,
        secondsToDrop: droppedAt === null ? null : round(((droppedAt as number) - start) / 1000, 2),
        serverDropReason: dropLine?.[1] ?? null,
        serverSentCloseCode: disconnectLine?.[3] !== undefined ? Number(disconnectLine[3]) : null,
        slowSawCloseCode: slow.closeCode ?? null,
        slowSocketEnded: slow.ended,
        slowBytesAfterResume: slow.bytes - slowBytesBefore,
        sent,
        healthyLost: lost,
        reordered: clients.reordered,
        leaveNotices: clients.leaves,
        rssBeforeKiB: rssBefore,
        rssPeakKiB: Math.max(rssBefore, ...rss.filter(Number.isFinite)),
        rssAfterKiB: rssAfter,
        deliveriesPerSec: Math.round(w.deliveriesPerSec),
        serverUsPerDelivery: round(w.serverUsPerDelivery, 3),
        serverCpuPct: round(w.serverCpuPct),
        clientCpuPct: round(w.clientCpuPct),
        otherCpuPct: round(w.otherCpuPct),
        ...latency,
        loadavg: `${loadBefore} -> ${load()}`,
      },
    };
  });
}
