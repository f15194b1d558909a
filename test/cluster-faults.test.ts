/**
 * A cluster when things break, with real processes and a real redis-server:
 *   - a node killed with SIGKILL: its clients resume on the others with nothing lost; the users that do not
 *     come back leave, once, announced by one survivor; /clients agrees on the remaining nodes;
 *   - Redis restarted without persistence: requests during the outage are refused with their cid, new
 *     logins with 1013, /healthz is 503, connected clients stay; then the node is back with a `resync`;
 *   - only the subscriber connections killed (CLIENT KILL TYPE pubsub): nothing is lost;
 *   - one node's Redis link blackholed past its lease: the others reap its users; healed, it forgets
 *     them and serves again;
 *   - WORKERS: N processes behind one port; a worker killed is replaced and its clients resume on the
 *     others; SIGTERM to the primary closes every client with 1001 and exits 0.
 * Waits are for events (log lines, messages); NODE_TTL_MS is short so the reaping tests stay quick.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisClient } from '../src/redis';
import { getJson, startCluster, startNode, type NodeProcess, type TestCluster } from './helpers/cluster';
import { ChatPeer, type ChatMsg } from './helpers/chat';
import { findRedisServer, startRedis, type RedisServer } from './helpers/redis-server';
import { all, hello, next, positions, request, type Msg } from './helpers/v2';

const binary = findRedisServer();
if (binary === undefined && process.env.CI) throw new Error('CI needs redis-server: apt-get install redis-server');
const root = fileURLToPath(new URL('..', import.meta.url));

let cluster: TestCluster | undefined;
const cleanup: (() => Promise<unknown>)[] = [];
const peers: ChatPeer[] = [];
afterEach(async (ctx) => {
  if (process.env.DEBUG_CLUSTER && ctx.task.result?.state === 'fail') {
    for (const n of cluster?.nodes ?? []) process.stderr.write(`==== ${n.id}\n${n.output.slice(-4000)}\n`);
    for (const p of peers) process.stderr.write(`---- peer ${JSON.stringify(all(p).slice(-6))}\n`);
  }
  for (const p of peers.splice(0)) p.conn.terminate();
  await cluster?.close();
  cluster = undefined;
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function member(port: number, name: string): Promise<{ peer: ChatPeer; token: string }> {
  const r = await hello(port, name);
  peers.push(r.peer);
  await next(r.peer, (m) => m.type === 'join' && m.name === name);
  return { peer: r.peer, token: r.welcome.token };
}

async function eventually(peer: ChatPeer, match: (m: Msg) => boolean): Promise<Msg> {
  await peer.until((ms: readonly ChatMsg[]) => ms.some((m) => match(m as unknown as Msg)));
  return all(peer).find(match)!;
}

const leaveOf = (name: string) => (m: Msg): boolean => m.type === 'leave' && m.name === name;

async function lobbyHistory(node: NodeProcess): Promise<Msg[]> {
  return ((await getJson(node, '/rooms/lobby/history')).body as { messages: Msg[] }).messages;
}

describe.skipIf(binary === undefined)('a cluster when things break', () => {
  it('kill -9 of a node: its clients resume elsewhere, recovered; the others leave once; /clients agrees', async () => {
    cluster = await startCluster(3, { env: { NODE_TTL_MS: '2000', RESUME_GRACE_MS: '60000' } });
    const [n0, n1, n2] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
    const { peer: alice } = await member(n0.port, 'alice');
    const { peer: bob } = await member(n1.port, 'bob');
    const { peer: carol, token } = await member(n2.port, 'carol');
    await member(n2.port, 'dave');
    request(carol, { type: 'join', room: 'rust' });
    await next(carol, (m) => m.type === 'join' && m.stream === 'rust');
    request(alice, { type: 'private', to: 'carol', message: 'before', cid: 'p1' });
    await next(carol, 'private');
    const at = positions(carol);

    await n2.stop('SIGKILL');
    // Said while carol is away, on a live node: she gets it on resuming.
    request(alice, { type: 'private', to: 'carol', message: 'while away', cid: 'p2' });
    await eventually(alice, (m) => m.cid === 'p2' && m.type === 'ack');
    const back = await hello(n0.port, 'carol', { token, resume: at });
    peers.push(back.peer);
    expect(back.welcome.streams.map((s) => [s.stream, s.recovered])).toEqual([
      ['lobby', true],
      ['rust', true],
      ['@carol', true],
    ]);
    expect(await next(back.peer, 'private')).toMatchObject({ message: 'while away', stream: '@carol' });

    // dave does not come back: within NODE_TTL_MS a survivor ends his session; everyone hears it once.
    for (const p of [alice, bob, back.peer]) await eventually(p, leaveOf('dave'));
    expect(all(alice).filter(leaveOf('carol'))).toEqual([]);
    const reaped = [n0, n1].flatMap((n) => n.output.split('\n').filter((l) => / reaped node=n2 /.test(l)));
    expect(reaped.map((l) => Number(/sessions=(\d+)/.exec(l)![1])).reduce((a, b) => a + b, 0)).toBe(1);
    expect((await lobbyHistory(n1)).filter(leaveOf('dave'))).toHaveLength(1);
    const [on0, on1] = await Promise.all([getJson(n0, '/clients'), getJson(n1, '/clients')]);
    expect(on0).toEqual(on1);
    expect((on0.body as { clients: { name: string }[] }).clients.map((c) => c.name)).toEqual(['alice', 'bob', 'carol']);
  });

  it('Redis restarted: refusals with the cid, 1013, /healthz 503, no busy loop; back with a resync', async () => {
    cluster = await startCluster(2, { env: { RESUME_GRACE_MS: '60000' } });
    const [n0, n1] = cluster.nodes as [NodeProcess, NodeProcess];
    const { peer: alice, token } = await member(n0.port, 'alice');
    const { peer: bob } = await member(n1.port, 'bob');
    const before = positions(alice);
    const mark = n0.output.length;

    await cluster.redis.stop();
    await n0.logged(/redis_down node=n0/, mark);
    await n1.logged(/redis_down node=n1/, mark);
    request(alice, { type: 'chat', message: 'lost?', cid: 'c1' });
    request(alice, { type: 'join', room: 'rust', cid: 'c2' });
    request(alice, { type: 'history', stream: 'lobby', cid: 'c3' });
    request(alice, { type: 'private', to: 'bob', message: 'psst', cid: 'c4' });
    for (const id of ['c1', 'c2', 'c3', 'c4']) {
      expect(await eventually(alice, (m) => m.cid === id)).toMatchObject({
        type: 'error', user: 'System', message: 'the chat is unavailable: try again later', cid: id,
      });
    }
    const late = await ChatPeer.open(n1.port);
    peers.push(late);
    late.send(JSON.stringify({ type: 'hello', name: 'erin' }));
    expect(await late.next()).toMatchObject({ type: 'error', message: 'the chat is unavailable: try again later' });
    expect((await late.closed).code).toBe(1013);
    expect(await getJson(n0, '/healthz')).toEqual({ status: 503, body: { status: 'redis unavailable', node: 'n0' } });
    expect((await getJson(n0, '/clients')).status).toBe(503);
    // Reconnect attempts are spaced by the client's backoff, never a tight loop.
    await n0.logged(/redis_unreachable node=n0/, mark);
    const second = n0.output.length;
    await n0.logged(/redis_unreachable node=n0/, second);
    const attempts = n0.output.slice(mark).split('\n').filter((l) => /redis_unreachable/.test(l));
    const times = attempts.map((l) => Date.parse(l.slice(0, 24)));
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(20);
    expect(alice.conn.readyState).toBe('open');
    expect(bob.conn.readyState).toBe('open');

    await cluster.redis.start();
    await n0.logged(/redis_ready node=n0/, mark);
    await n1.logged(/redis_ready node=n1/, mark);
    // Redis lost everything: every stream starts a new epoch, and its members are told now.
    const resync = await eventually(alice, (m) => m.type === 'resync' && m.stream === 'lobby');
    const epoch = expect.stringMatching(/^[A-Za-z0-9_-]{8}$/) as unknown;
    expect(resync).toEqual({ type: 'resync', stream: 'lobby', epoch, offset: 0 });
    expect(resync.epoch).not.toBe(before.lobby!.epoch);
    await eventually(alice, (m) => m.type === 'resync' && m.stream === '@alice');
    await eventually(bob, (m) => m.type === 'resync' && m.stream === 'lobby');
    expect((await getJson(n0, '/healthz')).status).toBe(200);
    request(alice, { type: 'chat', message: 'back again', cid: 'c5' });
    expect(await next(bob, 'chat')).toMatchObject({ message: 'back again', offset: 1, epoch: resync.epoch });
    expect(((await getJson(n1, '/clients')).body as { count: number }).count).toBe(2);
    // Positions from before the outage cannot be recovered: the next resume says so.
    alice.conn.terminate();
    const again = await hello(n1.port, 'alice', { token, resume: before });
    peers.push(again.peer);
    expect(again.welcome.streams.map((s) => [s.stream, s.recovered])).toEqual([
      ['lobby', false],
      ['@alice', false],
    ]);
  });

  it('Redis away longer than the leases, back on its data: no node reaps a live one; sessions recover', async () => {
    cluster = await startCluster(3, {
      env: { NODE_TTL_MS: '2000', RESUME_GRACE_MS: '60000' },
      redis: { config: ['appendonly yes', 'appendfsync always'] },
    });
    const [n0, n1, n2] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
    const { peer: alice, token } = await member(n0.port, 'alice');
    const { peer: bob } = await member(n1.port, 'bob');
    await member(n2.port, 'carol');
    await next(alice, (m) => m.type === 'join' && m.name === 'carol');
    const before = positions(alice);
    const mark = [n0, n1].map((n) => n.output.length);
    await cluster.redis.stop();
    // Away for longer than a lease (NODE_TTL_MS / 2): n0's reconnect attempts say how long.
    const span = (): number => {
      const times = n0.output.slice(mark[0]).split('\n').filter((l) => /redis_unreachable/.test(l))
        .map((l) => Date.parse(l.slice(0, 24)));
      return times.length < 2 ? 0 : times[times.length - 1]! - times[0]!;
    };
    while (span() < 1_200) await n0.logged(/redis_unreachable node=n0/, n0.output.length);
    await cluster.redis.start();
    await n0.logged(/redis_ready node=n0/, mark[0]);
    await n1.logged(/redis_ready node=n1/, mark[1]);
    // A node that does die is reaped, in the same rounds that would have reaped the others.
    await n2.stop('SIGKILL');
    await eventually(alice, leaveOf('carol'));
    for (const n of [n0, n1]) expect(n.output).not.toMatch(/reaped node=n[01] /);
    expect(all(alice).filter((m) => m.type === 'resync')).toEqual([]);
    request(alice, { type: 'chat', message: 'still here', cid: 'h1' });
    expect(await next(bob, 'chat')).toMatchObject({ message: 'still here' });
    alice.conn.terminate();
    const back = await hello(n1.port, 'alice', { token, resume: before });
    peers.push(back.peer);
    expect(back.welcome.streams.every((s) => s.recovered)).toBe(true);
  });

  it('only the subscriber connections killed (CLIENT KILL TYPE pubsub): nothing lost, nothing twice', async () => {
    cluster = await startCluster(2);
    const [n0, n1] = cluster.nodes as [NodeProcess, NodeProcess];
    const { peer: alice } = await member(n0.port, 'alice');
    const { peer: bob } = await member(n1.port, 'bob');
    const admin = new RedisClient(cluster.redis.url());
    cleanup.push(() => admin.close());
    await admin.connect();
    const first = all(bob).find((m) => m.type === 'join' && m.name === 'bob')!.offset as number;
    expect(await admin.send(['CLIENT', 'KILL', 'TYPE', 'pubsub'])).toBe(2);
    const COUNT = 60;
    for (let i = 0; i < COUNT; i++) request(alice, { type: 'chat', message: `m${i}` });
    await next(bob, (m) => m.type === 'chat' && m.message === `m${COUNT - 1}`);
    const chats = all(bob).filter((m) => m.type === 'chat');
    expect(chats.map((m) => m.message)).toEqual(Array.from({ length: COUNT }, (_, i) => `m${i}`));
    expect(chats.map((m) => m.offset)).toEqual(Array.from({ length: COUNT }, (_, i) => first + 1 + i));
    await n1.logged(/redis_subscriber_down node=n1/);
  });

  it('one node blackholed past its lease: the others reap its users; healed, it forgets them and serves', async () => {
    cluster = await startCluster(3, { proxied: true, env: { NODE_TTL_MS: '2000' } });
    const [n0, n1, n2] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
    const { peer: alice } = await member(n0.port, 'alice');
    const dave = await ChatPeer.join(n2.port, 'dave');
    peers.push(dave);
    await next(alice, (m) => m.type === 'join' && m.name === 'dave');
    const mark = n2.output.length;

    n2.proxy!.blackhole();
    await eventually(alice, leaveOf('dave'));
    n2.proxy!.heal();
    const lapsed = await n2.logged(/lease_lapsed node=n2/, mark);
    await n2.logged(/redis_ready node=n2/, n2.output.indexOf(lapsed));
    const closed = await dave.closed;
    expect([closed.code, closed.reason]).toEqual([1013, 'session ended: reconnect']);
    // Registered again: it serves new logins, and everyone sees the same roster.
    const { peer: erin } = await member(n2.port, 'erin');
    await next(alice, (m) => m.type === 'join' && m.name === 'erin');
    request(erin, { type: 'chat', message: 'hello from n2' });
    expect(await next(alice, 'chat')).toMatchObject({ user: 'erin', message: 'hello from n2' });
    const rosters = await Promise.all([n0, n1, n2].map((n) => getJson(n, '/clients')));
    for (const r of rosters) expect(r).toEqual(rosters[0]);
    expect((rosters[0]!.body as { clients: { name: string }[] }).clients.map((c) => c.name)).toEqual(['alice', 'erin']);
    expect((await lobbyHistory(n0)).filter(leaveOf('dave'))).toHaveLength(1);
  });
});

describe.skipIf(binary === undefined)('WORKERS: node processes behind one port', () => {
  let redis: RedisServer | undefined;
  afterEach(async () => {
    await redis?.dispose();
    redis = undefined;
  });

  it('WORKERS without REDIS_URL is a configuration error (exit 2)', async () => {
    const child = spawn(process.execPath, ['dist/server.js'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', WORKERS: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toBe(
      'wschat: invalid configuration: WORKERS: needs REDIS_URL: the worker processes share the chat through Redis\n',
    );
  });

  it('a killed worker is replaced and its clients resume on the others; SIGTERM: 1001 to all, exit 0', async () => {
    redis = await startRedis();
    const primary = await startNode(redis.url(), 'w', { WORKERS: '2', RESUME_GRACE_MS: '60000' }, undefined,
      /redis_ready node=w\.[01]\.0/);
    cleanup.push(() => primary.stop('SIGKILL'));
    await primary.logged(/redis_ready node=w\.0\.0/);
    await primary.logged(/redis_ready node=w\.1\.0/);
    const pid = Number(/cluster_node node=w\.0\.0 pid=(\d+)/.exec(primary.output)![1]);
    // Enough clients that some land on each worker (the primary hands connections out in turn).
    const clients = await Promise.all(Array.from({ length: 4 }, (_, i) => member(primary.port, `u${i}`)));
    const mark = primary.output.length;
    process.kill(pid, 'SIGKILL');
    await primary.logged(new RegExp(`worker_died pid=${pid} exit="SIGKILL" restartInMs=\\d+`), mark);
    let resumed = 0;
    for (const [i, { peer, token }] of clients.entries()) {
      // Still served (it answers a request), or on the dead worker (its connection ends, maybe only now).
      request(peer, { type: 'join', room: 'lobby', cid: 'probe' }); // "you are already in #lobby"
      const answered = await eventually(peer, (m) => m.cid === 'probe').then(() => true, () => false);
      if (answered) continue;
      const back = await hello(primary.port, `u${i}`, { token, resume: positions(peer) });
      peers.push(back.peer);
      expect(back.welcome.streams.every((s) => s.recovered)).toBe(true);
      clients[i] = { peer: back.peer, token };
      resumed++;
    }
    expect(resumed).toBeGreaterThan(0);
    await primary.logged(/redis_ready node=w\.0\.1/, mark);

    primary.child.kill('SIGTERM');
    const closes = await Promise.all(clients.map(({ peer }) => peer.closed));
    for (const c of closes) expect([c.code, c.reason]).toEqual([1001, 'server shutting down']);
    expect(await primary.exited).toEqual({ code: 0, signal: null });
  });
});
