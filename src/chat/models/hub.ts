/**
 * Hub: the lesson's models.Hub. It owns the set of clients and is the only code that touches it:
 * everything else talks to it through its channels, and `run()` is the Go goroutine's `for { select }`.
 * So there is no lock (the lesson's mutex guards the same map from several goroutines; here one loop
 * owns it, which is what the channels buy in Go too).
 *
 * Fan-out is the hot path: a message is encoded to one frame once, and the same frame goes into every
 * client's bounded `send` channel with trySend (Go's `select { case client.Send <- m: default: }`).
 * A client whose channel is full is dropped with 1008 and its leave notice goes out with the next
 * presence flush: a slow reader never slows the others.
 *
 * Order: everything a client says (chat and private alike) travels on the one `broadcast` channel,
 * so it reaches others in the order it was said; an unregister takes effect only after the messages
 * queued ahead of it, so nobody's last words arrive after their leave notice; join and leave notices
 * wait a few milliseconds for the rest of their burst, and nothing said overtakes them.
 *
 * Scale-out seam: `deliver()` is the one place where a message reaches local clients. A broker bridge
 * (Redis pub/sub) would publish what arrives on `broadcast` and call `deliver()` for what the broker
 * hands back; nothing else would change.
 */
import { Channel, endOfTurn, newTimer, select, type Timer } from '../../channel';
import { CloseCode, PreparedFrame } from '../../websocket';
import { Client } from './client';
import {
  encodeMessage,
  errorMessage,
  joinNotice,
  leaveNotice,
  type ChatMessage,
} from './message';

/**
 * What a client said, and who said it (null for the server's own notices or a broker's): a chat
 * message for everyone, or a private one (the homework) that the Hub routes by its `to` name.
 */
export interface Broadcast {
  readonly from: Client | null;
  readonly message: ChatMessage;
}

/** One row of the roster that GET /clients shows. */
/** A message waiting in the Hub's outbox, and who may receive it: the clients with joinSeq ≤ upTo. */
interface Outgoing {
  readonly message: ChatMessage;
  readonly upTo: number;
}

export interface ClientInfo {
  readonly name: string;
  readonly connectedAt: string;
}

export interface HubOptions {
  /** A client could not join (name taken) or was dropped (too slow). */
  log?: (line: string) => void;
  /** Capacity of the clients' send channels (SEND_QUEUE); sets how much the Hub fans out per turn. */
  sendQueue?: number;
}

/**
 * Readers hand messages to the Hub through this much buffer, so a burst from many readers does not
 * make each one wait for the Hub's next turn; beyond it they wait (backpressure, never unbounded).
 */
const BROADCAST_BUFFER = 1024;
/**
 * How long join and leave notices wait for others of the same burst. Long enough that a crowd
 * connecting at once shares writes, short enough that nobody notices.
 */
const PRESENCE_WINDOW_MS = 25;
/** At most this many fan-outs per event-loop turn, so register/unregister/roster never starve. */
const MAX_PER_TURN = 64;

export class Hub {
  /** Go: Register chan *Client. Joins are decided here: a name must be unique. */
  readonly register = new Channel<Client>();
  /** Go: Unregister chan *Client. */
  readonly unregister = new Channel<Client>();
  /** Go: Broadcast chan []byte; carries messages (private ones too), encoded once on the way out. */
  readonly broadcast = new Channel<Broadcast>(BROADCAST_BUFFER);
  /** The homework's "who is online": send a reply channel, get the roster back on it. */
  readonly roster = new Channel<Channel<ClientInfo[]>>();
  /** Shutdown: every client is closed with this code and reason, then run() returns. */
  readonly quit = new Channel<{ code: number; reason: string }>(1);

  /** Go: Clients map[*Client]bool. A Set keeps join order, which /clients reports. */
  private readonly clients = new Set<Client>();
  /** Clients admitted so far: the last joinSeq given. */
  private joined = 0;
  private readonly byName = new Map<string, Client>();
  private readonly log: (line: string) => void;

  /**
   * Fan-outs between two event-loop turns. writePumps flush at the end of a turn (endOfTurn), so a
   * client's queue holds at most two turns' worth: half its capacity each means a client that keeps
   * reading is never dropped for a burst. Past the budget the Hub yields a turn, and the bounded
   * broadcast buffer pushes back on the readers meanwhile.
   */
  private readonly perTurn: number;
  private fannedOut = 0;
  /**
   * Messages waiting their turn, in order. Join and leave notices wait here for PRESENCE_WINDOW_MS,
   * so a burst of joins (N clients connecting cost N² notices) reaches each client as one write; a
   * chat message that arrives meanwhile queues behind them, so nobody speaks before their join shows.
   */
  private readonly outbox: (Outgoing | undefined)[] = [];
  private outboxHead = 0;
  /** Deliver from the outbox now: its window is over, or a message waits behind the notices. */
  private flushing = false;
  /** Go: time.NewTimer(window); null (a nil channel in the select: never ready) when none waits. */
  private window: Timer | null = null;
  /** Broadcasts taken so far, and clients whose last messages are still queued ahead of their leave. */
  private taken = 0;
  private readonly leaving: { client: Client; after: number }[] = [];

  constructor(options: HubOptions = {}) {
    this.log = options.log ?? (() => {});
    this.perTurn = Math.max(1, Math.min(MAX_PER_TURN, Math.floor((options.sendQueue ?? 256) / 2)));
  }

  /** Go: func (h *Hub) Run(). Returns after a quit request, with every client closed. */
  async run(): Promise<void> {
    for (;;) {
      if (this.flushing) this.flush();
      if (this.fannedOut >= this.perTurn) {
        // Let the writePumps flush what this turn queued before fanning out more.
        this.fannedOut = 0;
        await endOfTurn();
        continue;
      }
      const r = await select({
        register: this.register,
        unregister: this.unregister,
        broadcast: this.broadcast,
        roster: this.roster,
        quit: this.quit,
        window: this.window?.c ?? null,
      });
      switch (r.case) {
        case 'window':
          this.window = null;
          this.flushing = true;
          break;
        case 'register':
          this.onRegister(r.value!);
          break;
        case 'unregister':
          this.onUnregister(r.value!);
          break;
        case 'broadcast':
          this.onBroadcast(r.value!);
          // Take what else is already queued, within this turn's budget (one at a time while notices wait).
          while (this.fannedOut < this.perTurn && this.outboxHead === this.outbox.length) {
            const next = this.broadcast.tryReceive();
            if (!next.ready || !next.ok) break;
            this.onBroadcast(next.value);
          }
          break;
        case 'roster':
          r.value!.trySend(this.list());
          break;
        case 'quit':
          this.shutdown(r.value!.code, r.value!.reason);
          return;
      }
    }
  }

  /**
   * Sends a message to the local clients it is for: everyone, or the addressee of a private one.
   * Encoded once: every socket gets the same bytes.
   */
  deliver(message: ChatMessage, upTo = this.joined): void {
    this.fannedOut++;
    const frame = PreparedFrame.text(encodeMessage(message));
    if (message.type === 'private') {
      const to = this.byName.get(message.to!);
      if (to !== undefined && to.joinSeq <= upTo && !to.send.trySend(frame)) this.dropSlow(to);
      return;
    }
    let slow: Client[] | undefined;
    for (const client of this.clients) {
      if (client.joinSeq > upTo) break; // join order: everyone after this joined after it was said
      if (!client.send.trySend(frame)) (slow ??= []).push(client);
    }
    if (slow !== undefined) for (const client of slow) this.dropSlow(client);
  }

  /** Only members speak: a client refused or dropped before its message got here is not heard. */
  private onBroadcast(b: Broadcast): void {
    this.taken++;
    this.speak(b);
    // Leavers whose last messages have now all been delivered.
    while (this.leaving.length > 0 && this.leaving[0]!.after <= this.taken) this.leave(this.leaving.shift()!.client);
  }

  private speak(b: Broadcast): void {
    if (b.from !== null && !this.clients.has(b.from)) return;
    const to = b.message.to;
    if (b.from !== null && to !== undefined && !this.byName.has(to)) {
      this.tell(b.from, errorMessage(`${to} is not online`));
      return;
    }
    this.send(b.message);
  }

  /** A message that must keep its place behind any waiting notices; for those present now. */
  private send(message: ChatMessage): void {
    if (this.outboxHead === this.outbox.length) {
      this.deliver(message);
    } else {
      this.outbox.push({ message, upTo: this.joined });
      this.flushing = true;
    }
  }

  /**
   * A join or leave notice for the clients who had joined by then (`upTo`): it waits for the presence
   * window, with the others of the same burst.
   */
  private announce(notice: ChatMessage, upTo: number): void {
    if (this.clients.size === 0) {
      // Nobody left to tell anything: what waits in the outbox has no audience either.
      this.clearOutbox();
      return;
    }
    this.outbox.push({ message: notice, upTo });
    if (!this.flushing && this.window === null) this.window = newTimer(PRESENCE_WINDOW_MS);
  }

  /** Delivers from the outbox in order, within the turn's budget. */
  private flush(): void {
    while (this.outboxHead < this.outbox.length && this.fannedOut < this.perTurn) {
      const { message, upTo } = this.outbox[this.outboxHead]!;
      this.outbox[this.outboxHead++] = undefined; // keep no reference to what went out
      this.deliver(message, upTo);
    }
    if (this.outboxHead === this.outbox.length) this.clearOutbox();
  }

  private clearOutbox(): void {
    this.outbox.length = 0;
    this.outboxHead = 0;
    this.flushing = false;
    this.window?.stop();
    this.window = null;
  }

  private onRegister(client: Client): void {
    if (this.byName.has(client.name)) {
      this.log(`refused name=${JSON.stringify(client.name)} reason="name taken"`);
      this.tell(client, errorMessage(`the name ${client.name} is taken: choose another`));
      client.finish(CloseCode.PolicyViolation, 'name taken');
      return;
    }
    this.clients.add(client);
    this.byName.set(client.name, client);
    client.joinSeq = ++this.joined;
    this.announce(joinNotice(client.name), client.joinSeq);
  }

  private onUnregister(client: Client): void {
    if (!this.clients.has(client)) return;
    // Its readPump queued its last messages before unregistering: they go out before its leave notice.
    const ahead = this.broadcast.length + this.broadcast.waitingSenders;
    if (ahead === 0) this.leave(client);
    else this.leaving.push({ client, after: this.taken + ahead });
  }

  private leave(client: Client): void {
    if (!this.remove(client)) return; // dropped as too slow meanwhile
    client.finish(CloseCode.Normal, '');
    this.announce(leaveNotice(client.name), this.joined);
  }

  /** A message for one client only (errors): a full queue drops that client like any other. */
  private tell(client: Client, message: ChatMessage): void {
    if (client.send.closed) return;
    this.fannedOut++; // counts against the turn's budget like any fan-out: a flood of errors is a flood too
    if (!client.send.trySend(PreparedFrame.text(encodeMessage(message)))) this.dropSlow(client);
  }

  /** The lesson's rule: a client that cannot keep up is dropped, not waited for. */
  private dropSlow(client: Client): void {
    const registered = this.remove(client);
    this.log(`dropped name=${JSON.stringify(client.name)} reason="send queue full"`);
    client.drop(CloseCode.PolicyViolation, 'too slow: send queue full');
    // Announced like any leave (not sent from inside a fan-out): a mass drop must not overflow
    // everyone's queue within this turn.
    if (registered) this.announce(leaveNotice(client.name), this.joined);
  }

  private remove(client: Client): boolean {
    if (!this.clients.delete(client)) return false;
    if (this.byName.get(client.name) === client) this.byName.delete(client.name);
    return true;
  }

  private list(): ClientInfo[] {
    const rows: ClientInfo[] = [];
    for (const c of this.clients) rows.push({ name: c.name, connectedAt: c.connectedAt.toISOString() });
    return rows;
  }

  private shutdown(code: number, reason: string): void {
    for (const client of this.clients) client.drop(code, reason);
    this.clients.clear();
    this.byName.clear();
    this.leaving.length = 0;
    this.clearOutbox();
    // Anyone still trying to reach the Hub learns it is gone instead of waiting forever.
    this.register.close();
    this.unregister.close();
    this.broadcast.close();
    this.roster.close();
  }
}

/** Asks the Hub for the roster through its channel (never by reading its state). */
export async function whoIsOnline(hub: Hub): Promise<ClientInfo[]> {
  const reply = new Channel<ClientInfo[]>(1);
  await hub.roster.send(reply);
  return (await reply.receive()) ?? [];
}
