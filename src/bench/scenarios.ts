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
import { BenchClient, openClients, Totals, type SenderHooks } from './load-client';
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
}

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

function latencyFigures(totals: Totals): Figures {
  const h = totals.latency;
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

/** Starts a server, runs `body`, and always stops the server and closes every client. */
async function withServer<T>(
  args: BenchArgs,
  logName: string,
  env: Record<string, string>,
  profile: boolean,
  body: (server: ServerProcess, clients: BenchClient[]) => Promise<T>,
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
  const clients: BenchClient[] = [];
  try {
    await server.ready();
    return await body(server, clients);
  } finally {
    // Server first: clients closing one by one would make it send N² leave notices.
    await server.stop();
    for (const c of clients) c.destroy();
  }
}

/**
 * Opens `n` chat clients (the first `senders` of them are senders 0..senders-1) and waits for every
 * join notice: client k sees the joins of everyone registered after it, itself included, so the
 * total is n(n+1)/2 whatever the order.
 */
async function joinClients(
  server: ServerProcess,
  clients: BenchClient[],
  n: number,
  senders: number,
  totals: Totals,
  hooks: SenderHooks | undefined,
  name: (i: number) => string = (i) => `c${i}`,
): Promise<void> {
  const base = clients.length;
  await openClients(
    n,
    (i) =>
      new BenchClient({
        port: server.port,
        name: name(base + i),
        totals,
        senders,
        ...(base + i < senders ? { senderIndex: base + i } : {}),
        ...(hooks ? { hooks } : {}),
      }),
    clients,
  );
  const total = base + n;
  const expected = (total * (total + 1)) / 2;
  const ok = await waitFor(() => totals.joins >= expected || totals.leaves > 0, 120_000, 10);
  if (!ok || totals.leaves > 0 || totals.joins !== expected) {
    throw new Error(`join notices: ${totals.joins} of ${expected}, leaves ${totals.leaves} (a client was dropped while joining?)`);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Fixed-rate fan-out

export async function fixedRate(args: BenchArgs): Promise<ScenarioResult> {
  const notes: string[] = [];
  const profiled = args.profileDir !== undefined && args.profileScenario === 'fixed';
  return withServer(args, 'fixed.log', {}, profiled, async (server, clients) => {
    const totals = new Totals();
    await joinClients(server, clients, args.clients, args.senders, totals, undefined);
    const senders = clients.slice(0, args.senders);
    const text = padding(args.padding);
    const perSender = Math.max(1, Math.round(args.rate * args.seconds));

    totals.latency.reset();
    totals.recording = true;
    const loadBefore = load();
    const a = snapshot(server, totals);
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
    const drained = await waitFor(() => totals.chats >= expected, 15_000, 2);
    const b = snapshot(server, totals);
    totals.recording = false;
    if (!drained) notes.push(`fixed: not every delivery arrived within 15 s of the last send`);
    return {
      name: 'fixed',
      notes,
      figures: {
        clients: args.clients,
        senders: args.senders,
        ratePerSender: args.rate,
        profiled,
        offeredDeliveriesPerSec: args.rate * args.senders * args.clients,
        sent,
        expected,
        lost: expected - totals.chats,
        reordered: totals.reordered,
        ...windowFigures(window(a, b)),
        ...latencyFigures(totals),
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
  return withServer(args, 'saturate.log', {}, profiled, async (server, clients) => {
    const totals = new Totals();
    const text = padding(args.padding);
    let running = true;
    // Closed loop: a sender sends its next message when its own previous one comes back.
    const hooks: SenderHooks = {
      onOwnMessage(client) {
        if (running) client.sendChat(text);
      },
    };
    await joinClients(server, clients, args.clients, args.senders, totals, hooks);
    const senders = clients.slice(0, args.senders);
    for (const s of senders) for (let i = 0; i < args.window; i++) s.sendChat(text);

    await sleep(args.warmup * 1000);
    totals.latency.reset();
    totals.recording = true;
    const loadBefore = load();
    const a = snapshot(server, totals);
    await sleep(args.seconds * 1000);
    const b = snapshot(server, totals);
    totals.recording = false;
    running = false;

    const sent = senders.reduce((n, s) => n + s.sent, 0);
    const expected = sent * args.clients;
    const drained = await waitFor(() => totals.chats >= expected, 15_000, 2);
    if (!drained) notes.push('saturate: not every delivery arrived within 15 s after the senders stopped');
    return {
      name: 'saturate',
      notes,
      figures: {
        clients: args.clients,
        senders: args.senders,
        window: args.window,
        profiled,
        ...windowFigures(window(a, b)),
        ...latencyFigures(totals),
        sent,
        lost: expected - totals.chats,
        reordered: totals.reordered,
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
  // Every join is announced to everyone: up to `batch` notices queue per client at once.
  const env = { SEND_QUEUE: String(Math.max(256, 2 * args.batch)) };
  // The inspector lets us force a full GC over there (HeapProfiler.collectGarbage): without it the
  // heap keeps the slack of the join storm for an unpredictable time.
  const profiled = args.profileDir !== undefined && args.profileScenario === 'idle';
  return withServer(args, 'idle.log', env, profiled, async (server, clients) => {
    const limit = procOpenFilesLimit(server.pid);
    const n = args.idle;
    if (limit < n + 100) notes.push(`idle: the server's open-files limit is ${limit}, too low for ${n} connections`);
    await sleep(500);
    await server.collectGarbage();
    const rssBefore = await settledRss(server, 500, 3, 300);

    const totals = new Totals();
    const loadBefore = load();
    const a = snapshot(server, totals);
    const joinStart = performance.now();
    for (let k = 0; k < n; k += args.batch) {
      await joinClients(server, clients, Math.min(args.batch, n - k), 0, totals, undefined);
    }
    const joinSeconds = (performance.now() - joinStart) / 1000;
    const b = snapshot(server, totals);
    const joinWindow = window(a, b);
    const registered = await server.clientCount();
    if (registered !== n) notes.push(`idle: GET /clients says ${registered}, expected ${n}`);

    const rssSettled = await settledRss(server, 1000, Math.max(2, Math.round(args.settle / 0.5)), 500);
    await server.collectGarbage();
    const rssAfterGc = await settledRss(server, 500, 3, 300);
    if (totals.leaves > 0 || clients.some((c) => c.ended)) notes.push('idle: some clients were closed while idle');
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
        joinNotices: totals.joins,
        joinSeconds: round(joinSeconds, 2),
        joinDeliveriesPerSec: Math.round(totals.joins / joinSeconds),
        joinServerUsPerDelivery: round((b.serverUs - a.serverUs) / Math.max(1, totals.joins), 3),
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
  return withServer(args, 'slow.log', env, profiled, async (server, clients) => {
    const totals = new Totals();
    totals.watchLeaves = true;
    const healthyCount = args.slowClients;
    await joinClients(server, clients, healthyCount, args.senders, totals, undefined, (i) => `h${i}`);
    await joinClients(server, clients, 1, args.senders, totals, undefined, () => 'slow');
    const healthy = clients.slice(0, healthyCount);
    const slow = clients[healthyCount]!;
    const senders = clients.slice(0, args.senders);

    // RSS every 100 ms from here on.
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(server.rssKiB()), 100);
    const rssBefore = server.rssKiB();
    slow.socket.pause(); // stops reading from the kernel: its receive window closes, the server's queue grows

    totals.latency.reset();
    totals.recording = true;
    const loadBefore = load();
    const a = snapshot(server, totals);
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
    const drained = await waitFor(() => healthy.every((c) => c.chats >= sent), 15_000, 5);
    const b = snapshot(server, totals);
    totals.recording = false;
    if (!drained) notes.push('slow: healthy clients did not receive everything within 15 s');
    const lost = healthy.reduce((n, c) => n + (sent - c.chats), 0);
    const latency = latencyFigures(totals);

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
        reordered: totals.reordered,
        leaveNotices: totals.leaves,
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
