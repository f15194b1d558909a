/**
 * permessage-deflate (RFC 7692) test helpers: compressed payloads and frames made with node:zlib's
 * public one-shot functions (not our deflater), and a TCP tap that records what travels between a
 * peer we do not control (a browser) and our server, so a test can look at RSV1 on the wire.
 */
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { constants, deflateRawSync, inflateRawSync, type ZlibOptions } from 'node:zlib';
import { frame, type FrameOptions } from './wire';

/** §7.2.1: the 4 bytes a sender strips from the end of a compressed message. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** The RSV field of a compressed message's first frame: RSV1 (RFC 7692 §6). */
export const RSV1 = 4;

/** §7.2.1: DEFLATE with a sync flush, the 00 00 ff ff tail removed. Same zlib settings as our server's. */
export function deflate(payload: Uint8Array | string, options: ZlibOptions = {}): Buffer {
  const out = deflateRawSync(typeof payload === 'string' ? Buffer.from(payload) : payload, {
    level: 6,
    memLevel: 8,
    windowBits: 15,
    ...options,
    finishFlush: constants.Z_SYNC_FLUSH,
  });
  if (!out.subarray(-4).equals(TAIL)) throw new Error('a sync flush ends with 00 00 ff ff');
  return out.subarray(0, -4);
}

/** §7.2.2: append the tail and inflate. */
export function inflate(payload: Uint8Array, windowBits = 15): Buffer {
  return inflateRawSync(Buffer.concat([payload, TAIL]), { windowBits, finishFlush: constants.Z_SYNC_FLUSH });
}

/** A compressed message in one client frame (masked unless told otherwise), RSV1 set. */
export function compressedFrame(opcode: number, payload: Uint8Array | string, options: FrameOptions = {}): Buffer {
  return frame(opcode, deflate(payload), { rsv: RSV1, ...options });
}

/**
 * A compressed message split into `parts` frames of the compressed bytes: RSV1 on the first only
 * (§6.1), continuations after it.
 */
export function compressedFragments(
  opcode: number,
  compressed: Buffer,
  parts: number,
  options: FrameOptions = {},
): Buffer[] {
  const size = Math.ceil(compressed.length / parts);
  const frames: Buffer[] = [];
  for (let i = 0; i < parts; i++) {
    const piece = compressed.subarray(i * size, Math.min(compressed.length, (i + 1) * size));
    frames.push(frame(i === 0 ? opcode : 0, piece, { ...options, fin: i === parts - 1, rsv: i === 0 ? RSV1 : 0 }));
  }
  return frames;
}

/** A frame's head, and its payload as sent (still masked when the frame is). */
export interface FrameHead {
  readonly fin: boolean;
  readonly rsv1: boolean;
  readonly opcode: number;
  readonly length: number;
  readonly payload: Buffer;
}

/** The first-byte flags, opcode and payload of each frame in `bytes` (a server's side of the stream). */
export function frameHeads(bytes: Buffer): FrameHead[] {
  const heads: FrameHead[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const b0 = bytes[at]!;
    const b1 = bytes[at + 1]!;
    let length = b1 & 0x7f;
    let header = 2;
    if (length === 126) {
      if (at + 4 > bytes.length) break;
      length = bytes.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      if (at + 10 > bytes.length) break;
      length = Number(bytes.readBigUInt64BE(at + 2));
      header = 10;
    }
    if (b1 & 0x80) header += 4;
    if (at + header + length > bytes.length) break;
    const payload = bytes.subarray(at + header, at + header + length);
    heads.push({ fin: (b0 & 0x80) !== 0, rsv1: (b0 & 0x40) !== 0, opcode: b0 & 0x0f, length, payload });
    at += header + length;
  }
  return heads;
}

/** One proxied TCP connection: the bytes each way. */
export interface Tapped {
  fromClient: Buffer[];
  fromServer: Buffer[];
}

/** A loopback TCP proxy to `port` that keeps a copy of every byte, per connection. */
export class Tap {
  readonly connections: Tapped[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(port: number): Promise<Tap & { port: number }> {
    const server = createServer();
    const tap = new Tap(server);
    server.on('connection', (client) => {
      const record: Tapped = { fromClient: [], fromServer: [] };
      tap.connections.push(record);
      const upstream = netConnect({ host: '127.0.0.1', port });
      for (const s of [client, upstream]) {
        tap.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          tap.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (d: Buffer) => {
        record.fromClient.push(Buffer.from(d));
        upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        record.fromServer.push(Buffer.from(d));
        client.write(d);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return Object.assign(tap, { port: (server.address() as AddressInfo).port });
  }

  /** The server's bytes on connection `i` after its HTTP response head, and the head itself. */
  serverSide(i: number): { head: string; frames: Buffer } {
    const all = Buffer.concat(this.connections[i]!.fromServer);
    const end = all.indexOf('\r\n\r\n');
    return { head: all.subarray(0, end + 4).toString('latin1'), frames: all.subarray(end + 4) };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
