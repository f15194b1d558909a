/**
 * Hub: the lesson's models.Hub. It owns the set of clients and is the only code that touches it:
 * everything else talks to it through its channels, and `run()` is the Go goroutine's `for { select }`.
 * So there is no lock (the lesson's mutex guards the same map from several goroutines; here one loop
 * owns it, which is what the channels buy in Go too).
 *
 * Fan-out is the hot path: a message is encoded to one frame once, and the same frame goes into every
 * client's bounded `send` channel with trySend (Go's `select { case client.Send <- m: default: }`).
 * A client whose channel is full is dropped with 1008 and its leave notice goes out at once: a slow
 * reader never slows the others.
 *
 * Order: everything a client says (chat and private alike) travels on the one `broadcast` channel,
 * so it reaches others in the order it was said, and an unregister first delivers what is still
 * queued there, so nobody's last words arrive after their leave notice.
 *
 * Scale-out seam: `deliver()` is the one place where a message reaches local clients. A broker bridge
 * (Redis pub/sub) would publish what arrives on `broadcast` and call `deliver()` for what the broker
 * hands back; nothing else would change.
 */
import { Channel, endOfTurn, select } from '../../channel';
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
  /** Leave notices owed for clients dropped mid fan-out; they go out first, within the budget. */
  private readonly owed: ChatMessage[] = [];
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
      while (this.owed.length > 0 && this.fannedOut < this.perTurn) this.deliver(this.owed.shift()!);
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
      });
      switch (r.case) {
        case 'register':
          this.onRegister(r.value!);
          break;
        case 'unregister':
          this.onUnregister(r.value!);
          break;
        case 'broadcast':
          this.onBroadcast(r.value!);
          // Take what else is already queued, within this turn's budget.
          while (this.fannedOut < this.perTurn) {
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
  deliver(message: ChatMessage): void {
    this.fannedOut++;
    const frame = PreparedFrame.text(encodeMessage(message));
    if (message.type === 'private') {
      const to = this.byName.get(message.to!);
      if (to !== undefined && !to.send.trySend(frame)) this.dropSlow(to);
      return;
    }
    let slow: Client[] | undefined;
    for (const client of this.clients) {
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
    this.deliver(b.message);
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
    this.deliver(joinNotice(client.name));
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
    this.deliver(leaveNotice(client.name));
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
    // Owed, not sent now: a mass drop must not flood everyone's queue within this turn.
    if (registered) this.owed.push(leaveNotice(client.name));
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
    this.owed.length = 0;
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
