/**
 * A slow consumer: one client stops reading while the others chat; our server must drop it (1008,
 * send queue full) and the others must lose nothing. Our server only: it reads our server's log
 * lines and close codes (the lesson's servers drop a slow client with no close frame, ws-node at
 * 1 MiB of unsent bytes).
 */
import { performance } from 'node:perf_hooks';
import type { BenchClient } from '../load-client';
import type { LoadClients } from '../load-threads';
import type { ServerProcess } from '../server-process';
import type { Target } from '../targets';
import { settlesWithin, waitFor } from '../time';
import { DEFAULT_WORKERS, dueMessages, isProfiled, joinClients, Measurement, padding, round } from './common';
import { settledRss, withServer } from './common';
import type { BenchArgs, Figures, Scenario, ScenarioResult } from './common';

interface Drive {
  readonly start: number;
  /** When the slow client's leave notice arrived, null if it did not. */
  readonly droppedAt: number | null;
}

/**
 * The senders send at --slow-rate until the slow client is dropped, and on for a while after (the
 * others must be unaffected), or until --slow-max-seconds.
 */
function sendUntilDropped(args: BenchArgs, clients: LoadClients, senders: readonly BenchClient[]): Promise<Drive> {
  const text = padding(args.slowPadding);
  const afterDropMs = args.quick ? 1000 : 2000;
  const start = performance.now();
  let droppedAt: number | null = null;
  let stopAt = start + args.slowMaxSeconds * 1000;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      if (droppedAt === null && clients.totals.leftNames.includes('slow')) {
        droppedAt = now;
        stopAt = Math.min(stopAt, now + afterDropMs);
      }
      const elapsed = Math.min(now, stopAt) - start;
      for (const s of senders) {
        const due = dueMessages(args.slowRate, elapsed, s.senderIndex, senders.length);
        while (s.sent < due) s.sendChat(text);
      }
      if (now >= stopAt) {
        clearInterval(timer);
        resolve({ start, droppedAt });
      }
    }, 5);
  });
}

/**
 * Lets the slow client read again: what did the server leave it? (a 1008 close frame if the server
 * still had the socket, else only the end of the stream). Then what the server's log says, and its
 * memory once the slow client's queue is gone.
 */
async function afterTheDrop(server: ServerProcess, slow: BenchClient, quick: boolean): Promise<Figures> {
  const bytesBefore = slow.bytes;
  slow.socket!.resume();
  await settlesWithin(slow.endedPromise, 10_000);
  const rssAfter = await settledRss(server, quick ? 300 : 1000);
  const log = server.log();
  const dropLine = /dropped name="slow" reason="([^"]*)"/.exec(log);
  const disconnectLine = /disconnect name="slow" code=(\d+) reason="([^"]*)"(?: sent=(\d+))?/.exec(log);
  return {
    serverDropReason: dropLine?.[1] ?? null,
    serverSentCloseCode: disconnectLine?.[3] !== undefined ? Number(disconnectLine[3]) : null,
    slowSawCloseCode: slow.closeCode ?? null,
    slowSocketEnded: slow.ended,
    slowBytesAfterResume: slow.bytes - bytesBefore,
    rssAfterKiB: rssAfter,
  };
}

async function run(args: BenchArgs, target: Target): Promise<ScenarioResult> {
  const notes: string[] = [];
  // The default SEND_QUEUE and MAX_BUFFERED_BYTES: the point is what the server does out of the box.
  const env = { MAX_MESSAGE_BYTES: String(Math.max(4096, args.slowPadding + 256)) };
  const threads = Math.min(args.workers ?? DEFAULT_WORKERS.slow, args.slowClients);
  // The senders are in this thread and see every leave notice: watching them is enough.
  const load0 = { threads, senders: args.senders, watchLeaves: true };
  return withServer(args, target, { scenario: 'slow', env, load: load0 }, async (server, clients) => {
    const healthy = args.slowClients;
    const here = await joinClients(server, clients, { count: healthy, name: (i) => `h${i}` });
    // The slow client stays in this thread: it is paused and resumed from here.
    const slow = (await joinClients(server, clients, { count: 1, name: () => 'slow', here: true }))[0]!;
    const senders = here.slice(0, args.senders);
    const healthyChats = (): number => clients.chats - slow.chats;

    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(server.usage().rssKiB), 100);
    const rssBefore = server.usage().rssKiB;
    slow.socket!.pause(); // stops reading from the kernel: its receive window closes, the server's queue grows

    const measurement = new Measurement(server, clients);
    const drive = await sendUntilDropped(args, clients, senders);
    const sent = senders.reduce((n, s) => n + s.sent, 0);
    // Every healthy client should receive every message once (a duplicate would count as reordered).
    const drained = await waitFor(() => healthyChats() >= healthy * sent || clients.failure !== null, 15_000, 5);
    measurement.end();
    if (!drained) notes.push('slow: healthy clients did not receive everything within 15 s');
    const flow = await measurement.figures(notes, { scenario: 'slow', expectedDrops: 1 });
    const drop = await afterTheDrop(server, slow, args.quick);
    clearInterval(sampler);
    return {
      scenario: 'slow',
      target: target.name,
      notes,
      figures: {
        healthyClients: healthy,
        senders: args.senders,
        loadThreads: threads,
        profiled: isProfiled(args, target, 'slow'),
        ratePerSender: args.slowRate,
        messageBytes: args.slowPadding,
        slowDropped: drive.droppedAt !== null,
        secondsToDrop: drive.droppedAt === null ? null : round((drive.droppedAt - drive.start) / 1000, 2),
        ...drop,
        sent,
        healthyLost: healthy * sent - healthyChats(),
        leaveNotices: clients.leaves,
        rssBeforeKiB: rssBefore,
        rssPeakKiB: Math.max(rssBefore, ...rss.filter(Number.isFinite)),
        ...flow,
      },
    };
  });
}

export const slow: Scenario = {
  name: 'slow',
  skip: (target) => (target.wschat ? undefined : 'our server only (it reads our log lines and close codes)'),
  run,
};
