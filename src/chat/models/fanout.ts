/**
 * Fan-out: how the Hub's messages reach clients, and the pacing around it. The Hub decides what is said
 * and to whom; this unit delivers it.
 *
 *   deliver   the one path: a message is encoded once and the same frame is posted to every recipient
 *             (Go's `select { case client.Send <- m: default: }`); a full queue means a slow client, whom
 *             the Hub drops.
 *   budget    at most `perTurn` messages per event-loop turn. writePumps flush at the end of a turn, so a
 *             reading client's queue never holds more than two turns' worth: with `perTurn` at most half
 *             the queue, a burst alone never drops a client that keeps reading.
 *   presence  join and leave notices wait `presenceWindowMs` for the rest of their burst: connecting N
 *             clients costs N² notices, and held together they reach each client in one write. A message
 *             that arrives meanwhile queues behind them, so nobody speaks before their join shows.
 *   audience  a waiting message goes to the members who had joined when it was said (joinSeq <= upTo),
 *             exactly as if it had gone out at once.
 */
import { Channel, endOfTurn } from '../../channel';
import { PreparedFrame } from '../../websocket';
import type { Client } from './client';
import { encodeMessage, type ChatMessage } from './message';

export interface FanoutOptions {
  /** Messages delivered per event-loop turn at most. */
  readonly perTurn: number;
  /** How long join and leave notices wait for others of the same burst. */
  readonly presenceWindowMs: number;
  /** A recipient's queue was full: the Hub drops it (called after the fan-out, never during it). */
  readonly onSlow: (client: Client) => void;
}

/** A message waiting its turn, for the members with joinSeq <= upTo, or for `to` alone. */
interface Waiting {
  readonly message: ChatMessage;
  readonly upTo: number;
  readonly to: Client | undefined;
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

  constructor(
    /** The Hub's members in join order; read here, changed only by the Hub. */
    private readonly members: ReadonlySet<Client>,
    private readonly options: FanoutOptions,
  ) {}

  /** False once this turn's budget is spent: the Hub stops taking messages until `wake`. */
  get hasRoom(): boolean {
    return this.spent < this.options.perTurn;
  }

  /** Messages waiting for their window or their turn. */
  get pending(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Something said, for the members present now (`upTo`) or for one of them: it keeps its place behind
   * waiting notices.
   */
  send(message: ChatMessage, upTo: number, to?: Client): void {
    if (this.pending === 0) {
      this.deliver(message, upTo, to);
      return;
    }
    this.waiting.push({ message, upTo, to });
    this.due = true;
    this.wake.trySend();
  }

  /** A join or leave notice: it waits for the presence window, with the others of its burst. */
  announce(notice: ChatMessage, upTo: number): void {
    if (this.members.size === 0) {
      this.clear(); // nobody is left to tell anything, this or what already waits
      return;
    }
    this.waiting.push({ message: notice, upTo, to: undefined });
    if (!this.due && this.window === null) {
      this.window = setTimeout(() => {
        this.window = null;
        this.due = true;
        this.wake.trySend();
      }, this.options.presenceWindowMs);
      this.window.unref();
    }
  }

  /** A reply to one client (an error, a refusal): at once, since it answers what that client just did. */
  tell(client: Client, message: ChatMessage): void {
    this.deliver(message, Infinity, client);
  }

  /** Delivers waiting messages in order while the turn's budget lasts (the Hub calls it on `wake`). */
  flush(): void {
    if (!this.due) return; // a wake-up for a new turn while notices still wait for their window
    while (this.head < this.waiting.length && this.hasRoom) {
      const { message, upTo, to } = this.waiting[this.head]!;
      this.waiting[this.head++] = undefined; // keep no reference to what went out
      this.deliver(message, upTo, to);
    }
    if (this.head === this.waiting.length) this.clear();
  }

  /** Forgets everything waiting (shutdown, or nobody left to tell). */
  clear(): void {
    this.waiting.length = 0;
    this.head = 0;
    this.due = false;
    if (this.window !== null) clearTimeout(this.window);
    this.window = null;
  }

  /**
   * The one path from the Hub to the clients: encode once, post the same frame to every recipient.
   * Members are in join order, so the loop stops at the first who joined after the message was said.
   */
  private deliver(message: ChatMessage, upTo: number, to: Client | undefined): void {
    this.spend(); // a flood of errors for one client is a flood too
    if (to !== undefined) {
      // A closed queue: the client has left (or was refused) since; nothing more goes to it.
      if (to.send.closed || to.joinSeq > upTo) return;
      if (!to.post(PreparedFrame.text(encodeMessage(message)))) this.options.onSlow(to);
      return;
    }
    const frame = PreparedFrame.text(encodeMessage(message));
    let slow: Client[] | undefined;
    for (const client of this.members) {
      if (client.joinSeq > upTo) break;
      if (!client.post(frame)) (slow ??= []).push(client);
    }
    // Dropped after the loop: the Hub's drop changes `members`, which this loop walks.
    if (slow !== undefined) for (const client of slow) this.options.onSlow(client);
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
