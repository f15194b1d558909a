/**
 * Configuration: every environment variable parses, defaults apply, and a bad value is a ConfigError
 * that names the variable (the entry point turns it into exit code 2: see server-process.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, loadConfig, type Config } from '../src/config';

/** The ConfigError that loadConfig(env) throws. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe('loadConfig: defaults', () => {
  it('an empty environment gives DEFAULTS', () => {
    expect(loadConfig({})).toEqual(DEFAULTS);
  });

  it('the documented defaults', () => {
    expect(DEFAULTS).toEqual({
      port: 8080,
      host: '',
      maxMessageBytes: 4096,
      sendQueue: 256,
      allowedOrigins: [],
      pingIntervalMs: 54_000,
      pongTimeoutMs: 60_000,
      rateLimitPerSec: 10,
      rateLimitBurst: 20,
      maxConnections: 10_000,
      maxBufferedBytes: 1024 * 1024,
      handshakeTimeoutMs: 10_000,
      joinTimeoutMs: 30_000,
      historySize: 1000,
      historyOnJoin: 50,
      maxRooms: 1000,
      maxRoomsPerClient: 20,
      resumeGraceMs: 5000,
      closeTimeoutMs: 5_000,
      tlsCertFile: '',
      tlsKeyFile: '',
      trustProxy: [],
      maxConnectionsPerIp: 0,
      handshakeRatePerIp: 0,
      logFormat: 'text',
      compression: true,
      redisUrl: '',
      workers: 0,
      nodeId: '',
      nodeTtlMs: 15_000,
      metricsPort: null,
      metricsHost: '127.0.0.1',
    } satisfies Config);
  });

  it('empty and blank values mean "use the default"', () => {
    const env: Record<string, string> = {};
    const names = ['PORT', 'HOST', 'MAX_MESSAGE_BYTES', 'SEND_QUEUE', 'ALLOWED_ORIGINS', 'PING_INTERVAL_MS'];
    names.push('PONG_TIMEOUT_MS', 'JOIN_TIMEOUT_MS', 'RATE_LIMIT_PER_SEC', 'RATE_LIMIT_BURST', 'MAX_CONNECTIONS');
    names.push('MAX_BUFFERED_BYTES', 'HANDSHAKE_TIMEOUT_MS', 'CLOSE_TIMEOUT_MS');
    names.push('HISTORY_SIZE', 'HISTORY_ON_JOIN', 'MAX_ROOMS', 'MAX_ROOMS_PER_CLIENT', 'RESUME_GRACE_MS');
    names.push('TLS_CERT_FILE', 'TLS_KEY_FILE', 'TRUST_PROXY', 'MAX_CONNECTIONS_PER_IP', 'HANDSHAKE_RATE_PER_IP');
    names.push('LOG_FORMAT', 'COMPRESSION', 'REDIS_URL', 'WORKERS', 'NODE_ID', 'NODE_TTL_MS');
    names.push('METRICS_PORT', 'METRICS_HOST');
    for (const name of names) {
      env[name] = name.length % 2 === 0 ? '' : '   ';
    }
    expect(loadConfig(env)).toEqual(DEFAULTS);
  });

  it('the result is frozen, and so is DEFAULTS', () => {
    const config = loadConfig({ ALLOWED_ORIGINS: 'https://a.example' });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.allowedOrigins)).toBe(true);
    expect(Object.isFrozen(DEFAULTS)).toBe(true);
    expect(Object.isFrozen(DEFAULTS.allowedOrigins)).toBe(true);
  });

  it('ignores unrelated variables', () => {
    expect(loadConfig({ PATH: '/bin', NODE_ENV: 'production' })).toEqual(DEFAULTS);
  });
});

describe('loadConfig: every variable parses', () => {
  const cases: [string, string, keyof Config, unknown][] = [
    ['PORT', '9000', 'port', 9000],
    ['PORT', '0', 'port', 0],
    ['PORT', '65535', 'port', 65535],
    ['PORT', ' 8081 ', 'port', 8081],
    ['HOST', '127.0.0.1', 'host', '127.0.0.1'],
    ['HOST', '::1', 'host', '::1'],
    ['HOST', ' localhost ', 'host', 'localhost'],
    ['METRICS_PORT', '9464', 'metricsPort', 9464],
    ['METRICS_PORT', '0', 'metricsPort', 0],
    ['METRICS_HOST', '0.0.0.0', 'metricsHost', '0.0.0.0'],
    ['METRICS_HOST', '::1', 'metricsHost', '::1'],
    ['MAX_MESSAGE_BYTES', '125', 'maxMessageBytes', 125],
    ['MAX_MESSAGE_BYTES', '1048576', 'maxMessageBytes', 1048576],
    ['SEND_QUEUE', '1', 'sendQueue', 1],
    ['SEND_QUEUE', '8', 'sendQueue', 8],
    ['ALLOWED_ORIGINS', 'https://chat.example.com', 'allowedOrigins', ['https://chat.example.com']],
    [
      'ALLOWED_ORIGINS',
      'https://a.example, http://localhost:3000 ,',
      'allowedOrigins',
      ['https://a.example', 'http://localhost:3000'],
    ],
    // Normalised to what a browser sends (RFC 6454 §6.1): lower case, no default port, no slash.
    ['ALLOWED_ORIGINS', 'https://Chat.Example.COM/', 'allowedOrigins', ['https://chat.example.com']],
    [
      'ALLOWED_ORIGINS',
      'https://a.example:443,http://b.example:80',
      'allowedOrigins',
      ['https://a.example', 'http://b.example'],
    ],
    ['ALLOWED_ORIGINS', '*', 'allowedOrigins', '*'],
    ['ALLOWED_ORIGINS', 'https://a.example,*', 'allowedOrigins', '*'],
    ['PING_INTERVAL_MS', '1000', 'pingIntervalMs', 1000],
    ['PONG_TIMEOUT_MS', '120000', 'pongTimeoutMs', 120000],
    ['RATE_LIMIT_PER_SEC', '1', 'rateLimitPerSec', 1],
    ['RATE_LIMIT_BURST', '3', 'rateLimitBurst', 3],
    ['MAX_CONNECTIONS', '2', 'maxConnections', 2],
    ['MAX_BUFFERED_BYTES', '1024', 'maxBufferedBytes', 1024],
    ['HANDSHAKE_TIMEOUT_MS', '100', 'handshakeTimeoutMs', 100],
    ['HANDSHAKE_TIMEOUT_MS', '600000', 'handshakeTimeoutMs', 600000],
    ['JOIN_TIMEOUT_MS', '100', 'joinTimeoutMs', 100],
    ['JOIN_TIMEOUT_MS', '3600000', 'joinTimeoutMs', 3600000],
    ['HISTORY_SIZE', '1000000', 'historySize', 1_000_000],
    ['HISTORY_SIZE', '50', 'historySize', 50],
    ['HISTORY_ON_JOIN', '0', 'historyOnJoin', 0],
    ['HISTORY_ON_JOIN', '100', 'historyOnJoin', 100],
    ['MAX_ROOMS', '1', 'maxRooms', 1],
    ['MAX_ROOMS_PER_CLIENT', '1000', 'maxRoomsPerClient', 1000],
    ['RESUME_GRACE_MS', '0', 'resumeGraceMs', 0],
    ['RESUME_GRACE_MS', '3600000', 'resumeGraceMs', 3_600_000],
    ['CLOSE_TIMEOUT_MS', '100', 'closeTimeoutMs', 100],
    ['CLOSE_TIMEOUT_MS', '3600000', 'closeTimeoutMs', 3600000],
    ['COMPRESSION', 'off', 'compression', false],
    ['COMPRESSION', ' OFF ', 'compression', false],
    ['COMPRESSION', 'on', 'compression', true],
  ];
  it.each(cases)('%s=%j', (name, value, key, expected) => {
    const config = loadConfig({ [name]: value });
    expect(config[key]).toEqual(expected);
    // Nothing else changes.
    expect({ ...config, [key]: DEFAULTS[key] }).toEqual(DEFAULTS);
  });

  it('PING_INTERVAL_MS and PONG_TIMEOUT_MS together', () => {
    const config = loadConfig({ PING_INTERVAL_MS: '50', PONG_TIMEOUT_MS: '150' });
    expect([config.pingIntervalMs, config.pongTimeoutMs]).toEqual([50, 150]);
  });

  it('all at once', () => {
    expect(
      loadConfig({
        PORT: '1234', HOST: '0.0.0.0', MAX_MESSAGE_BYTES: '2048', SEND_QUEUE: '16',
        ALLOWED_ORIGINS: 'https://x.example',
        PING_INTERVAL_MS: '1000', PONG_TIMEOUT_MS: '3000', RATE_LIMIT_PER_SEC: '5', RATE_LIMIT_BURST: '7',
        MAX_CONNECTIONS: '100', MAX_BUFFERED_BYTES: '65536', HANDSHAKE_TIMEOUT_MS: '5000',
        JOIN_TIMEOUT_MS: '7000', CLOSE_TIMEOUT_MS: '2500', HISTORY_SIZE: '10', HISTORY_ON_JOIN: '5', MAX_ROOMS: '3',
        MAX_ROOMS_PER_CLIENT: '2', RESUME_GRACE_MS: '100', TLS_CERT_FILE: '/etc/wschat/cert.pem',
        TLS_KEY_FILE: '/etc/wschat/key.pem', TRUST_PROXY: '127.0.0.1, 10.0.0.0/8, ::1', MAX_CONNECTIONS_PER_IP: '4',
        HANDSHAKE_RATE_PER_IP: '2', LOG_FORMAT: 'json', COMPRESSION: 'off', REDIS_URL: 'redis://r:6379', WORKERS: '2',
        NODE_ID: 'n1', NODE_TTL_MS: '3000', METRICS_PORT: '9464', METRICS_HOST: '10.0.0.5',
      }),
    ).toEqual({
      port: 1234, host: '0.0.0.0', maxMessageBytes: 2048, sendQueue: 16, allowedOrigins: ['https://x.example'],
      pingIntervalMs: 1000, pongTimeoutMs: 3000, rateLimitPerSec: 5, rateLimitBurst: 7,
      maxConnections: 100, maxBufferedBytes: 65536, handshakeTimeoutMs: 5000,
      joinTimeoutMs: 7000, closeTimeoutMs: 2500, historySize: 10, historyOnJoin: 5, maxRooms: 3, maxRoomsPerClient: 2,
      resumeGraceMs: 100, tlsCertFile: '/etc/wschat/cert.pem', tlsKeyFile: '/etc/wschat/key.pem',
      trustProxy: ['127.0.0.1/32', '10.0.0.0/8', '::1/128'], maxConnectionsPerIp: 4, handshakeRatePerIp: 2,
      logFormat: 'json', compression: false, redisUrl: 'redis://r:6379', workers: 2, nodeId: 'n1', nodeTtlMs: 3000,
      metricsPort: 9464, metricsHost: '10.0.0.5',
    });
  });
});

describe('loadConfig: invalid values throw a ConfigError naming the variable', () => {
  const cases: [string, string][] = [
    ['PORT', 'abc'],
    ['PORT', '-1'],
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['PORT', '1e3'],
    ['PORT', '0x50'],
    ['PORT', '+80'],
    ['PORT', '99999999999999999999999'],
    ['HOST', 'my host'],
    ['HOST', 'http://example.com'],
    ['HOST', 'localhost:8080'],
    ['METRICS_PORT', '65536'],
    ['METRICS_PORT', 'on'],
    ['METRICS_HOST', 'localhost:9464'],
    ['MAX_MESSAGE_BYTES', '124'],
    ['MAX_MESSAGE_BYTES', '1073741825'],
    ['MAX_MESSAGE_BYTES', '4k'],
    ['SEND_QUEUE', '0'],
    ['SEND_QUEUE', '1000001'],
    ['ALLOWED_ORIGINS', 'chat.example.com'],
    ['ALLOWED_ORIGINS', 'https://chat.example.com/path'],
    ['ALLOWED_ORIGINS', 'https://chat.example.com?x=1'],
    ['ALLOWED_ORIGINS', 'https://user@chat.example.com'],
    ['ALLOWED_ORIGINS', 'https://ok.example, nonsense'],
    ['ALLOWED_ORIGINS', 'null'],
    ['PING_INTERVAL_MS', '9'],
    ['PING_INTERVAL_MS', 'soon'],
    ['PONG_TIMEOUT_MS', '9'],
    ['PONG_TIMEOUT_MS', '86400001'],
    ['RATE_LIMIT_PER_SEC', '0'],
    ['RATE_LIMIT_PER_SEC', '2.5'],
    ['RATE_LIMIT_BURST', '0'],
    ['MAX_CONNECTIONS', '0'],
    ['MAX_CONNECTIONS', 'many'],
    ['MAX_BUFFERED_BYTES', '1023'],
    ['HANDSHAKE_TIMEOUT_MS', '99'],
    ['HANDSHAKE_TIMEOUT_MS', '600001'],
    ['JOIN_TIMEOUT_MS', '99'],
    ['JOIN_TIMEOUT_MS', 'later'],
    ['HISTORY_SIZE', '0'],
    ['HISTORY_ON_JOIN', '101'],
    ['MAX_ROOMS', '0'],
    ['MAX_ROOMS_PER_CLIENT', '1001'],
    ['RESUME_GRACE_MS', '3600001'],
    ['CLOSE_TIMEOUT_MS', '99'],
    ['CLOSE_TIMEOUT_MS', '3600001'],
    ['COMPRESSION', 'yes'],
    ['COMPRESSION', '1'],
    ['COMPRESSION', 'deflate'],
    ['REDIS_URL', 'localhost:6379'],
    ['REDIS_URL', 'rediss://host'],
    ['WORKERS', '2'],
    ['NODE_ID', 'has space'],
    ['NODE_TTL_MS', '199'],
  ];
  it.each(cases)('%s=%j', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.variable).toBe(name);
    expect(error.name).toBe('ConfigError');
    expect(error.message.startsWith(`${name}: `)).toBe(true);
  });

  it('HISTORY_ON_JOIN cannot exceed HISTORY_SIZE; a small HISTORY_SIZE lowers the default', () => {
    expect(configError({ HISTORY_SIZE: '10', HISTORY_ON_JOIN: '20' }).message).toBe(
      'HISTORY_ON_JOIN: must not exceed HISTORY_SIZE (10), got 20',
    );
    expect(loadConfig({ HISTORY_SIZE: '10' }).historyOnJoin).toBe(10);
  });

  it('cluster mode: REDIS_URL as the Redis client reads it, WORKERS only with REDIS_URL', () => {
    expect(configError({ REDIS_URL: 'redis://:secret@host:99999' }).message).toBe(
      'REDIS_URL: invalid Redis URL "redis://:***@host:99999": the port must be a number from 1 to 65535, got "99999"',
    );
    expect(configError({ WORKERS: '2' }).message).toBe(
      'WORKERS: needs REDIS_URL: the worker processes share the chat through Redis',
    );
    const env = { REDIS_URL: 'redis://10.0.0.5:6380/2', WORKERS: '4', NODE_ID: 'eu-1', NODE_TTL_MS: '5000' };
    const config = loadConfig(env);
    expect([config.redisUrl, config.workers, config.nodeId, config.nodeTtlMs]).toEqual([
      'redis://10.0.0.5:6380/2', 4, 'eu-1', 5000,
    ]);
  });

  it('metrics: off unless METRICS_PORT is set, on a port of their own, loopback by default', () => {
    expect(loadConfig({}).metricsPort).toBeNull();
    expect(configError({ PORT: '8080', METRICS_PORT: '8080' }).message).toBe(
      'METRICS_PORT: must differ from PORT (8080): the metrics have a listener of their own',
    );
    expect(configError({ METRICS_HOST: 'localhost:9464' }).message).toBe(
      'METRICS_HOST: expected a host name or IP address (the port goes in METRICS_PORT), got "localhost:9464"',
    );
    expect(loadConfig({ PORT: '0', METRICS_PORT: '0' }).metricsPort).toBe(0); // both pick a free port
  });

  it('says what it expected and what it got', () => {
    expect(configError({ PORT: 'abc' }).message).toBe('PORT: expected a whole number from 0 to 65535, got "abc"');
    expect(configError({ PORT: '70000' }).message).toBe('PORT: must be from 0 to 65535, got 70000');
    expect(configError({ COMPRESSION: 'yes' }).message).toBe('COMPRESSION: expected on or off, got "yes"');
  });

  it('the heartbeat must time out after the ping period: blames the variable that was set', () => {
    // PONG_TIMEOUT_MS set too low for the (default) ping period.
    expect(configError({ PONG_TIMEOUT_MS: '1000' }).variable).toBe('PONG_TIMEOUT_MS');
    expect(configError({ PING_INTERVAL_MS: '100', PONG_TIMEOUT_MS: '100' }).variable).toBe('PONG_TIMEOUT_MS');
    // PING_INTERVAL_MS set at or above the (default) pong timeout.
    expect(configError({ PING_INTERVAL_MS: '60000' }).variable).toBe('PING_INTERVAL_MS');
    expect(configError({ PING_INTERVAL_MS: '60000', PONG_TIMEOUT_MS: '' }).variable).toBe('PING_INTERVAL_MS');
  });

  it('reads process.env when called without an argument', () => {
    const saved = process.env.SEND_QUEUE;
    process.env.SEND_QUEUE = '0';
    try {
      expect(() => loadConfig()).toThrow(ConfigError);
    } finally {
      if (saved === undefined) delete process.env.SEND_QUEUE;
      else process.env.SEND_QUEUE = saved;
    }
  });
});

describe('loadConfig: operations (TLS, proxies, per-address limits, log format)', () => {
  it('TRUST_PROXY: addresses and CIDR ranges, normalised; anything else names the entry', () => {
    expect(loadConfig({ TRUST_PROXY: ' 10.1.2.3/8 , ::ffff:127.0.0.1,2001:DB8::/32 ' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '127.0.0.1/32',
      '2001:db8::/32',
    ]);
    expect(configError({ TRUST_PROXY: '127.0.0.1, localhost' }).message).toBe(
      'TRUST_PROXY: "localhost" is not an IP address or a CIDR range like 10.0.0.0/8 or 2001:db8::/32',
    );
    expect(configError({ TRUST_PROXY: '10.0.0.0/33' }).variable).toBe('TRUST_PROXY');
  });

  it('per-address limits: whole numbers, 0 is off', () => {
    expect(loadConfig({ MAX_CONNECTIONS_PER_IP: '0', HANDSHAKE_RATE_PER_IP: '0' })).toMatchObject({
      maxConnectionsPerIp: 0,
      handshakeRatePerIp: 0,
    });
    expect(configError({ MAX_CONNECTIONS_PER_IP: '-1' }).message).toBe(
      'MAX_CONNECTIONS_PER_IP: expected a whole number from 0 to 1000000, got "-1"',
    );
    expect(configError({ HANDSHAKE_RATE_PER_IP: '2.5' }).variable).toBe('HANDSHAKE_RATE_PER_IP');
  });

  it('LOG_FORMAT: text or json, in any letter case', () => {
    expect(loadConfig({ LOG_FORMAT: 'JSON' }).logFormat).toBe('json');
    expect(configError({ LOG_FORMAT: 'yaml' }).message).toBe('LOG_FORMAT: expected text or json, got "yaml"');
  });

  it('TLS_CERT_FILE and TLS_KEY_FILE come together (the files are checked when the server starts)', () => {
    expect(configError({ TLS_CERT_FILE: '/x/cert.pem' }).message).toBe('TLS_KEY_FILE: is needed with TLS_CERT_FILE');
    expect(configError({ TLS_KEY_FILE: '/x/key.pem' }).message).toBe('TLS_CERT_FILE: is needed with TLS_KEY_FILE');
  });
});
