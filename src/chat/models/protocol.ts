/**
 * What clients say, read into requests. Two protocols share the socket:
 *
 *   the lesson's   the first message is a plain name; then text is chat for the lobby, `@bob text` private
 *   v2             the first message is {"type":"hello",...}; then every message is a JSON request
 *
 * Everything here is syntax: shapes, types, lengths. Whether a request makes sense now (a member of
 * that room? bob online?) is the Hub's call.
 */
import type { Position } from './message';

/** The room everyone is in at first, and the only room of the lesson's protocol. */
export const LOBBY = 'lobby';
/** A client's own id for a message, echoed in its ack and errors; opaque to the server. */
export const MAX_CID_LENGTH = 64;
/** The most messages one history request returns. */
export const MAX_HISTORY_PAGE = 100;

/** A room name: lowercase letters, digits, `-` and `_`, 1-32 characters. */
export function isRoomName(s: string): boolean {
  return /^[a-z0-9_-]{1,32}$/.test(s);
}

export type Request =
  | { readonly type: 'chat'; readonly room: string; readonly text: string; readonly cid: string | undefined }
  | { readonly type: 'private'; readonly to: string; readonly text: string; readonly cid: string | undefined }
  | { readonly type: 'join' | 'leave'; readonly room: string; readonly cid: string | undefined }
  | {
      readonly type: 'history';
      readonly stream: string;
      /** Messages before this offset; undefined: the latest. */
      readonly before: number | undefined;
      readonly limit: number;
      readonly cid: string | undefined;
    };

/** A request that cannot be read: the error to answer with, and the cid when there was one. */
export interface Refusal {
  readonly problem: string;
  readonly cid: string | undefined;
}

export interface Hello {
  readonly name: string;
  /** Speaks v2 (JSON both ways, positions, acks) rather than the lesson's protocol. */
  readonly v2: boolean;
  /** The session token from an earlier welcome. */
  readonly token: string | undefined;
  /** The last position the client saw in each stream. */
  readonly resume: ReadonlyMap<string, Position>;
}

/** The lesson's text input: the homework's `@user text`, or a message for everyone. */
export type Input =
  | { readonly kind: 'private'; readonly to: string; readonly text: string }
  | { readonly kind: 'chat'; readonly text: string };

// "@", a name without whitespace, exactly one space, a non-empty rest. Anything else is broadcast.
const PRIVATE = /^@(\S+) ([\s\S]+)$/;

export function parseInput(text: string): Input {
  const match = PRIVATE.exec(text);
  return match ? { kind: 'private', to: match[1]!, text: match[2]! } : { kind: 'chat', text };
}

/** The lesson's text, as the same requests v2 makes: everything goes to the lobby. */
export function lessonRequest(text: string): Request {
  const input = parseInput(text);
  return input.kind === 'private'
    ? { type: 'private', to: input.to, text: input.text, cid: undefined }
    : { type: 'chat', room: LOBBY, text: input.text, cid: undefined };
}

type Json = Record<string, unknown>;

function object(text: string): Json | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'invalid JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a JSON object';
  return value as Json;
}

/** The first message: a plain name (the lesson) or a JSON hello (v2). */
export function parseHello(text: string): Hello | Refusal {
  if (!text.startsWith('{')) return { name: text, v2: false, token: undefined, resume: NO_RESUME };
  const m = object(text);
  if (typeof m === 'string') return { problem: `hello: ${m}`, cid: undefined };
  if (m.type !== 'hello') return { problem: 'the first message must be {"type":"hello","name":...}', cid: undefined };
  if (typeof m.name !== 'string') return { problem: 'hello: "name" must be a string', cid: undefined };
  if (m.token !== undefined && (typeof m.token !== 'string' || m.token.length > 64)) {
    return { problem: 'hello: "token" must be the token from a welcome', cid: undefined };
  }
  const resume = parseResume(m.resume);
  if (typeof resume === 'string') return { problem: `hello: ${resume}`, cid: undefined };
  return { name: m.name, v2: true, token: m.token as string | undefined, resume };
}

/** A hello that resumes nothing: one shared empty map, not one per connection (Hello.resume is read-only). */
const NO_RESUME: ReadonlyMap<string, Position> = new Map();

/** The most streams a resume may name: every room a client may be in, its inbox, and some slack. */
const MAX_RESUME_STREAMS = 64;

function parseResume(value: unknown): ReadonlyMap<string, Position> | string {
  if (value === undefined) return NO_RESUME;
  const resume = new Map<string, Position>();
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return '"resume" must be an object: {"<stream>": {"epoch": "...", "offset": n}}';
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_RESUME_STREAMS) return `"resume" names more than ${MAX_RESUME_STREAMS} streams`;
  for (const [stream, at] of entries) {
    const p = at as Json | null;
    if (typeof p !== 'object' || p === null || typeof p.epoch !== 'string' || !isOffset(p.offset)) {
      return `"resume" for ${JSON.stringify(stream)} must be {"epoch": "...", "offset": n}`;
    }
    resume.set(stream, { epoch: p.epoch, offset: p.offset });
  }
  return resume;
}

function isOffset(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A v2 request after the hello. */
export function parseRequest(text: string): Request | Refusal {
  const m = object(text);
  if (typeof m === 'string') return { problem: m, cid: undefined };
  let cid: string | undefined;
  if (m.cid !== undefined) {
    if (typeof m.cid !== 'string' || m.cid.length === 0 || m.cid.length > MAX_CID_LENGTH) {
      return { problem: `"cid" must be a string of 1 to ${MAX_CID_LENGTH} characters`, cid: undefined };
    }
    cid = m.cid;
  }
  const refuse = (problem: string): Refusal => ({ problem, cid });
  switch (m.type) {
    case 'chat': {
      const room = m.room ?? LOBBY;
      if (typeof room !== 'string' || !isRoomName(room)) return refuse(roomProblem(room));
      if (typeof m.message !== 'string') return refuse('"message" must be a string');
      if (m.message.length === 0) return refuse('empty messages are not sent');
      return { type: 'chat', room, text: m.message, cid };
    }
    case 'private':
      if (typeof m.to !== 'string' || m.to.length === 0) return refuse('"to" must be a name');
      if (typeof m.message !== 'string') return refuse('"message" must be a string');
      if (m.message.length === 0) return refuse('empty messages are not sent');
      return { type: 'private', to: m.to, text: m.message, cid };
    case 'join':
    case 'leave':
      if (typeof m.room !== 'string' || !isRoomName(m.room)) return refuse(roomProblem(m.room));
      return { type: m.type, room: m.room, cid };
    case 'history': {
      if (typeof m.stream !== 'string') return refuse('"stream" must be a room or @name');
      if (m.before !== undefined && (!isOffset(m.before) || m.before === 0)) {
        return refuse('"before" must be an offset (a whole number from 1)');
      }
      const limit = m.limit ?? MAX_HISTORY_PAGE;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_PAGE) {
        return refuse(`"limit" must be a whole number from 1 to ${MAX_HISTORY_PAGE}`);
      }
      return { type: 'history', stream: m.stream, before: m.before as number | undefined, limit, cid };
    }
    default:
      return refuse(`unknown message type ${JSON.stringify(m.type ?? null)}`);
  }
}

function roomProblem(room: unknown): string {
  return `invalid room name ${JSON.stringify(room ?? null)}: 1-32 lowercase letters, digits, "-" or "_"`;
}

export function isRefusal(r: Request | Hello | Refusal): r is Refusal {
  return 'problem' in r;
}
