/** Fixed-rate fan-out: latency and loss at a steady load. */
import { performance } from 'node:perf_hooks';
import type { BenchClient } from '../load-client';
import type { Target } from '../targets';
import { waitFor } from '../time';
import { DEFAULT_WORKERS, dueMessages, isProfiled, joinClients, Measurement, padding, withServer } from './common';
import { perMessage, redisCommands } from './common';
import type { BenchArgs, Scenario, ScenarioResult } from './common';

/**
 * Sends `perSender` messages from each sender at `rate` per second. One timer for all senders: each
 * owes rate × elapsed messages, their schedules staggered so that the messages arrive evenly spaced
 * rather than in bursts of `senders`.
 */
function sendAtRate(senders: readonly BenchClient[], rate: number, perSender: number, text: string): Promise<void> {
  const start = performance.now();
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - start;
      for (const s of senders) {
        const due = Math.min(perSender, dueMessages(rate, elapsed, s.senderIndex, senders.length));
        while (s.sent < due) s.sendChat(text);
      }
      if (senders.every((s) => s.sent >= perSender)) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
}

async function run(args: BenchArgs, target: Target): Promise<ScenarioResult> {
  const notes: string[] = [];
  const threads = Math.min(args.workers ?? DEFAULT_WORKERS.fixed, args.clients);
  const serverRun = { scenario: 'fixed', load: { threads, senders: args.senders } };
  return withServer(args, target, serverRun, async (server, clients) => {
    const here = await joinClients(server, clients, { count: args.clients });
    const senders = here.slice(0, args.senders);
    const perSender = Math.max(1, Math.round(args.rate * args.seconds));

    const commands = await redisCommands(server);
    const measurement = new Measurement(server, clients);
    await sendAtRate(senders, args.rate, perSender, padding(args.padding));
    const sent = perSender * senders.length;
    const expected = sent * args.clients;
    const drained = await waitFor(() => clients.chats >= expected || clients.failure !== null, 15_000, 2);
    measurement.end();
    const redis = perMessage(commands, await redisCommands(server), sent);
    if (!drained) notes.push(`fixed: not every delivery arrived within 15 s of the last send`);
    return {
      scenario: 'fixed',
      target: target.name,
      notes,
      figures: {
        clients: args.clients,
        senders: args.senders,
        ratePerSender: args.rate,
        loadThreads: threads,
        profiled: isProfiled(args, target, 'fixed'),
        offeredDeliveriesPerSec: args.rate * args.senders * args.clients,
        sent,
        expected,
        lost: expected - clients.chats,
        ...(await measurement.figures(notes, { scenario: 'fixed' })),
        ...redis,
      },
    };
  });
}

export const fixed: Scenario = { name: 'fixed', run };
