/**
 * A v2 chat client that survives its connection: it keeps its token, the last position it saw in each
 * stream and every message it sent until acked; when its connection is cut it says hello again with the
 * token and positions, and resends what was not acked (same cids). It records what each stream delivered
 * and reports any anomaly: a gap, a duplicate, a message out of order, a resume the server could not honour.
 *
 * No test framework here: the exactly-once test and the soak both use it.
 */
import { connect, type WebSocketConnection } from '../../src/websocket';

export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

type Json = Record<string, unknown>;

export interface SentMessage {
  readonly cid: string;
  /** The request as sent (chat or private). */
  readonly body: Json;
}

export class ResumingClient {
  token: string | undefined;
  /** The last position seen in each stream. */
  readonly positions = new Map<string, Position>();
  /** Per stream, the offsets received in order, and each message's JSON by offset. */
  readonly offsets = new Map<string, number[]>();
  readonly messages = new Map<string, Map<number, Json>>();
  /** Where each stream started for this client (offsets after it are owed to it). */
  readonly starts = new Map<string, number>();
  /** Join and leave notices seen live (not as history), as "type name stream". */
  readonly presence: string[] = [];
  readonly anomalies: string[] = [];
  /** Sent and not yet acked, by cid. */
  readonly pending = new Map<string, SentMessage>();
  readonly acked = new Map<string, Position & { stream: string }>();
  reconnects = 0;

  private conn: WebSocketConnection | null = null;
  private reading: Promise<void> = Promise.resolve();
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  /** What this client said that came back to it, by text: a text seen twice was stored twice. */
  private readonly own = new Set<string>();

  constructor(
    /** Where connect() goes: a test may point the next reconnect at another server (a cluster's node). */
    public url: string,
    readonly name: string,
    /** Keep every message and offset (a test checks them all); a long soak keeps positions only. */
    private readonly record = true,
  ) {}

  get connected(): boolean {
    return this.conn !== null && this.conn.readyState === 'open';
  }

  /** Says hello (with the token and positions after the first time) and waits for the welcome. */
  async connect(): Promise<void> {
    const conn = await connect(this.url, { maxMessageBytes: 16 * 1024 * 1024 });
    this.conn = conn;
    let welcomed!: () => void;
    const welcome = new Promise<void>((resolve) => (welcomed = resolve));
    this.reading = this.read(conn, welcomed);
    const resume: Record<string, Position> = {};
    for (const [stream, at] of this.positions) resume[stream] = at;
    conn.send(JSON.stringify({ type: 'hello', name: this.name, token: this.token, resume }));
    await welcome; // or the connection ended first
    if (this.conn !== conn) return;
    for (const sent of this.pending.values()) conn.send(JSON.stringify(sent.body));
  }

  /** Cuts the connection the way a network does: no close frame; then comes back. */
  async cut(): Promise<void> {
    const conn = this.conn;
    if (conn === null) return;
    this.conn = null;
    conn.terminate();
    await this.reading;
    if (this.stopped) return;
    this.reconnects++;
    await this.connect();
  }

  /** Sends a chat or private request with a fresh cid; it is resent after a cut until acked. */
  send(body: Json & { cid: string }): void {
    this.pending.set(body.cid, { cid: body.cid, body });
    if (this.connected) this.conn!.send(JSON.stringify(body));
  }

  /** Joins a room and waits for `joined`. */
  async join(room: string): Promise<void> {
    const joined = this.until(() => this.starts.has(room));
    this.conn!.send(JSON.stringify({ type: 'join', room }));
    await joined;
  }

  /** Resolves once `condition` holds (checked after every message). */
  until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!condition()) return;
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  async close(): Promise<void> {
    this.stopped = true;
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) {
      conn.close();
      await conn.closed;
    }
    await this.reading;
  }

  private async read(conn: WebSocketConnection, welcomed: () => void): Promise<void> {
    for await (const m of conn) {
      if (m.binary) {
        this.anomalies.push(`${this.name}: binary frame`);
        continue;
      }
      const json = JSON.parse(m.data) as Json;
      this.receive(json);
      if (json.type === 'welcome') welcomed();
      for (const check of [...this.waiters]) check();
    }
    welcomed();
  }

  private receive(m: Json): void {
    switch (m.type) {
      case 'welcome':
        this.token = m.token as string;
        for (const s of m.streams as (Position & { stream: string; recovered: boolean })[]) {
          if (!this.starts.has(s.stream)) this.starts.set(s.stream, s.offset);
          else if (!s.recovered) this.anomalies.push(`${this.name}: ${s.stream} not recovered on resume`);
          if (!this.positions.has(s.stream)) this.positions.set(s.stream, { epoch: s.epoch, offset: s.offset });
        }
        return;
      case 'joined':
        this.starts.set(m.room as string, m.offset as number);
        this.positions.set(m.room as string, { epoch: m.epoch as string, offset: m.offset as number });
        return;
      case 'ack':
        this.pending.delete(m.cid as string);
        const at = { stream: m.stream as string, epoch: m.epoch as string, offset: m.offset as number };
        this.acked.set(m.cid as string, at);
        return;
      case 'error':
        this.anomalies.push(`${this.name}: error ${String(m.message)}`);
        return;
      default:
        if (typeof m.stream === 'string' && typeof m.offset === 'number') this.stored(m);
    }
  }

  private stored(m: Json): void {
    const stream = m.stream as string;
    const offset = m.offset as number;
    if (m.history === true) return; // history is shown apart; it is not owed
    const seen = this.offsets.get(stream) ?? [];
    const last = seen.length > 0 ? seen[seen.length - 1]! : (this.starts.get(stream) ?? 0);
    if (offset <= last) this.anomalies.push(`${this.name}: ${stream} ${offset} again (after ${last})`);
    else if (offset !== last + 1) this.anomalies.push(`${this.name}: ${stream} jumped from ${last} to ${offset}`);
    if (m.user === this.name && m.type !== 'join' && m.type !== 'leave') {
      const text = `${stream} ${String(m.message)}`;
      if (this.own.has(text)) this.anomalies.push(`${this.name}: stored twice: ${text}`);
      this.own.add(text);
    }
    if (!this.record) {
      this.offsets.set(stream, [offset]); // the last one is all a soak needs
    } else {
      seen.push(offset);
      this.offsets.set(stream, seen);
      let byOffset = this.messages.get(stream);
      if (byOffset === undefined) this.messages.set(stream, (byOffset = new Map()));
      byOffset.set(offset, m);
    }
    this.positions.set(stream, { epoch: m.epoch as string, offset });
    if (m.type === 'join' || m.type === 'leave') this.presence.push(`${m.type} ${String(m.name)} ${stream}`);
  }
}
