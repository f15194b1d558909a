/**
 * WORKERS=N: the workers cannot all own METRICS_PORT, so the primary serves /metrics and asks each worker
 * over the cluster's IPC channel for its families at scrape time; a worker answers with plain data. The
 * primary merges them (./exposition.ts merge), each worker's samples labelled `worker="<slot>"`.
 */
import type { Worker } from 'node:cluster';
import type { Family } from './exposition';

interface Ask {
  readonly wschatMetrics: 'ask';
  readonly id: number;
}
interface Answer {
  readonly wschatMetrics: 'answer';
  readonly id: number;
  readonly families: readonly Family[];
}

/** A worker that has not answered by then is left out of this scrape (it may be starting or stuck). */
const ANSWER_TIMEOUT_MS = 2_000;

/** In a worker: answers the primary's questions with `collect()`. */
export function answerPrimary(collect: () => Promise<readonly Family[]>): void {
  process.on('message', (message: Partial<Ask>) => {
    if (message?.wschatMetrics !== 'ask' || typeof message.id !== 'number') return;
    const id = message.id;
    collect().then(
      (families) => process.send?.({ wschatMetrics: 'answer', id, families } satisfies Answer),
      () => process.send?.({ wschatMetrics: 'answer', id, families: [] } satisfies Answer),
    );
  });
}

let nextId = 0;

/** In the primary: one worker's families, or undefined if it did not answer in time. */
export function askWorker(worker: Worker): Promise<readonly Family[] | undefined> {
  const id = ++nextId;
  return new Promise((resolve) => {
    const done = (families: readonly Family[] | undefined): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      resolve(families);
    };
    const onMessage = (message: Partial<Answer>): void => {
      if (message?.wschatMetrics === 'answer' && message.id === id) done(message.families ?? []);
    };
    const onExit = (): void => done(undefined);
    const timer = setTimeout(() => done(undefined), ANSWER_TIMEOUT_MS);
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    try {
      worker.send({ wschatMetrics: 'ask', id } satisfies Ask);
    } catch {
      done(undefined);
    }
  });
}
