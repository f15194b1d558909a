/**
 * Reconnect delays: exponential, capped, equal jitter (never below half the ceiling, so never a tight
 * loop), and reset only by a link that stayed up.
 */
import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/redis/backoff';

describe('Backoff', () => {
  it('doubles from the minimum up to the cap', () => {
    const b = new Backoff({ minDelayMs: 10, maxDelayMs: 100 });
    expect([0, 1, 2, 3, 4, 5, 60, 1000].map((n) => b.ceiling(n))).toEqual([10, 20, 40, 80, 100, 100, 100, 100]);
  });

  it('each delay lies in [ceiling/2, ceiling]: the random half spreads, the fixed half is a floor', () => {
    const low = new Backoff({ minDelayMs: 10, maxDelayMs: 100 }, () => 0);
    expect(Array.from({ length: 6 }, () => low.next())).toEqual([5, 10, 20, 40, 50, 50]);
    const high = new Backoff({ minDelayMs: 10, maxDelayMs: 100 }, () => 0.999999);
    expect(Array.from({ length: 6 }, () => Math.round(high.next()))).toEqual([10, 20, 40, 80, 100, 100]);
  });

  it('counts attempts, and only a link that stayed up for stableAfterMs resets them', () => {
    const b = new Backoff({ minDelayMs: 10, maxDelayMs: 100, stableAfterMs: 1000 }, () => 0);
    b.next();
    b.next();
    b.next();
    expect(b.attempt).toBe(3);
    b.linkLost(999); // up, then down at once: still failing
    expect(b.attempt).toBe(3);
    expect(b.next()).toBe(40);
    b.linkLost(1000);
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(5);
  });

  it('stableAfterMs defaults to the cap', () => {
    const b = new Backoff({ minDelayMs: 10, maxDelayMs: 300 }, () => 0);
    b.next();
    b.linkLost(299);
    expect(b.attempt).toBe(1);
    b.linkLost(300);
    expect(b.attempt).toBe(0);
  });

  it('refuses nonsense', () => {
    expect(() => new Backoff({ minDelayMs: 0 })).toThrow('backoff needs 0 < minDelayMs <= maxDelayMs');
    expect(() => new Backoff({ minDelayMs: 100, maxDelayMs: 50 })).toThrow(RangeError);
  });
});
