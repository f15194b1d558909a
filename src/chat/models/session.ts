/**
 * Session: a person holding a name, across connections. The name, the rooms and the private inbox
 * belong to the session; the connection (`client`) may come and go: a v2 client that vanishes keeps
 * its session for the grace period, and its token brings it back with nothing lost.
 */
import { randomBytes } from 'node:crypto';
import type { Channel } from '../../channel';
import { CloseCode } from '../../websocket';
import type { Client } from './client';
import { Stream } from './history';
import type { Members, Room } from './rooms';

/** 144 random bits, unguessable. */
export function newToken(): string {
  return randomBytes(18).toString('base64url');
}

export class Session {
  /** Proof of the name for a later hello: 144 random bits, unguessable. */
  readonly token: string;
  readonly rooms = new Set<Room>();
  readonly connectedAt: Date;
  /** Set while the session waits for its client to come back. */
  grace: NodeJS.Timeout | null = null;
  private privateStream: Stream | null = null;
  private privateMembers: Members | null = null;

  constructor(
    /** As its owner typed it. */
    readonly name: string,
    /** The comparison form (nameKey). */
    readonly key: string,
    /** Speaks v2 (JSON, positions, acks, resume); the lesson's clients cannot resume. */
    readonly v2: boolean,
    /** The connection now, or null during the grace period. */
    public client: Client | null,
    private readonly historySize: number,
    /** A session that already exists elsewhere (a cluster node resuming it) keeps its token and its start. */
    known?: { readonly token: string; readonly connectedAt: Date },
  ) {
    this.token = known?.token ?? newToken();
    this.connectedAt = known?.connectedAt ?? new Date();
  }

  /**
   * The private inbox, `@` + the name's key: stored here, it outlives a dropped connection. Made on first
   * use (a v2 welcome, a private message): a session nobody writes to costs no stream.
   */
  get inbox(): Stream {
    return (this.privateStream ??= new Stream(this.inboxName, this.historySize));
  }

  /** The inbox's stream name, without making the inbox. */
  get inboxName(): string {
    return `@${this.key}`;
  }

  /** Messages the inbox holds, without making it (0 before its first). */
  get inboxHeld(): number {
    return this.privateStream?.held ?? 0;
  }

  /** The inbox's one member is the session itself. */
  get inboxMembers(): Members {
    return (this.privateMembers ??= new Map([[this, 0]]));
  }

  /**
   * Its client's connection vanished (no close frame either way): a v2 client may come back with its
   * token, so the session waits `graceMs` without it, then goes on `expired`. False when it does not wait
   * (a clean close, the lesson's clients, no grace period): the session ends now.
   */
  awaitReturn(client: Client, graceMs: number, expired: Channel<Session>): boolean {
    if (!client.vanished || !this.v2 || graceMs <= 0) return false;
    this.client = null;
    client.finish(CloseCode.Normal, '');
    this.grace = setTimeout(() => void expired.send(this), graceMs);
    this.grace.unref();
    return true;
  }
}
