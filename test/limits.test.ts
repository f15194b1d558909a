/**
 * Per-address limits (src/http/limits.ts) as plain arithmetic, time passed in: open connections per
 * address, the handshake rate's token buckets, and the bound on what they remember.
 */
import { describe, expect, it } from 'vitest';
import { HandshakeRate, limitKey, OpenConnections } from '../src/http/limits';

describe('limitKey', () => {
  it('an IPv4 address is its own key; an IPv6 address counts by its /64', () => {
    expect(limitKey('192.0.2.7')).toBe('192.0.2.7');
    expect(limitKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(limitKey('2001:db8:1:2::1')).toBe(limitKey('2001:db8:1:2:ffff::9'));
    expect(limitKey('2001:db8:1:3::1')).not.toBe(limitKey('2001:db8:1:2::1'));
    expect(limitKey('::1')).toBe('::/64');
  });
});

describe('OpenConnections (MAX_CONNECTIONS_PER_IP)', () => {
  it('refuses the connection past the limit, per address, and lets one in when one closes', () => {
    const open = new OpenConnections(2);
    const a1 = open.opened('192.0.2.1');
    open.opened('192.0.2.1');
    expect(open.check('192.0.2.1')).toEqual({
      reason: 'connections per address limit 2',
      message: 'too many connections from your address: at most 2 at once',
      retryAfterSec: 5,
    });
    expect(open.check('192.0.2.2')).toBeUndefined();
    a1();
    a1(); // releasing twice counts once
    expect(open.count('192.0.2.1')).toBe(1);
    expect(open.check('192.0.2.1')).toBeUndefined();
  });

  it('forgets an address once its last connection closed', () => {
    const open = new OpenConnections(3);
    const releases = Array.from({ length: 1000 }, (_, i) => open.opened(`10.0.${i >> 8}.${i & 255}`));
    expect(open.size).toBe(1000);
    for (const release of releases) release();
    expect(open.size).toBe(0);
  });

  it('0 is no limit, and nothing is counted', () => {
    const open = new OpenConnections(0);
    for (let i = 0; i < 100; i++) open.opened('192.0.2.1');
    expect(open.check('192.0.2.1')).toBeUndefined();
    expect(open.size).toBe(0);
  });
});

describe('HandshakeRate (HANDSHAKE_RATE_PER_IP)', () => {
  it('a burst of `rate`, then one more every 1000/rate ms; other addresses are not affected', () => {
    const rate = new HandshakeRate(4);
    const t0 = 1_000_000;
    for (let i = 0; i < 4; i++) expect(rate.check('192.0.2.1', t0)).toBeUndefined();
    expect(rate.check('192.0.2.1', t0)).toEqual({
      reason: 'handshake rate limit 4/s per address',
      message: 'too many connection attempts from your address: at most 4 per second',
      retryAfterSec: 1,
    });
    expect(rate.check('192.0.2.2', t0)).toBeUndefined();
    expect(rate.check('192.0.2.1', t0 + 249)).toBeDefined();
    expect(rate.check('192.0.2.1', t0 + 250)).toBeUndefined(); // one token back after 250 ms
    expect(rate.check('192.0.2.1', t0 + 250)).toBeDefined();
  });

  it('Retry-After is honest: after retryAfterSec a refused address gets in', () => {
    for (const perSec of [1, 3, 7, 1000]) {
      const rate = new HandshakeRate(perSec);
      for (let i = 0; i < perSec; i++) rate.check('a', 0);
      const refusal = rate.check('a', 0)!;
      expect(rate.check('a', refusal.retryAfterSec * 1000), `rate ${perSec}`).toBeUndefined();
    }
  });

  it('forgets an address after a second of silence (its bucket would be full again)', () => {
    const rate = new HandshakeRate(2);
    rate.check('192.0.2.1', 0);
    rate.check('192.0.2.2', 500);
    expect(rate.size).toBe(2);
    rate.check('192.0.2.3', 1000); // 192.0.2.1 has been quiet for a second
    expect(rate.size).toBe(2);
    rate.check('192.0.2.3', 5000);
    expect(rate.size).toBe(1);
  });

  it('an address that keeps coming back is not forgotten while it is limited', () => {
    const rate = new HandshakeRate(1);
    expect(rate.check('a', 0)).toBeUndefined();
    for (let t = 100; t < 1000; t += 100) expect(rate.check('a', t), `t=${t}`).toBeDefined();
    expect(rate.check('a', 1000)).toBeUndefined();
  });

  it('a client spraying addresses fills at most maxTracked entries, least recently seen forgotten first', () => {
    const rate = new HandshakeRate(1, 100);
    rate.check('keeper', 0);
    for (let i = 0; i < 10_000; i++) {
      rate.check(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 1);
      if (i % 50 === 0) rate.check('keeper', 1); // seen recently: kept
      expect(rate.size).toBeLessThanOrEqual(100);
    }
    expect(rate.check('keeper', 1)).toBeDefined(); // still remembered, still limited
  });

  it('0 is no limit, and nothing is tracked', () => {
    const rate = new HandshakeRate(0);
    for (let i = 0; i < 100; i++) expect(rate.check('a', 0)).toBeUndefined();
    expect(rate.size).toBe(0);
  });
});
