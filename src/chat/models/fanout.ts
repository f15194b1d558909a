/**
 * Fan-out: how the Hub's messages reach clients, and the pacing around it. The Hub decides what is said
 * and to whom; this unit delivers it.
 *
 *   deliver   the one path: a stored message becomes one frame, and the same frame is posted to every
 *             member of its stream (Go's `select { case client.Send <- m: default: }`); a full queue
 *             means a slow client, whom the Hub drops.
 *   budget    at most `perTurn` messages per event-loop turn. writePumps flush at the end of a turn, so a
 *             reading client's queue never holds more than two turns' worth: with `perTurn` at most half
 *             the queue, a burst alone never drops a client that keeps reading.
 *   presence  join and leave notices wait `presenceWindowMs` for the rest of their burst: connecting N
 *             clients costs N² notices, and held together they reach each client in one write. A message
 *             that arrives meanwhile queues behind them, so nobody speaks before their join shows.
 *   audience  each member receives a stream from an offset on (what it got as history or recovered came
 *             before), so a message that waited goes to exactly those who were there when it was stored.
 */
import { Channel, endOfTurn } from '../../channel';
import { PreparedFrame } from '../../websocket';
import type { Client, Outbound } from './client';
import type { Stored } from './history';
import type { Members } from './rooms';
import { ChatStats } from './stats';

export interface FanoutOptions {
  /** Messages delivered per event-loop turn at most. */
  readonly perTurn: number;
  /** How long join and leave notices wait for others of the same burst. */
  readonly presenceWindowMs: number;
  /** A recipient's queue was full: the Hub drops it (called after the fan-out, never during it). */
  readonly onSlow: (client: Client) => void;
  /** Counts deliveries and slow clients; absent: counted where nobody looks. */
  readonly stats?: ChatStats;
}

interface Waiting {
  readonly stored: Stored;
  readonly members: Members;
}

export class Fanout {
  /**
   * Ready when waiting messages can go out: their presence window closed, or a new turn gave back the
   * budget. The Hub selects on it like on any channel (capacity 1: repeated wake-ups coalesce).
   */
  readonly wake = new Channel<void>(1);

  private readonly waiting: (Waiting | undefined)[] = [];
  private head = 0;
  /** The waiting messages may go out now (not only when the window closes). */
  private due = false;
  private window: NodeJS.Timeout | null = null;
  private spent = 0;
  private readonly stats: ChatStats;

  constructor(private readonly options: FanoutOptions) {
    this.stats = options.stats ?? new ChatStats();
  }

  /** False once this turn's budget is spent: the Hub stops taking messages until `wake`. */
  get hasRoom(): boolean {
    return this.spent < this.options.perTurn;
  }

  /** Messages waiting for their window or their turn. */
  get pending(): number {
    return this.waiting.length - this.head;
  }

  /** A stored message for the members of its stream; it keeps its place behind waiting notices. */
  send(stored: Stored, members: Members): void {
    if (this.pending === 0) {
      this.deliver(stored, members);
      return;
    }
    this.waiting.push({ stored, members });
    this.due = true;
    this.wake.trySend();
  }

  /** A join or leave notice: it waits for the presence window, with the others of its burst. */
  announce(stored: Stored, members: Members): void {
    // Nobody to tell now means nobody ever: whoever joins later gets it as history, if at all.
    if (members.size === 0) return;
    this.waiting.push({ stored, members });
    if (!this.due && this.window === null) {
      this.window = setTimeout(() => {
        this.window = null;
        this.due = true;
        this.wake.trySend();
      }, this.options.presenceWindowMs);
      this.window.unref();
    }
  }

  /**
   * A reply to one client (welcome, ack, error, a backlog of history): at once, since it answers what
   * that client just did. A backlog takes one place in the queue, however many messages it holds.
   */
  tell(client: Client, reply: string | readonly string[]): void {
    this.spend(); // a flood of errors for one client is a flood too
    if (client.send.closed) return; // it has left (or was refused) since
    const out: Outbound = typeof reply === 'string' ? PreparedFrame.text(reply) : reply.map(PreparedFrame.text);
    if (client.post(out)) this.stats.deliveries += typeof reply === 'string' ? 1 : reply.length;
    else this.slow(client);
  }

  /** Delivers waiting messages in order while the turn's budget lasts (the Hub calls it on `wake`). */
  flush(): void {
    if (!this.due) return; // a wake-up for a new turn while notices still wait for their window
    while (this.head < this.waiting.length && this.hasRoom) {
      const { stored, members } = this.waiting[this.head]!;
      this.waiting[this.head++] = undefined; // keep no reference to what went out
      this.deliver(stored, members);
    }
    if (this.head === this.waiting.length) this.clear();
  }

  /** Forgets everything waiting (shutdown). */
  clear(): void {
    this.waiting.length = 0;
    this.head = 0;
    this.due = false;
    if (this.window !== null) clearTimeout(this.window);
    this.window = null;
  }

  /**
   * The one path from the Hub to the members of a stream: one frame for all, posted to each member
   * connected now that receives the stream from before this offset.
   */
  private deliver(stored: Stored, members: Members): void {
    this.spend();
    const frame = PreparedFrame.text(stored.json);
    let slow: Client[] | undefined;
    let posted = 0;
    for (const [session, from] of members) {
      const client = session.client;
      if (client === null || stored.offset <= from) continue; // in its grace period, or joined after it
      if (client.post(frame)) posted++;
      else (slow ??= []).push(client);
    }
    this.stats.deliveries += posted;
    // Dropped after the loop: the Hub's drop changes `members`, which this loop walks.
    if (slow !== undefined) for (const client of slow) this.slow(client);
  }

  private slow(client: Client): void {
    this.stats.drops.sendQueueFull++;
    this.options.onSlow(client);
  }

  /** Counts a delivery; the first over budget schedules the budget's return for the next turn. */
  private spend(): void {
    if (++this.spent !== this.options.perTurn) return;
    void endOfTurn().then(() => {
      this.spent = 0;
      this.wake.trySend();
    });
  }
}
