/**
 * Handshake abuse against createApp() on port 0, from raw TCP sockets: oversized and over-long heads,
 * slowloris, request-smuggling shapes on the upgrade path, garbage instead of HTTP, garbage after the
 * handshake. Every one gets a clean refusal (an exact status and body, or a close code), its socket is
 * closed by the server, and two chat clients connected before it all keep talking.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { ChatPeer, RawPeer, RawWs, roundTrip, startServer, upgradeRequest, waitUntil, within, type TestServer } from './helpers/abuse';
import { mulberry32 } from './helpers/fuzz';

/** Node's own parser limit in app.ts (maxHeaderSize). */
const MAX_HEADER_BYTES = 16 * 1024;
const HANDSHAKE_TIMEOUT_MS = 300;

let s: TestServer;
let alice: ChatPeer;
let bob: ChatPeer;

function serverSockets(): Promise<number> {
  return new Promise((resolve, reject) => s.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** Sends `data`, then waits for the server to close the socket (bounded: a refusal must not linger). */
async function refusal(data: string | Buffer): Promise<RawPeer> {
  const p = await RawPeer.open(s.port);
  if (data.length > 0) p.write(data);
  await within(p.closed, 5_000, 'the server closing a refused connection');
  return p;
}

function response(status: number, reason: string, body: string): string {
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n' +
    '\r\n' +
    body
  );
}

beforeAll(async () => {
  s = await startServer({ HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS) });
  alice = await ChatPeer.join(s.wsUrl(), 'alice');
  bob = await ChatPeer.join(s.wsUrl(), 'bob');
});

afterEach(async () => {
  // The abusive socket is gone on the server's side too: only alice's and bob's remain.
  await waitUntil(async () => (await serverSockets()) === 2, 'the server to close the abusive socket');
  expect(s.app.connections.size).toBe(2);
});

afterAll(async () => {
  await s?.stop();
});

describe('oversized request heads', () => {
  it(`a head over ${MAX_HEADER_BYTES} bytes gets 431, then the socket is closed`, async () => {
    const p = await refusal(`GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(MAX_HEADER_BYTES + 4000)}\r\n\r\n`);
    expect(p.text()).toBe(response(431, 'Request Header Fields Too Large', 'request header too large\n'));
    expect(p.ended).toBe(true);
  });

  it('a 64 MB head is cut off after a bounded prefix (431 if anything is answered), never buffered', async () => {
    const p = await RawPeer.open(s.port);
    p.write('GET /ws HTTP/1.1\r\nHost: x\r\n');
    const line = Buffer.from(`X-Filler: ${'b'.repeat(64 * 1024)}\r\n`);
    const total = 64 * 1024 * 1024;
    let handed = 0;
    while (!p.isClosed && handed < total) {
      if (!p.write(line)) await new Promise((r) => (p.socket.once('drain', r), p.socket.once('close', r)));
      handed += line.length;
    }
    await within(p.closed, 5_000, 'the server cutting off an endless head');
    // The server closed before taking it all: what we handed over stopped at what the kernels buffer.
    expect(handed).toBeLessThan(total);
    expect(p.status() ?? 431).toBe(431);
  });

  it('100 header lines on an upgrade get 431 (the routes refuse 64 or more)', async () => {
    const lines = Array.from({ length: 100 }, (_, i) => `X-H${i}: v`);
    const p = await refusal(upgradeRequest(s.port, '/ws', lines));
    expect(p.text()).toBe(response(431, 'Request Header Fields Too Large', 'too many header lines\n'));
    expect(await s.logged(/^refused .*reason="too many header lines"/)).toMatch(/ path=\/ws /);
  });

  it('100 header lines on a plain GET get 431 with Connection: close', async () => {
    const lines = Array.from({ length: 100 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const p = await refusal(`GET /clients HTTP/1.1\r\nHost: x\r\n${lines}\r\n`);
    expect(p.status()).toBe(431);
    expect(p.text()).toMatch(/\r\nConnection: close\r\n/i);
    expect(p.text().endsWith('\r\n\r\ntoo many header lines\n')).toBe(true);
  });
});

describe('slowloris', () => {
  it(`a head trickled byte by byte is cut off by HANDSHAKE_TIMEOUT_MS (${HANDSHAKE_TIMEOUT_MS} ms) with 408`, async () => {
    const p = await RawPeer.open(s.port);
    const request = upgradeRequest(s.port, '/ws', Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: ${'z'.repeat(20)}`));
    let sent = 0;
    // 2 ms a byte: the whole head would take ~4 s; the server must not wait for it.
    while (!p.isClosed && sent < request.length) {
      p.write(request[sent++]!);
      await new Promise((r) => setTimeout(r, 2));
    }
    await within(p.closed, 5_000, 'the slowloris socket to close');
    expect(sent).toBeLessThan(request.length);
    // Node's connection check runs every min(1000, timeout) ms, so the close may come without an answer
    // only if the socket broke; when an answer came, it is a 408.
    expect(p.status() ?? 408).toBe(408);
    if (p.status() !== undefined) expect(p.text()).toBe(response(408, 'Request Timeout', 'request timeout\n'));
  });

  it('a connection that sends nothing at all is closed with 408', async () => {
    const p = await refusal('');
    expect(p.text()).toBe(response(408, 'Request Timeout', 'request timeout\n'));
  });
});

describe('request smuggling shapes on the upgrade path', () => {
  it('a second Sec-WebSocket-Key gets 400 (§4.2.1: exactly one)', async () => {
    const p = await refusal(upgradeRequest(s.port, '/ws', ['Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']));
    expect(p.text()).toBe(response(400, 'Bad Request', 'exactly one Sec-WebSocket-Key header is required\n'));
  });

  it.each([
    ['Content-Length: 0', ''],
    ['Content-Length: 5', 'hello'],
    ['Transfer-Encoding: chunked', '5\r\nhello\r\n0\r\n\r\n'],
  ])('an upgrade GET with %s gets 400, and nothing after it is read', async (header, body) => {
    // A second, valid handshake rides behind the body: a desynchronised parser would upgrade it.
    const p = await refusal(upgradeRequest(s.port, '/ws', [header]) + body + upgradeRequest(s.port, '/ws'));
    expect(p.text()).toBe(response(400, 'Bad Request', 'a WebSocket handshake must not have a body\n'));
  });

  it('Content-Length together with Transfer-Encoding is refused by the HTTP parser with 400', async () => {
    const p = await refusal(upgradeRequest(s.port, '/ws', ['Content-Length: 5', 'Transfer-Encoding: chunked']) + '0\r\n\r\n');
    expect(p.text()).toBe(response(400, 'Bad Request', 'bad request\n'));
  });

  it('two different Content-Length headers are refused with 400', async () => {
    const p = await refusal(upgradeRequest(s.port, '/ws', ['Content-Length: 0', 'Content-Length: 5']) + 'hello');
    expect(p.text()).toBe(response(400, 'Bad Request', 'bad request\n'));
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
    const p = await refusal(bytes);
    expect(p.text()).toBe(response(400, 'Bad Request', 'bad request\n'));
    expect(p.ended).toBe(true);
  });

  it('a bare "\\r\\n\\r\\n" is skipped as empty lines (RFC 9112 §2.2), then times out with 408', async () => {
    const p = await refusal('\r\n\r\n');
    expect(p.text()).toBe(response(408, 'Request Timeout', 'request timeout\n'));
  });
});

describe('garbage after a valid handshake', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seeded random bytes (seed %i) end the connection with a protocol close, not a crash', async (seed) => {
    const ws = await RawWs.open(s.port);
    ws.peer.write(mulberry32(seed).bytes(512));
    const gotClose = await ws.waitFor((f) => f.kind === 'close');
    await within(ws.closed, 5_000, 'the server closing a connection that sent garbage');
    // Random bytes break §5 at once (RSV bits, opcodes, mask bit) or declare a huge length (§10.4);
    // either way the close frame names it. A frame that happens to be valid just waits for more.
    if (gotClose) {
      const close = ws.frames.find((f) => f.kind === 'close') as { code: number };
      expect([1002, 1007, 1009]).toContain(close.code);
    }
  });

  it('a frame that declares 4096 bytes and sends 10 gets no answer and disturbs nobody', async () => {
    // Declares a 4096-byte binary message (the limit) and sends 10 bytes of it: the server buffers
    // what arrived (the parser never reserves the declared length) and answers nothing.
    const ws = await RawWs.open(s.port);
    const header = Buffer.from([0x82, 0xfe, 0x10, 0x00, 9, 9, 9, 9]);
    ws.peer.write(Buffer.concat([header, Buffer.alloc(10, 0x61)]));
    ws.send(Opcode.Ping, 'still there?');
    // The ping is part of the unfinished payload, so no pong comes; the peer then leaves.
    await roundTrip(alice, bob, 'during a half-sent frame');
    expect(ws.frames).toEqual([]);
    ws.destroy();
  });
});

describe('the chat is undisturbed', () => {
  it('alice and bob, connected before all of the above, still talk both ways', async () => {
    await roundTrip(alice, bob, 'after the abuse');
    await roundTrip(bob, alice, 'and back');
    expect(alice.conn.readyState).toBe('open');
    expect(bob.conn.readyState).toBe('open');
    expect(await s.clientCount()).toBe(2);
  });
});
