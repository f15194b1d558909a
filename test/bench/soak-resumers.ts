/**
 * The soak's resuming clients: v2 chatters in rooms whose TCP connections are cut at random (no close
 * frame) and who come back with their token and positions, resending what was not acked. Each records
 * every gap, duplicate or unrecovered resume (test/helpers/resuming-client.ts); at the end each must have
 * reached the latest offset of every stream it is in, and its own messages must all have been acked.
 */
import type { Rng } from '../helpers/rng';
import { ResumingClient } from '../helpers/resuming-client';
import { settlesWithin, sleep, waitFor } from './time';

export interface ResumerOptions {
  readonly url: string;
  readonly port: number;
  readonly rng: Rng;
  readonly count: number;
  /** Messages per second per client. */
  readonly rate: number;
  /** A cut, somewhere among the clients, this often on average. */
  readonly cutEveryMs: number;
  stopped(): boolean;
}

export interface ResumerTotals {
  readonly clients: number;
  readonly sent: number;
  readonly cuts: number;
  readonly anomalies: readonly string[];
  /** Streams where a client never caught up with the latest offset, as "name stream at/top". */
  readonly behind: readonly string[];
  readonly unacked: number;
}

const ROOMS = ['r0', 'r1', 'r2'];

export class Resumers {
  private readonly clients: ResumingClient[] = [];
  private readonly rooms = new Map<ResumingClient, string[]>();
  private sent = 0;
  private readonly work: Promise<void>[] = [];

  constructor(private readonly o: ResumerOptions) {}

  /** Connects everyone and joins their rooms; then they talk and get cut until the run stops. */
  async start(): Promise<void> {
    for (let i = 0; i < this.o.count; i++) {
      const c = new ResumingClient(this.o.url, `resumer${i}`, false);
      await c.connect();
      const rooms = ROOMS.filter(() => this.o.rng.chance(0.5));
      for (const room of rooms) await c.join(room);
      this.clients.push(c);
      this.rooms.set(c, ['lobby', ...rooms]);
    }
    for (const c of this.clients) this.work.push(this.talk(c));
    this.work.push(this.cutter());
  }

  private async talk(c: ResumingClient): Promise<void> {
    const rng = this.o.rng;
    for (let i = 0; !this.o.stopped(); i++) {
      await sleep(rng.range(0, Math.round(2000 / this.o.rate)));
      if (this.o.stopped()) return;
      const cid = `${c.name}-${i}`;
      if (rng.chance(0.2)) {
        const to = rng.pick(this.clients.filter((o) => o !== c));
        c.send({ type: 'private', to: to.name, message: `p ${cid}`, cid });
      } else {
        c.send({ type: 'chat', room: rng.pick(this.rooms.get(c)!), message: `m ${cid}`, cid });
      }
      this.sent++;
    }
  }

  private async cutter(): Promise<void> {
    const cutting = new Set<ResumingClient>();
    const cuts: Promise<void>[] = [];
    while (!this.o.stopped()) {
      await sleep(this.o.rng.range(0, 2 * this.o.cutEveryMs));
      const idle = this.clients.filter((c) => !cutting.has(c));
      if (this.o.stopped() || idle.length === 0) continue;
      const victim = this.o.rng.pick(idle);
      cutting.add(victim);
      cuts.push(victim.cut().then(() => void cutting.delete(victim)));
    }
    await Promise.all(cuts);
  }

  /** After the run: waits for the acks and for every client to reach the end of its streams. */
  async finish(): Promise<ResumerTotals> {
    await settlesWithin(Promise.all(this.work), 30_000);
    await waitFor(() => this.clients.every((c) => c.pending.size === 0), 30_000, 100);
    const tops = await this.roomTops();
    const reached = (c: ResumingClient, room: string): boolean =>
      (c.positions.get(room)?.offset ?? 0) >= (tops.get(room) ?? 0);
    await waitFor(() => this.clients.every((c) => this.rooms.get(c)!.every((r) => reached(c, r))), 30_000, 100);
    const behind: string[] = [];
    for (const c of this.clients) {
      for (const room of this.rooms.get(c)!) {
        if (!reached(c, room)) behind.push(`${c.name} ${room} ${c.positions.get(room)?.offset}/${tops.get(room)}`);
      }
    }
    const totals: ResumerTotals = {
      clients: this.clients.length,
      sent: this.sent,
      cuts: this.clients.reduce((n, c) => n + c.reconnects, 0),
      anomalies: this.clients.flatMap((c) => c.anomalies),
      behind,
      unacked: this.clients.reduce((n, c) => n + c.pending.size, 0),
    };
    await Promise.all(this.clients.map((c) => c.close()));
    return totals;
  }

  private async roomTops(): Promise<Map<string, number>> {
    const res = await fetch(`http://127.0.0.1:${this.o.port}/rooms`);
    const body = (await res.json()) as { rooms: { room: string; offset: number }[] };
    return new Map(body.rooms.map((r) => [r.room, r.offset]));
  }
}
