/**
 * Plain counters of one client, for whoever exports metrics later (no metrics library here): read
 * them whenever you like, they only ever grow. Link state is `client.state` plus the ready/down events.
 */

/** Upper bounds of the latency buckets, in milliseconds (Prometheus-style: cumulative when exported). */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
];

/** Command latency, from send() to the reply: counts per bucket (last one: above all bounds), sum, count. */
export class LatencyHistogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  count = 0;
  sumMs = 0;

  record(ms: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sumMs += ms;
  }
}

export class RedisStats {
  /** TCP connections attempted (first connect and reconnects). */
  connectAttempts = 0;
  /** Handshakes completed: the link came up. */
  connects = 0;
  /** Of those, the ones after the first. */
  reconnects = 0;
  /** Ready links lost. */
  disconnects = 0;
  /** Commands accepted and written (handshake included). */
  commands = 0;
  /** Socket writes: fewer than commands when pipelining batches them. */
  writes = 0;
  /** Replies matched to a command, error replies included. */
  replies = 0;
  errorReplies = 0;
  /** Commands that timed out, and replies that arrived for them later (read and discarded). */
  timeouts = 0;
  lateReplies = 0;
  /** Commands refused at once: queue full, not connected. */
  rejectedQueueFull = 0;
  rejectedNotConnected = 0;
  /** Commands written whose reply never came because the link went down (they may have run). */
  failedOnDisconnect = 0;
  /** Push messages received (RESP3 pushes, and pub/sub messages in RESP2). */
  pushes = 0;
  /** SCRIPT LOAD sent after NOSCRIPT. */
  scriptLoads = 0;
  readonly latency = new LatencyHistogram();
}
