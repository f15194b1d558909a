/**
 * A cluster node assembled: two Redis connections (commands, and a subscriber for what Redis publishes),
 * the store, the node's hub, its lease. The HTTP wiring (src/http/app.ts) uses it in place of the Hub
 * when REDIS_URL is set.
 *
 * Redis going away and coming back, as the node sees it:
 *   - the command link goes down: the hub refuses requests (error with the cid) and hellos (1013),
 *     /healthz says 503; connected clients stay connected;
 *   - it comes back: scripts loaded, the lobby and the boot mark checked (a new mark: Redis lost its
 *     data), the lease renewed, the node's sessions checked (and written again if Redis lost them), every
 *     stream repaired from its last delivered offset; then requests are served again;
 *   - the subscriber link comes back: every stream is repaired (pub/sub kept nothing while it was down).
 */
import type { EventLog } from '../log';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Directory } from '../chat/models/hub';
import type { Config } from '../config';
import type { ChatStats } from '../chat/models/stats';
import { Backoff, RedisClient, RedisSubscriber, maskPassword, type RedisStats } from '../redis';
import { ClusterHub } from './hub';
import { Leases } from './leases';
import { ChatStore, controlChannel, PUBLISHED } from './store';

export interface ClusterNode {
  readonly id: string;
  readonly hub: ClusterHub;
  readonly directory: Directory;
  /** The node's two Redis links (`commands`, `subscriber`): whether each is up now, and its counters. */
  readonly links: readonly RedisLink[];
  /** 503 while the node cannot serve (Redis unreachable, or being repaired). */
  health(): { readonly ok: boolean; readonly body: Readonly<Record<string, string>> };
  /** Stops the lease and closes the Redis connections (after the hub has quit). */
  close(): Promise<void>;
}

export interface RedisLink {
  readonly name: string;
  up(): boolean;
  readonly stats: RedisStats;
}

/** NODE_ID, or the host name, the pid and a few random characters. */
export function nodeIdOf(config: Config): string {
  if (config.nodeId !== '') return config.nodeId;
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '').slice(0, 40) || 'node';
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function createClusterNode(config: Config, log: EventLog, stats?: ChatStats): ClusterNode {
  const id = nodeIdOf(config);
  // Replies must come well within a lease, or a slow Redis would cost a node its sessions.
  const timeoutMs = Math.max(1000, Math.min(5000, Math.round(config.nodeTtlMs / 3)));
  const link = {
    url: config.redisUrl,
    clientName: `wschat:${id}`,
    commandTimeoutMs: timeoutMs,
    connectTimeoutMs: timeoutMs,
    // Back within a quarter lease of Redis's return: the other nodes wait that long before reaping (leases.ts).
    reconnect: { maxDelayMs: Math.max(100, Math.min(5000, Math.round(config.nodeTtlMs / 4))) },
  };
  const redis = new RedisClient({ ...link, maxPending: 100_000 });
  const subscriber = new RedisSubscriber(link);
  const store = new ChatStore(redis, {
    node: id,
    historySize: config.historySize,
    historyOnJoin: config.historyOnJoin,
    maxRooms: config.maxRooms,
    maxRoomsPerClient: config.maxRoomsPerClient,
  });
  const hub = new ClusterHub({
    store,
    log,
    sendQueue: config.sendQueue,
    historySize: config.historySize,
    maxRooms: config.maxRooms,
    maxRoomsPerClient: config.maxRoomsPerClient,
    resumeGraceMs: config.resumeGraceMs,
    ...(stats !== undefined ? { stats } : {}),
  });
  let closed = false;
  let boot: string | undefined;
  let recovering = 0;
  // A recovery can fail on a link that stays up (Redis answers LOADING while it reads its data back):
  // it is tried again, with growing delays, until it succeeds or the link drops (the next `ready` retries).
  const retries = new Backoff({ minDelayMs: 100, maxDelayMs: 2000 });
  let retry: NodeJS.Timeout | undefined;

  const recover = async (): Promise<void> => {
    const attempt = ++recovering;
    clearTimeout(retry);
    try {
      await store.loadScripts();
      const mark = await store.init();
      const lost = boot !== undefined && mark !== boot;
      boot = mark;
      const reason = "restoring this node's sessions; streams start new epochs";
      if (lost) log('redis_lost_data', { node: id, reason }, 'warn');
      await leases.beat();
      if (attempt !== recovering || closed) return;
      await hub.recover(lost);
      retries.attempt = 0;
      leases.linkUp();
      log('redis_ready', { node: id });
    } catch (error) {
      if (closed || attempt !== recovering) return;
      const delay = Math.round(retries.next());
      const reason = error instanceof Error ? error.message : String(error);
      log('redis_recovery_failed', { node: id, reason, retryInMs: delay }, 'warn');
      if (redis.state === 'ready') retry = setTimeout(() => void recover(), delay);
    }
  };

  const leases = new Leases({
    store,
    ttlMs: config.nodeTtlMs,
    log,
    onLapsed: () => {
      leases.linkDown();
      void hub.inLoop(() => hub.down()).then(recover);
    },
  });

  redis.on('ready', () => void recover());
  redis.on('down', (error) => {
    leases.linkDown();
    log('redis_down', { node: id, reason: error.message }, 'warn');
    void hub.inLoop(() => hub.down()).catch(() => undefined);
  });
  redis.on('connectError', (error) => log('redis_unreachable', { node: id, reason: error.message }, 'warn'));
  subscriber.on('message', (channel, message) => {
    const text = typeof message === 'string' ? message : message.toString('utf8');
    if (channel === PUBLISHED) hub.publish(text);
    else void hub.inLoop(() => hub.control(text)).catch(() => undefined);
  });
  subscriber.on('resubscribed', () => void hub.inLoop(() => hub.repairAll()).catch(() => undefined));
  subscriber.on('down', (error) => log('redis_subscriber_down', { node: id, reason: error.message }, 'warn'));
  subscriber.subscribe(PUBLISHED, controlChannel(id)).catch(() => undefined);
  log('cluster_node', { node: id, pid: process.pid, redis: maskPassword(config.redisUrl) });
  void redis.connect().catch(() => undefined);
  void subscriber.connect().catch(() => undefined);
  leases.start();

  return {
    id,
    hub,
    links: [
      { name: 'commands', up: () => redis.state === 'ready', stats: redis.stats },
      { name: 'subscriber', up: () => subscriber.state === 'ready', stats: subscriber.stats },
    ],
    directory: {
      clients: (room) => store.roster(room),
      rooms: async () => (await store.rooms()).map((r) => ({ ...r })),
      history: async (room, page) => {
        const p = await store.page(room, { room: true, ...page, clamp: false });
        return p === undefined ? undefined : { room, epoch: p.epoch, offset: p.top, messages: p.entries };
      },
    },
    health: () => {
      const body: Record<string, string> = hub.up ? { node: id } : { status: 'redis unavailable', node: id };
      return { ok: hub.up, body };
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      leases.stop();
      await Promise.all([redis.close(), subscriber.close()]);
    },
  };
}
