/**
 * Limits per client address (MAX_CONNECTIONS_PER_IP, HANDSHAKE_RATE_PER_IP), checked before the
 * WebSocket upgrade. Over a limit the answer is 429 with Retry-After and a body that says which.
 *
 * Memory is bounded however many addresses a client sprays: the open-connections map only holds
 * addresses with a connection open (at most MAX_CONNECTIONS of them); the handshake-rate map forgets an
 * address once its bucket has refilled (one second of silence: it would start full anyway) and holds
 * at most `maxTracked` addresses, forgetting the least recently seen first.
 *
 * An IPv6 client counts by its /64: a host picks any address in its /64 at will (RFC 4941 privacy
 * addresses), so a per-address limit would be free to dodge.
 */
import { TokenBucket } from '../chat/models/rate-limit';
import { formatIp, parseIp } from './client-address';

/** Why an upgrade is refused: the log's reason, the body's sentence, and Retry-After in seconds. */
export interface LimitRefusal {
  readonly reason: string;
  readonly message: string;
  readonly retryAfterSec: number;
}

/** The key an address is counted under: itself for IPv4, its /64 for IPv6. */
export function limitKey(address: string): string {
  const ip = parseIp(address);
  if (ip === undefined || ip.bytes.length === 4) return address;
  const prefix = new Uint8Array(16);
  prefix.set(ip.bytes.subarray(0, 8));
  return `${formatIp({ bytes: prefix })}/64`;
}

/** MAX_CONNECTIONS_PER_IP: WebSocket connections open at once per address. */
export class OpenConnections {
  private readonly open = new Map<string, number>();

  /** `max` 0: no limit (nothing is counted). */
  constructor(private readonly max: number) {}

  /** Addresses with a connection open. */
  get size(): number {
    return this.open.size;
  }

  count(key: string): number {
    return this.open.get(key) ?? 0;
  }

  check(key: string): LimitRefusal | undefined {
    if (this.max === 0 || this.count(key) < this.max) return undefined;
    return {
      reason: `connections per address limit ${this.max}`,
      message: `too many connections from your address: at most ${this.max} at once`,
      // Nobody knows when one of them closes; a few seconds spares the server a retry storm.
      retryAfterSec: 5,
    };
  }

  /** A connection from `key` was accepted; call the returned function when it has closed. */
  opened(key: string): () => void {
    if (this.max === 0) return nothingToRelease;
    this.open.set(key, this.count(key) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.count(key) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }
}

/** Without a limit there is nothing to count: one function for every connection, no closure each. */
const nothingToRelease = (): void => {};

/** How many addresses the handshake rate remembers at most: ~160-210 bytes each, 2.5-3.3 MiB in all. */
export const MAX_TRACKED_ADDRESSES = 16_384;

/**
 * HANDSHAKE_RATE_PER_IP: upgrades per second per address, a token bucket each (the chat's rate
 * limit's), `rate` tokens a second and a burst of `rate`.
 */
export class HandshakeRate {
  /** In order of last use, least recent first: idle entries are at the front. */
  private readonly buckets = new Map<string, { bucket: TokenBucket; seen: number }>();
  /** A bucket left alone this long is full again: the same as no entry at all. */
  private readonly idleMs: number;

  /** `rate` 0: no limit (nothing is tracked). */
  constructor(
    private readonly rate: number,
    private readonly maxTracked = MAX_TRACKED_ADDRESSES,
  ) {
    this.idleMs = 1000; // burst / rate seconds, and the burst is the rate
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes a token for an upgrade from `key` at `now` (ms), or says why not. */
  check(key: string, now: number): LimitRefusal | undefined {
    if (this.rate === 0) return undefined;
    this.forgetIdle(now);
    let entry = this.buckets.get(key);
    if (entry === undefined) {
      if (this.buckets.size >= this.maxTracked) this.buckets.delete(this.buckets.keys().next().value!);
      entry = { bucket: new TokenBucket(this.rate, this.rate, now), seen: now };
    } else {
      this.buckets.delete(key); // re-inserted below: the map stays in order of last use
    }
    entry.seen = now;
    this.buckets.set(key, entry);
    if (entry.bucket.take(now)) return undefined;
    return {
      reason: `handshake rate limit ${this.rate}/s per address`,
      message: `too many connection attempts from your address: at most ${this.rate} per second`,
      // A refused bucket holds less than one token and gains one in 1000/rate ms: within a second.
      retryAfterSec: 1,
    };
  }

  private forgetIdle(now: number): void {
    for (const [key, entry] of this.buckets) {
      if (now - entry.seen < this.idleMs) return;
      this.buckets.delete(key);
    }
  }
}
