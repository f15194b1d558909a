/**
 * Logging: one line per event, an event name plus fields, rendered as text (the default) or as JSON
 * (LOG_FORMAT=json), so both formats say the same thing:
 *
 *   text   connect peer=127.0.0.1:51234 path=/ws
 *   json   {"time":"2026-11-26T10:00:00.000Z","level":"info","event":"connect","peer":"127.0.0.1:51234","path":"/ws"}
 *
 * Code logs through an EventLog; the rendered lines go to a Logger (stdout, or a test's collector).
 */

/** Where rendered lines go, one call per line. */
export type Logger = (line: string) => void;

export type LogLevel = 'info' | 'warn' | 'error';
export type LogValue = string | number | boolean | undefined;
/** An event's fields, in the order the text format shows them; undefined values are left out. */
export type LogFields = Readonly<Record<string, LogValue>>;
/** What code calls: `log('connect', { peer, path })`. */
export type EventLog = (event: string, fields?: LogFields, level?: LogLevel) => void;

export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

/** Text lines as a person reads them, time first (a JSON line carries its own time). */
export const consoleLogger: Logger = (line) => {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
};

/** Lines written as they are: for JSON, which has its time inside. */
export const stdoutLogger: Logger = (line) => {
  process.stdout.write(`${line}\n`);
};

export const silentLogger: Logger = () => {};
export const silentLog: EventLog = () => {};

/**
 * Text fields whose values are shown bare when they are plain tokens (addresses, paths); every other
 * string is quoted, so a name or a reason with spaces or quotes cannot forge another field.
 */
const BARE = new Set(['peer', 'via', 'path', 'node']);
const TOKEN = /^[!#-[\]-~]+$/; // printable ASCII without space, '"' and '\'

/**
 * Events whose text line is a sentence that tools read (the bench waits for "listening on http://...",
 * and older checkouts print the same), kept as they were.
 */
const SENTENCES: Readonly<Record<string, (f: LogFields) => string>> = {
  listening: (f) => `listening on ${String(f.url)} (chat: ${String(f.chat)})`,
  shutdown: (f) => `${String(f.signal)}: shutting down`,
};

/** `event key=value ...`; the time is the Logger's to add. */
export function formatText(event: string, fields: LogFields = {}): string {
  const sentence = SENTENCES[event];
  if (sentence !== undefined) return sentence(fields);
  let line = event;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const bare = typeof value !== 'string' || (BARE.has(key) && TOKEN.test(value));
    line += ` ${key}=${bare ? String(value) : JSON.stringify(value)}`;
  }
  return line;
}

/** One JSON object: time, level, event, then the fields (which cannot overwrite those three). */
export function formatJson(event: string, fields: LogFields = {}, level: LogLevel = 'info', time = new Date()): string {
  const record: Record<string, LogValue> = { time: time.toISOString(), level, event };
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && !(key in record)) record[key] = value;
  }
  return JSON.stringify(record);
}

export function eventLog(format: LogFormat, out: Logger): EventLog {
  if (out === silentLogger) return silentLog;
  return format === 'json'
    ? (event, fields, level) => out(formatJson(event, fields, level))
    : (event, fields) => out(formatText(event, fields));
}

/** The same log with `context` added to every event's fields (after the event's own). */
export function withFields(log: EventLog, context: LogFields): EventLog {
  if (log === silentLog) return log;
  return (event, fields, level) => log(event, { ...fields, ...context }, level);
}
