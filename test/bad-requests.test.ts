/**
 * Bad input on the way in, from raw TCP sockets: request-smuggling shapes on the upgrade path,
 * garbage instead of HTTP, garbage and half frames after a valid handshake. Each gets a clean,
 * specific answer (an exact 400, or a protocol close), its socket is closed by the server, and two
 * chat clients connected before it keep talking.
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { appWithChatters } from './helpers/chat';
import { RawPeer } from './helpers/raw-peer';
import { mulberry32 } from './helpers/rng';
import { frame, SAMPLE_KEY, upgradeRequest } from './helpers/wire';

/** The complete 400 answer (rejectUpgrade in src/websocket/handshake.ts). */
function badRequest(body: string): Buffer {
  return Buffer.from(
    'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Sends `data` on a fresh socket and returns what came back before the server closed it. */
async function answerTo(port: number, data: string | Buffer): Promise<{ ended: boolean; rest: Buffer }> {
  const p = await RawPeer.open(port);
  p.write(data);
  return p.untilClosed();
}

describe('request smuggling shapes on the upgrade path', () => {
  it('a second Sec-WebSocket-Key gets 400 (§4.2.1: exactly one)', async () => {
    const { t, undisturbed } = await appWithChatters();
    const request = upgradeRequest(t.port, '/ws', { 'Sec-WebSocket-Key': [SAMPLE_KEY, SAMPLE_KEY] });
    expect(await answerTo(t.port, request)).toEqual({
      ended: true,
      rest: badRequest('exactly one Sec-WebSocket-Key header is required\n'),
    });
    await undisturbed();
  });

  it.each([
    ['Content-Length: 0', { 'Content-Length': '0' }, ''],
    ['Content-Length: 5', { 'Content-Length': '5' }, 'hello'],
    ['Transfer-Encoding: chunked', { 'Transfer-Encoding': 'chunked' }, '5\r\nhello\r\n0\r\n\r\n'],
  ])('an upgrade GET with %s gets 400, and nothing after it is read', async (_name, header, body) => {
    const { t, undisturbed } = await appWithChatters();
    // A second, valid handshake rides behind the body: a desynchronised parser would upgrade it.
    const request = upgradeRequest(t.port, '/ws', header) + body + upgradeRequest(t.port, '/ws');
    expect(await answerTo(t.port, request)).toEqual({
      ended: true,
      rest: badRequest('a WebSocket handshake must not have a body\n'),
    });
    await undisturbed();
  });

  it.each([
    [
      'Content-Length together with Transfer-Encoding',
      { 'Content-Length': '5', 'Transfer-Encoding': 'chunked' },
      '0\r\n\r\n',
    ],
    ['two different Content-Length headers', { 'Content-Length': ['0', '5'] }, 'hello'],
  ])('%s is refused by the HTTP parser with 400', async (_name, headers, body) => {
    const { t, undisturbed } = await appWithChatters();
    expect(await answerTo(t.port, upgradeRequest(t.port, '/ws', headers) + body)).toEqual({
      ended: true,
      rest: badRequest('bad request\n'),
    });
    await undisturbed();
  });
});

describe('garbage instead of HTTP', () => {
  it.each([
    ['random bytes', mulberry32(7).bytes(64)],
    ['a TLS ClientHello start', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])],
    ['"\\x16\\x03\\x01" alone', Buffer.from([0x16, 0x03, 0x01])],
    ['a WebSocket frame without a handshake', Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e])],
    ['a NUL byte', Buffer.from([0])],
  ])('%s gets 400, then the socket is closed', async (_name, bytes) => {
    const { t, undisturbed } = await appWithChatters();
    expect(await answerTo(t.port, bytes)).toEqual({ ended: true, rest: badRequest('bad request\n') });
    await undisturbed();
  });
});

describe('garbage after a valid handshake', () => {
  it.each([
    // What breaks §5 first: RSV bits, a reserved opcode, the mask bit, a length over the limit (§10.4).
    ['seeded random bytes', mulberry32(1).bytes(512)],
    ['random bytes behind a valid frame header', Buffer.concat([Buffer.from([0x82, 0x80]), mulberry32(2).bytes(510)])],
    ['a text frame of random bytes', frame(Opcode.Text, mulberry32(3).bytes(512))],
    ['a frame declaring 2^63 - 1 bytes', frame(Opcode.Binary, '', { declaredLength: 2n ** 63n - 1n })],
  ])('%s end the connection with a protocol close, then TCP closes', async (_name, bytes) => {
    const { t, undisturbed } = await appWithChatters();
    const ws = (await RawPeer.upgrade(t.port, '/ws')).record();
    ws.write(bytes);
    await ws.closed;
    const close = ws.closeFrame();
    expect(close, 'a close frame saying why').toBeDefined();
    expect([1002, 1007, 1009]).toContain(close!.code);
    expect(ws.ended).toBe(true);
    await undisturbed();
  });

  it('a frame that declares 4096 bytes and sends 10 gets no answer and disturbs nobody', async () => {
    const { t, alice, bob, undisturbed } = await appWithChatters();
    // Declares a 4096-byte binary message (the limit) and sends 10 bytes of it: the server buffers
    // what arrived (the parser never reserves the declared length) and answers nothing.
    const ws = (await RawPeer.upgrade(t.port, '/ws')).record();
    ws.write(frame(Opcode.Binary, 'a'.repeat(10), { declaredLength: 4096, mask: Buffer.from([9, 9, 9, 9]) }));
    ws.send(Opcode.Ping, 'still there?');
    // The ping is part of the unfinished payload, so no pong comes; alice and bob talk meanwhile.
    alice.send('during a half-sent frame');
    await bob.waitFor((m) => m.message === 'during a half-sent frame');
    expect(ws.frames).toEqual([]);
    ws.destroy();
    await undisturbed();
  });
});
