/**
 * Prometheus metrics: the exposition format (exact text), the listener of its own (METRICS_HOST and
 * METRICS_PORT; /metrics is not on the chat port), counters that move with real traffic (messages,
 * close codes, drops, refusals by status), and `promtool check metrics` on a server that has seen all that.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it, onTestFinished } from 'vitest';
import { merge, render, type Family } from '../src/metrics/exposition';
import { ProcessCollector } from '../src/metrics/process';
import { CloseCode, Opcode } from '../src/websocket';
import { httpRequest, NO_RATE_LIMIT, startApp, type TestApp } from './helpers/app';
import { findBinary } from './helpers/binaries';
import { ChatPeer, chatFrom, joined, rawJoin } from './helpers/chat';
import { startNode } from './helpers/cluster';
import { findRedisServer, startRedis } from './helpers/redis-server';
import { expectRefusal, RawPeer } from './helpers/raw-peer';
import { hello } from './helpers/v2';
import { headerLines, upgradeRequest } from './helpers/wire';

describe('the exposition format 0.0.4', () => {
  const families: Family[] = [
    { name: 'demo_requests_total', help: 'Requests, by path.\nSecond line \\ here.', type: 'counter', samples: [
      { labels: { path: '/a "quoted"\\ \n' }, value: 3 },
      { labels: { path: '/b' }, value: 0 },
    ] },
    { name: 'demo_temperature', help: 'Now.', type: 'gauge', samples: [
      { value: 0.25 },
      { labels: { x: 'y' }, value: -2 },
    ] },
    { name: 'demo_depth', help: 'Depths.', type: 'histogram', bounds: [1, 2.5], samples: [
      { counts: [2, 0, 1], sum: 7.5, count: 3 },
    ] },
    { name: 'demo_nothing', help: 'No samples yet.', type: 'gauge', samples: [] },
  ];

  it('renders HELP and TYPE once per family, escapes, and makes histogram buckets cumulative', () => {
    expect(render(families)).toBe(
      '# HELP demo_requests_total Requests, by path.\\nSecond line \\\\ here.\n' +
        '# TYPE demo_requests_total counter\n' +
        'demo_requests_total{path="/a \\"quoted\\"\\\\ \\n"} 3\n' +
        'demo_requests_total{path="/b"} 0\n' +
        '# HELP demo_temperature Now.\n' +
        '# TYPE demo_temperature gauge\n' +
        'demo_temperature 0.25\n' +
        'demo_temperature{x="y"} -2\n' +
        '# HELP demo_depth Depths.\n' +
        '# TYPE demo_depth histogram\n' +
        'demo_depth_bucket{le="1"} 2\n' +
        'demo_depth_bucket{le="2.5"} 2\n' +
        'demo_depth_bucket{le="+Inf"} 3\n' +
        'demo_depth_sum 7.5\n' +
        'demo_depth_count 3\n' +
        '# HELP demo_nothing No samples yet.\n' +
        '# TYPE demo_nothing gauge\n',
    );
  });

  it('merges sources: one family once, each sample with its source label', () => {
    const one: Family[] = [{ name: 'a_total', help: 'A.', type: 'counter', samples: [{ value: 1 }] }];
    const two: Family[] = [
      { name: 'a_total', help: 'A.', type: 'counter', samples: [{ labels: { k: 'v' }, value: 2 }] },
      { name: 'b', help: 'B.', type: 'gauge', samples: [{ value: 5 }] },
    ];
    const sources = [{ labels: { worker: '0' }, families: one }, { labels: { worker: '1' }, families: two }];
    expect(render(merge(sources))).toBe(
      '# HELP a_total A.\n# TYPE a_total counter\na_total{worker="0"} 1\na_total{worker="1",k="v"} 2\n' +
        '# HELP b B.\n# TYPE b gauge\nb{worker="1"} 5\n',
    );
  });

  it('refuses a counter without _total and an invalid name', () => {
    expect(() => render([{ name: 'a', help: 'A.', type: 'counter', samples: [] }])).toThrow('must end in _total');
    expect(() => render([{ name: 'a-b', help: 'A.', type: 'gauge', samples: [] }])).toThrow('invalid metric name');
  });
});

describe('the process collector', () => {
  it('reads CPU, memory and file descriptors; a blocked event loop shows in the delay', async () => {
    const collector = new ProcessCollector();
    onTestFinished(() => collector.stop());
    const read = (families: Family[], name: string): number =>
      (families.find((f) => f.name === name)!.samples[0] as { value: number }).value;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = collector.collect();
    // perf_hooks drops the first interval after the reset that collect() does: let one pass.
    await new Promise((resolve) => setTimeout(resolve, 30));
    const blockedUntil = performance.now() + 100;
    while (performance.now() < blockedUntil); // the event loop is stuck for 100 ms
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = collector.collect();
    // Blocked 100 ms: one sample waited at least that long, 10 ms of which is the sampling interval.
    expect(read(after, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.09);
    expect(read(after, 'process_cpu_seconds_total')).toBeGreaterThan(read(before, 'process_cpu_seconds_total'));
    expect(read(after, 'process_resident_memory_bytes')).toBeGreaterThan(read(after, 'nodejs_heap_size_used_bytes'));
    expect(read(after, 'process_open_fds')).toBeGreaterThan(2);
    expect(read(after, 'process_start_time_seconds')).toBeLessThanOrEqual(Date.now() / 1000);
  });
});

/** The exposition of a running app. */
async function scrape(t: TestApp): Promise<string> {
  const res = await httpRequest(t.app.metricsAddress!.port, '/metrics');
  expect(res.status).toBe(200);
  return res.body;
}

/** The value of one sample, e.g. `wschat_http_refusals_total{status="429"}`; undefined if absent. */
function value(text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return undefined;
}

/** The code of the server's close frame to a recording raw peer. */
async function closeCodeOf(peer: RawPeer): Promise<number> {
  await peer.waitForFrame((f) => f.opcode === Opcode.Close);
  return peer.closeFrame()!.code;
}

async function metricsApp(env: Record<string, string> = {}): Promise<TestApp> {
  return startApp({ METRICS_PORT: '0', ...env });
}

describe('the metrics listener', () => {
  it('is a listener of its own on METRICS_HOST (loopback by default); /metrics is 404 on the chat port', async () => {
    const t = await metricsApp();
    const address = t.app.metricsAddress!;
    expect(address.address).toBe('127.0.0.1');
    expect(address.port).not.toBe(t.port);
    expect((await httpRequest(t.port, '/metrics')).status).toBe(404);
    const got = await httpRequest(address.port, '/metrics');
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(got.body).toContain('# TYPE wschat_websocket_connections_open gauge\n');
    const head = await httpRequest(address.port, '/metrics', 'HEAD');
    expect([head.status, head.headers['content-type'], head.body]).toEqual([200, got.headers['content-type'], '']);
    const post = await httpRequest(address.port, '/metrics', 'POST');
    expect([post.status, post.headers.allow]).toEqual([405, 'GET, HEAD']);
    expect((await httpRequest(address.port, '/')).status).toBe(404);
    expect((await httpRequest(address.port, '/ws')).status).toBe(404);
  });

  it('is off without METRICS_PORT', async () => {
    const t = await startApp();
    expect(t.app.metricsAddress).toBeUndefined();
  });
});

describe('counters move with real traffic', () => {
  it('connections, messages, bytes, requests, deliveries, sessions, close codes', async () => {
    const t = await metricsApp({ ...NO_RATE_LIMIT, COMPRESSION: 'off' });
    const before = await scrape(t);
    expect(value(before, 'wschat_websocket_connections_open')).toBe(0);
    expect(value(before, 'wschat_chat_requests_total{type="chat"}')).toBe(0);

    const ann = await ChatPeer.join(t.port, 'ann');
    const bob = await ChatPeer.join(t.port, 'bob');
    await ann.next(joined('bob'));
    for (let i = 0; i < 3; i++) ann.send(`hello ${i}`);
    await bob.next(chatFrom('ann', 'hello 2'));
    await ann.next(chatFrom('ann', 'hello 2'));

    const during = await scrape(t);
    expect(value(during, 'wschat_websocket_connections_open')).toBe(2);
    expect(value(during, 'wschat_websocket_connections_opened_total')).toBe(2);
    expect(value(during, 'wschat_http_upgrades_total')).toBe(2);
    expect(value(during, 'wschat_chat_sessions')).toBe(2);
    expect(value(during, 'wschat_chat_clients')).toBe(2);
    expect(value(during, 'wschat_chat_hellos_total')).toBe(2);
    expect(value(during, 'wschat_chat_requests_total{type="chat"}')).toBe(3);
    // Names (2) and chat messages (3) read by the server.
    expect(value(during, 'wschat_websocket_messages_received_total')).toBe(5);
    // ann: its join, bob's join, 3 chats; bob: its join, 3 chats.
    expect(value(during, 'wschat_chat_deliveries_total')).toBe(9);
    expect(value(during, 'wschat_websocket_messages_sent_total')).toBe(9);
    // The lobby holds 2 joins and 3 chats.
    expect(value(during, 'wschat_chat_history_messages')).toBe(5);
    expect(value(during, 'wschat_websocket_received_bytes_total')).toBeGreaterThan(0);
    expect(value(during, 'wschat_websocket_sent_bytes_total')).toBeGreaterThan(0);
    expect(value(during, 'wschat_chat_send_queue_depth_count')).toBeGreaterThan(0);

    // bob closes with 4000: the server receives 4000 and echoes it (§5.5.1).
    await bob.close(4000, 'bye');
    await ann.close(); // 1000
    await t.untilConnections(0);
    const after = await scrape(t);
    expect(value(after, 'wschat_websocket_connections_open')).toBe(0);
    expect(value(after, 'wschat_chat_sessions')).toBe(0);
    expect(value(after, 'wschat_websocket_close_codes_received_total{code="4000"}')).toBe(1);
    expect(value(after, 'wschat_websocket_close_codes_sent_total{code="4000"}')).toBe(1);
    expect(value(after, 'wschat_websocket_close_codes_received_total{code="1000"}')).toBe(1);
    expect(value(after, 'wschat_websocket_close_codes_sent_total{code="1000"}')).toBe(1);
  });

  it('compression: messages compressed, frame bytes before and after', async () => {
    const t = await metricsApp({ ...NO_RATE_LIMIT });
    const ann = await ChatPeer.join(t.port, 'ann', { compression: true });
    const text = 'a compressible message, '.repeat(20);
    ann.send(text);
    await ann.next(chatFrom('ann', text));
    const got = await scrape(t);
    const before = value(got, 'wschat_websocket_deflate_input_bytes_total')!;
    const after = value(got, 'wschat_websocket_deflate_output_bytes_total')!;
    expect(value(got, 'wschat_websocket_compressed_messages_sent_total')).toBe(2); // its join, its chat
    expect(after).toBeLessThan(before / 2);
  });

  it('refusals by status: 400, 403, 404, 429, 431 and 503', async () => {
    const t = await metricsApp({ MAX_CONNECTIONS_PER_IP: '1' });
    await expectRefusal(t.port, upgradeRequest(t.port, '/ws', { 'Sec-WebSocket-Key': null }), 400);
    await expectRefusal(t.port, upgradeRequest(t.port, '/ws', { Origin: 'http://evil.example' }), 403);
    await expectRefusal(t.port, upgradeRequest(t.port, '/nowhere'), 404);
    await expectRefusal(t.port, upgradeRequest(t.port, '/ws', headerLines(70)), 431);
    const held = await RawPeer.upgrade(t.port, '/ws');
    await expectRefusal(t.port, upgradeRequest(t.port, '/ws'), 429);
    await expectRefusal(t.port, upgradeRequest(t.port, '/ws'), 429);
    held.destroy();
    const full = await metricsApp({ MAX_CONNECTIONS: '1' });
    const first = await RawPeer.upgrade(full.port, '/ws');
    await expectRefusal(full.port, upgradeRequest(full.port, '/ws'), 503);
    first.destroy();

    const got = await scrape(t);
    const refusals = got.split('\n').filter((l) => l.startsWith('wschat_http_refusals_total'));
    expect(refusals).toEqual([
      'wschat_http_refusals_total{status="400"} 1',
      'wschat_http_refusals_total{status="403"} 1',
      'wschat_http_refusals_total{status="404"} 1',
      'wschat_http_refusals_total{status="429"} 2',
      'wschat_http_refusals_total{status="431"} 1',
    ]);
    expect(value(got, 'wschat_http_upgrades_total')).toBe(7);
    expect(value(await scrape(full), 'wschat_http_refusals_total{status="503"}')).toBe(1);
  });

  it('drops by reason: rate limit, binary data, protocol error, too big', async () => {
    const t = await metricsApp({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '1', MAX_MESSAGE_BYTES: '1000' });
    const flooder = await rawJoin(t.port, 'flooder');
    for (let i = 0; i < 4; i++) flooder.send(Opcode.Text, `flood ${i}`);
    expect(await closeCodeOf(flooder)).toBe(CloseCode.PolicyViolation);
    const binary = await rawJoin(t.port, 'binary');
    binary.send(Opcode.Binary, Buffer.from([1, 2, 3]));
    expect(await closeCodeOf(binary)).toBe(CloseCode.UnsupportedData);
    const broken = await rawJoin(t.port, 'broken');
    broken.send(Opcode.Text, 'x', { rsv: 2 });
    expect(await closeCodeOf(broken)).toBe(CloseCode.ProtocolError);
    const big = await rawJoin(t.port, 'big');
    big.send(Opcode.Text, 'x'.repeat(1001));
    expect(await closeCodeOf(big)).toBe(CloseCode.MessageTooBig);

    const got = await scrape(t);
    const dropped = Object.fromEntries(
      got.split('\n')
        .filter((l) => l.startsWith('wschat_clients_dropped_total{'))
        .map((l) => [/reason="([a-z_]+)"/.exec(l)![1]!, Number(l.split(' ')[1])]),
    );
    expect(dropped).toEqual({
      buffer_full: 0, heartbeat: 0, protocol_error: 1, invalid_payload: 0, too_big: 1, close_timeout: 0,
      send_queue_full: 0, rate_limit: 1, unsupported_data: 1, join_timeout: 0, hello_refused: 0, replaced: 0,
    });
    expect(value(got, 'wschat_websocket_close_codes_sent_total{code="1008"}')).toBe(1);
    expect(value(got, 'wschat_websocket_close_codes_sent_total{code="1003"}')).toBe(1);
    expect(value(got, 'wschat_websocket_close_codes_sent_total{code="1002"}')).toBe(1);
    expect(value(got, 'wschat_websocket_close_codes_sent_total{code="1009"}')).toBe(1);
  });
});

describe('drops the chat decides and the heartbeat', () => {
  it('hello refused, replaced (4001), join timeout, heartbeat', async () => {
    const t = await metricsApp({ ...NO_RATE_LIMIT, JOIN_TIMEOUT_MS: '100', RESUME_GRACE_MS: '0' });
    const first = await hello(t.port, 'ann');
    const taken = await ChatPeer.open(t.port);
    taken.send(JSON.stringify({ type: 'hello', name: 'ann' }));
    expect((await taken.closed).code).toBe(CloseCode.PolicyViolation);
    const again = await hello(t.port, 'ann', { token: first.welcome.token });
    expect((await first.peer.closed).code).toBe(4001);
    const silent = await RawPeer.upgrade(t.port, '/ws');
    silent.record({ answerClose: true });
    expect(await closeCodeOf(silent)).toBe(CloseCode.PolicyViolation); // no name in time
    const got = await scrape(t);
    expect(value(got, 'wschat_clients_dropped_total{reason="hello_refused"}')).toBe(1);
    expect(value(got, 'wschat_clients_dropped_total{reason="replaced"}')).toBe(1);
    expect(value(got, 'wschat_clients_dropped_total{reason="join_timeout"}')).toBe(1);
    expect(value(got, 'wschat_websocket_close_codes_sent_total{code="4001"}')).toBe(1);
    expect(value(got, 'wschat_chat_resumes_total{outcome="none"}')).toBeGreaterThan(0);

    // A recording raw peer never answers pings: after its name, the heartbeat gives up on it.
    const beating = await metricsApp({ PING_INTERVAL_MS: '50', PONG_TIMEOUT_MS: '200' });
    const deaf = await rawJoin(beating.port, 'deaf');
    await deaf.closed;
    expect(value(await scrape(beating), 'wschat_clients_dropped_total{reason="heartbeat"}')).toBe(1);
    await again.peer.close();
  });
});

const promtool = findBinary([process.env.PROMTOOL, '/usr/bin/promtool', 'promtool'], ['--version']);

describe('promtool check metrics', () => {
  it.skipIf(promtool === undefined && !process.env.CI)(
    'finds no problem in the output of a server that has seen traffic, refusals and drops',
    async () => {
      expect(promtool, 'promtool (Debian package prometheus) is needed').toBeDefined();
      const t = await metricsApp({ MAX_CONNECTIONS_PER_IP: '2', RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '1' });
      const ann = await ChatPeer.join(t.port, 'ann', { compression: true });
      ann.send('hello there, everybody in the lobby');
      await ann.next(chatFrom('ann'));
      await expectRefusal(t.port, upgradeRequest(t.port, '/ws', { 'Sec-WebSocket-Version': '8' }), 426);
      const flooder = await rawJoin(t.port, 'flooder');
      await expectRefusal(t.port, upgradeRequest(t.port, '/ws'), 429);
      for (let i = 0; i < 4; i++) flooder.send(Opcode.Text, `flood ${i}`);
      await closeCodeOf(flooder);
      const text = await scrape(t);
      expect(value(text, 'wschat_clients_dropped_total{reason="rate_limit"}')).toBe(1);
      expect(value(text, 'wschat_http_refusals_total{status="429"}')).toBe(1);
      const run = spawnSync(promtool!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      const verdict = { status: run.status, stdout: run.stdout, stderr: run.stderr };
      expect(verdict).toEqual({ status: 0, stdout: '', stderr: '' });
    },
  );
});

describe.skipIf(findRedisServer() === undefined)('WORKERS=N: the primary serves every worker\'s metrics', () => {
  it('one exposition: each family once, samples labelled worker="primary", "0", "1"; promtool agrees', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.dispose());
    const primary = await startNode(redis.url(), 'm', { WORKERS: '2', METRICS_PORT: '0' }, undefined,
      /redis_ready node=m\.[01]\.0/);
    onTestFinished(() => void primary.stop('SIGKILL'));
    await primary.logged(/redis_ready node=m\.0\.0/);
    await primary.logged(/redis_ready node=m\.1\.0/);
    const line = await primary.logged(/metrics url="http:\/\/127\.0\.0\.1:\d+\/metrics"/);
    const port = Number(/:(\d+)\/metrics/.exec(line)![1]);
    const ann = await ChatPeer.join(primary.port, 'ann');
    onTestFinished(() => void ann.close());
    const text = (await httpRequest(port, '/metrics')).body;
    expect(text.match(/^# TYPE wschat_websocket_connections_open gauge$/gm)).toHaveLength(1);
    const open = text.split('\n').filter((l) => l.startsWith('wschat_websocket_connections_open{'));
    expect(open.map((l) => l.replace(/ \d+$/, ''))).toEqual([
      'wschat_websocket_connections_open{worker="0"}',
      'wschat_websocket_connections_open{worker="1"}',
    ]);
    expect(open.reduce((sum, l) => sum + Number(l.split(' ')[1]), 0)).toBe(1);
    expect(value(text, 'process_resident_memory_bytes{worker="primary"}')).toBeGreaterThan(0);
    expect(value(text, 'process_resident_memory_bytes{worker="1"}')).toBeGreaterThan(0);
    expect(value(text, 'wschat_redis_link_up{worker="0",link="commands"}')).toBe(1);
    expect(value(text, 'wschat_redis_link_up{worker="1",link="subscriber"}')).toBe(1);
    if (promtool !== undefined) {
      const run = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      const verdict = { status: run.status, stdout: run.stdout, stderr: run.stderr };
      expect(verdict).toEqual({ status: 0, stdout: '', stderr: '' });
    }
  });
});
