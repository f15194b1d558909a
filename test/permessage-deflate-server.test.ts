/**
 * permessage-deflate on the real server, byte for byte over raw sockets (RFC 7692): the exact 101
 * answer, COMPRESSION=off, the echo compressed both ways, every close code, the zip bomb over TCP,
 * and the chat's broadcast: one compressed frame, the same bytes to every client that negotiated it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { WebSocketConnection } from '../src/websocket/connection';
import { inflateStats } from '../src/websocket/inflater';
import { Opcode } from '../src/websocket/opcodes';
import { connect } from '../src/websocket';
import { startApp, type TestApp } from './helpers/app';
import { compressedFragments, compressedFrame, deflate, inflate, RSV1 } from './helpers/deflate';
import { RawPeer, type Frame } from './helpers/raw-peer';
import { closeBody, frame, SAMPLE_ACCEPT, serverFrame, upgradeRequest } from './helpers/wire';

const OFFER = { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' };
const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
const LIMIT = 65536;
const TEXT = '{"type":"chat","user":"alice","message":"compress me, compress me, compress me"}';

/** The 101 head the server sends for `extensions` (undefined: no Sec-WebSocket-Extensions line). */
function head101(extensions?: string): string {
  return (
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n` +
    (extensions === undefined ? '' : `Sec-WebSocket-Extensions: ${extensions}\r\n`) +
    '\r\n'
  );
}

async function handshake(port: number, headers: Record<string, string | readonly string[]>): Promise<string> {
  const client = await RawPeer.open(port);
  client.write(upgradeRequest(port, '/echo', headers));
  const response = await client.readHttpResponse();
  client.destroy();
  return response.head;
}

/** Sends `bytes` and expects the server's close frame with `code` and `reason`, then the end of TCP. */
async function expectClose(client: RawPeer, bytes: Buffer, code: number, reason: string): Promise<void> {
  client.write(bytes);
  const close = await client.readFrame();
  expect(close.raw).toEqual(serverFrame(Opcode.Close, closeBody(code, reason)));
  await client.closed;
}

/** The payload of a server frame as the application sees it. */
const message = (f: Frame): Buffer => (f.rsv === RSV1 ? inflate(f.payload) : f.payload);

describe('permessage-deflate on the server', () => {
  let app: TestApp;
  let off: TestApp;
  beforeAll(async () => {
    app = await startApp({ MAX_MESSAGE_BYTES: String(LIMIT) });
    off = await startApp({ MAX_MESSAGE_BYTES: String(LIMIT), COMPRESSION: 'off' });
  });
  afterAll(async () => {
    await app.close();
    await off.close();
  });

  describe('the handshake (RFC 7692 §5, §7)', () => {
    it('answers an offer with exactly this head', async () => {
      expect(await handshake(app.port, OFFER)).toBe(head101(ANSWER));
      expect(
        await handshake(app.port, { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=10' }),
      ).toBe(head101(`${ANSWER}; server_max_window_bits=10`));
    });

    it('reads every Sec-WebSocket-Extensions line, in order, and declines bad offers for the next', async () => {
      const lines = ['x-foo; bar, permessage-deflate; mystery=1', 'permessage-deflate; server_max_window_bits=9'];
      expect(await handshake(app.port, { 'Sec-WebSocket-Extensions': lines })).toBe(
        head101(`${ANSWER}; server_max_window_bits=9`),
      );
    });

    it('no acceptable offer, or no offer: no extension', async () => {
      expect(
        await handshake(app.port, { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=7' }),
      ).toBe(head101());
      expect(await handshake(app.port, {})).toBe(head101());
    });

    it('a malformed header: 400 saying so', async () => {
      const client = await RawPeer.open(app.port);
      client.write(upgradeRequest(app.port, '/echo', { 'Sec-WebSocket-Extensions': 'permessage-deflate; a="open' }));
      const response = await client.readHttpResponse();
      expect([response.status, response.body.toString()]).toEqual([400, 'malformed Sec-WebSocket-Extensions header\n']);
      await client.closed;
    });

    it('COMPRESSION=off: offers are ignored, and RSV1 is a protocol error (1002)', async () => {
      expect(await handshake(off.port, OFFER)).toBe(head101());
      const client = await RawPeer.upgrade(off.port, '/echo', OFFER);
      await expectClose(client, compressedFrame(Opcode.Text, TEXT), 1002, 'reserved bits set');
    });
  });

  describe('the echo, compressed (RFC 7692 §6, §7.2)', () => {
    it('a compressed message comes back compressed, exactly as zlib deflates it; a short one as it is', async () => {
      const client = await RawPeer.upgrade(app.port, '/echo', OFFER);
      client.write(compressedFrame(Opcode.Text, TEXT));
      expect((await client.readFrame()).raw).toEqual(frame(Opcode.Text, deflate(TEXT), { mask: false, rsv: RSV1 }));
      client.write(frame(Opcode.Text, TEXT)); // uncompressed in: still compressed out
      expect((await client.readFrame()).raw).toEqual(frame(Opcode.Text, deflate(TEXT), { mask: false, rsv: RSV1 }));
      client.write(compressedFrame(Opcode.Binary, 'short'));
      expect((await client.readFrame()).raw).toEqual(serverFrame(Opcode.Binary, 'short'));
      // Fragmented, with a ping in between: the pong first, then the message.
      const [a, b] = compressedFragments(Opcode.Text, deflate(TEXT.repeat(20)), 2);
      client.write(Buffer.concat([a!, frame(Opcode.Ping, 'hi'), b!]));
      expect((await client.readFrame()).raw).toEqual(serverFrame(Opcode.Pong, 'hi'));
      const echoed = await client.readFrame();
      expect([echoed.rsv, message(echoed).toString()]).toEqual([RSV1, TEXT.repeat(20)]);
      await expectClose(client, frame(Opcode.Close, closeBody(1000)), 1000, '');
    });

    it('server_max_window_bits=8 is honoured: the echo inflates with a 256-byte window', async () => {
      const client = await RawPeer.upgrade(app.port, '/echo', {
        'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=8',
      });
      const words = Array.from({ length: 50 }, (_, i) => `word${i * 7919}`);
      const text = Array.from({ length: 2000 }, (_, i) => words[(i * 31) % 50]).join(' ');
      client.write(compressedFrame(Opcode.Text, text));
      const echoed = await client.readFrame();
      expect(echoed.rsv).toBe(RSV1);
      expect(inflate(echoed.payload, 8).toString()).toBe(text);
      client.destroy();
    });
  });

  describe('close codes over the wire', () => {
    it.each([
      ['RSV1 on a ping: 1002', () => frame(Opcode.Ping, 'x', { rsv: RSV1 }), 1002, 'RSV1 on a control frame'],
      [
        'RSV1 on a continuation: 1002',
        () =>
          Buffer.concat(
            compressedFragments(Opcode.Text, deflate(TEXT), 2).map((f, i) =>
              i === 1 ? Buffer.from([f[0]! | 0x40, ...f.subarray(1)]) : f,
            ),
          ),
        1002,
        'RSV1 on a continuation frame',
      ],
      ['RSV2 with the extension: 1002', () => frame(Opcode.Text, 'x', { rsv: 2 }), 1002, 'reserved bits set'],
      [
        'corrupt DEFLATE data: 1007',
        () => frame(Opcode.Text, Buffer.from([0xff, 0xff, 0xff]), { rsv: RSV1 }),
        1007,
        'invalid compressed data',
      ],
      [
        'invalid UTF-8 after inflating: 1007',
        () => compressedFrame(Opcode.Text, Buffer.from([0x61, 0xff, 0x62])),
        1007,
        'invalid UTF-8 in text message',
      ],
      [
        'one byte over the limit after inflating: 1009',
        () => compressedFrame(Opcode.Binary, Buffer.alloc(LIMIT + 1)),
        1009,
        'message too big',
      ],
    ])('%s', async (_name, bytes, code, reason) => {
      const client = await RawPeer.upgrade(app.port, '/echo', OFFER);
      await expectClose(client, bytes(), code, reason);
    });

    it('the zip bomb: 1 KiB that inflates to 1 GiB costs the server limit + 1 bytes, then 1009', async () => {
      const bomb = deflate(Buffer.alloc(4 * 1024 * 1024)).subarray(0, 1024);
      const client = await RawPeer.upgrade(app.port, '/echo', OFFER);
      const before = inflateStats.bytesOut;
      await expectClose(client, frame(Opcode.Binary, bomb, { rsv: RSV1 }), 1009, 'message too big');
      expect(inflateStats.bytesOut - before).toBe(LIMIT + 1);
    });

    it('client_no_context_takeover is enforced: a reference to the previous message is corrupt (1007)', async () => {
      const client = await RawPeer.upgrade(app.port, '/echo', OFFER);
      const first = deflate(TEXT);
      // The same text again, as a compressor that kept its window would send it: one back-reference.
      const { createDeflateRaw, constants } = await import('node:zlib');
      const z = createDeflateRaw();
      const chunks: Buffer[] = [];
      z.on('data', (d: Buffer) => chunks.push(d));
      const flush = (): Promise<Buffer> =>
        new Promise((r) => z.flush(constants.Z_SYNC_FLUSH, () => r(Buffer.concat(chunks.splice(0)).subarray(0, -4))));
      z.write(TEXT);
      expect(await flush()).toEqual(first);
      z.write(TEXT);
      const second = await flush();
      z.close();
      client.write(frame(Opcode.Text, first, { rsv: RSV1 }));
      expect(message(await client.readFrame()).toString()).toBe(TEXT);
      await expectClose(client, frame(Opcode.Text, second, { rsv: RSV1 }), 1007, 'invalid compressed data');
    });
  });

  describe('the broadcast (compress once)', () => {
    /** A raw chat client: name sent, frames read until a chat message that satisfies `match`. */
    async function chatPeer(name: string, offer: boolean): Promise<RawPeer> {
      const client = await RawPeer.upgrade(app.port, '/ws', offer ? OFFER : {});
      client.write(frame(Opcode.Text, name));
      return client;
    }
    async function readUntilChat(client: RawPeer, text: string): Promise<Frame> {
      for (;;) {
        const f = await client.readFrame();
        const m = JSON.parse(message(f).toString()) as { type: string; message: string };
        if (m.type === 'chat' && m.message === text) return f;
      }
    }

    it('the same compressed bytes reach every client that negotiated it; the others get the plain frame', async () => {
      const alice = await chatPeer('alice', true);
      const bob = await chatPeer('bob', true);
      const carol = await chatPeer('carol', false);
      await app.logged((l: string) => l.startsWith('connect'), 3);
      // Everyone has joined once carol's own join notice arrives at carol (she joined last).
      const text = 'a broadcast long enough to be worth compressing, compressing, compressing';
      for (;;) {
        const f = await carol.readFrame();
        if (JSON.parse(f.payload.toString()).message === 'carol joined the chat') break;
      }
      carol.write(frame(Opcode.Text, text));
      const [a, b, c] = await Promise.all([
        readUntilChat(alice, text),
        readUntilChat(bob, text),
        readUntilChat(carol, text),
      ]);
      expect(a.rsv).toBe(RSV1);
      expect(a.raw).toEqual(b.raw);
      expect(c.rsv).toBe(0);
      expect(inflate(a.payload)).toEqual(c.payload);
      expect(a.raw.length).toBeLessThan(c.raw.length);
      for (const peer of [alice, bob, carol]) peer.destroy();
    });

    it('our own client negotiates it and reads the chat through it', async () => {
      const conn = await connect(app.url('/ws'));
      expect(conn.compression).toBe(true);
      conn.send('dave');
      for (let m = await conn.read(); m !== null; m = await conn.read()) {
        if (!m.binary && m.data.includes('dave joined the chat')) break;
      }
      conn.close();
      await conn.closed;
      const plain = await connect(app.url('/ws'), { compression: false });
      expect(plain.compression).toBe(false);
      plain.close();
      await plain.closed;
    });
  });
});

describe('a reader that falls behind: no amplification', () => {
  it('one chunk of 2,000 tiny compressed messages is not inflated all at once (8 MB for 40 KB)', async () => {
    const SIZE = 4096;
    const COUNT = 2000;
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const client = await RawPeer.open((server.address() as AddressInfo).port);
    const conn = new WebSocketConnection(await accepted, {
      role: 'server',
      maxMessageBytes: SIZE,
      deflate: { windowBits: 15, inflateTakeover: false },
    });
    const bodies = Array.from({ length: COUNT }, (_, i) => String(i).padEnd(SIZE, 'x'));
    const before = inflateStats.bytesOut;
    client.write(Buffer.concat(bodies.map((b) => compressedFrame(Opcode.Text, b))));
    const first = await conn.read();
    expect(first).toEqual({ binary: false, data: bodies[0] });
    // The reader took one message: at most a read queue's worth (16) more were inflated, not 2,000.
    expect(inflateStats.bytesOut - before).toBeLessThanOrEqual(17 * SIZE);
    for (let i = 1; i < COUNT; i++) expect((await conn.read())?.data).toBe(bodies[i]);
    expect(inflateStats.bytesOut - before).toBe(COUNT * SIZE);
    client.destroy();
    await conn.closed;
    server.close();
  });
});
