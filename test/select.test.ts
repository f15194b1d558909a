import { describe, it, expect, expectTypeOf } from 'vitest';
import { Channel, select, trySelect, type ElementOf, type SelectResult } from '../src/channel';
import { track, turns } from './helpers/wait';

function waiters(...chs: Channel<unknown>[]): number[] {
  return chs.map((c) => c.waitingReceivers);
}

describe('select', () => {
  it('takes the ready case synchronously, without parking waiters', async () => {
    const a = new Channel<number>(1);
    const b = new Channel<string>(1);
    b.trySend('hello');
    const p = select({ a, b });
    expect(waiters(a, b)).toEqual([0, 0]);
    expect(b.length).toBe(0); // already taken, before any await
    expect(await p).toEqual({ case: 'b', value: 'hello', ok: true });
  });

  it('takes from a blocked sender of an unbuffered channel', async () => {
    const a = new Channel<number>();
    const sent = track(a.send(3));
    expect(await select({ a })).toEqual({ case: 'a', value: 3, ok: true });
    await turns(1);
    expect(sent.settled).toBe(true);
  });

  it('waits when no case is ready, one waiter per channel, then removes them all', async () => {
    const a = new Channel<number>();
    const b = new Channel<number>(4);
    const c = new Channel<number>(4);
    const r = track(select({ a, b, c }));
    await turns();
    expect(r.settled).toBe(false);
    expect(waiters(a, b, c)).toEqual([1, 1, 1]);

    expect(c.trySend(9)).toBe(true);
    // The losers' waiters are gone synchronously, before the select's promise settles.
    expect(waiters(a, b, c)).toEqual([0, 0, 0]);
    await turns(1);
    expect(r.value).toEqual({ case: 'c', value: 9, ok: true });
  });

  it('never consumes two values: the other cases are not taken', async () => {
    const a = new Channel<number>();
    const b = new Channel<number>();
    const c = new Channel<number>(1);
    const r = select({ a, b, c });
    expect(a.trySend(1)).toBe(true);
    expect(b.trySend(2)).toBe(false); // no receiver left on b
    expect(c.trySend(3)).toBe(true); // buffered, not taken by the select
    expect(await r).toEqual({ case: 'a', value: 1, ok: true });
    expect(c.length).toBe(1);
    expect(waiters(a, b, c)).toEqual([0, 0, 0]);
  });

  it('a closed channel case is ready with ok=false', async () => {
    const a = new Channel<number>();
    const done = new Channel<void>();
    done.close();
    expect(await select({ a, done })).toEqual({ case: 'done', value: undefined, ok: false });
    expect(waiters(a, done)).toEqual([0, 0]);
  });

  it('a closed buffered channel yields its values before ok=false', async () => {
    const a = new Channel<number>(2);
    a.trySend(1);
    a.close();
    expect(await select({ a })).toEqual({ case: 'a', value: 1, ok: true });
    expect(await select({ a })).toEqual({ case: 'a', value: undefined, ok: false });
  });

  it('a parked select wakes when a channel is closed', async () => {
    const a = new Channel<number>();
    const quit = new Channel<never>();
    const r = select({ a, quit });
    quit.close();
    expect(waiters(a, quit)).toEqual([0, 0]);
    expect(await r).toEqual({ case: 'quit', value: undefined, ok: false });
    // a was not affected.
    expect(a.closed).toBe(false);
    expect(a.trySend(1)).toBe(false);
  });

  it('a nil (null/undefined) case is never ready', async () => {
    const a = new Channel<number>();
    const off: Channel<string> | null = null;
    const r = track(select({ a, off, gone: undefined }));
    await turns();
    expect(r.settled).toBe(false);
    a.trySend(1);
    await turns(1);
    expect(r.value).toEqual({ case: 'a', value: 1, ok: true });
    expect(trySelect({ off })).toBeUndefined();
  });

  it('the same channel under two cases is received once', async () => {
    const ch = new Channel<number>();
    const r = select({ x: ch, y: ch });
    expect(ch.waitingReceivers).toBe(2);
    expect(ch.trySend(5)).toBe(true);
    expect(ch.waitingReceivers).toBe(0);
    expect(await r).toEqual({ case: 'x', value: 5, ok: true });
    expect(ch.trySend(6)).toBe(false);
  });

  it('several pending selects on one channel are served in FIFO order', async () => {
    const ch = new Channel<number>();
    const other = new Channel<number>();
    const r1 = select({ ch, other });
    const r2 = select({ ch, other });
    expect(waiters(ch, other)).toEqual([2, 2]);
    ch.trySend(1);
    expect(waiters(ch, other)).toEqual([1, 1]);
    other.trySend(2);
    expect(waiters(ch, other)).toEqual([0, 0]);
    expect(await r1).toEqual({ case: 'ch', value: 1, ok: true });
    expect(await r2).toEqual({ case: 'other', value: 2, ok: true });
  });

  it('select({}) blocks forever, like Go', async () => {
    const r = track(select({}));
    await turns();
    expect(r.settled).toBe(false);
  });
});

describe('trySelect (select with default)', () => {
  it('returns undefined when no case is ready, and parks nothing', () => {
    const a = new Channel<number>();
    const b = new Channel<number>(2);
    expect(trySelect({ a, b })).toBeUndefined();
    expect(waiters(a, b)).toEqual([0, 0]);
  });

  it('returns the ready case', () => {
    const a = new Channel<number>();
    const b = new Channel<number>(2);
    b.trySend(4);
    expect(trySelect({ a, b })).toEqual({ case: 'b', value: 4, ok: true });
    expect(trySelect({ a, b })).toBeUndefined();
    a.close();
    expect(trySelect({ a, b })).toEqual({ case: 'a', value: undefined, ok: false });
  });
});

describe('fairness', () => {
  it('an always-ready channel does not starve another ready one', async () => {
    const hot = new Channel<number>(1);
    const cold = new Channel<number>(1);
    const wins = { hot: 0, cold: 0 };
    for (let i = 0; i < 1000; i++) {
      // Both stay ready: refill whichever was taken.
      hot.trySend(i);
      cold.trySend(i);
      const r = await select({ hot, cold });
      wins[r.case]++;
    }
    expect(wins.hot + wins.cold).toBe(1000);
    // Uniform choice: each ~500 (sd ~16). 350 is more than 9 sd away.
    expect(wins.hot).toBeGreaterThan(350);
    expect(wins.cold).toBeGreaterThan(350);
  });

  it('picks uniformly among the ready cases only', () => {
    const a = new Channel<number>(1);
    const never = new Channel<number>(1);
    const b = new Channel<number>(1);
    const c = new Channel<number>(1);
    const wins = { a: 0, never: 0, b: 0, c: 0 };
    for (let i = 0; i < 3000; i++) {
      a.trySend(i);
      b.trySend(i);
      c.trySend(i);
      wins[trySelect({ a, never, b, c })!.case]++;
    }
    expect(wins.never).toBe(0);
    // ~1000 each (sd ~26).
    for (const k of ['a', 'b', 'c'] as const) expect(wins[k]).toBeGreaterThan(800);
  });
});

describe('abort', () => {
  it('a pending select rejects with the reason and leaves no waiter', async () => {
    const a = new Channel<number>();
    const b = new Channel<number>();
    const ac = new AbortController();
    const r = select({ a, b }, ac.signal);
    expect(waiters(a, b)).toEqual([1, 1]);
    const reason = new Error('stop');
    ac.abort(reason);
    expect(waiters(a, b)).toEqual([0, 0]);
    await expect(r).rejects.toBe(reason);
    expect(a.trySend(1)).toBe(false); // nothing left to receive it
  });

  it('an already aborted signal rejects without consuming a ready value', async () => {
    const a = new Channel<number>(1);
    a.trySend(1);
    const ac = new AbortController();
    ac.abort();
    await expect(select({ a }, ac.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(a.length).toBe(1);
  });

  it('aborting after the select resolved has no effect', async () => {
    const a = new Channel<number>();
    const ac = new AbortController();
    const r = select({ a }, ac.signal);
    a.trySend(7);
    ac.abort();
    expect(await r).toEqual({ case: 'a', value: 7, ok: true });
    expect(a.waitingReceivers).toBe(0);
  });
});

describe('a hub-like select loop (Go: for { select { ... } })', () => {
  it('loses no value and leaks no waiter under concurrent senders', async () => {
    const register = new Channel<string>();
    const unregister = new Channel<string>();
    const broadcast = new Channel<number>(4);
    const quit = new Channel<void>();

    const log: string[] = [];
    const seen: number[] = [];
    const hub = (async () => {
      for (;;) {
        const r = await select({ register, unregister, broadcast, quit });
        switch (r.case) {
          case 'register':
          case 'unregister':
            log.push(`${r.case}:${r.value}`);
            break;
          case 'broadcast':
            if (r.ok) seen.push(r.value);
            break;
          case 'quit':
            return;
        }
      }
    })();

    const senders = [
      (async () => {
        for (let i = 0; i < 300; i++) await broadcast.send(i);
      })(),
      (async () => {
        for (let i = 0; i < 50; i++) {
          await register.send(`c${i}`);
          await unregister.send(`c${i}`);
        }
      })(),
    ];
    await Promise.all(senders);
    while (broadcast.length > 0) await turns(1);
    quit.close();
    await hub;

    expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(log).toEqual(Array.from({ length: 50 }, (_, i) => [`register:c${i}`, `unregister:c${i}`]).flat());
    expect(waiters(register, unregister, broadcast, quit)).toEqual([0, 0, 0, 0]);
    expect([register, unregister, broadcast].map((c) => c.waitingSenders)).toEqual([0, 0, 0]);
  });
});

describe('types', () => {
  // The expectTypeOf lines are checked by the compiler (`npm run typecheck` type-checks test/, and CI
  // runs it); at run time the same narrowing is exercised on real values, and every branch must run.
  it('narrows value by case and ok', () => {
    expect.assertions(4);
    const a = new Channel<number>(1);
    const b = new Channel<string>(1);
    const cases = { a, b, off: null };
    expectTypeOf<ElementOf<typeof a>>().toEqualTypeOf<number>();
    type R = SelectResult<typeof cases>;
    expectTypeOf<R['case']>().toEqualTypeOf<'a' | 'b'>();

    expect(trySelect(cases)).toBeUndefined(); // nothing ready (the null case is never ready)
    a.trySend(7);
    const r = trySelect(cases);
    if (r?.case === 'a' && r.ok) {
      expectTypeOf(r.value).toEqualTypeOf<number>();
      expect(r.value + 1).toBe(8);
    }
    b.close();
    const closed = trySelect(cases);
    if (closed?.case === 'b') {
      expectTypeOf(closed.value).toEqualTypeOf<string | undefined>();
      expect([closed.value, closed.ok]).toEqual([undefined, false]);
    }
    // Assignable to the plain { case, value: T | undefined, ok: boolean } shape.
    const plain: { case: 'a' | 'b'; value: number | string | undefined; ok: boolean } | undefined = closed;
    expect(plain).toEqual({ case: 'b', value: undefined, ok: false });
  });
});
