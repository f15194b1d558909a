/**
 * The chat across nodes: real node processes (`node dist/server.js` with REDIS_URL) sharing a real
 * redis-server. Clients on different nodes see exactly what clients of one process would: the same
 * messages, the same offsets, in the same order; names are unique across nodes; /clients and /rooms answer
 * the same everywhere; a cid resent to another node is stored once; and the exactly-once run with cuts
 * where every reconnect goes to another node.
 *
 * Without redis-server the file is skipped locally; in CI a missing server fails it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { getJson, startCluster, type TestCluster } from './helpers/cluster';
import { ChatPeer, type ChatMsg } from './helpers/chat';
import { mulberry32 } from './helpers/rng';
import { findRedisServer } from './helpers/redis-server';
import { ResumingClient } from './helpers/resuming-client';
import { all, expectStored, hello, next, request, type Msg, type Welcome } from './helpers/v2';

const binary = findRedisServer();
if (binary === undefined && process.env.CI) throw new Error('CI needs redis-server: apt-get install redis-server');

let cluster: TestCluster | undefined;
const peers: ChatPeer[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) p.conn.terminate();
  await cluster?.close();
  cluster = undefined;
});

async function start(count: number, env: Record<string, string> = {}): Promise<TestCluster> {
  cluster = await startCluster(count, { env });
  return cluster;
}

/** A v2 client on `port` that has seen its own join notice. */
async function member(port: number, name: string): Promise<{ peer: ChatPeer; welcome: Welcome }> {
  const r = await hello(port, name);
  peers.push(r.peer);
  await next(r.peer, (m) => m.type === 'join' && m.name === name);
  return r;
}

const EPOCH = /^[A-Za-z0-9_-]{8}$/;

/** The first message received, before or after now, that matches: an ack may come before or after its message. */
async function eventually(peer: ChatPeer, match: (m: Msg) => boolean): Promise<Msg> {
  await peer.until((ms: readonly ChatMsg[]) => ms.some((m) => match(m as unknown as Msg)));
  return all(peer).find(match)!;
}
const cid = (id: string) => (m: Msg): boolean => m.cid === id;

describe.skipIf(binary === undefined)('a cluster of node processes', () => {
  it('chat, private messages and rooms across 3 nodes: every client sees the same exact messages', async () => {
    const c = await start(3);
    const [n0, n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0], typeof c.nodes[0]];
    const { peer: alice, welcome: wa } = await member(n0.port, 'alice');
    const { peer: bob } = await member(n1.port, 'bob');
    const { peer: carol, welcome: wc } = await member(n2.port, 'carol');
    const lobby = wa.streams[0]!.epoch;
    expect(lobby).toMatch(EPOCH);
    expect(wc.streams.map((s) => [s.stream, s.epoch === lobby || s.stream !== 'lobby', s.offset])).toEqual([
      ['lobby', true, 2],
      ['@carol', true, 0],
    ]);
    // Everyone, on every node, hears carol join at offset 3.
    for (const p of [alice, bob]) {
      expectStored(await next(p, (m) => m.type === 'join' && m.name === 'carol'), {
        type: 'join', user: 'System', message: 'carol joined the chat', name: 'carol', stream: 'lobby', offset: 3,
        epoch: lobby,
      });
    }

    // A chat message from n0: the same JSON on every node, and an ack for the sender.
    request(alice, { type: 'chat', message: 'hello everyone', cid: 'a-1' });
    const said = await Promise.all([alice, bob, carol].map((p) => next(p, 'chat')));
    for (const m of said) {
      const expected = { type: 'chat', user: 'alice', message: 'hello everyone', stream: 'lobby', offset: 4 };
      expectStored(m, { ...expected, epoch: lobby });
    }
    expect(new Set(said.map((m) => JSON.stringify(m))).size).toBe(1);
    const ack = { type: 'ack', cid: 'a-1', stream: 'lobby', offset: 4, epoch: lobby };
    expect(await eventually(alice, cid('a-1'))).toEqual(ack);

    // A private message from n1 to n2: stored in both inboxes, seen by those two only.
    request(bob, { type: 'private', to: 'Carol', message: 'psst', cid: 'b-1' });
    const toCarol = await next(carol, 'private');
    expectStored(toCarol, {
      type: 'private', user: 'bob', message: 'psst', to: 'carol', stream: '@carol', offset: 1,
      epoch: wc.streams[1]!.epoch,
    });
    const copy = await next(bob, 'private');
    expect(copy).toMatchObject({ user: 'bob', to: 'carol', stream: '@bob', offset: 1, time: toCarol.time });
    expect(await eventually(bob, cid('b-1'))).toMatchObject({ type: 'ack', stream: '@bob', offset: 1 });
    request(bob, { type: 'private', to: 'nobody', message: 'hi', cid: 'b-2' });
    expect(await eventually(bob, cid('b-2'))).toMatchObject({ type: 'error', message: 'nobody is not online' });

    // Rooms: carol (n2) and alice (n0) join #rust; bob (n1) is not in it and hears nothing of it.
    request(carol, { type: 'join', room: 'rust' });
    const joined = await next(carol, 'joined');
    const epoch = expect.stringMatching(EPOCH) as unknown;
    expect(joined).toEqual({ type: 'joined', room: 'rust', stream: 'rust', epoch, offset: 0 });
    await next(carol, (m) => m.type === 'join' && m.stream === 'rust');
    request(alice, { type: 'join', room: 'rust' });
    expect(await next(alice, 'joined')).toMatchObject({ room: 'rust', offset: 1 });
    // History first (carol's join), then alice's own join notice live.
    const history = await next(alice, (m) => m.stream === 'rust');
    expect(history).toMatchObject({ type: 'join', name: 'carol', offset: 1, history: true });
    expect(await next(alice, (m) => m.stream === 'rust')).toMatchObject({ type: 'join', name: 'alice', offset: 2 });
    expect(await next(carol, (m) => m.stream === 'rust')).toMatchObject({ type: 'join', name: 'alice', offset: 2 });
    request(carol, { type: 'chat', room: 'rust', message: 'rust talk' });
    for (const p of [alice, carol]) {
      expect(await next(p, 'chat')).toMatchObject({ user: 'carol', message: 'rust talk', stream: 'rust', offset: 3 });
    }
    request(bob, { type: 'chat', room: 'rust', message: 'let me in', cid: 'b-3' });
    expect(await eventually(bob, cid('b-3'))).toMatchObject({ type: 'error', message: 'you are not in #rust' });
    request(alice, { type: 'leave', room: 'rust' });
    expect(await next(alice, 'left')).toEqual({ type: 'left', room: 'rust' });
    expect(await next(carol, (m) => m.stream === 'rust')).toMatchObject({ type: 'leave', name: 'alice', offset: 4 });
    expect(all(bob).filter((m) => m.stream === 'rust')).toEqual([]);
    expect(all(alice).filter((m) => m.stream === 'rust' && m.offset === 4)).toEqual([]);

    // The lesson's protocol on n1: the same stored JSON, no copy of its own private messages.
    const dave = await ChatPeer.join(n1.port, 'dave');
    peers.push(dave);
    dave.send('@alice hi from the lesson');
    expect(await next(alice, 'private')).toMatchObject({ user: 'dave', to: 'alice', message: 'hi from the lesson' });
    dave.send('plain text');
    const plain = await dave.next((m: ChatMsg) => m.type === 'chat');
    expect(plain).toMatchObject({ user: 'dave', message: 'plain text', stream: 'lobby', offset: 6 });
    expect(dave.messages.filter((m) => m.type === 'private')).toEqual([]);

    // A name is unique across nodes, compared in its folded form.
    const impostor = await ChatPeer.open(n2.port);
    peers.push(impostor);
    impostor.send(JSON.stringify({ type: 'hello', name: 'ALICE' }));
    expect(await next(impostor, 'error')).toMatchObject({ message: 'the name ALICE is taken: choose another' });
    expect((await impostor.closed).code).toBe(1008);

    // /clients and /rooms: the same answer from every node, from Redis.
    const answers = await Promise.all(
      c.nodes.map(async (n) => [await getJson(n, '/clients'), await getJson(n, '/rooms')]),
    );
    for (const a of answers) expect(a).toEqual(answers[0]);
    const [clients, rooms] = answers[0]!;
    expect((clients!.body as { clients: { name: string }[] }).clients.map((r) => r.name)).toEqual([
      'alice', 'bob', 'carol', 'dave',
    ]);
    expect(rooms!.body).toEqual({
      rooms: [
        { room: 'lobby', members: 4, epoch: lobby, offset: 6 },
        { room: 'rust', members: 1, epoch: joined.epoch, offset: 4 },
      ],
    });
    expect((await getJson(n1, '/clients?room=rust')).body).toEqual({
      count: 1, clients: [{ name: 'carol', connectedAt: expect.any(String) }],
    });
    expect((await getJson(n0, '/clients?room=nope')).status).toBe(404);
    expect((await getJson(n2, '/healthz')).body).toEqual({ status: 'ok', node: 'n2' });
  });

  it('concurrent publishers on every node: contiguous offsets, every receiver the same order', async () => {
    const c = await start(3);
    const clients: ChatPeer[] = [];
    let first = 0;
    for (let i = 0; i < 6; i++) {
      const { peer, welcome } = await member(c.nodes[i % 3]!.port, `p${i}`);
      clients.push(peer);
      first = welcome.streams[0]!.offset + 1; // its own join notice
    }
    const PER = 40;
    for (let k = 0; k < PER; k++) {
      for (const [i, p] of clients.entries()) request(p, { type: 'chat', message: `${i}:${k}` });
    }
    const total = first + PER * clients.length;
    const seen = await Promise.all(
      clients.map(async (p) => {
        await next(p, (m) => m.type === 'chat' && m.offset === total);
        return all(p).filter((m) => m.type === 'chat');
      }),
    );
    const offsets = seen[0]!.map((m) => m.offset);
    expect(offsets).toEqual(Array.from({ length: PER * clients.length }, (_, i) => first + 1 + i));
    const order = (s: Msg[]): string[] => s.map((m) => `${m.offset} ${m.message}`);
    for (const s of seen) expect(order(s)).toEqual(order(seen[0]!));
    // Each sender's messages in the order it sent them.
    for (let i = 0; i < clients.length; i++) {
      const mine = seen[0]!.filter((m) => (m.message as string).startsWith(`${i}:`)).map((m) => m.message);
      expect(mine).toEqual(Array.from({ length: PER }, (_, k) => `${i}:${k}`));
    }
  });

  it("a crowd joining at once on every node: each hears its own join first, then everyone's after it", async () => {
    const c = await start(3);
    const N = 120;
    const crowd = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const peer = await ChatPeer.open(c.nodes[i % 3]!.port);
        peers.push(peer);
        peer.send(`u${i}`);
        return peer;
      }),
    );
    // The lesson's clients: no welcome, no history; their own join notice is their first message.
    // Joins 1..N are stored in some order; a client whose own is at offset k hears k..N.
    const heard = (ms: readonly unknown[]): boolean =>
      ms.length > 0 && ms.length >= N - ((ms[0] as Msg).offset as number) + 1;
    await Promise.all(crowd.map((p) => p.until(heard)));
    for (const [i, p] of crowd.entries()) {
      const joins = all(p).filter((m) => m.type === 'join');
      expect(joins[0]!.name).toBe(`u${i}`);
      const own = joins[0]!.offset as number;
      expect(joins.map((m) => m.offset)).toEqual(Array.from({ length: N - own + 1 }, (_, k) => own + k));
    }
  });

  it('a cid resent to another node is stored once and acked with the same place', async () => {
    const c = await start(2, { RESUME_GRACE_MS: '60000' });
    const { peer: bob } = await member(c.nodes[1]!.port, 'bob');
    const { peer: alice, welcome } = await member(c.nodes[0]!.port, 'alice');
    request(alice, { type: 'chat', message: 'only once', cid: 'x-1' });
    const ack = await next(alice, 'ack');
    alice.conn.terminate(); // vanished: its session waits for it
    const lobby = (await next(bob, 'chat')).offset as number;
    const again = await hello(c.nodes[1]!.port, 'alice', {
      token: welcome.token,
      resume: { lobby: { epoch: welcome.streams[0]!.epoch, offset: lobby } },
    });
    peers.push(again.peer);
    expect(again.welcome.streams[0]).toMatchObject({ stream: 'lobby', offset: lobby, recovered: true });
    request(again.peer, { type: 'chat', message: 'only once', cid: 'x-1' });
    expect(await next(again.peer, 'ack')).toEqual(ack);
    request(again.peer, { type: 'chat', message: 'and then', cid: 'x-2' });
    expect(await next(bob, 'chat')).toMatchObject({ message: 'and then', offset: lobby + 1 });
    const history = (await getJson(c.nodes[0]!, '/rooms/lobby/history')).body as { messages: Msg[] };
    expect(history.messages.filter((m) => m.message === 'only once')).toHaveLength(1);
    // Nobody saw alice leave or join again.
    expect(all(bob).filter((m) => m.name === 'alice').map((m) => m.type)).toEqual(['join']);
  });

  it('a stale token gets a new session with a new token, which then resumes on another node', async () => {
    const c = await start(2, { RESUME_GRACE_MS: '60000' });
    const { peer: bob } = await member(c.nodes[1]!.port, 'bob');
    const first = await member(c.nodes[0]!.port, 'alice');
    await first.peer.close(); // a clean close: the session ends
    await next(bob, (m) => m.type === 'leave' && m.name === 'alice');
    const again = await hello(c.nodes[0]!.port, 'alice', { token: first.welcome.token });
    peers.push(again.peer);
    expect(again.welcome.token).not.toBe(first.welcome.token);
    await next(again.peer, (m) => m.type === 'join' && m.name === 'alice');
    again.peer.conn.terminate();
    const back = await hello(c.nodes[1]!.port, 'alice', { token: again.welcome.token });
    peers.push(back.peer);
    expect(back.welcome.token).toBe(again.welcome.token);
    await bob.until((ms: readonly ChatMsg[]) => ms.filter((m) => (m as unknown as Msg).name === 'alice').length >= 3);
    expect(all(bob).filter((m) => m.name === 'alice').map((m) => m.type)).toEqual(['join', 'leave', 'join']);
  });

  it.each([1, 2])('seed %i: exactly once, in order, while cut clients come back on other nodes', async (seed) => {
    const c = await start(3, { RESUME_GRACE_MS: '600000', HISTORY_SIZE: '100000' });
    const rng = mulberry32(seed);
    const ROOMS = ['r0', 'r1'];
    const clients = Array.from({ length: 9 }, (_, i) => new ResumingClient(c.nodes[i % 3]!.url(), `c${i}`));
    await Promise.all(clients.map((cl) => cl.connect()));
    const memberOf = new Map<ResumingClient, string[]>();
    for (const cl of clients) {
      const rooms = ROOMS.filter(() => rng.chance(0.6));
      for (const room of rooms) await cl.join(room);
      memberOf.set(cl, ['lobby', ...rooms]);
    }
    const cuts: Promise<void>[] = [];
    const cutting = new Set<ResumingClient>();
    let hop = 0;
    for (let step = 0; step < 9 * 25; step++) {
      const cl = clients[step % 9]!;
      const cid = `${cl.name}-${Math.floor(step / 9)}`;
      if (rng.chance(0.3)) cl.send({ type: 'private', to: rng.pick(clients).name, message: `p ${cid}`, cid });
      else cl.send({ type: 'chat', room: rng.pick(memberOf.get(cl)!), message: `m ${cid}`, cid });
      const standing = clients.filter((o) => !cutting.has(o));
      if (rng.int(8) === 0 && standing.length > 0) {
        const victim = rng.pick(standing);
        cutting.add(victim);
        victim.url = c.nodes[hop++ % 3]!.url(); // the next node
        cuts.push(victim.cut().then(() => void cutting.delete(victim)));
      }
      if (rng.chance(0.5)) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(cuts);
    await Promise.all(clients.map((cl) => cl.until(() => cl.pending.size === 0)));
    const tops = new Map<string, number>();
    for (const room of ['lobby', ...ROOMS]) {
      const page = await getJson(c.nodes[0]!, `/rooms/${room}/history?limit=1`);
      tops.set(room, (page.body as { offset: number }).offset);
    }
    for (const cl of clients) cl.send({ type: 'private', to: cl.name, message: 'fence', cid: 'fence' });
    await Promise.all(
      clients.map((cl) =>
        cl.until(
          () =>
            memberOf.get(cl)!.every((room) => (cl.positions.get(room)?.offset ?? 0) >= tops.get(room)!) &&
            [...(cl.messages.get(`@${cl.name}`)?.values() ?? [])].some((m) => m.message === 'fence'),
        ),
      ),
    );
    expect(clients.flatMap((cl) => cl.anomalies)).toEqual([]);
    expect(clients.reduce((n, cl) => n + cl.reconnects, 0)).toBe(cuts.length);
    expect(cuts.length).toBeGreaterThanOrEqual(8);
    for (const cl of clients) {
      for (const room of memberOf.get(cl)!) {
        const start = cl.starts.get(room)!;
        const expected = Array.from({ length: tops.get(room)! - start }, (_, i) => start + 1 + i);
        expect(cl.offsets.get(room) ?? []).toEqual(expected);
      }
      expect(cl.presence.filter((p) => p.startsWith('leave'))).toEqual([]);
    }
    // Every message stored once: a chat in one room, a private message in two inboxes (a note to oneself
    // in one), however many times it was resent and to whichever node.
    const histories: Msg[] = [];
    for (const room of ['lobby', ...ROOMS]) {
      for (let after = 0; ; ) {
        const page = (await getJson(c.nodes[1]!, `/rooms/${room}/history?after=${after}&limit=100`)).body as {
          messages: Msg[];
        };
        if (page.messages.length === 0) break;
        histories.push(...page.messages);
        after += page.messages.length;
      }
    }
    const inboxes = clients.flatMap((cl) => [...(cl.messages.get(`@${cl.name}`)?.values() ?? [])]);
    for (const cl of clients) {
      for (const [cid, sent] of [...cl.acked.keys()].filter((k) => k !== 'fence').map((k) => [k, k] as const)) {
        const text = String(sent);
        const stored = histories.filter((m) => m.message === `m ${text}`).length;
        const privates = inboxes.filter((m) => m.message === `p ${text}`);
        const self = privates.length > 0 && privates[0]!.user === privates[0]!.to;
        expect(stored + (self ? privates.length : privates.length / 2), cid).toBe(1);
      }
    }
    for (const cl of clients) expect(cl.pending.size).toBe(0);
    await Promise.all(clients.map((cl) => cl.close()));
  });
});
