/**
 * The client's address (src/http/client-address.ts): IPv4/IPv6 parsing and the RFC 5952 form, CIDR
 * ranges, and the X-Forwarded-For rule: believed only from TRUST_PROXY peers, read right to left, the
 * first address that is not a trusted proxy wins, so a forged header gains nothing.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddress, formatCidr, normalizeIp, parseCidr, TrustedProxies } from '../src/http/client-address';

describe('addresses', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'], // an IPv4 client on a dual-stack socket (RFC 4291 §2.5.5.2)
    ['::FFFF:c000:0207', '192.0.2.7'],
    ['0:0:0:0:0:ffff:192.0.2.7', '192.0.2.7'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'], // RFC 5952 §4.3: lower case; §4.2: the zeros as ::
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3: the first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: one zero word stays
    ['2001:0db8::0001', '2001:db8::1'], // §4.1: no leading zeros
    ['::1', '::1'],
    ['::', '::'],
    ['fe80::1%eth0', 'fe80::1'], // the zone is the host's business, not the address
    ['::192.0.2.7', '::c000:207'], // IPv4-compatible (deprecated) is not IPv4-mapped
  ])('%s is %s', (text, canonical) => {
    expect(normalizeIp(text)).toBe(canonical);
  });

  const notAddresses = ['', 'unknown', '192.0.2', '192.0.2.256', '01.2.3.4', '1:2:3:4:5:6:7:8:9', '2001:db8::g'];
  it.each([...notAddresses, '[::1]', 'localhost'])(
    '%j is not an address',
    (text) => {
      expect(normalizeIp(text)).toBeUndefined();
    },
  );

  it('CIDR ranges: a single address, prefixes, host bits cleared, IPv4-mapped ranges as IPv4', () => {
    const norm = (t: string): string | undefined => {
      const c = parseCidr(t);
      return c && formatCidr(c);
    };
    expect(norm('127.0.0.1')).toBe('127.0.0.1/32');
    expect(norm('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(norm('172.16.0.0/12')).toBe('172.16.0.0/12');
    expect(norm('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(norm('::1')).toBe('::1/128');
    expect(norm('2001:db8:abcd:12ff::/57')).toBe('2001:db8:abcd:1280::/57');
    expect(norm('::ffff:10.0.0.0/104')).toBe('10.0.0.0/8');
    const bads = ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', 'x/8', '::ffff:10.0.0.0/95'];
    for (const bad of bads) {
      expect(norm(bad), bad).toBeUndefined();
    }
  });

  it('TrustedProxies matches addresses against every range, IPv4-mapped peers included', () => {
    const trusted = new TrustedProxies(['127.0.0.1/32', '10.0.0.0/8', '2001:db8::/32', '172.16.0.0/12']);
    const has = (t: string): boolean => trusted.has(parseCidr(t)!.ip);
    expect(has('127.0.0.1')).toBe(true);
    expect(has('::ffff:127.0.0.1')).toBe(true);
    expect(has('127.0.0.2')).toBe(false);
    expect(has('10.255.0.1')).toBe(true);
    expect(has('11.0.0.1')).toBe(false);
    expect(has('172.31.255.255')).toBe(true);
    expect(has('172.32.0.0')).toBe(false);
    expect(has('2001:db8:ffff::1')).toBe(true);
    expect(has('2001:db9::1')).toBe(false);
    expect(has('::1')).toBe(false);
    expect(new TrustedProxies([]).empty).toBe(true);
  });
});

/** A request as clientAddress sees it: the peer's address and port, and the raw header lines. */
function request(
  remoteAddress: string | undefined,
  headers: [string, string][] = [],
  remotePort = 40000,
): IncomingMessage {
  return { socket: { remoteAddress, remotePort }, rawHeaders: headers.flat() } as unknown as IncomingMessage;
}

describe('clientAddress', () => {
  const proxy = new TrustedProxies(['127.0.0.1/32', '10.0.0.0/8']);
  const none = new TrustedProxies([]);
  /** The client address of a request from the trusted proxy with this X-Forwarded-For. */
  const one = (value: string): string =>
    clientAddress(request('127.0.0.1', [['X-Forwarded-For', value]]), proxy).address;

  it('without TRUST_PROXY: the peer, and X-Forwarded-For is ignored', () => {
    expect(clientAddress(request('192.0.2.7', [['X-Forwarded-For', '203.0.113.9']]), none)).toEqual({
      address: '192.0.2.7',
      peer: '192.0.2.7:40000',
    });
    expect(clientAddress(request('::ffff:192.0.2.7'), none)).toEqual({ address: '192.0.2.7', peer: '192.0.2.7:40000' });
    const v6 = clientAddress(request('2001:db8::7'), none);
    expect(v6).toEqual({ address: '2001:db8::7', peer: '[2001:db8::7]:40000' });
  });

  it('from a peer that is not a trusted proxy: the header is ignored', () => {
    const got = clientAddress(request('192.0.2.7', [['X-Forwarded-For', '10.0.0.1']]), proxy);
    expect(got).toEqual({ address: '192.0.2.7', peer: '192.0.2.7:40000' });
  });

  it('from a trusted proxy: the address it appended', () => {
    const got = clientAddress(request('127.0.0.1', [['X-Forwarded-For', '203.0.113.9']]), proxy);
    expect(got).toEqual({ address: '203.0.113.9', peer: '203.0.113.9', via: '127.0.0.1:40000' });
  });

  it('a forged header: the right-most untrusted address wins, whatever the client wrote on the left', () => {
    const forged = [['X-Forwarded-For', '10.0.0.5, 1.2.3.4, 203.0.113.9']] as [string, string][];
    expect(clientAddress(request('127.0.0.1', forged), proxy).address).toBe('203.0.113.9');
    // The client pretends to be one of our proxies: the proxy's own entry (its real peer) still wins.
    expect(clientAddress(request('127.0.0.1', [['X-Forwarded-For', '127.0.0.1, 203.0.113.9']]), proxy).address).toBe(
      '203.0.113.9',
    );
  });

  it('a chain of trusted proxies is walked through, to the first address that is not one', () => {
    const chain = [['X-Forwarded-For', '198.51.100.1, 203.0.113.9, 10.1.1.1, 10.2.2.2']] as [string, string][];
    expect(clientAddress(request('127.0.0.1', chain), proxy).address).toBe('203.0.113.9');
  });

  it('repeated header lines are one list, in order (HAProxy adds its own line)', () => {
    const lines = [
      ['X-Forwarded-For', '203.0.113.66'],
      ['Host', 'x'],
      ['x-forwarded-for', '198.51.100.4'],
    ] as [string, string][];
    expect(clientAddress(request('127.0.0.1', lines), proxy).address).toBe('198.51.100.4');
  });

  it('elements with ports, brackets, spaces and letter case are read as addresses', () => {
    expect(one(' 203.0.113.9:4711 ')).toBe('203.0.113.9');
    expect(one('[2001:DB8::9]:4711')).toBe('2001:db8::9');
    expect(one('[2001:db8::9]')).toBe('2001:db8::9');
    expect(one('::ffff:203.0.113.9')).toBe('203.0.113.9');
  });

  it('everything trusted: the left-most address; garbage: the nearest trusted hop', () => {
    expect(one('10.0.0.9, 10.0.0.8')).toBe('10.0.0.9');
    expect(one('203.0.113.9, unknown, 10.0.0.8')).toBe('10.0.0.8');
    expect(one('unknown')).toBe('127.0.0.1');
    expect(one('')).toBe('127.0.0.1');
  });

  it('a trusted proxy without the header: the proxy itself', () => {
    expect(clientAddress(request('127.0.0.1'), proxy)).toEqual({ address: '127.0.0.1', peer: '127.0.0.1:40000' });
  });

  it('a socket that is already gone has no address', () => {
    expect(clientAddress(request(undefined), proxy)).toEqual({ address: '?', peer: '?' });
  });
});
