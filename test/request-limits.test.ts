/**
 * The limits on an HTTP request head, at their boundaries, from raw TCP sockets: its size (Node's
 * maxHeaderSize, 16 KiB), its number of header lines (64) and the time to send it
 * (HANDSHAKE_TIMEOUT_MS, the slowloris guard). Past a limit the answer is exact (431 or 408, then
 * the socket is closed), and two chat clients connected before it keep talking.
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { appWithChatters } from './helpers/chat';
import { expectRefusal, RawPeer, ask } from './helpers/raw-peer';
import { frame, headerLines, upgradeRequest } from './helpers/wire';

/** The complete answer to a refused request (rejectUpgrade in src/websocket/handshake.ts). */
function refusal(status: number, reason: string, body: string): string {
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n' +
    '\r\n' +
    body
  );
}
const TOO_LARGE = refusal(431, 'Request Header Fields Too Large', 'request header too large\n');
const TOO_MANY_LINES = refusal(431, 'Request Header Fields Too Large', 'too many header lines\n');
const TIMEOUT = refusal(408, 'Request Timeout', 'request timeout\n');

/**
 * What Node's maxHeaderSize counts in a request head: the URL, the header names and the header
 * values (not the method, the version, the separators or the line ends).
 */
function counted(head: string): number {
  const [requestLine, ...lines] = head.slice(0, head.indexOf('\r\n\r\n')).split('\r\n');
  let n = requestLine!.split(' ')[1]!.length;
  for (const line of lines) n += line.indexOf(':') + line.slice(line.indexOf(':') + 1).trim().length;
  return n;
}

/** `head` (a complete request head) with an X-Pad header that brings counted() to exactly `size`. */
function padTo(head: string, size: number): string {
  const open = head.slice(0, -2); // without the blank line
  const pad = size - counted(open + 'X-Pad: \r\n\r\n');
  const padded = `${open}X-Pad: ${'p'.repeat(pad)}\r\n\r\n`;
  expect(counted(padded)).toBe(size);
  return padded;
}

describe('the size of the head (16 KiB)', () => {
  const LIMIT = 16 * 1024;

  it(`a WebSocket upgrade of ${LIMIT - 1} counted bytes is served; ${LIMIT} get 431`, async () => {
    const { t, undisturbed } = await appWithChatters();
    const { peer, response } = await ask(t.port, padTo(upgradeRequest(t.port, '/ws'), LIMIT - 1));
    expect(response.status).toBe(101);
    peer.destroy();
    const refused = await RawPeer.open(t.port);
    refused.write(padTo(upgradeRequest(t.port, '/ws'), LIMIT));
    expect(await refused.untilClosed()).toEqual({ ended: true, rest: Buffer.from(TOO_LARGE) });
    await undisturbed();
  });

  it(`a plain GET of ${LIMIT - 1} counted bytes is served; ${LIMIT} get 431`, async () => {
    const { t, undisturbed } = await appWithChatters();
    const get = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\n\r\n`;
    const { peer, response } = await ask(t.port, padTo(get, LIMIT - 1));
    expect(response.status).toBe(200);
    await peer.closed;
    const refused = await RawPeer.open(t.port);
    refused.write(padTo(get, LIMIT));
    expect(await refused.untilClosed()).toEqual({ ended: true, rest: Buffer.from(TOO_LARGE) });
    await undisturbed();
  });

  it('a 64 MB head gets 431 after a bounded prefix: the server never buffers it', async () => {
    const { t, undisturbed } = await appWithChatters();
    const p = await RawPeer.open(t.port);
    p.write('GET /ws HTTP/1.1\r\nHost: x\r\n');
    const line = Buffer.from(`X-Filler: ${'b'.repeat(64 * 1024)}\r\n`);
    const total = 64 * 1024 * 1024;
    let handed = 0;
    // Writes until the server answers, respecting backpressure.
    while (!p.isClosed && p.received().length === 0 && handed < total) {
      if (!p.write(line)) {
        await new Promise((resolve) => {
          p.socket.once('drain', resolve).once('data', resolve).once('close', resolve);
        });
      }
      handed += line.length;
    }
    expect(handed).toBeLessThan(total);
    expect(await p.untilClosed()).toEqual({ ended: true, rest: Buffer.from(TOO_LARGE) });
    await undisturbed();
  });
});

describe('the number of header lines (64)', () => {
  it('an upgrade with 63 header lines is served; 64 get 431, logged', async () => {
    const { t, undisturbed } = await appWithChatters();
    // The five lines of a handshake, plus the X-H<i> lines.
    const { peer, response } = await ask(t.port, upgradeRequest(t.port, '/ws', headerLines(58)));
    expect(response.status).toBe(101);
    peer.destroy();
    const refused = await RawPeer.open(t.port);
    refused.write(upgradeRequest(t.port, '/ws', headerLines(59)));
    expect(await refused.untilClosed()).toEqual({ ended: true, rest: Buffer.from(TOO_MANY_LINES) });
    const [line] = await t.logged(/^refused .*reason="too many header lines"/);
    expect(line).toMatch(/^refused peer=127\.0\.0\.1:\d+ path=\/ws reason="too many header lines"$/);
    await undisturbed();
  });

  it('a plain GET with 63 header lines is served; 64 get 431 with Connection: close', async () => {
    const { t, undisturbed } = await appWithChatters();
    const get = (extra: number): string =>
      `GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
      Object.keys(headerLines(extra)).map((name) => `${name}: v\r\n`).join('') +
      '\r\n';
    const { peer, response } = await ask(t.port, get(61));
    expect(response.status).toBe(200);
    await peer.closed;
    const refused = await expectRefusal(t.port, get(62), 431);
    expect(refused.body.toString()).toBe('too many header lines\n');
    await undisturbed();
  });
});

describe('the time to send the head (HANDSHAKE_TIMEOUT_MS=300)', () => {
  const env = { HANDSHAKE_TIMEOUT_MS: '300' };

  it('a head trickled a byte at a time gets 408 before it is complete', async () => {
    const { t, undisturbed } = await appWithChatters(env);
    const p = await RawPeer.open(t.port);
    // 2 ms a byte: the whole head would take ~2.5 s; the server must not wait for it.
    const request = upgradeRequest(t.port, '/ws', headerLines(100));
    let sent = 0;
    const trickle = setInterval(() => {
      if (sent < request.length && p.received().length === 0) p.write(request[sent++]!);
    }, 2);
    try {
      expect(await p.untilClosed()).toEqual({ ended: true, rest: Buffer.from(TIMEOUT) });
    } finally {
      clearInterval(trickle);
    }
    expect(sent).toBeLessThan(request.length);
    await undisturbed();
  });

  it('nothing, half a head, or only empty lines (RFC 9112 §2.2) get 408', async () => {
    const { t, undisturbed } = await appWithChatters(env);
    const silent = await RawPeer.open(t.port);
    const half = await RawPeer.open(t.port);
    half.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nUpgrade: websocket\r\n`);
    const blank = await RawPeer.open(t.port);
    blank.write('\r\n\r\n');
    for (const p of [silent, half, blank]) {
      expect(await p.untilClosed()).toEqual({ ended: true, rest: Buffer.from(TIMEOUT) });
    }
    await undisturbed();
  });

  it('a client that completed its head in time is upgraded: the timeout no longer applies', async () => {
    const { t, undisturbed } = await appWithChatters(env);
    const early = await RawPeer.upgrade(t.port);
    const late = await RawPeer.open(t.port);
    expect(await late.untilClosed()).toEqual({ ended: true, rest: Buffer.from(TIMEOUT) });
    // The late one was timed out after the early one had been waiting longer.
    expect(early.isClosed).toBe(false);
    early.write(frame(Opcode.Text, 'in time'));
    expect((await early.readFrame()).payload.toString()).toBe('in time');
    early.destroy();
    await undisturbed();
  });
});
