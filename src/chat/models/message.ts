/**
 * The chat's wire format: what the server says, as JSON text (the lesson's `Message` struct with
 * its two fields, `user` and `message`, plus a type and a time), and how it reads what clients say.
 *
 *   {"type":"join|leave|chat|private|error","user":"...","message":"...","time":"<ISO 8601>"}
 *   private messages also carry "to".
 */

/** The lesson's sender name for notices; no client may take it. */
export const SYSTEM_USER = 'System';

export type MessageType = 'join' | 'leave' | 'chat' | 'private' | 'error';

export interface ChatMessage {
  readonly type: MessageType;
  readonly user: string;
  readonly message: string;
  /** Only on private messages: the addressee. */
  readonly to?: string;
  readonly time: string;
}

const now = (): string => new Date().toISOString();

export function joinNotice(name: string): ChatMessage {
  return { type: 'join', user: SYSTEM_USER, message: `${name} joined the chat`, time: now() };
}

export function leaveNotice(name: string): ChatMessage {
  return { type: 'leave', user: SYSTEM_USER, message: `${name} left the chat`, time: now() };
}

export function chatMessage(user: string, message: string): ChatMessage {
  return { type: 'chat', user, message, time: now() };
}

export function privateMessage(user: string, to: string, message: string): ChatMessage {
  return { type: 'private', user, message, to, time: now() };
}

export function errorMessage(message: string): ChatMessage {
  return { type: 'error', user: SYSTEM_USER, message, time: now() };
}

/** JSON with a fixed field order, so every client sees the same shape. */
export function encodeMessage(m: ChatMessage): string {
  return m.to === undefined
    ? JSON.stringify({ type: m.type, user: m.user, message: m.message, time: m.time })
    : JSON.stringify({ type: m.type, user: m.user, message: m.message, to: m.to, time: m.time });
}

/** What a client's text means: the homework's `@user text`, or a message for everyone. */
export type Input =
  | { readonly kind: 'private'; readonly to: string; readonly text: string }
  | { readonly kind: 'chat'; readonly text: string };

// "@", a name without whitespace, exactly one space, a non-empty rest. Anything else is broadcast.
const PRIVATE = /^@(\S+) ([\s\S]+)$/;

export function parseInput(text: string): Input {
  const match = PRIVATE.exec(text);
  return match ? { kind: 'private', to: match[1]!, text: match[2]! } : { kind: 'chat', text };
}

export const MAX_NAME_LENGTH = 32;

/**
 * Why a requested name cannot be used, or undefined if it can (uniqueness is the Hub's call).
 * Names are 1-32 characters with no whitespace; control and invisible formatting characters are
 * refused too, so nobody can pose as someone else with a zero-width or right-to-left mark.
 */
export function nameProblem(name: string): string | undefined {
  const length = [...name].length;
  if (length === 0) return 'name must not be empty';
  if (length > MAX_NAME_LENGTH) return `name must be at most ${MAX_NAME_LENGTH} characters`;
  if (/\s/u.test(name)) return 'name must not contain whitespace';
  if (/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u.test(name)) {
    return 'name must not contain control or invisible characters';
  }
  if (name.toLowerCase() === SYSTEM_USER.toLowerCase()) return `the name ${SYSTEM_USER} is reserved`;
  return undefined;
}
