/**
 * The chat's wire format: what the server says, as JSON text. Every message keeps the lesson's two
 * fields, `user` and `message`, first; the rest is added around them.
 *
 *   {"type":"chat","user":"alice","message":"hi","time":"<ISO 8601>","stream":"lobby","offset":58,"epoch":"..."}
 *
 * chat, private, join and leave messages are stored in a stream (a room, or a user's inbox `@name`) and
 * carry their place in it: `stream`, `offset` (1, 2, 3... without gaps) and `epoch` (which life of the
 * stream the offsets count in). Replies to one client (welcome, ack, joined, left, history, error) are
 * not stored. Encoding is by hand with a fixed field order, so every client sees the same shape.
 */
import { SYSTEM_USER } from './names';

export type StoredType = 'join' | 'leave' | 'chat' | 'private';
export type MessageType = StoredType | 'error';

/** A message as said or announced, before a stream gives it a place. */
export interface ChatMessage {
  readonly type: StoredType;
  readonly user: string;
  readonly message: string;
  /** Private messages: the addressee, as they typed their name. */
  readonly to?: string;
  /** Join and leave notices: the member who came or went. */
  readonly name?: string;
  readonly time: string;
}

/** A stream's identity and how far it goes: the epoch its offsets count in, and its latest offset. */
export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

const now = (): string => new Date().toISOString();

/** The lobby keeps the lesson's words; other rooms name themselves. */
function where(room: string): string {
  return room === 'lobby' ? 'the chat' : `#${room}`;
}

export function joinNotice(name: string, room: string): ChatMessage {
  return { type: 'join', user: SYSTEM_USER, message: `${name} joined ${where(room)}`, name, time: now() };
}

export function leaveNotice(name: string, room: string): ChatMessage {
  return { type: 'leave', user: SYSTEM_USER, message: `${name} left ${where(room)}`, name, time: now() };
}

export function chatMessage(user: string, message: string): ChatMessage {
  return { type: 'chat', user, message, time: now() };
}

export function privateMessage(user: string, to: string, message: string): ChatMessage {
  return { type: 'private', user, message, to, time: now() };
}

const str = JSON.stringify;

/** A message with its place in a stream: the JSON every member of the stream receives. */
export function encodeStored(m: ChatMessage, stream: string, offset: number, epoch: string): string {
  return `${encodeStoredHead(m, stream)}${offset},"epoch":"${epoch}"}`;
}

/**
 * Everything of a stored message up to its offset: the place comes last, so whoever assigns it (this
 * process, or Redis for a cluster) appends `<offset>,"epoch":"<epoch>"}`.
 */
export function encodeStoredHead(m: ChatMessage, stream: string): string {
  let json = `{"type":"${m.type}","user":${str(m.user)},"message":${str(m.message)}`;
  if (m.to !== undefined) json += `,"to":${str(m.to)}`;
  if (m.name !== undefined) json += `,"name":${str(m.name)}`;
  return json + `,"time":"${m.time}","stream":${str(stream)},"offset":`;
}

/** The same stored message, marked as history (sent on joining, not live). */
export function asHistory(json: string): string {
  return json.slice(0, -1) + ',"history":true}';
}

/** An error for one client; `cid` names the request it answers, when it had one. */
export function encodeError(message: string, cid?: string): string {
  const tail = cid === undefined ? '' : `,"cid":${str(cid)}`;
  return `{"type":"error","user":"${SYSTEM_USER}","message":${str(message)},"time":"${now()}"${tail}}`;
}

/** What `welcome` says of each stream: its place, and whether the client's position could be resumed. */
export interface StreamWelcome extends Position {
  readonly stream: string;
  readonly recovered: boolean;
}

export function encodeWelcome(name: string, token: string, streams: readonly StreamWelcome[]): string {
  const list = streams.map(
    (s) => `{"stream":${str(s.stream)},"epoch":"${s.epoch}","offset":${s.offset},"recovered":${s.recovered}}`,
  );
  return `{"type":"welcome","name":${str(name)},"token":"${token}","streams":[${list.join(',')}]}`;
}

/** A message with a `cid` was stored (or had been already) at this place. */
export function encodeAck(cid: string, stream: string, at: Position): string {
  return `{"type":"ack","cid":${str(cid)},"stream":${str(stream)},"offset":${at.offset},"epoch":"${at.epoch}"}`;
}

export function encodeJoined(room: string, at: Position): string {
  return `{"type":"joined","room":"${room}","stream":"${room}","epoch":"${at.epoch}","offset":${at.offset}}`;
}

export function encodeLeft(room: string): string {
  return `{"type":"left","room":"${room}"}`;
}

/** A page of a stream's history, oldest first; `more` when older messages are still held. */
export function encodeHistory(
  stream: string,
  epoch: string,
  messages: readonly string[],
  more: boolean,
  cid?: string,
): string {
  const tail = cid === undefined ? '' : `,"cid":${str(cid)}`;
  return (
    `{"type":"history","stream":${str(stream)},"epoch":"${epoch}",` +
    `"messages":[${messages.join(',')}],"more":${more}${tail}}`
  );
}
