/**
 * REDIS_URL parsing: every part, percent-decoding, and a clear error (password masked) for each mistake.
 */
import { describe, expect, it } from 'vitest';
import { maskPassword, parseRedisUrl, RedisUrlError } from '../src/redis/url';

describe('parseRedisUrl', () => {
  it('reads host, port and database, with defaults', () => {
    expect(parseRedisUrl('redis://localhost')).toEqual({ host: 'localhost', port: 6379, db: 0 });
    expect(parseRedisUrl('redis://10.0.0.5:6380')).toEqual({ host: '10.0.0.5', port: 6380, db: 0 });
    expect(parseRedisUrl('redis://cache.internal:7000/3')).toEqual({ host: 'cache.internal', port: 7000, db: 3 });
    expect(parseRedisUrl('redis://h/')).toEqual({ host: 'h', port: 6379, db: 0 });
    expect(parseRedisUrl('REDIS://h:1/0')).toEqual({ host: 'h', port: 1, db: 0 });
  });

  it('reads IPv6 hosts in brackets', () => {
    expect(parseRedisUrl('redis://[::1]:6380/2')).toEqual({ host: '::1', port: 6380, db: 2 });
    expect(parseRedisUrl('redis://[fe80::1]')).toEqual({ host: 'fe80::1', port: 6379, db: 0 });
  });

  it('reads the password alone (default user) or with an ACL user, percent-decoded', () => {
    expect(parseRedisUrl('redis://:secret@h')).toEqual({ host: 'h', port: 6379, db: 0, password: 'secret' });
    expect(parseRedisUrl('redis://alice:s3cret@h:1/2')).toEqual({
      host: 'h',
      port: 1,
      db: 2,
      username: 'alice',
      password: 's3cret',
    });
    expect(parseRedisUrl('redis://al%20ice:p%40ss%3Aw%2Fo%25rd@h').password).toBe('p@ss:w/o%rd');
    expect(parseRedisUrl('redis://al%20ice:x@h').username).toBe('al ice');
    // An unencoded '@' in the password: the last '@' ends the user information.
    expect(parseRedisUrl('redis://:p@ss@h').password).toBe('p@ss');
    expect(parseRedisUrl('redis://:@h').password).toBe('');
  });

  const errors: [string, string][] = [
    ['localhost:6379', 'expected redis://[[user]:password@]host[:port][/db]'],
    ['http://h', 'the scheme must be redis://, not http://'],
    ['rediss://h', 'rediss:// (TLS) is not supported; use redis://'],
    ['redis://', 'the host is missing'],
    ['redis://:6379', 'the host is missing'],
    ['redis://h:0', 'the port must be a number from 1 to 65535, got "0"'],
    ['redis://h:65536', 'the port must be a number from 1 to 65535, got "65536"'],
    ['redis://h:abc', 'the port must be a number from 1 to 65535, got "abc"'],
    ['redis://h:', 'the port must be a number from 1 to 65535, got ""'],
    ['redis://h/x', 'the database must be a non-negative integer (redis://host:port/2), got "x"'],
    ['redis://h/-1', 'the database must be a non-negative integer'],
    ['redis://h/1/2', 'the database must be a non-negative integer'],
    ['redis://h?db=1', 'query strings and fragments are not supported'],
    ['redis://alice@h', 'a user needs a password'],
    ['redis://:%zz@h', 'the password has a malformed percent-escape'],
    ['redis://[::1', 'unclosed [ in an IPv6 host'],
    ['redis://[::1]x', 'unexpected "x" after the IPv6 host'],
  ];
  for (const [url, message] of errors) {
    it(`refuses ${url}`, () => {
      expect(() => parseRedisUrl(url)).toThrow(RedisUrlError);
      expect(() => parseRedisUrl(url)).toThrow(message);
    });
  }

  it('never shows the password in an error', () => {
    let message = '';
    try {
      parseRedisUrl('redis://alice:hunter2@h:99999');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe(
      'invalid Redis URL "redis://alice:***@h:99999": the port must be a number from 1 to 65535, got "99999"',
    );
    expect(maskPassword('redis://:p@ss@h/1')).toBe('redis://:***@h/1');
    expect(maskPassword('redis://h:6379/1')).toBe('redis://h:6379/1');
  });
});
