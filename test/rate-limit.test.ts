/**
 * Flood control: the TokenBucket rule with an injected clock, then the chat's behaviour through real
 * sockets (RATE_LIMIT_PER_SEC=1, RATE_LIMIT_BURST=3): past the burst a message is refused with a
 * System error and not broadcast; a client that keeps flooding is closed with 1008.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenBucket } from '../src/chat/models/rate-limit';
import { Opcode, PreparedFrame } from '../src/websocket';
import { startApp, type TestApp } from './helpers/app';
import { chatFrom, ChatPeer, joinAll, left, type ChatMsg } from './helpers/chat';
import { frame } from './helpers/wire';

describe('TokenBucket (clock passed in)', () => {
  const takeN = (bucket: TokenBucket, n: number, now: number): boolean[] =>
    Array.from({ length: n }, () => bucket.take(now));

  it('starts full: `burst` takes at once, then none', () => {
    const bucket = new TokenBucket(1, 3, 1000);
    expect(takeN(bucket, 5, 1000)).toEqual([true, true, true, false, false]);
  });

  it('refills at ratePerSec, counting fractions of a token', () => {
    const bucket = new TokenBucket(1, 3, 0);
    takeN(bucket, 3, 0);
    expect(bucket.take(500)).toBe(false); // half a token
    expect(bucket.take(999)).toBe(false);
    expect(bucket.take(1000)).toBe(true); // the half tokens add up
    expect(bucket.take(1000)).toBe(false);
  });

  it('a refused take costs nothing', () => {
    const bucket = new TokenBucket(10, 1, 0);
    expect(bucket.take(0)).toBe(true);
    for (let t = 0; t < 100; t += 10) expect(bucket.take(t)).toBe(false); // 10 refusals in 90 ms
    expect(bucket.take(100)).toBe(true); // 100 ms at 10/s is exactly one token
  });

  it('never saves more than `burst`', () => {
    const bucket = new TokenBucket(5, 3, 0);
    expect(takeN(bucket, 4, 3_600_000)).toEqual([true, true, true, false]);
  });

  it('a steady sender at the rate is never refused', () => {
    const bucket = new TokenBucket(10, 1, 0);
    for (let t = 0; t <= 10_000; t += 100) expect(bucket.take(t)).toBe(true);
  });

  it('a clock that goes backwards never takes tokens away from a full bucket', () => {
    const bucket = new TokenBucket(1, 3, 10_000);
    expect(takeN(bucket, 4, 5_000)).toEqual([true, true, true, false]);
  });

  it('a clock that goes backwards adds nothing and does not break later refills', () => {
    const bucket = new TokenBucket(1, 2, 10_000);
    takeN(bucket, 2, 10_000);
    expect(bucket.take(5_000)).toBe(false);
    expect(bucket.take(10_999)).toBe(false);
    expect(bucket.take(11_000)).toBe(true);
  });
});

describe('the chat under a flood (RATE_LIMIT_PER_SEC=1, RATE_LIMIT_BURST=3)', () => {
  // The server runs in this process: with Date faked, its clock moves only when a test moves it, so
  // no token comes back during a test unless the test says so.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  let t: TestApp;
  async function setup(): Promise<[ChatPeer, ChatPeer]> {
    t = await startApp({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '3' });
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    return [alice!, bob!];
  }

  /** Sends the messages as one TCP write: the server reads them together. */
  function burst(c: ChatPeer, texts: string[]): void {
    c.conn.sendFrames(texts.map((s) => new PreparedFrame(frame(Opcode.Text, s))));
  }

  const errors = (all: readonly ChatMsg[]): number => all.filter((m) => m.type === 'error').length;
  it('the 4th message of a quick burst gets a System error and is not broadcast', async () => {
    const [alice, bob] = await setup();
    burst(alice, ['m1', 'm2', 'm3', 'm4']);
    const error = await alice.next('error');
    expect(Object.keys(error)).toEqual(['type', 'user', 'message', 'time']);
    expect(error).toMatchObject({ type: 'error', user: 'System', message: 'rate limit exceeded: slow down' });
    // The refusal was decided in alice's reader before bob's marker existed, and m1-m3 went to the
    // Hub before it: so bob's stream up to his own marker is final.
    bob.send('marker');
    await bob.next(chatFrom('bob', 'marker'));
    const seen = bob.received('chat').map((m) => `${m.user}:${m.message}`);
    expect(seen).toEqual(['alice:m1', 'alice:m2', 'alice:m3', 'bob:marker']);
    expect(bob.received('error')).toEqual([]);
    // alice got her own three and the error, and is still connected.
    await alice.next(chatFrom('bob', 'marker'));
    expect(alice.received((m) => m.type === 'chat' || m.type === 'error').map((m) => m.message)).toEqual([
      'm1', 'm2', 'm3', 'rate limit exceeded: slow down', 'marker',
    ]);
    expect(alice.conn.readyState).toBe('open');
  });

  it('a client that keeps flooding is closed with 1008 and the others see it leave', async () => {
    const [alice, bob] = await setup();
    // 3 accepted, 3 refused with an error each; one more refusal in a row past the burst closes.
    burst(alice, Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
    const info = await alice.closed;
    expect(info.code).toBe(1008);
    expect(info.reason).toBe('rate limit exceeded');
    expect(alice.received('error').map((m) => m.message)).toEqual(Array(3).fill('rate limit exceeded: slow down'));
    await bob.next(left('alice'));
    expect(bob.received('chat').map((m) => m.message)).toEqual(['m1', 'm2', 'm3']);
    const [line] = await t.logged((l) => l.startsWith('disconnect name="alice"'));
    expect(line).toMatch(/^disconnect name="alice" code=1008 reason="" sent=1008 peer=127\.0\.0\.1:\d+$/);
  });

  it('refusals up to the burst do not close the connection', async () => {
    const [alice, bob] = await setup();
    burst(alice, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']); // 3 refused: not yet "keeps flooding"
    await alice.until((all) => errors(all) === 3);
    bob.send('marker');
    await alice.next(chatFrom('bob', 'marker'));
    await bob.next(chatFrom('bob', 'marker'));
    expect(alice.conn.readyState).toBe('open');
    expect(bob.received('chat').map((m) => m.message)).toEqual(['m1', 'm2', 'm3', 'marker']);
  });

  it('the count of refusals in a row starts again after an accepted message', async () => {
    const [alice, bob] = await setup();
    burst(alice, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']); // 3 accepted, then 3 refusals in a row: the most allowed
    await alice.until((all) => errors(all) === 3);
    vi.setSystemTime(Date.now() + 1_000); // one token back
    burst(alice, ['m7', 'm8', 'm9', 'm10']); // m7 accepted; 3 refusals in a row again, not 6
    await alice.until((all) => errors(all) === 6);
    bob.send('marker');
    await alice.next(chatFrom('bob', 'marker'));
    expect(alice.conn.readyState).toBe('open');
    expect(bob.chats('alice')).toEqual(['m1', 'm2', 'm3', 'm7']);
  });

  it('refusals come one error each, before the close; the others are never limited', async () => {
    const [alice, bob] = await setup();
    const carol = await ChatPeer.join(t.port, 'carol');
    await bob.waitFor((m) => m.message === 'carol joined the chat');
    // 3 pass; the next 3 are refused one by one; one more is too many.
    burst(alice, Array.from({ length: 7 }, (_, i) => `flood ${i}`));
    bob.send('bob during the flood');
    const info = await alice.closed;
    expect([info.code, info.reason]).toEqual([1008, 'rate limit exceeded']);
    await carol.waitFor(left('alice'));
    expect(carol.chats('alice')).toEqual(['flood 0', 'flood 1', 'flood 2']);
    expect(bob.chats('alice')).toEqual(carol.chats('alice'));
    // Each refused message got its System error, written before the close frame.
    const refusals = alice.received('error').map((m) => [m.user, m.message]);
    expect(refusals).toEqual(Array(3).fill(['System', 'rate limit exceeded: slow down']));
    // bob was never limited: his message during the flood, and two more after it (his burst), arrive in order.
    for (const n of [1, 2]) bob.send(`bob after the flood ${n}`);
    await carol.waitFor(chatFrom('bob', 'bob after the flood 2'));
    expect(carol.chats('bob')).toEqual(['bob during the flood', 'bob after the flood 1', 'bob after the flood 2']);
    expect(bob.received('error')).toEqual([]);
    expect((await t.roster()).count).toBe(2);
  });
});
