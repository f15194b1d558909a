/**
 * Flood control: the TokenBucket rule with an injected clock, then the chat's behaviour through real
 * sockets (RATE_LIMIT_PER_SEC=1, RATE_LIMIT_BURST=3): past the burst a message is refused with a
 * System error and not broadcast; a client that keeps flooding is closed with 1008.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TokenBucket } from '../src/chat/models/rate-limit';
import { Opcode, PreparedFrame } from '../src/websocket';
import { chatFrom, clientFrame, joinChat, joined, left, startApp, type ChatClient, type TestApp } from './helpers/chat';

describe('TokenBucket (clock passed in)', () => {
  const takeN = (bucket: TokenBucket, n: number, now: number): boolean[] => Array.from({ length: n }, () => bucket.take(now));

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

  it('a clock that goes backwards adds nothing and does not break later refills', () => {
    const bucket = new TokenBucket(1, 2, 10_000);
    takeN(bucket, 2, 10_000);
    expect(bucket.take(5_000)).toBe(false);
    expect(bucket.take(10_999)).toBe(false);
    expect(bucket.take(11_000)).toBe(true);
  });
});

describe('the chat under a flood (RATE_LIMIT_PER_SEC=1, RATE_LIMIT_BURST=3)', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  async function setup(): Promise<[ChatClient, ChatClient]> {
    t = await startApp({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '3' });
    const alice = await joinChat(t.port, 'alice');
    const bob = await joinChat(t.port, 'bob');
    await alice.next(joined('bob'));
    return [alice, bob];
  }

  /** Sends the messages as one TCP write: the server sees them in the same instant. */
  function burst(c: ChatClient, texts: string[]): void {
    // Masked client frames (§5.3) written as one corked batch, so the server reads them together.
    c.conn.sendFrames(texts.map((s) => new PreparedFrame(clientFrame(Opcode.Text, s))));
  }

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
    expect(bob.received('chat').map((m) => `${m.user}:${m.message}`)).toEqual(['alice:m1', 'alice:m2', 'alice:m3', 'bob:marker']);
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
    const [line] = await t!.logged((l) => l.startsWith('disconnect name="alice"'));
    expect(line).toMatch(/^disconnect name="alice" code=1008 reason="" sent=1008 peer=127\.0\.0\.1:\d+$/);
  });

  it('refusals up to the burst do not close the connection', async () => {
    const [alice, bob] = await setup();
    burst(alice, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']); // 3 refused: not yet "keeps flooding"
    await alice.until((all) => all.filter((m) => m.type === 'error').length === 3);
    bob.send('marker');
    await alice.next(chatFrom('bob', 'marker'));
    await bob.next(chatFrom('bob', 'marker'));
    expect(alice.conn.readyState).toBe('open');
    expect(bob.received('chat').map((m) => m.message)).toEqual(['m1', 'm2', 'm3', 'marker']);
  });
});
