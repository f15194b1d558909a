/**
 * Leases: how the nodes of a cluster learn that one of them died. Each node renews its lease in Redis
 * (`lease:<node>`, PX NODE_TTL_MS / 2) every NODE_TTL_MS / 4, and looks for nodes whose lease is gone.
 * A dead node's sessions are ended by exactly one survivor: it takes the node's reap lock (SET NX, with
 * an expiry in case it dies too), and ends each session with the END script, which does nothing for a
 * session the dead node no longer holds. So each user's leave notices go out once, within NODE_TTL_MS
 * of the death (lease gone after at most TTL/2, noticed within TTL/4 more).
 *
 * A node that was cut off past its lease and comes back finds its lease lapsed: it checks its sessions
 * (onLapsed), forgets those that were reaped, and carries on registered again.
 *
 * A node reaps only once its own link has been up for NODE_TTL_MS: when Redis itself was away
 * (restarted, unreachable), every lease may have lapsed meanwhile, and a live node needs up to its
 * reconnect delay (at most TTL/4, node.ts), its recovery and a heartbeat to renew its own. Without the
 * wait, the first node back would reap the others.
 */
import type { EventLog } from '../log';
import { encodeStoredHead, leaveNotice } from '../chat/models/message';
import { RedisClientError } from '../redis';
import type { ChatStore } from './store';

export interface LeaseOptions {
  readonly store: ChatStore;
  readonly ttlMs: number;
  readonly log: EventLog;
  /** The lease had lapsed: other nodes may have ended this node's sessions. */
  readonly onLapsed: () => void;
}

export class Leases {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  private busy = false;
  /** Since when this node's Redis link has been up (Infinity while it is down). */
  private upSince = Infinity;
  /** When the last renewal that Redis confirmed was sent. */
  private renewedAt = -Infinity;

  constructor(private readonly o: LeaseOptions) {}

  get node(): string {
    return this.o.store.node;
  }

  /** Renews now and then every TTL/4 (with jitter, so nodes do not all scan at once). */
  start(): void {
    const tick = (): void => {
      this.timer = setTimeout(tick, (this.o.ttlMs / 4) * (0.8 + Math.random() * 0.2));
      this.timer.unref();
      void this.round();
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** The node's link to Redis is up (and its state repaired), or down. */
  linkUp(): void {
    this.upSince = performance.now();
  }

  linkDown(): void {
    this.upSince = Infinity;
  }

  /**
   * Renews the lease; says whether it may have lapsed since this node registered: Redis says it had, or
   * no renewal was confirmed for a whole lease (a renewal whose reply timed out may still have run, and
   * found the lease gone: that answer was lost, so the node goes by its own clock).
   */
  async beat(): Promise<boolean> {
    const sent = performance.now();
    const kept = await this.o.store.heartbeat(Math.round(this.o.ttlMs / 2));
    const lapsed = this.registered && (!kept || sent - this.renewedAt > this.o.ttlMs / 2);
    this.renewedAt = sent;
    this.registered = true;
    if (lapsed) this.o.log('lease_lapsed', { node: this.node, reason: "checking this node's sessions" }, 'warn');
    return lapsed;
  }

  private async round(): Promise<void> {
    if (this.busy) return; // Redis is slow: one round at a time
    this.busy = true;
    try {
      if (await this.beat()) this.o.onLapsed();
      await this.reap();
    } catch (error) {
      // Redis is unreachable: the next round tries again (and the hub refuses requests meanwhile).
      if (!(error instanceof RedisClientError)) this.o.log('lease_round_failed', { reason: String(error) }, 'error');
    } finally {
      this.busy = false;
    }
  }

  /** Ends the sessions of every node whose lease is gone, if this node gets to reap it. */
  private async reap(): Promise<void> {
    if (performance.now() - this.upSince < this.o.ttlMs) return; // see the top of this file
    const store = this.o.store;
    for (const node of await store.nodes()) {
      if (node === this.node || (await store.alive(node))) continue;
      if (!(await store.lockReap(node, this.o.ttlMs))) continue;
      let ended = 0;
      for (const key of await store.sessionsOf(node)) if (await this.endSession(node, key)) ended++;
      if ((await store.sessionsOf(node)).length === 0) await store.forgetNode(node);
      this.o.log('reaped', { node, sessions: ended });
    }
  }

  /** Ends one session of a dead node, with a leave notice in each of its rooms; true if it did. */
  private async endSession(node: string, key: string): Promise<boolean> {
    const store = this.o.store;
    const session = await store.session(key);
    if (session === undefined) return false;
    let rooms = session.rooms;
    for (let attempt = 0; attempt < 3; attempt++) {
      const heads = rooms.map((room) => [room, encodeStoredHead(leaveNotice(session.name, room), room)] as const);
      const verdict = await store.end(key, node, session.token, heads);
      if (!Array.isArray(verdict)) return verdict === 'ended';
      rooms = verdict;
    }
    return false;
  }
}
