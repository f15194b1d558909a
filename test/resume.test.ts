/**
 * Sessions across connections: a token takes a name back (closing a stale connection with 4001), a
 * client that vanishes keeps its name and rooms for RESUME_GRACE_MS and resumes exactly where it was,
 * a clean close leaves at once, and an inbox belongs to its holder, not to the name.
 */
import { describe, expect, it } from 'vitest';
import { startApp, type TestApp } from './helpers/app';
import { ChatPeer } from './helpers/chat';
import { all, hello, next, positions, request, type Msg } from './helpers/v2';


async function member(t: TestApp, name: string): Promise<{ peer: ChatPeer; token: string }> {
  const { peer, welcome } = await hello(t.port, name);
  await next(peer, (m) => m.type === 'join' && m.name === name);
  return { peer, token: welcome.token };
}

/** The connection vanishes: no close frame, the TCP connection is just gone (a phone losing its network). */
async function vanish(peer: ChatPeer): Promise<void> {
  peer.conn.terminate();
  await peer.closed;
}

async function roster(t: TestApp): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${t.port}/clients`);
  return ((await res.json()) as { clients: { name: string }[] }).clients.map((c) => c.name);
}

const presence = (peer: ChatPeer): Msg[] => all(peer).filter((m) => m.type === 'join' || m.type === 'leave');

describe('a token takes the name back', () => {
  it('from a stale connection still open: that one is closed with 4001, nobody sees a leave or a join', async () => {
    const t = await startApp();
    const { peer: old, token } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    await next(old, (m) => m.name === 'bob');
    const seen = presence(bob).length;
    const { peer: fresh, welcome } = await hello(t.port, 'alice', { token, resume: positions(old) });
    const closed = await old.closed;
    expect([closed.code, closed.reason]).toEqual([4001, 'replaced by a new connection']);
    expect(welcome.token).toBe(token);
    expect(welcome.streams.map((s) => [s.stream, s.recovered])).toEqual([
      ['lobby', true],
      ['@alice', true],
    ]);
    request(fresh, { type: 'chat', message: 'same me', cid: 'a' });
    expect(await next(bob, 'chat')).toMatchObject({ user: 'alice', message: 'same me' });
    expect(presence(bob).length).toBe(seen);
    expect(await roster(t)).toEqual(['alice', 'bob']);
  });

  it('a token is no key to another name, and a wrong token does not take a name', async () => {
    const t = await startApp();
    const { token } = await member(t, 'alice');
    await member(t, 'bob');
    for (const [name, tok] of [
      ['bob', token],
      ['alice', 'x'.repeat(24)],
    ]) {
      const peer = await ChatPeer.open(t.port);
      peer.send(JSON.stringify({ type: 'hello', name, token: tok }));
      expect((await next(peer, 'error')).message).toBe(`the name ${name} is taken: choose another`);
      expect((await peer.closed).code).toBe(1008);
    }
  });
});

describe('a client that vanishes', () => {
  it('keeps its name and rooms during the grace period and resumes with exactly what it missed', async () => {
    const t = await startApp({ RESUME_GRACE_MS: '3600000' });
    const { peer: alice, token } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(alice, { type: 'join', room: 'rust' });
    await next(alice, 'joined');
    request(bob, { type: 'join', room: 'rust' });
    await next(alice, (m) => m.stream === 'rust' && m.name === 'bob');
    request(bob, { type: 'chat', room: 'rust', message: 'before' });
    await next(alice, (m) => m.message === 'before');
    const at = positions(alice);
    await vanish(alice);

    // Meanwhile: stored for alice, delivered later.
    request(bob, { type: 'chat', message: 'missed 1' });
    request(bob, { type: 'chat', room: 'rust', message: 'missed 2' });
    request(bob, { type: 'private', to: 'alice', message: 'missed 3', cid: 'p' });
    await next(bob, 'ack');
    expect(await roster(t)).toEqual(['alice', 'bob']); // still online: in its grace period

    const { peer: back, welcome } = await hello(t.port, 'alice', { token, resume: at });
    expect(welcome.streams).toEqual([
      { stream: 'lobby', epoch: at.lobby!.epoch, offset: at.lobby!.offset + 1, recovered: true },
      { stream: 'rust', epoch: at.rust!.epoch, offset: at.rust!.offset + 1, recovered: true },
      { stream: '@alice', epoch: at['@alice']!.epoch, offset: 1, recovered: true },
    ]);
    await next(back, (m) => m.message === 'missed 3');
    expect(all(back).map((m) => [m.type, m.stream, m.offset, m.message, m.history])).toEqual([
      ['welcome', undefined, undefined, undefined, undefined],
      ['chat', 'lobby', at.lobby!.offset + 1, 'missed 1', undefined],
      ['chat', 'rust', at.rust!.offset + 1, 'missed 2', undefined],
      ['private', '@alice', 1, 'missed 3', undefined],
    ]);
    // Live again, and nobody saw alice leave or come back.
    request(bob, { type: 'chat', message: 'live' });
    expect(await next(back, 'chat')).toMatchObject({ message: 'live', offset: at.lobby!.offset + 2 });
    expect(presence(bob).filter((m) => m.name === 'alice' && m.type === 'leave')).toEqual([]);
  });

  it('after the grace period it leaves for good: leave notices go out and its inbox is gone', async () => {
    const t = await startApp({ RESUME_GRACE_MS: '50' });
    const { peer: alice, token } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(bob, { type: 'private', to: 'alice', message: 'for the first alice' });
    await next(alice, 'private');
    const at = positions(alice);
    await vanish(alice);
    expect(await next(bob, 'leave')).toMatchObject({ name: 'alice', stream: 'lobby' });
    expect(await roster(t)).toEqual(['bob']);
    // The old token means nothing now; the name is free, the inbox starts a new life.
    const { peer: again, welcome } = await hello(t.port, 'alice', { token, resume: at });
    expect(welcome.token).not.toBe(token);
    expect(welcome.streams.map((s) => [s.stream, s.recovered])).toEqual([
      ['lobby', true],
      ['@alice', false],
    ]);
    expect(welcome.streams[1]!.epoch).not.toBe(at['@alice']!.epoch);
    request(again, { type: 'history', stream: '@alice' });
    expect(await next(again, 'history')).toMatchObject({ messages: [] });
    expect(all(again).filter((m) => m.type === 'private')).toEqual([]);
  });

  it("the lesson's clients cannot resume: they leave at once, whatever the grace period", async () => {
    const t = await startApp({ RESUME_GRACE_MS: '3600000' });
    const { peer: bob } = await member(t, 'bob');
    const ann = await ChatPeer.open(t.port);
    ann.send('ann');
    await next(bob, (m) => m.name === 'ann');
    await vanish(ann);
    expect(await next(bob, 'leave')).toMatchObject({ name: 'ann' });
  });
});

describe('a clean close', () => {
  it('leaves at once, grace period or not, and empties the inbox for whoever takes the name next', async () => {
    const t = await startApp({ RESUME_GRACE_MS: '3600000' });
    const { peer: alice } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(bob, { type: 'private', to: 'alice', message: 'secret' });
    await next(alice, 'private');
    await alice.close();
    expect(await next(bob, 'leave')).toMatchObject({ name: 'alice' });
    const { peer: impostor } = await hello(t.port, 'ALICE');
    request(impostor, { type: 'history', stream: '@alice' });
    expect(await next(impostor, 'history')).toMatchObject({ messages: [], more: false });
  });
});

describe('resume positions the server cannot honour', () => {
  it('another epoch, or older than the history holds: the latest history instead, recovered false', async () => {
    const t = await startApp({ HISTORY_SIZE: '3', HISTORY_ON_JOIN: '2' });
    const { peer: alice } = await member(t, 'alice');
    for (let i = 1; i <= 5; i++) request(alice, { type: 'chat', message: `m${i}` });
    await next(alice, (m) => m.message === 'm5');
    const lobby = positions(alice).lobby!;
    for (const resume of [{ epoch: 'another', offset: 5 }, { epoch: lobby.epoch, offset: 1 }]) {
      const { peer, welcome } = await hello(t.port, `x${resume.offset}`, { resume: { lobby: resume } });
      const top = welcome.streams[0]!.offset;
      expect(welcome.streams[0]).toMatchObject({ stream: 'lobby', recovered: false });
      await next(peer, (m) => m.type === 'join' && m.name === `x${resume.offset}`);
      expect(all(peer).slice(1).map((m) => [m.offset, m.history])).toEqual([
        [top - 1, true],
        [top, true],
        [top + 1, undefined], // its own join, live
      ]);
    }
  });

  it('a fresh session with a resume naming rooms joins them and recovers what it missed', async () => {
    const t = await startApp();
    const { peer: bob } = await member(t, 'bob');
    request(bob, { type: 'join', room: 'go' });
    await next(bob, 'joined');
    request(bob, { type: 'chat', room: 'go', message: 'g1', cid: 'g' });
    const ack = await next(bob, 'ack');
    const { peer: carol, welcome } = await hello(t.port, 'carol', {
      resume: { go: { epoch: ack.epoch as string, offset: (ack.offset as number) - 1 } },
    });
    expect(welcome.streams.map((s) => [s.stream, s.recovered])).toEqual([
      ['lobby', false],
      ['go', true],
      ['@carol', false],
    ]);
    const missed = await next(carol, (m) => m.stream === 'go');
    expect([missed.message, missed.history]).toEqual(['g1', undefined]);
    expect(await next(bob, (m) => m.stream === 'go' && m.name === 'carol')).toMatchObject({ type: 'join' });
  });
});
