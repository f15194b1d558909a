/**
 * MAX_CONNECTIONS_PER_IP and HANDSHAKE_RATE_PER_IP on a real server, and the client address they
 * count by: 429 with Retry-After and a body that says why (exact bytes), the count going down as
 * connections close, and X-Forwarded-For believed only from TRUST_PROXY. Here the test itself is
 * the "proxy" on 127.0.0.1; test/proxies.test.ts puts real nginx and HAProxy in between.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { startApp, type TestApp } from './helpers/app';
import { RawPeer } from './helpers/raw-peer';
import { closeBody, frame, upgradeRequest } from './helpers/wire';

let server: TestApp | undefined;
const clients: RawPeer[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await server?.close();
  server = undefined;
});

/** Sends an upgrade request with extra headers; resolves with the response (the socket stays open on 101). */
async function upgradeWith(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ client: RawPeer; head: string; body: string; status: number }> {
  const client = await RawPeer.open(server!.port);
  clients.push(client);
  client.write(upgradeRequest(server!.port, path, headers));
  const response = await client.readHttpResponse();
  return { client, head: response.head, body: response.body.toString(), status: response.status };
}

/** The exact 429 this server sends. */
function tooMany(retryAfter: number, body: string): string {
  return (
    'HTTP/1.1 429 Too Many Requests\r\n' +
    `Retry-After: ${retryAfter}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n' +
    '\r\n'
  );
}

describe('MAX_CONNECTIONS_PER_IP', () => {
  it('the connection over the limit gets 429, Retry-After and why; the count goes down when one closes', async () => {
    server = await startApp({ MAX_CONNECTIONS_PER_IP: '2' });
    const first = await upgradeWith('/echo');
    const second = await upgradeWith('/ws'); // chat and echo count together
    expect([first.status, second.status]).toEqual([101, 101]);

    const body = 'too many connections from your address: at most 2 at once\n';
    const third = await upgradeWith('/echo');
    expect(third.head).toBe(tooMany(5, body));
    expect(third.body).toBe(body);
    expect(await third.client.untilClosed()).toEqual({ ended: true, rest: Buffer.alloc(0) });
    expect((await server.logged(/^refused .*status=429/))[0]).toMatch(
      /^refused peer=127\.0\.0\.1:\d+ path=\/echo status=429 reason="connections per address limit 2"$/,
    );

    // A clean close releases the slot...
    first.client.write(frame(Opcode.Close, closeBody(1000)));
    await first.client.untilClosed();
    await server.logged(/^disconnect path=\/echo code=1000/);
    expect((await upgradeWith('/echo')).status).toBe(101);
    // ...and so does a connection the server ends (a name refused: close 1008).
    expect((await upgradeWith('/echo')).status).toBe(429);
    second.client.write(frame(Opcode.Text, 'System'));
    while ((await second.client.readFrame()).opcode !== Opcode.Close); // the error, then close 1008
    second.client.write(frame(Opcode.Close, closeBody(1008)));
    await second.client.untilClosed();
    await server.logged(/^disconnect name="" code=1008/);
    expect((await upgradeWith('/ws')).status).toBe(101);
  });

  it('0 (the default) is no limit', async () => {
    server = await startApp({ MAX_CONNECTIONS: '100' });
    for (let i = 0; i < 20; i++) expect((await upgradeWith('/echo')).status).toBe(101);
  });
});

describe('HANDSHAKE_RATE_PER_IP', () => {
  it('an upgrade past the rate gets 429 and Retry-After: 1, whether or not the others are still open', async () => {
    // One a second: the second attempt comes milliseconds after the first.
    server = await startApp({ HANDSHAKE_RATE_PER_IP: '1' });
    const first = await upgradeWith('/echo');
    expect(first.status).toBe(101);
    first.client.destroy();
    const body = 'too many connection attempts from your address: at most 1 per second\n';
    const second = await upgradeWith('/ws');
    expect(second.head).toBe(tooMany(1, body));
    expect(second.body).toBe(body);
    expect((await server.logged(/^refused .*status=429/))[0]).toMatch(
      /^refused peer=127\.0\.0\.1:\d+ path=\/ws status=429 reason="handshake rate limit 1\/s per address"$/,
    );
  });

  it('requests to other paths are not WebSocket handshakes and take nothing (404 stays 404)', async () => {
    server = await startApp({ HANDSHAKE_RATE_PER_IP: '1' });
    for (let i = 0; i < 5; i++) expect((await upgradeWith('/nowhere')).status).toBe(404);
    expect((await upgradeWith('/echo')).status).toBe(101);
  });
});

describe('the client address behind a proxy (TRUST_PROXY)', () => {
  it('from a trusted proxy, X-Forwarded-For names the client: its limit, its log lines', async () => {
    server = await startApp({ TRUST_PROXY: '127.0.0.1', MAX_CONNECTIONS_PER_IP: '1' });
    expect((await upgradeWith('/echo', { 'X-Forwarded-For': '192.0.2.1' })).status).toBe(101);
    const [connected] = await server.logged(/^connect /);
    expect(connected).toMatch(/^connect peer=192\.0\.2\.1 via=127\.0\.0\.1:\d+ path=\/echo$/);
    expect((await upgradeWith('/echo', { 'X-Forwarded-For': '192.0.2.2' })).status).toBe(101);
    const again = await upgradeWith('/echo', { 'X-Forwarded-For': '192.0.2.1' });
    expect(again.status).toBe(429);
    expect((await server.logged(/^refused /))[0]).toMatch(
      new RegExp(
        String.raw`^refused peer=192\.0\.2\.1 via=127\.0\.0\.1:\d+ path=/echo status=429 ` +
          String.raw`reason="connections per address limit 1"$`,
      ),
    );
  });

  it('a forged header gains nothing: the address the proxy appended (right-most) is the one counted', async () => {
    server = await startApp({ TRUST_PROXY: '127.0.0.1', MAX_CONNECTIONS_PER_IP: '1' });
    expect((await upgradeWith('/echo', { 'X-Forwarded-For': '192.0.2.1' })).status).toBe(101);
    // The client wrote "198.51.100.7" itself; the proxy appended the address it saw, 192.0.2.1.
    expect((await upgradeWith('/echo', { 'X-Forwarded-For': '198.51.100.7, 192.0.2.1' })).status).toBe(429);
    expect((await upgradeWith('/echo', { 'X-Forwarded-For': '127.0.0.1, 192.0.2.1' })).status).toBe(429);
  });

  it('without TRUST_PROXY the header is ignored: every request is the peer, 127.0.0.1', async () => {
    server = await startApp({ MAX_CONNECTIONS_PER_IP: '1' });
    expect((await upgradeWith('/echo', { 'X-Forwarded-For': '192.0.2.1' })).status).toBe(101);
    expect((await server.logged(/^connect /))[0]).toMatch(/^connect peer=127\.0\.0\.1:\d+ path=\/echo$/);
    expect((await upgradeWith('/echo', { 'X-Forwarded-For': '192.0.2.2' })).status).toBe(429);
  });

  it('the Origin check still compares with Host: a same-origin page behind the proxy is let in', async () => {
    server = await startApp({ TRUST_PROXY: '127.0.0.1' });
    const headers = { Host: 'chat.example', Origin: 'https://chat.example', 'X-Forwarded-For': '192.0.2.1' };
    expect((await upgradeWith('/ws', headers)).status).toBe(101);
    const other = { Host: 'chat.example', Origin: 'https://evil.example', 'X-Forwarded-For': '192.0.2.1' };
    expect((await upgradeWith('/ws', other)).status).toBe(403);
  });
});
