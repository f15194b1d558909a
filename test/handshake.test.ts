/**
 * The opening handshake (RFC 6455 §4.2) against a real server from createApp, with raw sockets so the
 * exact status line, headers and body are checked, and that a refused socket is closed afterwards.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createApp, type App } from '../src/http/app';
import { loadConfig } from '../src/config';
import { acceptKey } from '../src/websocket/handshake';
import { connect, HandshakeError } from '../src/websocket';
import { createServer, type AddressInfo } from 'node:net';
import { openWebSocket, RawClient, SAMPLE_ACCEPT, SAMPLE_KEY, upgradeRequest, type HttpResponse } from './helpers/raw';

type Headers = Readonly<Record<string, string | readonly string[] | null>>;

async function startApp(env: Record<string, string> = {}): Promise<{ app: App; port: number }> {
  const app = createApp(loadConfig({ PORT: '0', HOST: '127.0.0.1', ...env }));
  const { port } = await app.listen();
  return { app, port };
}

/** Sends one request and reads one complete response (Content-Length body included). */
async function ask(port: number, request: string): Promise<{ client: RawClient; response: HttpResponse }> {
  const client = await RawClient.open(port);
  client.write(request);
  return { client, response: await client.readHttpResponse() };
}

/**
 * A refusal: a complete HTTP response with this status and a plain-text body whose length matches
 * Content-Length, then the server closes the connection (FIN) with nothing after the body.
 */
async function expectRefusal(port: number, request: string, status: number): Promise<HttpResponse> {
  const { client, response } = await ask(port, request);
  expect(response.status, response.head).toBe(status);
  expect(response.headers.get('content-type')).toEqual(['text/plain; charset=utf-8']);
  expect(Number(response.headers.get('content-length')![0])).toBe(response.body.length);
  expect(response.body.length).toBeGreaterThan(1);
  expect(response.headers.get('connection')).toEqual(['close']);
  const { ended, rest } = await client.untilClosed();
  expect(ended).toBe(true);
  expect(rest.length).toBe(0);
  return response;
}

async function expectAccepted(port: number, path: string, headers: Headers = {}): Promise<void> {
  const { client, response } = await ask(port, upgradeRequest(port, path, headers));
  expect(response.status, response.body.toString()).toBe(101);
  client.destroy();
}

describe('handshake on /echo and /ws', () => {
  let app: App;
  let port: number;
  beforeAll(async () => ({ app, port } = await startApp()));
  afterAll(() => app.shutdown());

  it('answers the RFC sample key with the exact 101 response (§4.2.2, §1.3)', async () => {
    expect(acceptKey(SAMPLE_KEY)).toBe(SAMPLE_ACCEPT);
    const { client, response } = await ask(port, upgradeRequest(port, '/echo'));
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
    const { client, response } = await ask(port, upgradeRequest(port, '/echo', { 'Sec-WebSocket-Key': key }));
    expect(response.status).toBe(101);
    expect(response.headers.get('sec-websocket-accept')).toEqual([acceptKey(key)]);
    client.destroy();
  });

  it('accepts Upgrade/Connection as comma lists in any case (§4.2.1)', async () => {
    await expectAccepted(port, '/echo', { Connection: 'keep-alive, Upgrade' });
    await expectAccepted(port, '/echo', { UPGRADE: 'WebSocket' });
    await expectAccepted(port, '/echo', { Upgrade: 'WEBSOCKET', Connection: 'UPGRADE' });
    await expectAccepted(port, '/echo', { Upgrade: 'foo, websocket', Connection: 'Upgrade, keep-alive' });
    await expectAccepted(port, '/ws', { connection: 'keep-alive,upgrade' });
  });

  it('405 with Allow: GET for any other method (§4.2.1 (1))', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await expectRefusal(port, upgradeRequest(port, '/echo', {}, method), 405);
      expect(response.statusLine).toBe('HTTP/1.1 405 Method Not Allowed');
      expect(response.headers.get('allow')).toEqual(['GET']);
    }
    const chat = await expectRefusal(port, upgradeRequest(port, '/ws', {}, 'POST'), 405);
    expect(chat.headers.get('allow')).toEqual(['GET']);
  });

  it('400 when Upgrade does not contain websocket or is missing (§4.2.1 (3))', async () => {
    // Node routes an Upgrade header without "websocket" to the upgrade event: refused and closed.
    await expectRefusal(port, upgradeRequest(port, '/echo', { Upgrade: 'h2c' }), 400);
    // Without an Upgrade header the request is plain HTTP: the route answers 400 and closes too.
    const response = await expectRefusal(port, upgradeRequest(port, '/echo', { Upgrade: null }), 400);
    expect(response.body.toString()).toBe('the Upgrade header must contain "websocket"\n');
  });

  it('400 when Connection lacks the Upgrade token or is missing (§4.2.1 (4))', async () => {
    for (const connection of [null, 'keep-alive', 'close', 'upgraded']) {
      const response = await expectRefusal(port, upgradeRequest(port, '/echo', { Connection: connection }), 400);
      expect(response.body.toString()).toBe('the Connection header must contain "Upgrade"\n');
    }
  });

  it('426 with Sec-WebSocket-Version: 13 for any other version (§4.2.1 (6), §4.4)', async () => {
    const versions: (string | readonly string[] | null)[] = ['8', '12', '14', '', 'thirteen', null, ['13', '13'], ['13', '8']];
    for (const version of versions) {
      const response = await expectRefusal(port, upgradeRequest(port, '/echo', { 'Sec-WebSocket-Version': version }), 426);
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
      const response = await expectRefusal(port, upgradeRequest(port, '/echo', { 'Sec-WebSocket-Key': key }), 400);
      expect(response.statusLine).toBe('HTTP/1.1 400 Bad Request');
    }
    // Any 16 bytes are fine, including ones whose base64 uses + and /.
    await expectAccepted(port, '/echo', { 'Sec-WebSocket-Key': Buffer.alloc(16, 0xfb).toString('base64') });
  });

  it('404 for an upgrade to any other path, closed afterwards', async () => {
    for (const path of ['/', '/nope', '/ws/', '/echo2', '/clients']) {
      const response = await expectRefusal(port, upgradeRequest(port, path), 404);
      expect(response.statusLine).toBe('HTTP/1.1 404 Not Found');
    }
    // A query string does not change the path.
    await expectAccepted(port, '/echo?x=1');
  });

  it('400 for a GET upgrade with a body (Content-Length or Transfer-Encoding)', async () => {
    await expectRefusal(port, upgradeRequest(port, '/echo', { 'Content-Length': '0' }), 400);
    await expectRefusal(port, upgradeRequest(port, '/echo', { 'Content-Length': '5' }) + 'hello', 400);
    await expectRefusal(port, upgradeRequest(port, '/ws', { 'Transfer-Encoding': 'chunked' }) + '0\r\n\r\n', 400);
  });

  it('400 for an HTTP/1.0 upgrade (§4.2.1 (1): HTTP/1.1 or higher)', async () => {
    await expectRefusal(port, upgradeRequest(port, '/echo').replace('HTTP/1.1', 'HTTP/1.0'), 400);
  });

  it('a refusal is a complete response with its reason in the body, then the socket closes', async () => {
    const response = await expectRefusal(port, upgradeRequest(port, '/echo', { 'Sec-WebSocket-Version': '8' }), 426);
    expect(response.body.toString()).toBe('unsupported WebSocket version: this server speaks version 13\n');
    expect(response.headers.get('content-length')).toEqual([String(response.body.length)]);
  });

  it('a plain HTTP GET on a WebSocket path (no upgrade headers) is 400', async () => {
    for (const path of ['/ws', '/echo']) {
      // No "Connection: close" from the client: the refusal itself must end the connection.
      const response = await expectRefusal(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, 400);
      expect(response.body.toString()).toBe('the Upgrade header must contain "websocket"\n');
    }
  });

  it('400 unless Host is present exactly once (§4.2.1 (2))', async () => {
    const response = await expectRefusal(port, upgradeRequest(port, '/echo', { Host: [`127.0.0.1:${port}`, 'other'] }), 400);
    expect(response.body.toString()).toBe('exactly one Host header is required\n');
  });
});

describe('Origin policy (§10.2)', () => {
  it('default: /ws refuses a foreign Origin with 403, accepts same-origin and no Origin', async () => {
    const { app, port } = await startApp();
    try {
      const response = await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: 'http://evil.example' }), 403);
      expect(response.statusLine).toBe('HTTP/1.1 403 Forbidden');
      await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: 'null' }), 403);
      // Same host, other port or scheme: a different origin.
      await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: `http://127.0.0.1:${port + 1}` }), 403);
      await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: `ftp://127.0.0.1:${port}` }), 403);
      await expectAccepted(port, '/ws', { Origin: `http://127.0.0.1:${port}` });
      await expectAccepted(port, '/ws', { Origin: `HTTP://127.0.0.1:${port}` });
      await expectAccepted(port, '/ws', { Origin: null });
      // The echo demo answers anyone.
      await expectAccepted(port, '/echo', { Origin: 'http://evil.example' });
    } finally {
      await app.shutdown();
    }
  });

  it('ALLOWED_ORIGINS lists extra origins', async () => {
    const { app, port } = await startApp({ ALLOWED_ORIGINS: 'https://chat.example.com, http://localhost:3000' });
    try {
      await expectAccepted(port, '/ws', { Origin: 'https://chat.example.com' });
      await expectAccepted(port, '/ws', { Origin: 'http://localhost:3000' });
      await expectAccepted(port, '/ws', { Origin: `http://127.0.0.1:${port}` });
      await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: 'https://evil.example.com' }), 403);
      await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: 'http://chat.example.com' }), 403);
    } finally {
      await app.shutdown();
    }
  });

  it("ALLOWED_ORIGINS='*' allows every origin", async () => {
    const { app, port } = await startApp({ ALLOWED_ORIGINS: '*' });
    try {
      await expectAccepted(port, '/ws', { Origin: 'http://evil.example' });
      await expectAccepted(port, '/ws', { Origin: 'null' });
    } finally {
      await app.shutdown();
    }
  });
});

describe('upgrade then frames', () => {
  it('frames sent right behind the request (in the same packet) are read', async () => {
    const { app, port } = await startApp();
    try {
      const client = await RawClient.open(port);
      // The upgrade request and a masked "Hello" (§5.7) in one write: they arrive as `head`.
      client.write(Buffer.concat([Buffer.from(upgradeRequest(port, '/echo')), Buffer.from('818537fa213d7f9f4d5158', 'hex')]));
      expect((await client.readHttpResponse()).status).toBe(101);
      expect((await client.readFrame()).raw.toString('hex')).toBe('810548656c6c6f');
      client.destroy();
      // openWebSocket is the same thing in two steps.
      const again = await openWebSocket(port);
      again.destroy();
    } finally {
      await app.shutdown();
    }
  });
});

describe('client side of the handshake (§4.1)', () => {
  it('a refusal becomes a HandshakeError with the status and the body', async () => {
    const { app, port } = await startApp();
    try {
      const notFound = await connect(`ws://127.0.0.1:${port}/nope`).catch((e: unknown) => e);
      expect(notFound).toBeInstanceOf(HandshakeError);
      expect((notFound as HandshakeError).status).toBe(404);
      expect((notFound as HandshakeError).body).toBe('not found\n');
      const forbidden = await connect(`ws://127.0.0.1:${port}/ws`, { origin: 'http://evil.example' }).catch((e: unknown) => e);
      expect((forbidden as HandshakeError).status).toBe(403);
      const ok = await connect(`ws://127.0.0.1:${port}/ws`, { origin: `http://127.0.0.1:${port}` });
      ok.terminate();
    } finally {
      await app.shutdown();
    }
  });

  it('refuses a 101 whose Sec-WebSocket-Accept is wrong, or that selects an extension', async () => {
    const answers = [
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n\r\n`,
      (key: string) =>
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${acceptKey(key)}\r\nSec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n`,
      (key: string) => `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    ];
    for (const answer of answers) {
      const server = createServer((socket) => {
        socket.once('data', (request: Buffer) => {
          const key = /sec-websocket-key: *(\S+)/i.exec(request.toString('latin1'))![1]!;
          socket.write(typeof answer === 'string' ? answer : answer(key));
        });
        socket.on('error', () => {});
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      const error = await connect(`ws://127.0.0.1:${port}/`).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HandshakeError);
      expect((error as HandshakeError).status).toBe(101);
      server.close();
    }
  });
});

describe('client side of the handshake (§4.1)', () => {
  /** A fake server that reads the request head and answers with `respond(key)`, raw. */
  async function fakeServer(respond: (key: string) => string): Promise<{ url: string; request: Promise<string>; close: () => Promise<void> }> {
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
  const ok = (key: string, extra = ''): string =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n${extra}\r\n`;

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
    ['a wrong Sec-WebSocket-Accept', (key) => ok(key.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))), 'Sec-WebSocket-Accept does not match the key'],
    ['no Upgrade header', (key) => ok(key).replace('Upgrade: websocket\r\n', ''), '101 response without Upgrade: websocket / Connection: Upgrade'],
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
    const s = await fakeServer(() => 'HTTP/1.1 403 Forbidden\r\nContent-Length: 19\r\nConnection: close\r\n\r\norigin not allowed\n');
    try {
      const error = (await connect(s.url).then(() => undefined, (e: unknown) => e)) as HandshakeError;
      expect(error).toBeInstanceOf(HandshakeError);
      expect([error.message, error.status, error.body]).toEqual(['server refused the WebSocket handshake: HTTP/1.1 403 Forbidden', 403, 'origin not allowed\n']);
    } finally {
      await s.close();
    }
  });
});
