/**
 * Large messages through the real server (MAX_MESSAGE_BYTES = 16 MiB, RFC 6455 §10.4): whole frames,
 * many fragments, tiny fragments, and the opposite extreme, one byte per socket write.
 */
import { describe, it, expect, vi } from 'vitest';
import { FrameParser } from '../src/websocket/frame-parser';
import { Opcode } from '../src/websocket/opcodes';
import { sharedApp } from './helpers/app';
import { RawPeer } from './helpers/raw-peer';
import { mulberry32 } from './helpers/rng';
import { closeBody, fragments, frame, serverFrame } from './helpers/wire';

const MiB = 1024 * 1024;
const LIMIT = 16 * MiB;
const KEY = Buffer.from([0xa1, 0xb2, 0xc3, 0xd4]);

/** Seeded random bytes, so a misplaced fragment cannot go unnoticed. */
const content = (n: number, seed: number): Buffer => mulberry32(seed).bytes(n);

async function expectEcho(c: RawPeer, message: Buffer, opcode: number = Opcode.Binary): Promise<void> {
  const echo = await c.readFrame();
  expect(echo.fin).toBe(true);
  expect(echo.masked).toBe(false);
  expect(echo.opcode).toBe(opcode);
  expect(echo.payload.length).toBe(message.length);
  expect(echo.payload.equals(message)).toBe(true);
  // The echo uses the 64-bit length form above 65,535 bytes (§5.2).
  if (message.length > 0xffff) {
    const header = (0x80 | opcode).toString(16) + '7f' + message.length.toString(16).padStart(16, '0');
    expect(echo.raw.subarray(0, 10).toString('hex')).toBe(header);
  }
}

describe('large messages (MAX_MESSAGE_BYTES = 16 MiB)', () => {
  const shared = sharedApp({ MAX_MESSAGE_BYTES: String(LIMIT) });

  it('echoes a 16 MiB message sent as one frame', async () => {
    const message = content(LIMIT, 1);
    const c = await RawPeer.upgrade(shared.port);
    c.write(fragments(message, LIMIT, Opcode.Binary, KEY));
    await expectEcho(c, message);
    c.destroy();
  });

  it('echoes a 16 MiB message sent as 64 KiB fragments', async () => {
    const message = content(LIMIT, 2);
    const c = await RawPeer.upgrade(shared.port);
    const stream = fragments(message, 64 * 1024, Opcode.Binary, KEY);
    expect(stream[1]! & 0x7f).toBe(127); // 65,536 bytes needs the 64-bit form
    c.write(stream);
    await expectEcho(c, message);
    c.destroy();
  });

  it('echoes 4 MiB sent as 64-byte fragments (65,536 frames), text too', async () => {
    const message = content(4 * MiB, 3);
    const c = await RawPeer.upgrade(shared.port);
    c.write(fragments(message, 64, Opcode.Binary, KEY));
    await expectEcho(c, message);
    // The same as text: UTF-8 checked fragment by fragment, code points cut at every 64-byte edge.
    const text = Buffer.from('aé€𝄞'.repeat(Math.floor((4 * MiB) / 10))); // 1 + 2 + 3 + 4 bytes
    c.write(fragments(text, 64, Opcode.Text, KEY));
    await expectEcho(c, text, Opcode.Text);
    c.destroy();
  });

  it('a message one byte over the limit is closed with 1009, from its header', async () => {
    const c = await RawPeer.upgrade(shared.port);
    c.write(frame(Opcode.Binary, '', { declaredLength: LIMIT + 1 }));
    const { ended, rest } = await c.untilClosed();
    expect(ended).toBe(true);
    expect(rest.toString('hex')).toBe(serverFrame(Opcode.Close, closeBody(1009, 'message too big')).toString('hex'));
  });

  it('fragments whose running total passes the limit by one byte are closed with 1009', async () => {
    const c = await RawPeer.upgrade(shared.port);
    const first = content(8 * MiB, 4);
    c.write(frame(Opcode.Binary, first, { fin: false }));
    c.write(frame(Opcode.Continuation, '', { declaredLength: 8 * MiB + 1 })); // header only
    const { rest } = await c.untilClosed();
    expect(rest.toString('hex')).toBe(serverFrame(Opcode.Close, closeBody(1009, 'message too big')).toString('hex'));
  });
});

describe('one byte per socket write', () => {
  const shared = sharedApp();

  it('a frame stream written a byte at a time yields the same messages', async () => {
    // Watch the server's parser: the next byte is written only once the previous one was pushed to
    // it, so the server really sees 1-byte chunks (the kernel could otherwise coalesce them).
    const chunkSizes: number[] = [];
    let wake: (() => void) | null = null;
    const push = FrameParser.prototype.push;
    const spy = vi.spyOn(FrameParser.prototype, 'push').mockImplementation(function (this: FrameParser, chunk: Buffer) {
      chunkSizes.push(chunk.length);
      push.call(this, chunk);
      const w = wake;
      wake = null;
      w?.();
    });
    const c = await RawPeer.upgrade(shared.port);
    c.socket.setNoDelay(true);
    const euro = Buffer.from('€');
    const stream = Buffer.concat([
      frame(Opcode.Text, 'hello, world'),
      frame(Opcode.Ping, 'are you there'),
      frame(Opcode.Binary, Buffer.from([0, 0xff, 0x80, 0x7f])),
      // A text message in three fragments, the euro sign cut between the first two.
      frame(Opcode.Text, Buffer.concat([Buffer.from('price: '), euro.subarray(0, 1)]), { fin: false }),
      frame(Opcode.Continuation, euro.subarray(1), { fin: false }),
      frame(Opcode.Pong, 'unsolicited'),
      frame(Opcode.Continuation, ' 5'),
      frame(Opcode.Binary, Buffer.alloc(300, 0x33)), // 16-bit length, header arrives in pieces
      frame(Opcode.Close, closeBody(1000, 'done')),
    ]);
    try {
      // No cork, no batching: every byte is its own socket.write.
      for (let i = 0; i < stream.length; i++) {
        const seen = new Promise<void>((resolve) => (wake = resolve));
        c.socket.write(stream.subarray(i, i + 1));
        await seen;
      }
    } finally {
      spy.mockRestore();
    }
    expect(chunkSizes.length).toBe(stream.length);
    expect(chunkSizes.every((n) => n === 1)).toBe(true);
    const { ended, rest } = await c.untilClosed();
    expect(ended).toBe(true);
    const expected = Buffer.concat([
      serverFrame(Opcode.Text, 'hello, world'),
      serverFrame(Opcode.Pong, 'are you there'),
      serverFrame(Opcode.Binary, Buffer.from([0, 0xff, 0x80, 0x7f])),
      serverFrame(Opcode.Text, 'price: € 5'),
      Buffer.from([0x82, 0x7e, 0x01, 0x2c]),
      Buffer.alloc(300, 0x33),
      Buffer.from('880203e8', 'hex'),
    ]);
    expect(rest.toString('hex')).toBe(expected.toString('hex'));
  });
});
