/**
 * Client: one connection of a chatter (the lesson's models.Client): its WebSocket connection, its name,
 * and the bounded `send` channel the Hub fills and the client's writePump drains. The name itself (the
 * rooms, the inbox) belongs to a Session, which may outlive this connection.
 */
import { Channel } from '../../channel';
import type { EventLog } from '../../log';
import type { PreparedFrame, WebSocketConnection } from '../../websocket';
import type { Hello } from './protocol';
import type { Session } from './session';

/** What takes one place in a send queue: a frame, or a backlog of them (history, recovered messages). */
export type Outbound = PreparedFrame | readonly PreparedFrame[];

export class Client {
  /** The lesson's Name; empty until the first message has chosen it. */
  name = '';
  /** Who the client says it is (its first message); the Hub decides. */
  hello: Hello | null = null;
  /** The session this connection speaks for, once the Hub has admitted it. */
  session: Session | null = null;
  /** The lesson's Send chan: bounded, so a slow reader costs at most `capacity` queued entries. */
  readonly send: Channel<Outbound>;
  /** Why the server ended this client, when it did; the writePump closes the connection with it. */
  closeCode: number | undefined;
  closeReason = '';
  /** The connection ended without a close frame from the peer or a decision of ours: it may come back. */
  vanished = false;
  /** This connection's log: its events carry where it comes from. */
  log: EventLog = () => {};

  constructor(
    /** The lesson's Conn. */
    readonly conn: WebSocketConnection,
    sendQueue: number,
  ) {
    this.send = new Channel<Outbound>(sendQueue);
  }

  /**
   * The one way a frame enters this client's queue: without waiting, like Go's
   * `select { case client.Send <- m: default: }`. False when the queue is full: the client is too slow.
   */
  post(out: Outbound): boolean {
    return this.send.trySend(out);
  }

  /**
   * Ends the client after what is queued (Go: close(client.Send)): the writePump writes the frames
   * already in `send` (a refusal's error message, say), then closes the connection with `code`.
   */
  finish(code: number, reason: string): void {
    if (this.send.closed) return;
    this.endWith(code, reason);
    this.send.close();
  }

  /** Records why the server ends this client; the first reason recorded is the one the peer gets. */
  endWith(code: number, reason: string): void {
    if (this.closeCode !== undefined) return;
    this.closeCode = code;
    this.closeReason = reason;
  }

  /**
   * Drops the client now: its writePump may be stuck waiting for a socket the peer no longer reads,
   * so closing the channel alone would never reach it. The close frame goes out behind what is
   * already buffered; the connection is destroyed if the peer does not answer in time.
   */
  drop(code: number, reason: string): void {
    this.finish(code, reason);
    this.conn.close(code, reason);
  }
}
