/**
 * The cluster soak (`npm run soak -- --nodes 3`): N node processes (node dist/server.js with REDIS_URL)
 * sharing a redis-server with persistence on (appendonly), v2 clients that keep their positions and
 * resend what was not acked (test/helpers/resuming-client.ts) spread over the nodes, in rooms, chatting
 * and sending private messages. During the run:
 *
 *   at 1/3   one node is killed (SIGKILL); its clients resume on the others; it is started again
 *   at 2/3   Redis is restarted (SIGTERM, then started on the same data): requests meanwhile are refused
 *            (the clients resend them later), logins get 1013 (they try again)
 *
 * Fails (exit 1) on any anomaly of a client (a gap, a duplicate, a resume that was not recovered), on a
 * message stored twice or not at all, or when a node dies on its own or does not exit 0 at the end.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Rng } from '../helpers/rng';
import { startRedis, type RedisServer } from '../helpers/redis-server';
import { ResumingClient } from '../helpers/resuming-client';
import { describeExit, type ServerProcess } from './server-process';
import { ownServer, startTarget } from './targets';
import { sleep, waitFor } from './time';

export interface ClusterSoakOptions {
  readonly seconds: number;
  readonly clients: number;
  /** Messages per second per client. */
  readonly rate: number;
  readonly nodes: number;
  readonly rng: Rng;
  readonly seed: number;
}

const ROOMS = ['r0', 'r1', 'r2'];
/** What a node says to a request while Redis is away: the client keeps the message and resends it. */
const UNAVAILABLE = 'error the chat is unavailable: try again later';
/** Unacked messages are sent again after this long. */
const RESEND_MS = 1_000;

interface Node {
  readonly id: string;
  server: ServerProcess;
}

class ClusterSoak {
  readonly t0 = performance.now();
  readonly logDir = join(tmpdir(), `wschat-soak-cluster-${process.pid}`);
  readonly nodes: Node[] = [];
  readonly clients: ResumingClient[] = [];
  readonly rooms = new Map<ResumingClient, string[]>();
  /** When each unacked message was last sent. */
  readonly sentAt = new Map<string, number>();
  readonly failures: string[] = [];
  /** Clients being reconnected now. */
  private readonly reconnecting = new Set<ResumingClient>();
  private generation = 0;
  refusals = 0;
  sent = 0;

  constructor(
    readonly o: ClusterSoakOptions,
    readonly redis: RedisServer,
  ) {}

  say(line: string): void {
    const t = ((performance.now() - this.t0) / 1000).toFixed(0).padStart(5);
    process.stdout.write(`[soak ${t}s] ${line}\n`);
  }

  async startNode(slot: number): Promise<Node> {
    const id = `n${slot}.${this.generation++}`;
    const env = {
      REDIS_URL: this.redis.url(), NODE_ID: id, NODE_TTL_MS: '5000', RESUME_GRACE_MS: '600000', HISTORY_SIZE: '100000',
      RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000',
    };
    const logFile = join(this.logDir, `${id}.log`);
    const server = await startTarget(ownServer(), { env, nodeArgs: [], openFiles: 4096, logFile });
    if (!(await waitFor(() => /redis_ready node=/.test(server.log()), 20_000, 25))) {
      throw new Error(`node ${id} did not reach Redis: ${server.log().slice(-400)}`);
    }
    const node = { id, server };
    this.nodes[slot] = node;
    return node;
  }

  url(): string {
    const live = this.nodes.filter((n) => n.server.exit === undefined);
    return `ws://127.0.0.1:${this.o.rng.pick(live).server.port}/ws`;
  }

  /** Brings a dropped client back, on any live node, until it is welcomed. */
  async reconnect(client: ResumingClient): Promise<void> {
    if (this.reconnecting.has(client)) return;
    this.reconnecting.add(client);
    try {
      for (let attempt = 0; !client.connected; attempt++) {
        if (attempt > 0) await sleep(Math.min(2_000, 100 * 2 ** attempt) * (0.5 + this.o.rng.next() / 2));
        client.url = this.url();
        await client.cut().catch(() => undefined);
      }
    } finally {
      this.reconnecting.delete(client);
    }
  }

  /** One round of traffic, and the upkeep: reconnects, resends. */
  tick(stepMs: number, sending: boolean): void {
    const now = performance.now();
    for (const c of this.clients) {
      if (!c.connected) {
        void this.reconnect(c);
        continue;
      }
      for (const [cid, sent] of c.pending) {
        if (now - (this.sentAt.get(cid) ?? 0) < RESEND_MS) continue;
        this.sentAt.set(cid, now);
        c.send({ ...sent.body, cid });
      }
      if (!sending || !this.o.rng.chance((this.o.rate * stepMs) / 1000)) continue;
      const cid = `${c.name}-${this.sent++}`;
      this.sentAt.set(cid, now);
      if (this.o.rng.chance(0.2)) {
        c.send({ type: 'private', to: this.o.rng.pick(this.clients).name, message: `p ${cid}`, cid });
      } else {
        c.send({ type: 'chat', room: this.o.rng.pick(this.rooms.get(c)!), message: `m ${cid}`, cid });
      }
    }
  }

  /** Anomalies that are failures (a refusal while Redis was away is not: the message was resent). */
  anomalies(): string[] {
    const out: string[] = [];
    for (const c of this.clients) {
      for (const a of c.anomalies) {
        if (a === `${c.name}: ${UNAVAILABLE}`) this.refusals++;
        else out.push(a);
      }
      c.anomalies.length = 0;
    }
    return out;
  }

  async roomHistory(room: string): Promise<{ message: string; offset: number }[]> {
    const out: { message: string; offset: number }[] = [];
    const port = this.nodes.find((n) => n.server.exit === undefined)!.server.port;
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}/rooms/${room}/history?after=${out.length}&limit=100`);
      const page = ((await res.json()) as { messages: { message: string; offset: number }[] }).messages;
      if (page.length === 0) return out;
      out.push(...page);
    }
  }
}

export async function runClusterSoak(o: ClusterSoakOptions): Promise<number> {
  const redis = await startRedis({ config: ['appendonly yes', 'appendfsync everysec'] });
  const soak = new ClusterSoak(o, redis);
  const stopAll = async (): Promise<void> => {
    for (const n of soak.nodes) await n.server.stop();
    await redis.dispose();
  };
  try {
    for (let slot = 0; slot < o.nodes; slot++) await soak.startNode(slot);
    soak.say(`${o.nodes} nodes, redis on ${redis.port} (appendonly); ${o.clients} clients, ${o.rate} msg/s each, ` +
      `${o.seconds} s, seed ${o.seed}`);
    for (let i = 0; i < o.clients; i++) {
      const c = new ResumingClient(`ws://127.0.0.1:${soak.nodes[i % o.nodes]!.server.port}/ws`, `s${i}`);
      soak.clients.push(c);
      await c.connect();
      const rooms = ROOMS.filter(() => o.rng.chance(0.5));
      for (const room of rooms) await c.join(room);
      soak.rooms.set(c, ['lobby', ...rooms]);
    }

    const STEP = 50;
    let killed = false;
    let replaced: Promise<void> = Promise.resolve();
    let restarted = false;
    const start = performance.now();
    for (let t = 0; t < o.seconds * 1000; t = performance.now() - start) {
      soak.tick(STEP, true);
      const failures = soak.anomalies();
      if (failures.length > 0) soak.failures.push(...failures);
      if (!killed && t > (o.seconds * 1000) / 3) {
        killed = true;
        const slot = o.rng.int(o.nodes);
        const victim = soak.nodes[slot]!;
        soak.say(`kill -9 node ${victim.id} (pid ${victim.server.pid})`);
        process.kill(victim.server.pid, 'SIGKILL');
        await victim.server.exited;
        replaced = sleep(2_000).then(async () => {
          const node = await soak.startNode(slot);
          soak.say(`node ${node.id} started in its place`);
        });
      }
      if (!restarted && t > (o.seconds * 2000) / 3) {
        restarted = true;
        soak.say('redis: SIGTERM, then started again on its data');
        await redis.stop();
        await sleep(1_000);
        soak.tick(STEP, true);
        await redis.start();
        soak.say('redis is back');
      }
      await sleep(STEP);
    }

    await replaced;
    soak.say('time is up: every client resends until acked, then reads to the end of its streams');
    const settled = await waitFor(() => {
      soak.tick(STEP, false);
      return soak.clients.every((c) => c.connected && c.pending.size === 0);
    }, 60_000, STEP);
    if (!settled) soak.failures.push('some messages were never acked within 60 s');
    const tops = new Map<string, number>();
    const histories = new Map<string, { message: string; offset: number }[]>();
    for (const room of ['lobby', ...ROOMS]) {
      const h = await soak.roomHistory(room);
      histories.set(room, h);
      tops.set(room, h.length === 0 ? 0 : h[h.length - 1]!.offset);
    }
    for (const c of soak.clients) c.send({ type: 'private', to: c.name, message: 'fence', cid: `fence-${c.name}` });
    const read = await waitFor(() => {
      soak.tick(STEP, false);
      return soak.clients.every(
        (c) =>
          soak.rooms.get(c)!.every((room) => (c.positions.get(room)?.offset ?? 0) >= tops.get(room)!) &&
          [...(c.messages.get(`@${c.name}`)?.values() ?? [])].some((m) => m.message === 'fence'),
      );
    }, 60_000, STEP);
    if (!read) soak.failures.push('some clients did not reach the end of their streams within 60 s');
    soak.failures.push(...soak.anomalies());

    // Every stream complete for each client; every acked message stored exactly once.
    for (const c of soak.clients) {
      for (const room of soak.rooms.get(c)!) {
        const from = c.starts.get(room) ?? 0;
        const got = c.offsets.get(room) ?? [];
        const want = tops.get(room)! - from;
        if (got.length !== want) soak.failures.push(`${c.name}: ${room}: ${got.length} messages of ${want}`);
      }
    }
    const inboxes = soak.clients.flatMap((c) => [...(c.messages.get(`@${c.name}`)?.values() ?? [])]);
    const stored = new Map<string, number>();
    for (const m of [...[...histories.values()].flat(), ...inboxes]) {
      const text = String(m.message);
      stored.set(text, (stored.get(text) ?? 0) + 1);
    }
    let checked = 0;
    for (const c of soak.clients) {
      for (const [cid] of c.acked) {
        if (cid.startsWith('fence')) continue;
        checked++;
        const chats = stored.get(`m ${cid}`) ?? 0;
        const privates = stored.get(`p ${cid}`) ?? 0;
        const self = inboxes.some((m) => m.message === `p ${cid}` && m.user === m.to);
        const copies = chats + (self ? privates : privates / 2);
        if (copies !== 1) soak.failures.push(`${cid}: stored ${copies} times`);
      }
    }
    const reconnects = soak.clients.reduce((n, c) => n + c.reconnects, 0);
    await Promise.all(soak.clients.map((c) => c.close()));
    for (const n of soak.nodes) {
      if (n.server.exit !== undefined) soak.failures.push(`node ${n.id} died: ${describeExit(n.server.exit)}`);
      const exit = await n.server.stop();
      if (exit.code !== 0) soak.failures.push(`node ${n.id} exited with ${describeExit(exit)} on SIGTERM`);
    }
    await redis.dispose();

    const lines = [
      '',
      `cluster soak: ${o.nodes} nodes, ${o.clients} clients, ${o.seconds} s, seed ${o.seed}`,
      `  messages sent ${soak.sent}, acked and checked ${checked}, reconnects ${reconnects}, ` +
        `refusals while Redis was away ${soak.refusals} (resent)`,
      `  streams: ${[...tops].map(([r, t]) => `${r} ${t}`).join(', ')}`,
      soak.failures.length === 0
        ? 'PASS'
        : `FAIL (${soak.failures.length}):\n  ${soak.failures.slice(0, 20).join('\n  ')}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (soak.failures.length === 0) rmSync(soak.logDir, { recursive: true, force: true });
    else process.stdout.write(`node logs: ${soak.logDir}\n`);
    return soak.failures.length === 0 ? 0 : 1;
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }
}
