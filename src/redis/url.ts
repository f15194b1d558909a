/**
 * REDIS_URL: `redis://[[user]:password@]host[:port][/db]`, as redis-cli and most clients read it
 * (IANA's provisional "redis" URI scheme). User and password are percent-decoded, so a password
 * holding `@`, `:` or `/` is written `%40`, `%3A`, `%2F`.
 *
 * Every error names what is wrong and shows the URL with its password masked: URLs end up in logs.
 */

export interface RedisAddress {
  readonly host: string;
  readonly port: number;
  /** ACL user (Redis 6+); absent means the `default` user. */
  readonly username?: string;
  readonly password?: string;
  readonly db: number;
}

export const DEFAULT_PORT = 6379;

export class RedisUrlError extends Error {
  constructor(url: string, problem: string) {
    super(`invalid Redis URL ${JSON.stringify(maskPassword(url))}: ${problem}`);
    this.name = 'RedisUrlError';
  }
}

export function parseRedisUrl(url: string): RedisAddress {
  const fail = (problem: string): never => {
    throw new RedisUrlError(url, problem);
  };
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (scheme === null) fail('expected redis://[[user]:password@]host[:port][/db]');
  const name = scheme![1]!.toLowerCase();
  if (name === 'rediss') fail('rediss:// (TLS) is not supported; use redis://');
  if (name !== 'redis') fail(`the scheme must be redis://, not ${name}://`);
  let rest = url.slice(scheme![0].length);
  if (/[?#]/.test(rest)) fail('query strings and fragments are not supported');

  // The authority ends at the first slash; the user information at its last '@'.
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  let username: string | undefined;
  let password: string | undefined;
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    const user = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), 'user', fail);
    if (colon === -1) {
      // `redis://secret@host` would be ambiguous; redis-cli reads `redis://:secret@host`.
      fail('a user needs a password: write redis://user:password@host, or redis://:password@host');
    }
    password = decode(userinfo.slice(colon + 1), 'password', fail);
    if (user !== '') username = user;
  }
  rest = at === -1 ? authority : authority.slice(at + 1);

  // host[:port], an IPv6 host in brackets.
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) fail('unclosed [ in an IPv6 host');
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) fail(`unexpected ${JSON.stringify(after)} after the IPv6 host`);
    if (after !== '') portText = after.slice(1);
  } else {
    const colon = rest.lastIndexOf(':');
    host = colon === -1 ? rest : rest.slice(0, colon);
    if (colon !== -1) portText = rest.slice(colon + 1);
  }
  if (host === '') fail('the host is missing');
  if (/[\s/@]/.test(host)) fail(`the host ${JSON.stringify(host)} is not a host name or address`);
  let port = DEFAULT_PORT;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      fail(`the port must be a number from 1 to 65535, got ${JSON.stringify(portText)}`);
    }
  }

  let db = 0;
  if (path !== '') {
    db = /^\d{1,9}$/.test(path) ? Number(path) : NaN;
    if (Number.isNaN(db)) {
      fail(`the database must be a non-negative integer (redis://host:port/2), got ${JSON.stringify(path)}`);
    }
  }
  return { host, port, db, ...(username !== undefined && { username }), ...(password !== undefined && { password }) };
}

function decode(text: string, what: string, fail: (problem: string) => never): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return fail(`the ${what} has a malformed percent-escape (write % itself as %25)`);
  }
}

/** The URL with its password replaced by `***`, for messages and logs. */
export function maskPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@]*?:)[^/]*@/i, '$1***@');
}
