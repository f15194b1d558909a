/**
 * Reconnect delays: exponential, capped, with "equal jitter" (half the delay fixed, half random).
 *
 * Why equal jitter rather than full jitter: a fleet of chat processes that lost the same Redis should
 * not all come back in the same millisecond (the random half spreads them), and no draw of the random
 * half can make a delay near zero (the fixed half), so a server that accepts and at once closes can
 * never drive a tight reconnect loop.
 *
 * Why the counter survives a successful connect: a link that comes up and drops again at once (a proxy
 * without a backend, a server killing clients, a handshake that passes and a SELECT that fails) is
 * still failing. Only a link that stayed up for `stableAfterMs` resets the delay to its minimum.
 */
export interface BackoffOptions {
  /** First delay, before jitter (default 50 ms). */
  minDelayMs?: number;
  /** Cap on the delay, before jitter (default 5000 ms). */
  maxDelayMs?: number;
  /** How long a link must stay up to reset the delays (default: maxDelayMs). */
  stableAfterMs?: number;
}

export class Backoff {
  /** Failures since the last stable link: the exponent of the next delay. */
  attempt = 0;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly stableAfterMs: number;

  constructor(
    options: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.minDelayMs = options.minDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.stableAfterMs = options.stableAfterMs ?? this.maxDelayMs;
    if (!(this.minDelayMs > 0) || !(this.maxDelayMs >= this.minDelayMs)) {
      throw new RangeError('backoff needs 0 < minDelayMs <= maxDelayMs');
    }
  }

  /** The ceiling of attempt n: min(max, min * 2^n). */
  ceiling(attempt: number): number {
    return Math.min(this.maxDelayMs, this.minDelayMs * 2 ** Math.min(attempt, 52));
  }

  /** The delay before the next attempt; counts the failure. Always in [ceiling/2, ceiling]. */
  next(): number {
    const ceiling = this.ceiling(this.attempt++);
    return ceiling / 2 + (this.random() * ceiling) / 2;
  }

  /** A link that was up for `upForMs` went down: reset the delays if it had been stable. */
  linkLost(upForMs: number): void {
    if (upForMs >= this.stableAfterMs) this.attempt = 0;
  }
}
