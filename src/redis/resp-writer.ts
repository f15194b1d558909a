/**
 * Command encoding. RESP spec, "Sending commands to a Redis server": a client sends a command as an
 * array of bulk strings, `*<count>\r\n` then `$<length>\r\n<bytes>\r\n` per argument. Bulk strings are
 * binary safe, so arguments may hold any bytes, CRLF included.
 */

/** One argument: text (sent as UTF-8), bytes, or a number (sent in decimal). */
export type RedisArg = string | Buffer | number | bigint;

/** Encodes one command into one Buffer of its exact size. Throws a TypeError on a bad argument. */
export function encodeCommand(args: readonly RedisArg[]): Buffer {
  if (args.length === 0) throw new TypeError('a Redis command needs at least its name');
  const count = args.length;
  // Pass 1: every argument as a string or Buffer, and the total size.
  const parts: (string | Buffer)[] = new Array(count);
  const sizes: number[] = new Array(count);
  let size = 1 + decimalLength(count) + 2;
  for (let i = 0; i < count; i++) {
    const part = argumentBytes(args[i], i);
    const n = typeof part === 'string' ? Buffer.byteLength(part, 'utf8') : part.length;
    parts[i] = part;
    sizes[i] = n;
    size += 1 + decimalLength(n) + 2 + n + 2;
  }
  // Pass 2: write.
  const out = Buffer.allocUnsafe(size);
  let at = out.write(`*${count}\r\n`, 0, 'latin1');
  for (let i = 0; i < count; i++) {
    const part = parts[i]!;
    at += out.write(`$${sizes[i]}\r\n`, at, 'latin1');
    at += typeof part === 'string' ? out.write(part, at, 'utf8') : part.copy(out, at);
    out[at++] = 13;
    out[at++] = 10;
  }
  return out;
}

function argumentBytes(arg: unknown, index: number): string | Buffer {
  if (typeof arg === 'string' || Buffer.isBuffer(arg)) return arg;
  if (typeof arg === 'number') {
    // String(NaN) or String(Infinity) would reach Redis as words it rejects with a puzzling error.
    if (!Number.isFinite(arg)) throw new TypeError(`argument ${index} is ${arg}: pass Redis's 'inf'/'-inf' as strings`);
    return String(arg);
  }
  if (typeof arg === 'bigint') return arg.toString();
  // undefined, null, objects: never guess ("[object Object]" written to Redis is a silent data bug).
  const got = arg === null ? 'null' : typeof arg;
  throw new TypeError(`argument ${index} must be a string, Buffer, number or bigint, got ${got}`);
}

function decimalLength(n: number): number {
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}
