/**
 * The terminal client's side of protocol v2, without any I/O: who we are (name, token), where we are
 * (our rooms, the room plain lines go to), the last position seen in each stream, and what we said that
 * the server has not acknowledged yet.
 *
 *   hello()     the first message of every connection: after a drop it carries the token and positions
 *   say()       a line becomes a chat (to the current room) or private request with a cid, kept until acked
 *   receive()   a server message becomes what to show: stored messages once each (offsets already shown
 *               are skipped), history marked as earlier, errors with what they refer to
 *
 * So a reconnect, whatever it cost, shows every message once and sends every line once: the server
 * resumes from our positions and ignores a cid it has stored already.
 */
import { randomBytes } from 'node:crypto';
import { LOBBY, parseInput } from '../chat/models/protocol';
import type { ServerMessage } from './format';

export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

/** Something to show, in order. */
export type Shown =
  | { readonly kind: 'message'; readonly message: ServerMessage }
  | { readonly kind: 'note'; readonly text: string }
  | { readonly kind: 'error'; readonly text: string; readonly time?: string }
  | { readonly kind: 'raw'; readonly text: string };

/** A request on its way: its JSON, and the line it came from. */
export interface Outgoing {
  readonly cid: string;
  readonly json: string;
  readonly text: string;
}

export interface Received {
  readonly shown: Shown[];
  /** cids whose request got its answer (an ack, joined, left, or an error). */
  readonly settled: string[];
  /** The server refused a request for the rate limit: slow down, then send what is unacked again. */
  readonly throttled: boolean;
}

type Json = Record<string, unknown>;

export class Conversation {
  token: string | undefined;
  /** Where plain lines go. */
  current = LOBBY;
  /** The rooms we are in, the lobby first. */
  rooms: string[] = [];
  /** What we said, by cid, in the order said, until the server acknowledges it. */
  readonly outbox = new Map<string, Outgoing>();
  private readonly positions = new Map<string, Position>();
  /** Join and leave requests waiting for `joined` / `left`. */
  private readonly requests = new Map<string, { readonly type: 'join' | 'leave'; readonly room: string }>();
  /** Streams whose "earlier" heading was shown since the last welcome or join. */
  private readonly earlier = new Set<string>();
  /** cids are ours across sessions too: the server ignores a cid of this name it still holds. */
  private readonly prefix = randomBytes(6).toString('base64url');
  private seq = 0;
  private welcomed = false;

  constructor(readonly name: string) {}

  hello(): string {
    const resume: Record<string, Position> = {};
    for (const [stream, at] of this.positions) resume[stream] = at;
    const hello = { type: 'hello', name: this.name, token: this.token, resume: this.welcomed ? resume : undefined };
    return JSON.stringify(hello);
  }

  /** A line to send: `@bob text` is private, anything else goes to the current room. */
  say(line: string): Outgoing {
    const cid = this.nextCid();
    const input = parseInput(line);
    const body =
      input.kind === 'private'
        ? { type: 'private', to: input.to, message: input.text, cid }
        : { type: 'chat', room: this.current, message: line, cid };
    const out = { cid, json: JSON.stringify(body), text: line };
    this.outbox.set(cid, out);
    return out;
  }

  /** A join or leave request; its answer settles its cid. */
  request(type: 'join' | 'leave', room: string): Outgoing {
    const cid = this.nextCid();
    this.requests.set(cid, { type, room });
    return { cid, json: JSON.stringify({ type, room, cid }), text: `/${type} #${room}` };
  }

  /** A connection ended: requests on it will get no answer (the next welcome says where we are). */
  dropRequests(): string[] {
    const cids = [...this.requests.keys()];
    this.requests.clear();
    return cids;
  }

  receive(m: Json): Received {
    const shown: Shown[] = [];
    const settled: string[] = [];
    let throttled = false;
    const cid = typeof m.cid === 'string' ? m.cid : undefined;
    switch (m.type) {
      case 'welcome':
        this.welcome(m, shown);
        break;
      case 'ack':
        if (cid !== undefined && this.outbox.delete(cid)) settled.push(cid);
        break;
      case 'joined':
      case 'left':
        settled.push(...this.answered(m.type === 'joined' ? 'join' : 'leave', String(m.room)));
        if (m.type === 'joined') this.joined(m);
        else {
          this.left(String(m.room));
          shown.push({ kind: 'note', text: `you left #${String(m.room)}` }); // the others get the notice
        }
        break;
      case 'error': {
        const text = String(m.message);
        const time = typeof m.time === 'string' ? m.time : undefined;
        const said = cid === undefined ? undefined : this.outbox.get(cid);
        const asked = cid === undefined ? undefined : this.requests.get(cid);
        if (/^rate limit/.test(text)) {
          // Not a refusal of the line itself: the server asks us to slow down; it is sent again later.
          throttled = true;
          shown.push({ kind: 'error', text, time });
        } else if (said !== undefined) {
          this.outbox.delete(cid!);
          shown.push({ kind: 'error', text: `${text} (not sent: ${JSON.stringify(said.text)})`, time });
        } else if (asked !== undefined) {
          this.requests.delete(cid!);
          shown.push({ kind: 'error', text: `${text} (/${asked.type} #${asked.room})`, time });
        } else {
          shown.push({ kind: 'error', text, time });
        }
        if (!throttled && (said !== undefined || asked !== undefined)) settled.push(cid!);
        break;
      }
      case 'chat':
      case 'private':
      case 'join':
      case 'leave':
        this.stored(m, shown);
        break;
      case 'history':
        break; // we ask for none
      default:
        shown.push({ kind: 'raw', text: JSON.stringify(m) });
    }
    return { shown, settled, throttled };
  }

  private nextCid(): string {
    return `${this.prefix}-${++this.seq}`;
  }

  private welcome(m: Json, shown: Shown[]): void {
    if (typeof m.token === 'string') this.token = m.token;
    type Listed = Position & { stream: string; recovered: boolean };
    const streams = Array.isArray(m.streams) ? (m.streams as Listed[]) : [];
    const listed = new Set<string>();
    this.rooms = [];
    for (const s of streams) {
      listed.add(s.stream);
      if (!s.stream.startsWith('@')) this.rooms.push(s.stream);
      const had = this.positions.get(s.stream);
      if (s.recovered && had !== undefined) continue; // what we missed follows, from our position on
      if (had !== undefined) {
        const why = had.epoch !== s.epoch ? 'its history was reset' : 'too much happened meanwhile';
        shown.push({ kind: 'note', text: `some messages ${where(s.stream)} may be missing: ${why}` });
      }
      this.positions.set(s.stream, { epoch: s.epoch, offset: s.offset });
    }
    for (const stream of [...this.positions.keys()]) if (!listed.has(stream)) this.positions.delete(stream);
    if (!this.rooms.includes(this.current)) this.current = this.rooms[0] ?? LOBBY;
    this.earlier.clear();
    this.welcomed = true;
  }

  private joined(m: Json): void {
    const room = String(m.room);
    if (!this.rooms.includes(room)) this.rooms.push(room);
    this.positions.set(room, { epoch: String(m.epoch), offset: Number(m.offset) });
    this.earlier.delete(room);
    this.current = room;
  }

  private left(room: string): void {
    this.rooms = this.rooms.filter((r) => r !== room);
    this.positions.delete(room);
    if (this.current === room) this.current = LOBBY;
  }

  private answered(type: 'join' | 'leave', room: string): string[] {
    const cids: string[] = [];
    for (const [cid, r] of this.requests) {
      if (r.type === type && r.room === room) {
        this.requests.delete(cid);
        cids.push(cid);
      }
    }
    return cids;
  }

  /** A stored message: shown once (later copies of an offset are skipped), history under a heading. */
  private stored(m: Json, shown: Shown[]): void {
    const stream = String(m.stream);
    const at = this.positions.get(stream);
    if (at === undefined || typeof m.user !== 'string' || typeof m.message !== 'string') return; // not ours (left)
    const message: ServerMessage = {
      type: m.type as ServerMessage['type'],
      user: m.user,
      message: m.message,
      ...(typeof m.to === 'string' ? { to: m.to } : {}),
      time: typeof m.time === 'string' ? m.time : '',
      stream,
      ...(m.history === true ? { history: true } : {}),
    };
    if (m.history === true) {
      if (!this.earlier.has(stream)) shown.push({ kind: 'note', text: `earlier ${where(stream)}:` });
      this.earlier.add(stream);
      shown.push({ kind: 'message', message });
      return;
    }
    const offset = Number(m.offset);
    if (m.epoch !== at.epoch || !(offset > at.offset)) return; // shown already
    this.positions.set(stream, { epoch: at.epoch, offset });
    shown.push({ kind: 'message', message });
  }
}

function where(stream: string): string {
  if (stream === LOBBY) return 'in the lobby';
  return stream.startsWith('@') ? 'in your private messages' : `in #${stream}`;
}
