/**
 * Go's time.NewTimer(d): a channel `c` that receives one value once `ms` milliseconds have passed,
 * so a deadline can be one more case in a select; stop() cancels it (Go's Timer.Stop).
 */
import { Channel } from './channel';

export interface Timer {
  readonly c: Channel<void>;
  stop(): void;
}

export function newTimer(ms: number): Timer {
  const c = new Channel<void>(1); // buffered, like Go's: the timer never waits for a receiver
  const handle = setTimeout(() => c.trySend(undefined), ms);
  handle.unref(); // a pending timer alone keeps no process alive
  return { c, stop: () => clearTimeout(handle) };
}
