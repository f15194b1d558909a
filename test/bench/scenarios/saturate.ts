/** Saturating fan-out (closed loop): the most deliveries per second the server sustains. */
import type { SenderHooks } from '../load-client';
import type { Target } from '../targets';
import { sleep, waitFor } from '../time';
import { DEFAULT_WORKERS, isProfiled, joinClients, Measurement, padding, withServer } from './common';
import { perMessage, redisCommands } from './common';
import type { BenchArgs, Scenario, ScenarioResult } from './common';

async function run(args: BenchArgs, target: Target): Promise<ScenarioResult> {
  const notes: string[] = [];
  const text = padding(args.padding);
  let running = true;
  // Closed loop: a sender sends its next message when its own previous one comes back. The
  // senders are in this thread (LoadClients), so the hook runs here.
  const hooks: SenderHooks = {
    onOwnMessage(client) {
      if (running) client.sendChat(text);
    },
  };
  const threads = Math.min(args.workers ?? DEFAULT_WORKERS.saturate, args.clients);
  const load0 = { threads, senders: args.senders, hooks };
  return withServer(args, target, { scenario: 'saturate', load: load0 }, async (server, clients) => {
    const here = await joinClients(server, clients, { count: args.clients });
    const senders = here.slice(0, args.senders);
    for (const s of senders) for (let i = 0; i < args.window; i++) s.sendChat(text);

    await sleep(args.warmup * 1000);
    const commands = await redisCommands(server);
    const sentBefore = senders.reduce((n, s) => n + s.sent, 0);
    const measurement = new Measurement(server, clients);
    await sleep(args.seconds * 1000);
    measurement.end();
    const sentInWindow = senders.reduce((n, s) => n + s.sent, 0) - sentBefore;
    const redis = perMessage(commands, await redisCommands(server), sentInWindow);
    running = false;

    const sent = senders.reduce((n, s) => n + s.sent, 0);
    const expected = sent * args.clients;
    const drained = await waitFor(() => clients.chats >= expected || clients.failure !== null, 15_000, 2);
    if (!drained) notes.push('saturate: not every delivery arrived within 15 s after the senders stopped');
    return {
      scenario: 'saturate',
      target: target.name,
      notes,
      figures: {
        clients: args.clients,
        senders: args.senders,
        window: args.window,
        loadThreads: threads,
        profiled: isProfiled(args, target, 'saturate'),
        sent,
        lost: expected - clients.chats,
        ...(await measurement.figures(notes, { scenario: 'saturate' })),
        ...redis,
      },
    };
  });
}

export const saturate: Scenario = { name: 'saturate', run };
