/**
 * Exactly once, through real sockets: 20 clients in 3 rooms (and the lobby) chat and send each other
 * private messages while a seeded scheduler cuts random clients' TCP connections (no close frame) at
 * random moments. Each comes back with its token and positions and resends what was not acked. In the
 * end every client has every message of each of its streams exactly once, in offset order, and nobody saw
 * a leave or a join for a reconnect within the grace period.
 */
import { expect, it } from 'vitest';
import { startApp, type TestApp } from './helpers/app';
import { mulberry32 } from './helpers/rng';
import { ResumingClient } from './helpers/resuming-client';


const CLIENTS = 20;
const ROOMS = ['r0', 'r1', 'r2'];
const MESSAGES_PER_CLIENT = 30;
/** A cut every this many sends, on average. */
const CUT_EVERY = 12;

/** One event-loop turn: lets socket I/O interleave with the scheduler. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type Stored = { type: string; user: string; message: string; offset: number; to?: string };

async function roomHistory(t: TestApp, room: string): Promise<Stored[]> {
  const out: Stored[] = [];
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${t.port}/rooms/${room}/history?after=${out.length}&limit=100`);
    const page = ((await res.json()) as { messages: Stored[] }).messages;
    if (page.length === 0) return out;
    out.push(...page);
  }
}

it.each([1, 2, 3])('seed %i: every message of every stream exactly once, in order, despite cuts', async (seed) => {
  const t = await startApp({
    RESUME_GRACE_MS: '600000',
    HISTORY_SIZE: '100000',
    RATE_LIMIT_PER_SEC: '100000',
    RATE_LIMIT_BURST: '100000',
  });
  const rng = mulberry32(seed);
  const clients = Array.from({ length: CLIENTS }, (_, i) => new ResumingClient(t.url(), `c${i}`));
  await Promise.all(clients.map((c) => c.connect()));
  const memberOf = new Map<ResumingClient, string[]>();
  for (const c of clients) {
    const rooms = ROOMS.filter(() => rng.chance(0.5));
    if (rooms.length === 0) rooms.push(rng.pick(ROOMS));
    for (const room of rooms) await c.join(room);
    memberOf.set(c, ['lobby', ...rooms]);
  }

  // Traffic, with cuts: a cut client is unreachable until it has said hello again.
  const cutting = new Set<ResumingClient>();
  const cuts: Promise<void>[] = [];
  const sent = new Map<ResumingClient, number>(clients.map((c) => [c, 0]));
  for (let step = 0; step < CLIENTS * MESSAGES_PER_CLIENT; step++) {
    const c = clients[step % CLIENTS]!;
    const i = sent.get(c)!;
    sent.set(c, i + 1);
    const cid = `${c.name}-${i}`;
    if (rng.chance(0.3)) {
      const to = rng.pick(clients.filter((o) => o !== c));
      c.send({ type: 'private', to: to.name, message: `p ${cid}`, cid });
    } else {
      c.send({ type: 'chat', room: rng.pick(memberOf.get(c)!), message: `m ${cid}`, cid });
    }
    if (rng.int(CUT_EVERY) === 0) {
      const victim = rng.pick(clients.filter((o) => !cutting.has(o)));
      cutting.add(victim);
      cuts.push(victim.cut().then(() => void cutting.delete(victim)));
    }
    if (rng.chance(0.5)) await turn();
  }
  await Promise.all(cuts);
  await Promise.all(clients.map((c) => c.until(() => c.pending.size === 0)));

  // Every room's full history, from the server; each client must reach the end of its streams.
  const histories = new Map<string, Stored[]>();
  for (const room of ['lobby', ...ROOMS]) histories.set(room, await roomHistory(t, room));
  // A note to oneself is the last thing stored in one's inbox: once it arrives, the inbox is complete.
  for (const c of clients) c.send({ type: 'private', to: c.name, message: 'fence', cid: 'fence' });
  await Promise.all(
    clients.map((c) =>
      c.until(
        () =>
          memberOf.get(c)!.every((room) => (c.positions.get(room)?.offset ?? 0) >= histories.get(room)!.length) &&
          [...(c.messages.get(`@${c.name}`)?.values() ?? [])].some((m) => m.message === 'fence'),
      ),
    ),
  );

  expect(clients.flatMap((c) => c.anomalies)).toEqual([]);
  const totalCuts = clients.reduce((n, c) => n + c.reconnects, 0);
  expect(totalCuts).toBeGreaterThanOrEqual(20);
  for (const c of clients) {
    for (const room of memberOf.get(c)!) {
      const history = histories.get(room)!;
      const start = c.starts.get(room)!;
      // Every offset after the client's start, once, in order, each exactly as stored.
      expect(c.offsets.get(room) ?? []).toEqual(history.slice(start).map((m) => m.offset));
      for (const m of history.slice(start)) {
        expect(c.messages.get(room)!.get(m.offset)).toMatchObject({ type: m.type, user: m.user, message: m.message });
      }
    }
    // The inbox: offsets 1.. without gaps, each private message to or from c once.
    const inbox = [...(c.messages.get(`@${c.name}`)?.values() ?? [])];
    expect(inbox.map((m) => m.offset)).toEqual(inbox.map((_, i) => i + 1));
    const privates = inbox.filter((m) => m.type === 'private' && m.message !== 'fence');
    const texts = privates.map((m) => String(m.message));
    expect(new Set(texts).size).toBe(texts.length);
    for (const m of privates) expect([m.user, m.to]).toContain(c.name);
    // Nobody saw anyone leave; the only joins are the initial ones.
    expect(c.presence.filter((p) => p.startsWith('leave'))).toEqual([]);
  }
  // Each message sent was stored exactly once, where it was meant to go.
  for (const c of clients) {
    for (let i = 0; i < MESSAGES_PER_CLIENT; i++) {
      const cid = `${c.name}-${i}`;
      const chats = [...histories.values()].flat().filter((m) => m.message === `m ${cid}`);
      const privates = clients.flatMap((o) =>
        [...(o.messages.get(`@${o.name}`)?.values() ?? [])].filter((m) => m.message === `p ${cid}`),
      );
      // A chat is in one room once; a private message is in the sender's and the addressee's inbox once each.
      expect(chats.length + privates.length / 2).toBe(1);
      expect(c.acked.has(cid)).toBe(true);
    }
  }
  await Promise.all(clients.map((c) => c.close()));
});
