/**
 * The opening handshake (RFC 6455 §4.2) against a real server from createApp, with raw sockets so the
 * exact status line, headers and body are checked, and that a refused socket is closed afterwards.
 */
import { describe, it, expect, vi } from 'vitest';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { acceptKey } from '../src/websocket/handshake';
import { connect, HandshakeError } from '../src/websocket';
import { sharedApp, startApp } from './helpers/app';
import { ask, expectAccepted, expectRefusal, RawPeer, type HttpResponse } from './helpers/raw-peer';
import { SAMPLE_ACCEPT, SAMPLE_KEY, upgradeRequest, type HeaderValues } from './helpers/wire';

describe('handshake on /echo and /ws', () => {
  const shared = sharedApp();
  const request = (path: string, headers: HeaderValues = {}, method?: string): string =>
    upgradeRequest(shared.port, path, headers, method);
  const refused = (req: string, status: number): Promise<HttpResponse> => expectRefusal(shared.port, req, status);
  const accepted = (path: string, headers: HeaderValues = {}): Promise<void> =>
    expectAccepted(shared.port, path, headers);

  it('answers the RFC sample key with the exact 101 response (§4.2.2, §1.3)', async () => {
    expect(acceptKey(SAMPLE_KEY)).toBe(SAMPLE_ACCEPT);
    const { peer: client, response } = await ask(shared.port, request('/echo'));
    expect(response.head).toBe(
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n` +
        '\r\n',
    );
    // No extension or subprotocol was offered, so none is selected.
    expect(response.headers.has('sec-websocket-extensions')).toBe(false);
    expect(response.headers.has('sec-websocket-protocol')).toBe(false);
    client.destroy();
  });

  it('computes Sec-WebSocket-Accept from whatever key was sent', async () => {
    const key = Buffer.from('0123456789abcdef').toString('base64');
    const { peer: client, response } = await ask(shared.port, request('/echo', { 'Sec-WebSocket-Key': key }));
    expect(response.status).toBe(101);
    expect(response.headers.get('sec-websocket-accept')).toEqual([acceptKey(key)]);
    client.destroy();
  });

  it('accepts Upgrade/Connection as comma lists in any case (§4.2.1)', async () => {
    await accepted('/echo', { Connection: 'keep-alive, Upgrade' });
    await accepted('/echo', { UPGRADE: 'WebSocket' });
    await accepted('/echo', { Upgrade: 'WEBSOCKET', Connection: 'UPGRADE' });
    await accepted('/echo', { Upgrade: 'foo, websocket', Connection: 'Upgrade, keep-alive' });
    await accepted('/ws', { connection: 'keep-alive,upgrade' });
  });

  it('405 with Allow: GET for any other method (§4.2.1 (1))', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await refused(request('/echo', {}, method), 405);
      expect(response.statusLine).toBe('HTTP/1.1 405 Method Not Allowed');
      expect(response.headers.get('allow')).toEqual(['GET']);
    }
    const chat = await refused(request('/ws', {}, 'POST'), 405);
    expect(chat.headers.get('allow')).toEqual(['GET']);
  });

  it('400 when Upgrade does not contain websocket or is missing (§4.2.1 (3))', async () => {
    // Node routes an Upgrade header without "websocket" to the upgrade event: refused and closed.
    await refused(request('/echo', { Upgrade: 'h2c' }), 400);
    // Without an Upgrade header the request is plain HTTP: the route answers 400 and closes too.
    const response = await refused(request('/echo', { Upgrade: null }), 400);
    expect(response.body.toString()).toBe('the Upgrade header must contain "websocket"\n');
  });

  it('400 when Connection lacks the Upgrade token or is missing (§4.2.1 (4))', async () => {
    for (const connection of [null, 'keep-alive', 'close', 'upgraded']) {
      const response = await refused(request('/echo', { Connection: connection }), 400);
      expect(response.body.toString()).toBe('the Connection header must contain "Upgrade"\n');
    }
  });

  it('426 with Sec-WebSocket-Version: 13 for any other version (§4.2.1 (6), §4.4)', async () => {
    const versions: (string | readonly string[] | null)[] = ['8', '12', '14', '', 'thirteen', null];
    versions.push(['13', '13'], ['13', '8']);
    for (const version of versions) {
      const response = await refused(request('/echo', { 'Sec-WebSocket-Version': version }), 426);
      expect(response.statusLine).toBe('HTTP/1.1 426 Upgrade Required');
      expect(response.headers.get('sec-websocket-version')).toEqual(['13']);
    }
  });

  it('400 unless Sec-WebSocket-Key is one base64 value of exactly 16 bytes (§4.2.1 (5))', async () => {
    const bad: (string | readonly string[] | null)[] = [
      Buffer.alloc(15, 1).toString('base64'), // too short
      Buffer.alloc(17, 1).toString('base64'), // too long
      Buffer.alloc(32, 1).toString('base64'),
      '!!!!!!!!!!!!!!!!!!!!!A==', // 24 characters, not base64
      'dGhlIHNhbXBsZSBub25jZQ', // unpadded
      '',
      null, // missing
      [SAMPLE_KEY, SAMPLE_KEY], // duplicate header
      [SAMPLE_KEY, Buffer.alloc(16, 7).toString('base64')],
    ];
    for (const key of bad) {
      const response = await refused(request('/echo', { 'Sec-WebSocket-Key': key }), 400);
      expect(response.statusLine).toBe('HTTP/1.1 400 Bad Request');
    }
    // Any 16 bytes are fine, including ones whose base64 uses + and /.
    await accepted('/echo', { 'Sec-WebSocket-Key': Buffer.alloc(16, 0xfb).toString('base64') });
  });

  it('404 for an upgrade to any other path, closed afterwards', async () => {
    for (const path of ['/', '/nope', '/ws/', '/echo2', '/clients']) {
      const response = await refused(request(path), 404);
      expect(response.statusLine).toBe('HTTP/1.1 404 Not Found');
    }
    // A query string does not change the path.
    await accepted('/echo?x=1');
  });

  it('400 for a GET upgrade with a body (Content-Length or Transfer-Encoding)', async () => {
    await refused(request('/echo', { 'Content-Length': '0' }), 400);
    await refused(request('/echo', { 'Content-Length': '5' }) + 'hello', 400);
    await refused(request('/ws', { 'Transfer-Encoding': 'chunked' }) + '0\r\n\r\n', 400);
  });

  it('400 for an HTTP/1.0 upgrade (§4.2.1 (1): HTTP/1.1 or higher)', async () => {
    await refused(request('/echo').replace('HTTP/1.1', 'HTTP/1.0'), 400);
  });

  it('a refusal is a complete response with its reason in the body, then the socket closes', async () => {
    const response = await refused(request('/echo', { 'Sec-WebSocket-Version': '8' }), 426);
    expect(response.body.toString()).toBe('unsupported WebSocket version: this server speaks version 13\n');
    expect(response.headers.get('content-length')).toEqual([String(response.body.length)]);
  });

  it('a plain HTTP GET on a WebSocket path (no upgrade headers) is 400', async () => {
    for (const path of ['/ws', '/echo']) {
      // No "Connection: close" from the client: the refusal itself must end the connection.
      const response = await refused(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${shared.port}\r\n\r\n`, 400);
      expect(response.body.toString()).toBe('the Upgrade header must contain "websocket"\n');
    }
  });

  it('400 unless Host is present exactly once (§4.2.1 (2))', async () => {
    const response = await refused(request('/echo', { Host: [`127.0.0.1:${shared.port}`, 'other'] }), 400);
    expect(response.body.toString()).toBe('exactly one Host header is required\n');
  });
});

describe('a refused connection does not linger', () => {
  it.each([
    ['an upgrade to an unknown path (404)', (port: number) => upgradeRequest(port, '/nope'), 404],
    ['bytes that are not HTTP (400)', () => '\x16\x03\x01garbage\r\n\r\n', 400],
  ])('%s: the socket is destroyed even when the peer keeps its side open', async (_what, request, status) => {
    const t = await startApp();
    const accepted = new Promise<Socket>((resolve) => t.app.server.once('connection', resolve));
    const peer = await RawPeer.open(t.port, { allowHalfOpen: true });
    const serverSide = await accepted;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      peer.write(request(t.port));
      expect((await peer.readHttpResponse()).status).toBe(status);
      await peer.waitForBytes(() => peer.ended); // the server's FIN; ours never comes
      expect(serverSide.destroyed).toBe(false); // the peer gets time to read the answer...
      vi.runOnlyPendingTimers();
      expect(serverSide.destroyed).toBe(true); // ...but not forever
    } finally {
      vi.useRealTimers();
      peer.destroy();
    }
  });
});

describe('upgrade then frames', () => {
  it('frames sent right behind the request (in the same packet) are read', async () => {
    const { port } = await startApp();
    const client = await RawPeer.open(port);
    // The upgrade request and a masked "Hello" (§5.7) in one write: they arrive as `head`.
    const hello = Buffer.from('818537fa213d7f9f4d5158', 'hex');
    client.write(Buffer.concat([Buffer.from(upgradeRequest(port, '/echo')), hello]));
    expect((await client.readHttpResponse()).status).toBe(101);
    expect((await client.readFrame()).raw.toString('hex')).toBe('810548656c6c6f');
    client.destroy();
  });
});

describe('our client against our server (§4.1)', () => {
  it('a refusal becomes a HandshakeError with the status and the body', async () => {
    const { port } = await startApp();
    const notFound = await connect(`ws://127.0.0.1:${port}/nope`).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(HandshakeError);
    expect((notFound as HandshakeError).status).toBe(404);
    expect((notFound as HandshakeError).body).toBe('not found\n');
    const forbidden = await connect(`ws://127.0.0.1:${port}/ws`, { origin: 'http://evil.example' }).catch((e) => e);
    expect((forbidden as HandshakeError).status).toBe(403);
    const ok = await connect(`ws://127.0.0.1:${port}/ws`, { origin: `http://127.0.0.1:${port}` });
    ok.terminate();
  });
});

describe('client side of the handshake (§4.1)', () => {
  /** A fake server that reads the request head and answers with `respond(key)`, raw. */
  interface FakeServer {
    url: string;
    request: Promise<string>;
    close: () => Promise<void>;
  }
  async function fakeServer(respond: (key: string) => string): Promise<FakeServer> {
    let gotRequest!: (head: string) => void;
    const request = new Promise<string>((r) => (gotRequest = r));
    const server = createServer((socket) => {
      let head = '';
      socket.on('error', () => {});
      socket.on('data', (chunk) => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        gotRequest(head.slice(0, end + 4));
        const key = /\r\nSec-WebSocket-Key: (\S+)/.exec(head)![1]!;
        socket.write(respond(key));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    return {
      url: `ws://127.0.0.1:${port}/chat?room=1`,
      request,
      close: () => new Promise<void>((r) => { server.close(() => r()); server.unref(); }),
    };
  }
  const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
  const ok = (key: string, extra = ''): string =>
    `${SWITCHING}Sec-WebSocket-Accept: ${acceptKey(key)}\r\n${extra}\r\n`;

  it('sends exactly the §4.1 request, with Origin and extra headers, and accepts a correct 101', async () => {
    const s = await fakeServer((key) => ok(key));
    try {
      const conn = await connect(s.url, { origin: 'http://example.test', headers: { 'X-Test': 'yes' } });
      const head = await s.request;
      const key = /\r\nSec-WebSocket-Key: (\S+)/.exec(head)![1]!;
      expect(Buffer.from(key, 'base64')).toHaveLength(16);
      expect(head).toBe(
        `GET /chat?room=1 HTTP/1.1\r\nHost: ${new URL(s.url).host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          // RFC 7692 §7: our offer, as browsers make it.
          'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n' +
          'Origin: http://example.test\r\nX-Test: yes\r\n\r\n',
      );
      expect(conn.readyState).toBe('open');
      conn.terminate();
    } finally {
      await s.close();
    }
  });

  const refusals: [string, (key: string) => string, string][] = [
    [
      'a wrong Sec-WebSocket-Accept',
      (key) => ok(key.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))),
      'Sec-WebSocket-Accept does not match the key',
    ],
    [
      'no Upgrade header',
      (key) => ok(key).replace('Upgrade: websocket\r\n', ''),
      '101 response without Upgrade: websocket / Connection: Upgrade',
    ],
    [
      'an extension we did not offer',
      (key) => ok(key, 'Sec-WebSocket-Extensions: x-foo\r\n'),
      'server selected extensions we did not offer: x-foo',
    ],
    [
      'a subprotocol we did not offer',
      (key) => ok(key, 'Sec-WebSocket-Protocol: chat\r\n'),
      'server selected a subprotocol we did not offer',
    ],
  ];
  it.each(refusals)('fails the connection on %s', async (_what, respond, message) => {
    const s = await fakeServer(respond);
    try {
      const error = await connect(s.url).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(HandshakeError);
      expect((error as Error).message).toBe(message);
      expect((error as HandshakeError).status).toBe(101);
    } finally {
      await s.close();
    }
  });

  it('reports a refusal with its status and body', async () => {
    const forbidden = 'HTTP/1.1 403 Forbidden\r\nContent-Length: 19\r\nConnection: close\r\n\r\norigin not allowed\n';
    const s = await fakeServer(() => forbidden);
    try {
      const error = (await connect(s.url).then(() => undefined, (e: unknown) => e)) as HandshakeError;
      expect(error).toBeInstanceOf(HandshakeError);
      expect([error.message, error.status, error.body]).toEqual([
        'server refused the WebSocket handshake: HTTP/1.1 403 Forbidden',
        403,
        'origin not allowed\n',
      ]);
    } finally {
      await s.close();
    }
  });
});
