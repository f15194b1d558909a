/**
 * A load thread (see load-threads.ts): opens the clients the main thread hands it and counts what
 * they receive into its own block of the shared counters. It answers each request with one reply
 * and does nothing else; the main thread terminates it (its sockets close with it) at the end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BenchClient, openClients } from './load-client';
import { Totals } from './load-counters';
import type { Reply, Request, WorkerInit } from './load-threads';

if (parentPort === null) throw new Error('load-worker.js runs as a worker thread of the bench');
const port = parentPort;
const init = workerData as WorkerInit;
const { senders, dialect, compression } = init;
const totals = new Totals(init.shared, init.thread);
const clients: BenchClient[] = [];

async function handle(request: Request): Promise<Reply> {
  switch (request.type) {
    case 'open': {
      const { names } = request;
      await openClients(
        names.length,
        (k) => new BenchClient({ port: request.port, name: names[k]!, totals, senders, dialect, compression }),
        clients,
        request.concurrency,
      );
      return { id: request.id, type: 'opened' };
    }
    case 'report':
      // Only samples of the measurement asked about: a thread that got none since holds older ones.
      const mine = totals.generation === request.generation;
      return { id: request.id, type: 'report', latency: mine ? totals.latency.data() : null };
  }
}

port.on('message', (request: Request) => {
  handle(request).then(
    (reply) => port.postMessage(reply),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      port.postMessage({ id: request.id, type: 'error', message } satisfies Reply);
    },
  );
});
