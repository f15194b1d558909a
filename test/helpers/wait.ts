/**
 * Waiting, the one set of helpers: for a promise with a bound, for the event loop to turn, and for
 * a promise's outcome without awaiting it. Tests wait for events; none of these sleeps for a time.
 */

/**
 * Rejects after `ms` with `what` if `promise` has not settled: a bound, so a broken server fails the
 * test with a message instead of hanging it. It never makes a slow path pass.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise.finally(() => clearTimeout(timer)), late]);
}

/** Lets `n` turns of the event loop run (every pending microtask, I/O callback and setImmediate). */
export async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export interface Tracked<T> {
  settled: boolean;
  value?: T;
  error?: unknown;
}

/** Observes a promise without awaiting it: `settled`, then `value` or `error`. */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const s: Tracked<T> = { settled: false };
  promise.then(
    (value) => {
      s.settled = true;
      s.value = value;
    },
    (error: unknown) => {
      s.settled = true;
      s.error = error;
    },
  );
  return s;
}

/**
 * A list of waiters re-checked whenever something new happened (a message, a frame, a log line):
 * `until(check)` resolves with the first non-undefined result of `check`, or rejects with `ended()`'s
 * error once nothing more can happen.
 */
export class Signal {
  private waiters: (() => void)[] = [];

  /** Something happened: every waiter checks again. */
  notify(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const wake of waiting) wake();
  }

  async until<T>(check: () => T | undefined, ended: () => Error | undefined = () => undefined): Promise<T> {
    for (;;) {
      const result = check();
      if (result !== undefined) return result;
      const error = ended();
      if (error !== undefined) throw error;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

/**
 * For state that raises no event (another module's counter): re-checks every 10 ms, and fails with
 * `what` after `timeoutMs`. Prefer an event when there is one.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
