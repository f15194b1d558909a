/**
 * Hub: the lesson's models.Hub. It alone owns the set of clients; everything else talks to it through
 * its channels, and run() is the Go goroutine's `for { select }`. One loop owns the set, so no mutex.
 * How messages reach the clients (encode once, pace per turn, hold presence notices) is ./fanout.ts.
 */
import { Channel, select } from '../../channel';
import { CloseCode } from '../../websocket';
import type { Client } from './client';
import { Fanout } from './fanout';
import { errorMessage, joinNotice, leaveNotice, type ChatMessage } from './message';

export class Hub {
  /** Go: Register chan *Client. A name must be free to join. */
  readonly register = new Channel<Client>();
  /** Go: Unregister chan *Client. */
  readonly unregister = new Channel<Client>();
  /**
   * Go: Broadcast chan []byte: what clients say, chat and private alike, in the order they said it.
   * Unbuffered, as in gorilla's chat: a readPump's send completes only once the Hub has taken the
   * message, so its unregister, sent after, can never overtake its last words.
   */
  readonly broadcast = new Channel<Said>();
  /** The homework's "who is online": send a reply channel, get the roster back on it. */
  readonly roster = new Channel<Channel<ClientInfo[]>>();
  /** Shutdown: every client is closed with this code and reason, then run() returns. */
  readonly quit = new Channel<{ readonly code: number; readonly reason: string }>(1);

  /** Go: func (h *Hub) Run(). Returns after a quit request, with every client closed. */
  async run(): Promise<void> {
    for (;;) {
      const r = await select({
        register: this.register,
        unregister: this.unregister,
        // A nil case while this turn's budget is spent: readers wait until the writePumps have flushed.
        broadcast: this.fanout.hasRoom ? this.broadcast : null,
        roster: this.roster,
        fanout: this.fanout.wake,
        quit: this.quit,
      });
      switch (r.case) {
        case 'register': // Go: h.Clients[client] = true, and the exercise's join notice
          this.join(r.value!);
          break;
        case 'unregister': // Go: delete(h.Clients, client); close(client.Send), and the leave notice
          if (this.remove(r.value!)) this.leave(r.value!);
          break;
        case 'broadcast': // Go: for client := range h.Clients { client.Send <- message }
          this.route(r.value!);
          break;
        case 'roster': // the homework's list of who is online
          r.value!.trySend(this.list());
          break;
        case 'fanout': // notices whose presence window closed, or a new turn's budget
          this.fanout.flush();
          break;
        case 'quit':
          this.shutdown(r.value!.code, r.value!.reason);
          return;
      }
    }
  }

  /** Go: Clients map[*Client]bool. A Set keeps join order, which /clients and the fan-out use. */
  private readonly clients = new Set<Client>();
  private readonly byName = new Map<string, Client>();
  private readonly fanout: Fanout;
  /** Clients admitted so far: the joinSeq of the latest. */
  private joined = 0;
  private readonly log: (line: string) => void;

  constructor(options: HubOptions = {}) {
    this.log = options.log ?? (() => {});
    this.fanout = new Fanout(this.clients, {
      perTurn: Math.max(1, Math.min(MAX_PER_TURN, Math.floor((options.sendQueue ?? 256) / 2))),
      presenceWindowMs: PRESENCE_WINDOW_MS,
      onSlow: (client) => this.dropSlow(client),
    });
  }

  private join(client: Client): void {
    if (this.byName.has(client.name)) {
      this.log(`refused name=${JSON.stringify(client.name)} reason="name taken"`);
      this.fanout.tell(client, errorMessage(`the name ${client.name} is taken: choose another`));
      client.finish(CloseCode.PolicyViolation, 'name taken');
      return;
    }
    this.clients.add(client);
    this.byName.set(client.name, client);
    client.joinSeq = ++this.joined;
    this.fanout.announce(joinNotice(client.name), client.joinSeq);
  }

  /** Everyone hears a chat message; a private one (the homework) goes to its addressee alone. */
  private route({ from, message }: Said): void {
    // Only members speak: what a refused or dropped client still had on its way is not heard.
    if (!this.clients.has(from)) return;
    if (message.to === undefined) return this.fanout.send(message, this.joined);
    const to = this.byName.get(message.to);
    if (to === undefined) return this.fanout.tell(from, errorMessage(`${message.to} is not online`));
    this.fanout.send(message, this.joined, to);
  }

  /** The lesson's rule: a client that cannot keep up is dropped, not waited for. */
  private dropSlow(client: Client): void {
    this.log(`dropped name=${JSON.stringify(client.name)} reason="send queue full"`);
    // Its writePump may wait on a socket the peer no longer reads: drop() closes the connection itself.
    client.drop(CloseCode.PolicyViolation, 'too slow: send queue full');
    if (this.remove(client)) this.leave(client);
  }

  /** After remove(): ends the client after what is queued (Go: close(client.Send)) and tells the others. */
  private leave(client: Client): void {
    client.finish(CloseCode.Normal, ''); // a reason recorded earlier (drop, readPump) is kept
    this.fanout.announce(leaveNotice(client.name), this.joined);
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
    this.fanout.clear();
    // Anyone still trying to reach the Hub learns it is gone instead of waiting forever.
    this.register.close();
    this.unregister.close();
    this.broadcast.close();
    this.roster.close();
  }
}

/** What a client said (chat, or private when `message.to` is set), and who said it. */
export interface Said {
  readonly from: Client;
  readonly message: ChatMessage;
}

/** One row of the roster that GET /clients shows. */
export interface ClientInfo {
  readonly name: string;
  readonly connectedAt: string;
}

export interface HubOptions {
  /** Refusals (name taken) and drops (too slow). */
  readonly log?: (line: string) => void;
  /** Capacity of the clients' send channels (SEND_QUEUE); sets how much the Hub fans out per turn. */
  readonly sendQueue?: number;
}

/** How long join and leave notices wait for others of the same burst: a crowd shares writes, nobody notices. */
const PRESENCE_WINDOW_MS = 25;
/** Messages fanned out per event-loop turn at most, however large SEND_QUEUE is: the writes go out sooner. */
const MAX_PER_TURN = 64;

/** Asks the Hub for the roster through its channel (never by reading its state). */
export async function whoIsOnline(hub: Hub): Promise<ClientInfo[]> {
  const reply = new Channel<ClientInfo[]>(1);
  await hub.roster.send(reply);
  return (await reply.receive()) ?? [];
}
