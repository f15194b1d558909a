import { describe, it, expect } from 'vitest';
import { Channel, ChannelClosedError } from '../src/channel';
import { track, turns } from './helpers/wait';

/** White-box view of the ring buffer's slots (no public API for this on purpose). */
function slots(ch: Channel<unknown>): unknown[] {
  return (ch as unknown as { ring: unknown[] }).ring;
}

function noWaiters(...chs: Channel<unknown>[]): void {
  for (const ch of chs) {
    expect(ch.waitingReceivers).toBe(0);
    expect(ch.waitingSenders).toBe(0);
  }
}

describe('make(chan T, n)', () => {
  it('defaults to an unbuffered channel', () => {
    const ch = new Channel<number>();
    expect(ch.capacity).toBe(0);
    expect(ch.length).toBe(0);
    expect(ch.closed).toBe(false);
  });

  it('rejects capacities that are not finite integers >= 0', () => {
    for (const bad of [-1, 1.5, NaN, Infinity, -Infinity]) {
      expect(() => new Channel(bad)).toThrow(RangeError);
    }
    expect(new Channel(7).capacity).toBe(7);
  });
});

describe('buffered channel', () => {
  it('is FIFO and reports len(ch)', async () => {
    const ch = new Channel<number>(3);
    expect(ch.trySend(1)).toBe(true);
    await ch.send(2);
    expect(ch.trySend(3)).toBe(true);
    expect(ch.length).toBe(3);
    expect(await ch.receive()).toBe(1);
    expect(ch.length).toBe(2);
    expect(await ch.receive()).toBe(2);
    expect(await ch.receive()).toBe(3);
    expect(ch.length).toBe(0);
  });

  it('a send on a full channel stays pending until a receive frees a slot', async () => {
    const ch = new Channel<string>(1);
    await ch.send('a');
    let done = false;
    const p = ch.send('b').then(() => {
      done = true;
    });
    await turns();
    expect(done).toBe(false);
    expect(ch.waitingSenders).toBe(1);
    expect(ch.length).toBe(1);

    expect(await ch.receive()).toBe('a');
    // The blocked sender was admitted into the freed slot.
    expect(ch.waitingSenders).toBe(0);
    expect(ch.length).toBe(1);
    await p;
    expect(done).toBe(true);
    expect(await ch.receive()).toBe('b');
    noWaiters(ch);
  });

  it('blocked senders are admitted in FIFO order', async () => {
    const ch = new Channel<number>(2);
    ch.trySend(1);
    ch.trySend(2);
    const order: number[] = [];
    const sends = [3, 4, 5].map((v) => ch.send(v).then(() => order.push(v)));
    expect(ch.waitingSenders).toBe(3);
    const got: (number | undefined)[] = [];
    for (let i = 0; i < 5; i++) got.push(await ch.receive());
    await Promise.all(sends);
    expect(got).toEqual([1, 2, 3, 4, 5]);
    expect(order).toEqual([3, 4, 5]);
    noWaiters(ch);
  });

  it('waiting receivers are served in FIFO order', async () => {
    const ch = new Channel<number>(4);
    const a = ch.receive();
    const b = ch.receive();
    expect(ch.waitingReceivers).toBe(2);
    ch.trySend(1);
    ch.trySend(2);
    expect(await a).toBe(1);
    expect(await b).toBe(2);
    // Handed over directly: nothing went through the buffer.
    expect(ch.length).toBe(0);
    noWaiters(ch);
  });

  it('trySend is false when full, and never buffers more than capacity', async () => {
    const ch = new Channel<number>(3);
    expect([ch.trySend(1), ch.trySend(2), ch.trySend(3), ch.trySend(4)]).toEqual([true, true, true, false]);
    expect(ch.length).toBe(3);
    const pending = track(ch.send(5));
    expect(ch.length).toBe(3);
    await turns();
    expect(pending.settled).toBe(false);
    expect(slots(ch).length).toBe(3);
  });
});

describe('unbuffered channel (rendezvous)', () => {
  it('send completes only when a receiver takes the value', async () => {
    const ch = new Channel<string>();
    const sent = track(ch.send('hi'));
    await turns();
    expect(sent.settled).toBe(false);
    expect(ch.length).toBe(0);
    expect(ch.waitingSenders).toBe(1);
    expect(await ch.receive()).toBe('hi');
    await turns(1);
    expect(sent.settled).toBe(true);
    expect(sent.error).toBeUndefined();
    noWaiters(ch);
  });

  it('receive waits until a sender arrives', async () => {
    const ch = new Channel<number>();
    const got = track(ch.receive());
    await turns();
    expect(got.settled).toBe(false);
    expect(ch.waitingReceivers).toBe(1);
    await ch.send(42); // resolves at once: a receiver was waiting
    await turns(1);
    expect(got.value).toBe(42);
    noWaiters(ch);
  });

  it('trySend is true only into a waiting receiver', async () => {
    const ch = new Channel<number>();
    expect(ch.trySend(1)).toBe(false);
    const r = ch.receive();
    expect(ch.trySend(2)).toBe(true);
    expect(ch.trySend(3)).toBe(false); // that receiver is served, nobody else waits
    expect(await r).toBe(2);
    noWaiters(ch);
  });

  it('tryReceive takes from a blocked sender and completes its send', async () => {
    const ch = new Channel<number>();
    const sent = track(ch.send(9));
    const r = ch.tryReceive();
    expect(r).toEqual({ ready: true, ok: true, value: 9 });
    await turns(1);
    expect(sent.settled).toBe(true);
    noWaiters(ch);
  });

  it('senders rendezvous in FIFO order', async () => {
    const ch = new Channel<number>();
    const sends = [1, 2, 3].map((v) => ch.send(v));
    expect([await ch.receive(), await ch.receive(), await ch.receive()]).toEqual([1, 2, 3]);
    await Promise.all(sends);
    noWaiters(ch);
  });
});

describe('v, ok := <-ch and non-blocking receive', () => {
  it('receiveOk distinguishes a sent undefined from a closed channel', async () => {
    const ch = new Channel<undefined | number>(2);
    ch.trySend(undefined);
    ch.close();
    expect(await ch.receiveOk()).toEqual({ value: undefined, ok: true });
    expect(await ch.receiveOk()).toEqual({ value: undefined, ok: false });
    expect(await ch.receiveOk()).toEqual({ value: undefined, ok: false });
  });

  it('receiveOk waits, then gets a value or the close', async () => {
    const ch = new Channel<string>();
    const a = ch.receiveOk();
    ch.trySend('x');
    expect(await a).toEqual({ value: 'x', ok: true });
    const b = ch.receiveOk();
    ch.close();
    expect(await b).toEqual({ value: undefined, ok: false });
    noWaiters(ch);
  });

  it('tryReceive: not ready (shared result), value, then closed', () => {
    const ch = new Channel<number>(1);
    const r1 = ch.tryReceive();
    const r2 = ch.tryReceive();
    expect(r1).toEqual({ ready: false, ok: false, value: undefined });
    expect(r2).toBe(r1); // the not-ready result allocates nothing
    ch.trySend(5);
    expect(ch.tryReceive()).toEqual({ ready: true, ok: true, value: 5 });
    ch.close();
    expect(ch.tryReceive()).toEqual({ ready: true, ok: false, value: undefined });
    noWaiters(ch);
  });
});

describe('receiveMany (batch drain)', () => {
  it('takes everything queued in one call', async () => {
    const ch = new Channel<number>(8);
    for (let i = 1; i <= 5; i++) ch.trySend(i);
    expect(await ch.receiveMany()).toEqual([1, 2, 3, 4, 5]);
    expect(ch.length).toBe(0);
  });

  it('honours max and leaves the rest in order', async () => {
    const ch = new Channel<number>(8);
    for (let i = 1; i <= 5; i++) ch.trySend(i);
    expect(await ch.receiveMany(2)).toEqual([1, 2]);
    expect(ch.length).toBe(3);
    expect(await ch.receiveMany(10)).toEqual([3, 4, 5]);
  });

  it('admits blocked senders in FIFO order and resolves their sends', async () => {
    const ch = new Channel<number>(2);
    ch.trySend(1);
    ch.trySend(2);
    const s3 = track(ch.send(3));
    const s4 = track(ch.send(4));
    const s5 = track(ch.send(5));
    expect(await ch.receiveMany()).toEqual([1, 2, 3, 4, 5]);
    await turns(1);
    expect([s3.settled, s4.settled, s5.settled]).toEqual([true, true, true]);
    noWaiters(ch);
  });

  it('with max, moves the remaining blocked senders into the freed slots', async () => {
    const ch = new Channel<number>(2);
    ch.trySend(1);
    ch.trySend(2);
    const s = [3, 4, 5].map((v) => track(ch.send(v)));
    expect(await ch.receiveMany(3)).toEqual([1, 2, 3]);
    // 4 and 5 now sit in the buffer; their sends are complete.
    expect(ch.length).toBe(2);
    expect(ch.waitingSenders).toBe(0);
    await turns(1);
    expect(s.map((x) => x.settled)).toEqual([true, true, true]);
    expect(await ch.receiveMany()).toEqual([4, 5]);
  });

  it('drains blocked senders of an unbuffered channel', async () => {
    const ch = new Channel<string>();
    const sends = ['a', 'b', 'c'].map((v) => ch.send(v));
    expect(await ch.receiveMany(2)).toEqual(['a', 'b']);
    expect(ch.waitingSenders).toBe(1);
    expect(await ch.receiveMany()).toEqual(['c']);
    await Promise.all(sends);
    noWaiters(ch);
  });

  it('waits for the first value when empty', async () => {
    const ch = new Channel<number>(4);
    const batch = track(ch.receiveMany());
    await turns();
    expect(batch.settled).toBe(false);
    expect(ch.waitingReceivers).toBe(1);
    ch.trySend(7); // handed to the parked receiver
    ch.trySend(8); // buffered for the next call
    await turns(1);
    expect(batch.value).toEqual([7]);
    expect(await ch.receiveMany()).toEqual([8]);
    noWaiters(ch);
  });

  it('returns [] only when closed and drained', async () => {
    const ch = new Channel<number>(4);
    ch.trySend(1);
    ch.trySend(2);
    ch.close();
    expect(await ch.receiveMany()).toEqual([1, 2]);
    expect(await ch.receiveMany()).toEqual([]);
    expect(await ch.receiveMany()).toEqual([]);
  });

  it('a parked receiveMany wakes with [] on close', async () => {
    const ch = new Channel<number>(4);
    const batch = ch.receiveMany();
    ch.close();
    expect(await batch).toEqual([]);
    noWaiters(ch);
  });

  it('rejects a max that is not an integer >= 1', () => {
    const ch = new Channel<number>(4);
    for (const bad of [0, -1, 1.5, NaN]) expect(() => ch.receiveMany(bad)).toThrow(RangeError);
  });
});

describe('close(ch)', () => {
  it('receivers drain what is queued, then get undefined', async () => {
    const ch = new Channel<number>(3);
    ch.trySend(1);
    ch.trySend(2);
    ch.close();
    expect(ch.closed).toBe(true);
    expect(await ch.receive()).toBe(1);
    expect(await ch.receive()).toBe(2);
    expect(await ch.receive()).toBeUndefined();
    expect(await ch.receive()).toBeUndefined();
  });

  it('wakes every waiting receiver at once', async () => {
    const ch = new Channel<number>();
    const a = ch.receive();
    const b = ch.receiveOk();
    const c = ch.receiveMany();
    expect(ch.waitingReceivers).toBe(3);
    ch.close();
    expect(ch.waitingReceivers).toBe(0);
    expect(await a).toBeUndefined();
    expect(await b).toEqual({ value: undefined, ok: false });
    expect(await c).toEqual([]);
  });

  it('send after close rejects, trySend throws (Go panics)', async () => {
    const ch = new Channel<number>(1);
    ch.close();
    await expect(ch.send(1)).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(ch.send(1)).rejects.toThrow('send on closed channel');
    expect(() => ch.trySend(1)).toThrow(ChannelClosedError);
    expect(ch.length).toBe(0);
  });

  it('rejects senders that were waiting; buffered values stay receivable', async () => {
    const ch = new Channel<number>(1);
    ch.trySend(1);
    const s2 = ch.send(2);
    const s3 = ch.send(3);
    ch.close();
    await expect(s2).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(s3).rejects.toThrow('send on closed channel');
    noWaiters(ch);
    expect(await ch.receiveOk()).toEqual({ value: 1, ok: true });
    expect(await ch.receiveOk()).toEqual({ value: undefined, ok: false });
  });

  it('closing twice throws "close of closed channel"', () => {
    const ch = new Channel<number>();
    ch.close();
    expect(() => ch.close()).toThrow(ChannelClosedError);
    expect(() => ch.close()).toThrow('close of closed channel');
  });

  it('ChannelClosedError is an Error with a name', () => {
    const e = new ChannelClosedError();
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ChannelClosedError');
    expect(e.message).toBe('send on closed channel');
  });
});

describe('for await (range)', () => {
  it('yields everything in order and ends when closed and drained', async () => {
    const ch = new Channel<number>(2);
    const producer = (async () => {
      for (let i = 0; i < 10; i++) await ch.send(i);
      ch.close();
    })();
    const got: number[] = [];
    for await (const v of ch) got.push(v);
    await producer;
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    noWaiters(ch);
  });

  it('ends immediately on a closed, empty channel', async () => {
    const ch = new Channel<number>();
    ch.close();
    const got: number[] = [];
    for await (const v of ch) got.push(v);
    expect(got).toEqual([]);
  });

  it('a parked loop ends when the channel is closed', async () => {
    const ch = new Channel<string>();
    const got: string[] = [];
    const loop = (async () => {
      for await (const v of ch) got.push(v);
    })();
    await ch.send('a');
    await turns();
    expect(ch.waitingReceivers).toBe(1);
    ch.close();
    await loop;
    expect(got).toEqual(['a']);
    noWaiters(ch);
  });

  it('break neither closes the channel nor leaves a waiter', async () => {
    const ch = new Channel<number>(4);
    for (let i = 1; i <= 4; i++) ch.trySend(i);
    const got: number[] = [];
    for await (const v of ch) {
      got.push(v);
      if (v === 2) break;
    }
    expect(got).toEqual([1, 2]);
    expect(ch.closed).toBe(false);
    noWaiters(ch);
    // The rest is still there for the next range loop.
    ch.close();
    const rest: number[] = [];
    for await (const v of ch) rest.push(v);
    expect(rest).toEqual([3, 4]);
  });

  it('return() while a next() is parked unparks it and finishes that next()', async () => {
    const ch = new Channel<number>();
    const it = ch[Symbol.asyncIterator]();
    const pending = it.next();
    expect(ch.waitingReceivers).toBe(1);
    expect(await it.return!()).toEqual({ value: undefined, done: true });
    expect(ch.waitingReceivers).toBe(0);
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await it.next()).toEqual({ value: undefined, done: true });
    // Nothing was consumed: a later sender finds no receiver.
    expect(ch.trySend(1)).toBe(false);
    expect(ch.closed).toBe(false);
  });
});

describe('ring buffer', () => {
  it('allocates no slots until the first value, then grows by doubling up to capacity', () => {
    const ch = new Channel<number>(256);
    expect(slots(ch).length).toBe(0);
    const sizes: number[] = [];
    for (let i = 0; i < 256; i++) {
      expect(ch.trySend(i)).toBe(true);
      if (sizes[sizes.length - 1] !== slots(ch).length) sizes.push(slots(ch).length);
    }
    expect(sizes).toEqual([4, 8, 16, 32, 64, 128, 256]);
    expect(ch.trySend(256)).toBe(false);
    expect(slots(ch).length).toBe(256);
    expect(ch.length).toBe(256);
  });

  it('never grows beyond a capacity that is not a power of two', () => {
    const ch = new Channel<number>(100);
    let i = 0;
    while (ch.trySend(i)) i++;
    expect(i).toBe(100);
    expect(slots(ch).length).toBe(100);
    const small = new Channel<number>(3);
    while (small.trySend(0));
    expect(slots(small).length).toBe(3);
  });

  it('an unbuffered channel never allocates slots', async () => {
    const ch = new Channel<number>();
    const s = ch.send(1);
    await ch.receive();
    await s;
    expect(slots(ch).length).toBe(0);
  });

  it('keeps FIFO order across wrap-around and growth', async () => {
    const ch = new Channel<number>(16);
    let next = 0;
    const got: number[] = [];
    // Interleave sends and receives so the head moves around the ring while it grows.
    for (let round = 0; round < 50; round++) {
      for (let k = 0; k < 3 + (round % 5); k++) if (ch.trySend(next)) next++;
      got.push(...(await ch.receiveMany(2 + (round % 3))));
      expect(ch.length).toBeLessThanOrEqual(16);
    }
    got.push(...(await ch.receiveMany()));
    expect(got).toEqual(Array.from({ length: next }, (_, i) => i));
  });

  it('clears dequeued slots (no retained references)', async () => {
    const ch = new Channel<object>(8);
    for (let i = 0; i < 3; i++) ch.trySend({ i });
    await ch.receive();
    expect(slots(ch).filter((x) => x !== undefined)).toHaveLength(2);
    await ch.receiveMany();
    expect(slots(ch).every((x) => x === undefined)).toBe(true);
  });

  it('single receives drop a large ring once drained, keep a small one', async () => {
    const big = new Channel<number>(1024);
    for (let i = 0; i < 1000; i++) big.trySend(i);
    expect(slots(big).length).toBe(1024);
    for (let i = 0; i < 1000; i++) await big.receive();
    expect(slots(big).length).toBe(0);

    const small = new Channel<number>(1024);
    for (let i = 0; i < 5; i++) small.trySend(i);
    for (let i = 0; i < 5; i++) await small.receive();
    expect(slots(small).length).toBe(8);
  });

  it('receiveMany takes the ring along: a drained channel owns no slots, and refills in order', async () => {
    const ch = new Channel<number>(256);
    for (let i = 0; i < 5; i++) ch.trySend(i);
    const ring = slots(ch);
    const got = await ch.receiveMany();
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(got).toBe(ring);
    expect(slots(ch).length).toBe(0);
    for (let i = 5; i < 8; i++) ch.trySend(i);
    expect(slots(ch).length).toBe(5); // the size of the last burst taken, in one allocation
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(ch.tryReceiveMany()).toEqual([5, 6, 7]);
    expect(slots(ch).length).toBe(0);
  });

  it('receiveMany with a limit, or a ring that wrapped, copies and leaves the rest in order', async () => {
    const ch = new Channel<number>(8);
    for (let i = 0; i < 4; i++) ch.trySend(i);
    await ch.receive(); // the head moves off slot 0
    for (let i = 4; i < 6; i++) ch.trySend(i);
    expect(await ch.receiveMany(2)).toEqual([1, 2]);
    expect(await ch.receiveMany()).toEqual([3, 4, 5]);
    expect(ch.length).toBe(0);
  });
});

describe('no leaked waiters', () => {
  it('a busy producer/consumer pair ends with empty queues', async () => {
    const ch = new Channel<number>(4);
    const total = 1000;
    const producers = [0, 1].map(async (p) => {
      for (let i = 0; i < total / 2; i++) await ch.send(p * 1_000_000 + i);
    });
    const got: number[] = [];
    const consumer = (async () => {
      while (got.length < total) got.push(...(await ch.receiveMany(7)));
    })();
    await Promise.all([...producers, consumer]);
    expect(got).toHaveLength(total);
    // Each producer's values arrive in its own order.
    for (const p of [0, 1]) {
      const mine = got.filter((v) => Math.floor(v / 1_000_000) === p).map((v) => v % 1_000_000);
      expect(mine).toEqual(Array.from({ length: total / 2 }, (_, i) => i));
    }
    noWaiters(ch);
    expect(ch.length).toBe(0);
  });
});
