/**
 * The byte-level oracle of the tests: RFC 6455 frames and HTTP upgrade requests written byte by
 * byte from the RFC, with no code from src/. Tests compare the server's bytes with these, so a bug
 * in src/'s encoder cannot hide behind the same bug in the test's.
 */
import { randomBytes } from 'node:crypto';

/** The RFC 6455 §1.3 sample key and its accept value. */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

export interface FrameOptions {
  fin?: boolean;
  /** RSV1-3 as a 3-bit value. */
  rsv?: number;
  /** false: no mask bit (a server frame, or a broken client); a Uint8Array: this key; default: a random key. */
  mask?: boolean | Uint8Array;
  /** Force the 7-, 16- or 64-bit length form (§5.2), minimal or not. */
  lengthForm?: 7 | 16 | 64;
  /** Length written in the header instead of the payload's real length (a lie; up to 2^64 - 1). */
  declaredLength?: number | bigint;
}

/** One frame (§5.2), masked by default as a client sends it (§5.3). The payload is not modified. */
export function frame(opcode: number, payload: Uint8Array | string = '', options: FrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const key = options.mask === false ? null : options.mask instanceof Uint8Array ? options.mask : randomBytes(4);
  const declared = BigInt(options.declaredLength ?? data.length);
  const form = options.lengthForm ?? (declared < 126n ? 7 : declared <= 0xffffn ? 16 : 64);
  const extra = form === 7 ? 0 : form === 16 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + extra + (key ? 4 : 0) + data.length);
  out[0] = ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  const maskBit = key ? 0x80 : 0;
  if (form === 7) {
    out[1] = maskBit | Number(declared & 0x7fn);
  } else if (form === 16) {
    out[1] = maskBit | 126;
    out.writeUInt16BE(Number(declared & 0xffffn), 2);
  } else {
    out[1] = maskBit | 127;
    out.writeBigUInt64BE(BigInt.asUintN(64, declared), 2);
  }
  let at = 2 + extra;
  if (key) {
    out.set(key.subarray(0, 4), at);
    at += 4;
    for (let i = 0; i < data.length; i++) out[at + i] = data[i]! ^ key[i & 3]!;
  } else {
    out.set(data, at);
  }
  return out;
}

/** A server frame (§5.1: unmasked), as the server must put it on the wire. */
export function serverFrame(opcode: number, payload: Uint8Array | string = Buffer.alloc(0)): Buffer {
  return frame(opcode, payload, { mask: false });
}

/**
 * `message` as a fragmented message (§5.4): frames of at most `size` payload bytes, the first with
 * `opcode`, the rest continuations, FIN on the last; masked with `key` (a random one by default).
 */
export function fragments(message: Uint8Array, size: number, opcode: number, key?: Uint8Array): Buffer {
  const count = Math.max(1, Math.ceil(message.length / size));
  const frames: Buffer[] = [];
  for (let f = 0; f < count; f++) {
    const piece = message.subarray(f * size, Math.min(message.length, (f + 1) * size));
    frames.push(frame(f === 0 ? opcode : 0x0, piece, { fin: f === count - 1, mask: key ?? true }));
  }
  return Buffer.concat(frames);
}

/** A close frame's payload (§5.5.1): a 2-byte code, then the UTF-8 reason. */
export function closeBody(code: number, reason = ''): Buffer {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason));
  body.writeUInt16BE(code, 0);
  body.write(reason, 2, 'utf8');
  return body;
}

export type HeaderValues = Readonly<Record<string, string | readonly string[] | null>>;

/**
 * A §4.1 upgrade request. `headers` overrides or adds header lines (names matched in any case); a
 * null value removes a default header; an array sends the header once per element.
 */
export function upgradeRequest(port: number, path = '/echo', headers: HeaderValues = {}, method = 'GET'): string {
  const defaults: Record<string, string | readonly string[] | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': SAMPLE_KEY,
    'Sec-WebSocket-Version': '13',
  };
  for (const name of Object.keys(headers)) {
    for (const d of Object.keys(defaults)) if (d.toLowerCase() === name.toLowerCase()) delete defaults[d];
  }
  let text = `${method} ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries({ ...defaults, ...headers })) {
    if (value === null) continue;
    for (const v of typeof value === 'string' ? [value] : value) text += `${name}: ${v}\r\n`;
  }
  return text + '\r\n';
}

/** `n` header lines `X-H<i>: v`, to add to a request. */
export function headerLines(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-H${i}`, 'v']));
}
