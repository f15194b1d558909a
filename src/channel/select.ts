/**
 * Go's select statement, for receive cases, in TypeScript.
 *
 *   Go                                        here
 *   ---------------------------------------   ------------------------------------------
 *   select {                                  const r = await select({ register: h.register,
 *   case c := <-h.register:                                            broadcast: h.broadcast });
 *   case m, ok := <-h.broadcast:              switch (r.case) {
 *   }                                         case 'register': r.value ...
 *                                             case 'broadcast': if (!r.ok) ... }
 *
 *   select { ...; default: }                  const r = trySelect({ ... }); if (r === undefined) ...
 *   a nil channel case (never ready)          { name: null }
 *   select {} (blocks forever)                select({})
 *
 * Semantics, as in Go:
 *   - A receive from a closed (and drained) channel is ready: value undefined, ok false.
 *   - When several cases are ready, one is picked uniformly at random, so a channel that
 *     is always ready cannot starve the others.
 *   - When none is ready, select parks one waiter on every channel. The first channel to
 *     deliver wins; the other waiters are removed synchronously, before any other code
 *     runs, so exactly one value is consumed and none is lost.
 *
 * Addition: an optional AbortSignal cancels a pending select; it rejects with
 * signal.reason and leaves no waiter behind.
 */
import { Channel, EMPTY, kPark, kPoll, kUnpark, Receiver, RECV_OWNER, type WaiterOwner } from './channel';

/**
 * The cases of a select: name -> channel to receive from. null/undefined is Go's nil
 * channel: that case is never ready (handy to switch a case off).
 * Channel<unknown> accepts every Channel<T> (TypeScript compares method parameters
 * bivariantly), so `any` is not needed here.
 */
export type SelectCases = Record<string, Channel<unknown> | null | undefined>;

/** The element type of a channel: ElementOf<Channel<string>> is string. */
export type ElementOf<C> = C extends Channel<infer T> ? T : never;

/** One case's outcomes; distributes over `Channel<T> | null`, a nil case yields nothing. */
type CaseResult<K, Ch> = Ch extends Channel<infer T>
  ? { case: K; value: T; ok: true } | { case: K; value: undefined; ok: false }
  : never;

/**
 * Discriminated on `case`, then on `ok`: `if (r.case === 'a' && r.ok) r.value` has a's
 * element type. (It is assignable to `{ case: K; value: T | undefined; ok: boolean }`.)
 */
export type SelectResult<C extends SelectCases> = { [K in keyof C]: CaseResult<K, C[K]> }[keyof C];

function isReady(ch: Channel<unknown>): boolean {
  return ch.length > 0 || ch.waitingSenders > 0 || ch.closed;
}

/**
 * Go's select with a default case: takes one ready case (chosen uniformly at random among
 * the ready ones) or returns undefined if none is ready. Never parks a waiter.
 */
export function trySelect<C extends SelectCases>(cases: C): SelectResult<C> | undefined {
  let nReady = 0;
  let key = '';
  for (const k in cases) {
    const ch = cases[k];
    if (ch != null && isReady(ch) && nReady++ === 0) key = k;
  }
  if (nReady === 0) return undefined;
  if (nReady > 1) {
    // Uniform pick among the ready cases, like Go's random poll order.
    let r = Math.floor(Math.random() * nReady);
    for (const k in cases) {
      const ch = cases[k];
      if (ch != null && isReady(ch) && r-- === 0) {
        key = k;
        break;
      }
    }
  }
  const v = cases[key]![kPoll]();
  const result = v === EMPTY ? { case: key, value: undefined, ok: false } : { case: key, value: v, ok: true };
  return result as SelectResult<C>;
}

/**
 * Go's select (receive cases, no default): resolves with the first case that can receive.
 * If one is ready now it is taken synchronously, without parking waiters.
 */
export function select<C extends SelectCases>(cases: C, signal?: AbortSignal): Promise<SelectResult<C>> {
  // Checked first, so that an aborted select never consumes a value.
  if (signal?.aborted) return Promise.reject(signal.reason);
  const ready = trySelect(cases);
  if (ready !== undefined) return Promise.resolve(ready);
  return new Promise<SelectResult<C>>((resolve, reject) => {
    new PendingSelect(cases, resolve as (r: unknown) => void, reject, signal);
  });
}

/** A blocked select: one parked receiver per channel, the first delivery wins. */
class PendingSelect implements WaiterOwner {
  private readonly keys: string[] = [];
  private readonly chans: Channel<unknown>[] = [];
  private readonly waiters: Receiver[] = [];
  private onAbort: (() => void) | null = null;

  constructor(
    cases: SelectCases,
    private readonly resolve: (r: unknown) => void,
    private readonly reject: (e: unknown) => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    for (const key in cases) {
      const ch = cases[key];
      if (ch == null) continue; // nil channel: never ready
      const w = new Receiver(RECV_OWNER, null, this, this.waiters.length);
      this.keys.push(key);
      this.chans.push(ch);
      this.waiters.push(w);
      ch[kPark](w);
    }
    if (signal) {
      this.onAbort = () => {
        this.unparkAll();
        this.onAbort = null;
        this.reject(signal.reason);
      };
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** One channel delivered to waiter `w` (already unlinked there). */
  fire(w: Receiver, value: unknown, ok: boolean): void {
    // Unpark the others now, synchronously: no other channel can hand us a second value.
    this.unparkAll();
    if (this.onAbort) {
      this.signal!.removeEventListener('abort', this.onAbort);
      this.onAbort = null;
    }
    this.resolve({ case: this.keys[w.tag], value, ok });
  }

  private unparkAll(): void {
    for (let i = 0; i < this.waiters.length; i++) this.chans[i][kUnpark](this.waiters[i]);
  }
}
