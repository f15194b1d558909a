/**
 * Who is on the other end: the client's address, for the logs and the per-address limits.
 *
 * It is the TCP peer's address, unless the peer is a proxy listed in TRUST_PROXY: then it is the
 * right-most address in X-Forwarded-For that is not itself a trusted proxy. Each proxy appends the
 * address it received the request from, so everything left of the first untrusted address was written
 * by the client (or by proxies we do not know) and proves nothing: a forged header gains nothing.
 *
 * Addresses are compared as bytes: `::ffff:192.0.2.7` (an IPv4 client on a dual-stack socket) is
 * 192.0.2.7, and `2001:DB8:0::1` is 2001:db8::1 (written back in the RFC 5952 form).
 */
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

export interface Ip {
  /** 4 bytes for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6. */
  readonly bytes: Uint8Array;
}

/** Parses an IPv4 or IPv6 address (a zone such as `%eth0` is dropped); undefined if it is not one. */
export function parseIp(text: string): Ip | undefined {
  if (isIPv4(text)) return { bytes: Uint8Array.from(text.split('.'), Number) };
  const zone = text.indexOf('%');
  const address = zone === -1 ? text : text.slice(0, zone);
  if (!isIPv6(address)) return undefined;
  let words: number[];
  let tail = address;
  const v4: number[] = [];
  const dot = address.lastIndexOf(':');
  if (address.includes('.')) {
    // An embedded IPv4 address in the last 32 bits (RFC 4291 §2.2, form 3).
    v4.push(...address.slice(dot + 1).split('.').map(Number));
    tail = address.slice(0, dot + 1) + '0:0';
  }
  const [head, rest] = tail.split('::') as [string, string | undefined];
  const part = (s: string): number[] => (s === '' ? [] : s.split(':').map((w) => parseInt(w, 16)));
  if (rest === undefined) words = part(head);
  else {
    const left = part(head);
    const right = part(rest);
    const zeros = 8 - left.length - right.length;
    if (zeros < 1) return undefined;
    words = [...left, ...Array<number>(zeros).fill(0), ...right];
  }
  if (words.length !== 8 || words.some((w) => !(w >= 0 && w <= 0xffff))) return undefined;
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  if (v4.length === 4) bytes.set(v4, 12);
  // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d is the IPv4 address a.b.c.d.
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return { bytes: bytes.slice(12) };
  }
  return { bytes };
}

/** IPv4 dotted; IPv6 in RFC 5952 form (lower case, the longest run of two or more zero words as ::). */
export function formatIp(ip: Ip): string {
  const b = ip.bytes;
  if (b.length === 4) return b.join('.');
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1;
  let bestLength = 1; // §4.2.2: a single zero word is not shortened
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (best === -1) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLength))}`;
}

/** The canonical text of an address (see formatIp), or undefined if `text` is not one. */
export function normalizeIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip === undefined ? undefined : formatIp(ip);
}

export interface Cidr {
  readonly ip: Ip;
  readonly prefix: number;
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address (a /32 or /128). Undefined if malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (ip === undefined) return undefined;
  const bits = ip.bytes.length * 8;
  if (slash === -1) return { ip, prefix: bits };
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  let prefix = Number(prefixText);
  // An IPv4-mapped range written in IPv6 (::ffff:10.0.0.0/104) is the IPv4 range 10.0.0.0/8.
  if (bits === 32 && text.includes(':')) prefix -= 96;
  if (prefix < 0 || prefix > bits) return undefined;
  // The host bits say nothing about the range: 10.1.2.3/8 is 10.0.0.0/8.
  const bytes = ip.bytes.map((b, i) => b & byteMask(prefix - i * 8));
  return { ip: { bytes }, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.ip)}/${cidr.prefix}`;
}

/** The mask of one byte that has `bits` of the prefix left (all of it from 8 on, none below 1). */
function byteMask(bits: number): number {
  return bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
}

function inCidr(ip: Ip, cidr: Cidr): boolean {
  const a = ip.bytes;
  const b = cidr.ip.bytes; // host bits already cleared
  if (a.length !== b.length) return false;
  for (let i = 0; i * 8 < cidr.prefix; i++) if ((a[i]! & byteMask(cidr.prefix - i * 8)) !== b[i]) return false;
  return true;
}

/** TRUST_PROXY: the proxies whose X-Forwarded-For we believe. */
export class TrustedProxies {
  private readonly ranges: readonly Cidr[];

  /** `list` as validated by the config (addresses and CIDR ranges). */
  constructor(list: readonly string[]) {
    this.ranges = list.map((text) => {
      const cidr = parseCidr(text);
      if (cidr === undefined) throw new Error(`not an address or CIDR range: ${text}`);
      return cidr;
    });
  }

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  has(ip: Ip): boolean {
    return this.ranges.some((range) => inCidr(ip, range));
  }
}

export interface ClientAddress {
  /** The client's address, canonical (see formatIp); the key of the per-address limits. */
  readonly address: string;
  /** For the logs: `address:port` seen directly, `[v6]:port` for IPv6, just the address via a proxy. */
  readonly peer: string;
  /** The trusted proxy the request came through (`address:port`), when it did. */
  readonly via?: string;
}

function withPort(address: string, port: number | undefined): string {
  if (port === undefined) return address;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * One X-Forwarded-For element as an address: a plain address, or, as some proxies write them,
 * `192.0.2.7:1234` or `[2001:db8::7]:1234` (the port is dropped).
 */
function forwardedIp(element: string): Ip | undefined {
  const text = element.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed !== null) return parseIp(bracketed[1]!);
  const v4port = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(text);
  return parseIp(v4port !== null ? v4port[1]! : text);
}

/** Every X-Forwarded-For element, in order, across repeated header lines. */
function forwardedFor(req: IncomingMessage): string[] {
  const elements: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'x-forwarded-for') elements.push(...raw[i + 1]!.split(','));
  }
  return elements;
}

/** The client behind this request (see the top of this file). */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies): ClientAddress {
  const socket = req.socket;
  const peerIp = parseIp(socket.remoteAddress ?? '');
  if (peerIp === undefined) return { address: '?', peer: '?' }; // the socket is already gone
  const peer = withPort(formatIp(peerIp), socket.remotePort);
  if (trusted.empty || !trusted.has(peerIp)) return { address: formatIp(peerIp), peer };
  const chain = forwardedFor(req);
  if (chain.length === 0) return { address: formatIp(peerIp), peer };
  // Right to left: skip our own proxies; the first address that is not one is the client. An element
  // that is no address ends the walk: the nearest trusted hop is then all we know.
  let client: Ip = peerIp;
  for (let i = chain.length - 1; i >= 0; i--) {
    const ip = forwardedIp(chain[i]!);
    if (ip === undefined) break;
    client = ip;
    if (!trusted.has(ip)) break;
  }
  const address = formatIp(client);
  return { address, peer: address, via: peer };
}
