/**
 * The load client's connections, spread over several threads (node:worker_threads) so that
 * receiving is not serialised on one event loop. With every socket in one thread, the last socket
 * of a 500-way fan-out waits for the other 499 to be processed, and the latency measured is the load
 * client's, not the server's.
 *
 * Thread 0 is this (main) thread. It holds the senders (their schedules and closed-loop hooks stay
 * with the scenario code), every client that must be handled from here (the slow consumer, paused
 * from here), and its share of the receivers. Threads 1..N-1 are workers (load-worker.ts), each
 * opening and owning a share of the receivers in its own event loop. All threads count into one
 * SharedArrayBuffer (see load-counters.ts), so the figures are read from here at any time;
 * each worker sends its latency histogram once, at the end. With threads = 1 no worker is started.
 *
 * Timestamps are comparable across threads (nowUs() is the process-wide monotonic clock), and
 * process.cpuUsage() of this process counts the CPU of every thread (getrusage(RUSAGE_SELF)).
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Dialect } from './dialect';
import { Histogram, type HistogramData } from './histogram';
import { BenchClient, openClients, type SenderHooks } from './load-client';
import { CHATS, ENDED, ERRORS, JOINS, LEAVES, REORDERED } from './load-counters';
import { readCounter, setRecording, sharedCounters, Totals, WIRE_KIB } from './load-counters';

/** What a worker is started with (workerData). */
export interface WorkerInit {
  readonly shared: SharedArrayBuffer;
  /** This worker's thread number (1..N-1): its block of the shared counters. */
  readonly thread: number;
  /** Number of senders, to size each client's ordering check. */
  readonly senders: number;
  readonly dialect: Dialect;
  /** The clients offer permessage-deflate. */
  readonly compression: boolean;
}

type RequestBody =
  | { readonly type: 'open'; readonly port: number; readonly names: readonly string[]; readonly concurrency: number }
  | { readonly type: 'report'; readonly generation: number };

/** Main thread -> worker: a body and the id its reply will carry. */
export type Request = RequestBody & { readonly id: number };

/** Worker -> main thread, one per request. */
export type Reply =
  | { readonly id: number; readonly type: 'opened' }
  | { readonly id: number; readonly type: 'report'; readonly latency: HistogramData | null }
  | { readonly id: number; readonly type: 'error'; readonly message: string };

/** Handshakes in flight at once, over all threads (the server's accept backlog is finite). */
const CONCURRENCY = 200;

/** One worker thread and its outstanding requests. */
class LoadWorker {
  readonly worker: Worker;
  failure: Error | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(reply: Reply): void; reject(error: Error): void }>();
  private closing = false;

  constructor(readonly thread: number, init: WorkerInit) {
    this.worker = new Worker(join(__dirname, 'load-worker.js'), { workerData: init });
    this.worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (p === undefined) return;
      this.pending.delete(reply.id);
      if (reply.type === 'error') p.reject(new Error(`load thread ${thread}: ${reply.message}`));
      else p.resolve(reply);
    });
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`load thread ${thread} exited with code ${code}`));
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }

  /** Opens clients with these names in the worker; resolves when every handshake is done. */
  async open(port: number, names: readonly string[], concurrency: number): Promise<void> {
    await this.send({ type: 'open', port, names, concurrency }, 'opened');
  }

  /** The worker's latency samples of measurement `generation` (null if it recorded none). */
  async report(generation: number): Promise<HistogramData | null> {
    const reply = await this.send({ type: 'report', generation }, 'report');
    return reply.type === 'report' ? reply.latency : null;
  }

  private send(body: RequestBody, expect: Reply['type']): Promise<Reply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (reply) => {
          if (reply.type === expect) resolve(reply);
          else reject(new Error(`load thread ${this.thread}: expected ${expect}, got ${reply.type}`));
        },
        reject,
      });
      this.worker.postMessage({ ...body, id } satisfies Request);
    });
  }

  async terminate(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}

export interface LoadOptions {
  /** Threads holding clients, this one included (1: no worker). */
  readonly threads: number;
  /** Clients 0..senders-1 are the senders (always in this thread). */
  readonly senders: number;
  /** What the server's messages look like. */
  readonly dialect: Dialect;
  /** The clients offer permessage-deflate (RFC 7692) and inflate what they get. */
  readonly compression?: boolean;
  readonly hooks?: SenderHooks;
  /** Note who left (Totals.leftNames): done by this thread's clients only (the senders see every leave). */
  readonly watchLeaves?: boolean;
}

export interface OpenRequest {
  readonly port: number;
  readonly count: number;
  readonly name: (i: number) => string;
  /** Open them all in this thread (a client the scenario pauses and resumes from here). */
  readonly here?: boolean;
}

export class LoadClients {
  /** This thread's counters and latency. */
  readonly totals: Totals;
  /** This thread's clients, in the order they were opened: the senders first. */
  private readonly local: BenchClient[] = [];
  readonly threads: number;
  private readonly counters: Int32Array;
  private readonly workers: LoadWorker[] = [];
  /** Clients given to each thread so far (to balance the next ones). */
  private readonly perThread: number[];
  private count = 0;
  private generation = 0;

  constructor(private readonly options: LoadOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new Error(`load threads: ${options.threads}`);
    this.threads = options.threads;
    const shared = sharedCounters(options.threads);
    this.counters = new Int32Array(shared);
    this.totals = new Totals(shared, 0);
    this.totals.watchLeaves = options.watchLeaves ?? false;
    this.perThread = new Array<number>(options.threads).fill(0);
    for (let t = 1; t < options.threads; t++) {
      const init = { shared, thread: t, senders: options.senders, dialect: options.dialect };
      this.workers.push(new LoadWorker(t, { ...init, compression: options.compression === true }));
    }
  }

  /**
   * Opens `count` more clients, named name(i) for their overall index i, and resolves with those
   * opened in this thread when every handshake is done (the join notices follow: see `joins`).
   * Senders, and every client when `here` is set, go to this thread; the others to whichever thread
   * has the fewest clients.
   */
  async open(request: OpenRequest): Promise<BenchClient[]> {
    const names = this.share(request);
    const concurrency = Math.max(1, Math.ceil(CONCURRENCY / this.threads));
    const first = this.local.length;
    await Promise.all([
      this.openHere(request, names[0]!, concurrency),
      ...this.workers
        .filter((w) => names[w.thread]!.length > 0)
        .map((w) => w.open(request.port, names[w.thread]!, concurrency)),
    ]);
    this.count += request.count;
    return this.local.slice(first);
  }

  /** The names of the next `count` clients, by thread. */
  private share(request: OpenRequest): string[][] {
    const names: string[][] = Array.from({ length: this.threads }, () => []);
    for (let i = this.count; i < this.count + request.count; i++) {
      let t = 0;
      if (request.here !== true && i >= this.options.senders) {
        for (let k = 1; k < this.threads; k++) if (this.perThread[k]! < this.perThread[t]!) t = k;
      }
      this.perThread[t]!++;
      names[t]!.push(request.name(i));
    }
    return names;
  }

  private openHere(request: OpenRequest, names: readonly string[], concurrency: number): Promise<void> {
    const base = this.count;
    const { senders, hooks, dialect, compression } = this.options;
    return openClients(
      names.length,
      (k) =>
        new BenchClient({
          port: request.port,
          name: names[k]!,
          totals: this.totals,
          senders,
          dialect,
          compression: compression === true,
          ...(base + k < senders && request.here !== true ? { senderIndex: base + k } : {}),
          ...(hooks ? { hooks } : {}),
        }),
      this.local,
      concurrency,
    );
  }

  /** Clients opened so far, over all threads. */
  get opened(): number {
    return this.count;
  }

  private sum(slot: number): number {
    let total = 0;
    for (let t = 0; t < this.threads; t++) total += readCounter(this.counters, t, slot);
    return total;
  }

  /** Chat messages received, over all threads. */
  get chats(): number {
    return this.sum(CHATS);
  }
  /** KiB received on the wire, over all threads. */
  get wireKiB(): number {
    return this.sum(WIRE_KIB);
  }
  get joins(): number {
    return this.sum(JOINS);
  }
  get leaves(): number {
    return this.sum(LEAVES);
  }
  get errors(): number {
    return this.sum(ERRORS);
  }
  get reordered(): number {
    return this.sum(REORDERED);
  }
  /** Connections whose TCP connection is gone. */
  get ended(): number {
    return this.sum(ENDED);
  }
  /** The first worker that failed (threw, or exited on its own), if any. */
  get failure(): Error | null {
    for (const w of this.workers) if (w.failure !== null) return w.failure;
    return null;
  }

  /** Starts recording latency in every thread (a new measurement: earlier samples are dropped). */
  startRecording(): void {
    setRecording(this.counters, ++this.generation);
  }

  stopRecording(): void {
    setRecording(this.counters, 0);
  }

  /** The latency samples of the last measurement, merged over all threads. */
  async latency(): Promise<Histogram> {
    const merged = new Histogram();
    if (this.generation === 0) return merged;
    if (this.totals.generation === this.generation) merged.add(this.totals.latency.data());
    const reports = await Promise.all(this.workers.map((w) => w.report(this.generation)));
    for (const r of reports) if (r !== null) merged.add(r);
    return merged;
  }

  /** Closes this thread's sockets and terminates every worker (their sockets close with them). */
  async close(): Promise<void> {
    for (const c of this.local) c.destroy();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
