/**
 * How the load client reads a server's messages without parsing the JSON: by byte offsets, since it
 * reads up to millions of them a second. Two dialects:
 *
 *   wschat  {"type":"chat","user":"<name>","message":"<text>",...}   type: chat, join, leave, error, private
 *   lesson  {"user":"<name>","message":"<text>"}                     the Go lesson's Message (go-seed, ws-node):
 *           notices come from the user System ("<name> joined the chat", "<name> left the chat"); any
 *           other System message is an error
 */
export type Dialect = 'wschat' | 'lesson';

export const CHAT = 0;
export const JOIN = 1;
export const LEAVE = 2;
export const ERROR = 3;
export const OTHER = 4;
export type Kind = typeof CHAT | typeof JOIN | typeof LEAVE | typeof ERROR | typeof OTHER;

export interface DialectReader {
  kind(data: Buffer): Kind;
  /** Where the sender's name starts in a chat message; `","message":"` follows it. */
  readonly userAt: number;
}

/** wschat: data[9] is the first letter of the type. */
function wschatKind(data: Buffer): Kind {
  switch (data[9]) {
    case 0x63: // chat
      return CHAT;
    case 0x6a: // join
      return JOIN;
    case 0x6c: // leave
      return LEAVE;
    case 0x65: // error
      return ERROR;
    default:
      return OTHER;
  }
}

const SYSTEM = Buffer.from('{"user":"System","message":"');
const JOINED = Buffer.from(' joined the chat"}');
const LEFT = Buffer.from(' left the chat"}');

const endsWith = (data: Buffer, tail: Buffer): boolean =>
  data.length >= tail.length && data.compare(tail, 0, tail.length, data.length - tail.length) === 0;

function lessonKind(data: Buffer): Kind {
  if (data.length < SYSTEM.length || data.compare(SYSTEM, 0, SYSTEM.length, 0, SYSTEM.length) !== 0) return CHAT;
  if (endsWith(data, JOINED)) return JOIN;
  if (endsWith(data, LEFT)) return LEAVE;
  return ERROR;
}

export const DIALECTS: Readonly<Record<Dialect, DialectReader>> = {
  wschat: { kind: wschatKind, userAt: '{"type":"chat","user":"'.length },
  lesson: { kind: lessonKind, userAt: '{"user":"'.length },
};
