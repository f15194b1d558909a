/**
 * WebSocketConnection on real sockets: the echo endpoint from createApp seen through raw sockets (exact
 * bytes on the wire), our own client, and connections built directly around a socket pair for the
 * closing handshake and its timer (§7.1.1).
 *
 * The apps here run without a close timer (helpers/app.ts): a test that sees TCP end saw the server
 * end it by the protocol.
 */
import { describe, it, expect, afterEach, vi } from 'vitest';
import type { Socket } from 'node:net';
import { connect, WebSocketConnection } from '../src/websocket';
import { Opcode } from '../src/websocket/opcodes';
import { NO_CLOSE_TIMER_MS, sharedApp, startApp } from './helpers/app';
import { RawPeer, socketPair } from './helpers/raw-peer';
import { closeBody, frame, serverFrame, upgradeRequest } from './helpers/wire';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const closeFrame = (code: number, reason = ''): string => hex(serverFrame(Opcode.Close, closeBody(code, reason)));
/** Connection options for the socket-pair tests: no close timer, so a close completes by the protocol. */
const NO_TIMER = { maxMessageBytes: 1024, closeTimeoutMs: NO_CLOSE_TIMER_MS };

describe('echo over raw sockets (exact bytes)', () => {
  const shared = sharedApp({ MAX_MESSAGE_BYTES: '4096' });

  it('echoes text as text and binary as binary, unmasked (§5.1)', async () => {
    const c = await RawPeer.upgrade(shared.port);
    c.write(frame(Opcode.Text, 'hello'));
    expect(hex((await c.readFrame()).raw)).toBe('8105' + hex(Buffer.from('hello')));
    c.write(frame(Opcode.Binary, Buffer.from([0, 1, 2, 0xff])));
    expect(hex((await c.readFrame()).raw)).toBe('8204000102ff');
    c.write(frame(Opcode.Text, ''));
    expect(hex((await c.readFrame()).raw)).toBe('8100');
    // A fragmented message comes back whole, as one frame.
    c.write(Buffer.concat([frame(Opcode.Text, 'frag', { fin: false }), frame(Opcode.Continuation, 'mented')]));
    expect(hex((await c.readFrame()).raw)).toBe('810a' + hex(Buffer.from('fragmented')));
    // 16-bit length form on the way back.
    const big = Buffer.alloc(300, 0x42);
    c.write(frame(Opcode.Binary, big));
    expect(hex((await c.readFrame()).raw)).toBe('827e012c' + hex(big));
    c.destroy();
  });

  it('answers a ping with a pong carrying the same payload (§5.5.2)', async () => {
    const c = await RawPeer.upgrade(shared.port);
    c.write(frame(Opcode.Ping, 'ping-payload'));
    expect(hex((await c.readFrame()).raw)).toBe('8a0c' + hex(Buffer.from('ping-payload')));
    c.write(frame(Opcode.Ping));
    expect(hex((await c.readFrame()).raw)).toBe('8a00');
    const max = Buffer.alloc(125);
    for (let i = 0; i < 125; i++) max[i] = i;
    c.write(frame(Opcode.Ping, max));
    expect(hex((await c.readFrame()).raw)).toBe('8a7d' + hex(max));
    // A ping between the fragments of a message is answered at once; the message then completes.
    const first = frame(Opcode.Text, 'a', { fin: false });
    c.write(Buffer.concat([first, frame(Opcode.Ping, 'mid'), frame(Opcode.Continuation, 'b')]));
    expect(hex((await c.readFrame()).raw)).toBe('8a03' + hex(Buffer.from('mid')));
    expect(hex((await c.readFrame()).raw)).toBe('8102' + hex(Buffer.from('ab')));
    c.destroy();
  });

  it('ignores an unsolicited pong: no reply, and the connection stays open (§5.5.3)', async () => {
    const c = await RawPeer.upgrade(shared.port);
    c.write(frame(Opcode.Pong, 'unsolicited'));
    c.write(frame(Opcode.Pong));
    // The next thing on the wire is the answer to this ping, so nothing answered the pongs.
    c.write(frame(Opcode.Ping, 'marker'));
    expect(hex((await c.readFrame()).raw)).toBe('8a06' + hex(Buffer.from('marker')));
    c.write(frame(Opcode.Text, 'still open'));
    expect((await c.readFrame()).payload.toString()).toBe('still open');
    expect(c.ended).toBe(false);
    c.destroy();
  });

  it('echoes a close 1000 + reason as 88 02 03 e8 (code only), then ends TCP (§5.5.1, §7.1.1)', async () => {
    const c = await RawPeer.upgrade(shared.port);
    c.write(frame(Opcode.Close, closeBody(1000, 'normal bye')));
    expect(hex((await c.readFrame()).raw)).toBe('880203e8');
    const { ended, rest } = await c.untilClosed();
    expect(ended).toBe(true); // a FIN from the server, not a reset
    expect(rest.length).toBe(0);
    await shared.t.logged(/^disconnect path=\/echo code=1000 reason="normal bye" sent=1000 peer=127\.0\.0\.1:\d+$/);
  });

  it('echoes other valid codes the same way', async () => {
    for (const code of [1001, 3000, 4000, 4999]) {
      const c = await RawPeer.upgrade(shared.port);
      c.write(frame(Opcode.Close, closeBody(code, 'x')));
      expect(hex((await c.readFrame()).raw)).toBe(closeFrame(code));
      expect((await c.untilClosed()).rest.length).toBe(0);
    }
  });

  it('echoes an empty close as an empty close (88 00)', async () => {
    const c = await RawPeer.upgrade(shared.port);
    c.write(frame(Opcode.Close));
    expect(hex((await c.readFrame()).raw)).toBe('8800');
    const { ended, rest } = await c.untilClosed();
    expect(ended).toBe(true);
    expect(rest.length).toBe(0);
    await shared.t.logged(/^disconnect path=\/echo code=1005 reason="" sent=1005 peer=127\.0\.0\.1:\d+$/);
  });

  it('ignores frames after the peer close', async () => {
    const c = await RawPeer.upgrade(shared.port);
    const after = [frame(Opcode.Text, 'after close'), frame(Opcode.Ping, 'p'), Buffer.from([0xff, 0xff])];
    c.write(Buffer.concat([frame(Opcode.Close, closeBody(1000)), ...after]));
    const { ended, rest } = await c.untilClosed();
    expect(ended).toBe(true);
    expect(hex(rest)).toBe('880203e8'); // the echo and nothing else
  });

  const failures: [string, Buffer, number, string][] = [
    ['an unmasked frame', frame(Opcode.Text, 'x', { mask: false }), 1002, 'unmasked frame from client'],
    ['RSV1 without an extension', frame(Opcode.Text, 'x', { rsv: 4 }), 1002, 'reserved bits set'],
    ['a reserved opcode', frame(0xb, ''), 1002, 'reserved opcode'],
    ['a fragmented ping', frame(Opcode.Ping, '', { fin: false }), 1002, 'fragmented control frame'],
    ['a continuation without a message', frame(Opcode.Continuation, 'x'), 1002, 'continuation without a message'],
    ['invalid UTF-8', frame(Opcode.Text, Buffer.from([0xed, 0xa0, 0x80])), 1007, 'invalid UTF-8 in text message'],
    ['a message above MAX_MESSAGE_BYTES', frame(Opcode.Binary, Buffer.alloc(4097)), 1009, 'message too big'],
    ['a close code that may not be sent', frame(Opcode.Close, closeBody(1005)), 1002, 'invalid close code 1005'],
    ['a 1-byte close payload', frame(Opcode.Close, Buffer.from([3])), 1002, 'close frame with a 1-byte payload'],
    [
      'a close reason that is not UTF-8',
      frame(Opcode.Close, Buffer.concat([closeBody(1000), Buffer.from([0xff])])),
      1007,
      'invalid UTF-8 in close reason',
    ],
  ];
  for (const [what, bytes, code, reason] of failures) {
    it(`fails the connection on ${what}: close ${code} on the wire, then TCP closes (§7.1.7)`, async () => {
      const c = await RawPeer.upgrade(shared.port);
      c.write(bytes);
      c.write(frame(Opcode.Text, 'never echoed'));
      const { ended, rest } = await c.untilClosed();
      expect(ended).toBe(true);
      expect(hex(rest)).toBe(closeFrame(code, reason));
    });
  }

  it('a 1009 comes from the header alone: the payload is never sent', async () => {
    const c = await RawPeer.upgrade(shared.port);
    c.write(frame(Opcode.Binary, '', { declaredLength: 2n ** 40n }));
    const { rest } = await c.untilClosed();
    expect(hex(rest)).toBe(closeFrame(1009, 'message too big'));
  });
});

describe('the server ends TCP as soon as the peer is done (§7.1.1), never by its close timer', () => {
  it('a close and a FIN together: the close is echoed and TCP ends at once', async () => {
    const t = await startApp();
    const c = await RawPeer.upgrade(t.port);
    c.end(frame(Opcode.Close, closeBody(1000)));
    const { ended, rest } = await c.untilClosed();
    expect(ended).toBe(true);
    expect(hex(rest)).toBe(closeFrame(1000));
  });

  it('a FIN without a close frame: TCP ends at once, nothing is sent', async () => {
    const t = await startApp();
    const c = await RawPeer.upgrade(t.port);
    c.write(frame(Opcode.Text, 'last words'));
    await c.readFrame();
    c.end();
    const { ended, rest } = await c.untilClosed();
    expect(ended).toBe(true);
    expect(rest.length).toBe(0);
    const [line] = await t.logged(/^disconnect path=\/echo /);
    expect(line).toMatch(/^disconnect path=\/echo code=1006 reason="" peer=127\.0\.0\.1:\d+$/);
  });

  it('CLOSE_TIMEOUT_MS is the time a peer that keeps its side open gets to answer our close', async () => {
    const t = await startApp({ CLOSE_TIMEOUT_MS: '100' });
    const accepted = new Promise<Socket>((resolve) => t.app.server.once('connection', resolve));
    const c = await RawPeer.open(t.port, { allowHalfOpen: true });
    const serverSide = await accepted;
    c.write(upgradeRequest(t.port));
    expect((await c.readHttpResponse()).status).toBe(101);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      c.write(frame(Opcode.Text, 'unmasked', { mask: false })); // the server fails the connection: close 1002
      await c.waitForBytes(() => c.ended); // its close frame, then its FIN; ours never comes
      expect(hex(c.received())).toBe(closeFrame(1002, 'unmasked frame from client'));
      vi.advanceTimersByTime(99);
      expect(serverSide.destroyed).toBe(false);
      vi.advanceTimersByTime(1);
      expect(serverSide.destroyed).toBe(true);
    } finally {
      vi.useRealTimers();
      c.destroy();
    }
  });
});

describe('our client against the echo server', () => {
  it('keeps the opcode: text stays a string, binary stays a Buffer', async () => {
    const t = await startApp({ MAX_MESSAGE_BYTES: '65536' });
    const ws = await connect(t.url('/echo'), { closeTimeoutMs: NO_CLOSE_TIMER_MS });
    ws.send('héllo');
    ws.send(Buffer.from([1, 2, 3]));
    ws.send('binary from a string', true);
    expect(await ws.read()).toEqual({ binary: false, data: 'héllo' });
    const b = await ws.read();
    expect(b?.binary).toBe(true);
    expect([...(b!.data as Buffer)]).toEqual([1, 2, 3]);
    const c = await ws.read();
    expect(c?.binary).toBe(true);
    expect((c!.data as Buffer).toString()).toBe('binary from a string');
    ws.close(1000, 'done');
    const info = await ws.closed;
    expect(info).toEqual({ code: 1000, reason: '', wasClean: true, sentCode: 1000 });
    expect(await ws.read()).toBeNull();
  });
});

describe('the closing handshake on a socket pair (§7.1)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a peer that never answers our close is dropped after exactly closeTimeoutMs', async () => {
    const [serverSide, clientSide] = await socketPair();
    const peer = RawPeer.wrap(clientSide);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const conn = new WebSocketConnection(serverSide, { role: 'server', maxMessageBytes: 1024, closeTimeoutMs: 2000 });
    conn.close(4001, 'going');
    expect(hex((await peer.readFrame()).raw)).toBe(closeFrame(4001, 'going'));
    expect(conn.readyState).toBe('closing');
    vi.advanceTimersByTime(1999);
    expect(serverSide.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(serverSide.destroyed).toBe(true);
    vi.useRealTimers();
    expect(await conn.closed).toEqual({ code: 1006, reason: '', wasClean: false, sentCode: 4001 });
    await peer.closed;
    expect(conn.readyState).toBe('closed');
  });

  it('a peer that answers our close closes cleanly; the server ends TCP first (§7.1.1)', async () => {
    const [serverSide, clientSide] = await socketPair();
    const peer = RawPeer.wrap(clientSide);
    const conn = new WebSocketConnection(serverSide, { role: 'server', ...NO_TIMER });
    conn.close(1000, 'bye');
    expect(hex((await peer.readFrame()).raw)).toBe(closeFrame(1000, 'bye'));
    // After our close, data is discarded and pings are not answered (§7.1.4); the close is read.
    const close = frame(Opcode.Close, closeBody(1000, 'ok'));
    peer.write(Buffer.concat([frame(Opcode.Text, 'late'), frame(Opcode.Ping, 'p'), close]));
    const { ended, rest } = await peer.untilClosed();
    expect(ended).toBe(true);
    expect(rest.length).toBe(0);
    expect(await conn.closed).toEqual({ code: 1000, reason: 'ok', wasClean: true, sentCode: 1000 });
  });

  it('after our close, a message the peer still sends is discarded: read() returns null, not the message', async () => {
    const [serverSide, clientSide] = await socketPair();
    const peer = RawPeer.wrap(clientSide);
    const conn = new WebSocketConnection(serverSide, { role: 'server', ...NO_TIMER });
    const waiting = conn.read(); // a reader already waiting learns of the close
    conn.close(1000, 'bye');
    expect(await waiting).toBeNull();
    expect(hex((await peer.readFrame()).raw)).toBe(closeFrame(1000, 'bye'));
    const close = frame(Opcode.Close, closeBody(1000));
    peer.write(Buffer.concat([frame(Opcode.Text, 'late'), frame(Opcode.Binary, 'later'), close]));
    expect(await conn.closed).toEqual({ code: 1000, reason: '', wasClean: true, sentCode: 1000 });
    expect(await conn.read()).toBeNull();
  });

  it('client role: masks its frames and waits for the server to close TCP', async () => {
    const [serverSide, clientSide] = await socketPair();
    const server = RawPeer.wrap(serverSide);
    const conn = new WebSocketConnection(clientSide, { role: 'client', ...NO_TIMER });
    conn.send('masked');
    const f = await server.readFrame();
    expect(f.masked).toBe(true);
    expect(f.payload.toString()).toBe('masked');
    // A server's close: the client echoes it (masked) and leaves closing TCP to the server.
    server.write(serverFrame(Opcode.Close, closeBody(1001, 'restart')));
    const echo = await server.readFrame();
    expect(echo.opcode).toBe(Opcode.Close);
    expect(echo.masked).toBe(true);
    expect(hex(echo.payload)).toBe('03e9');
    expect(conn.readyState).toBe('closing');
    serverSide.end();
    expect(await conn.closed).toEqual({ code: 1001, reason: 'restart', wasClean: true, sentCode: 1001 });
  });

  it('a masked frame from a server fails the client connection with 1002', async () => {
    const [serverSide, clientSide] = await socketPair();
    const server = RawPeer.wrap(serverSide);
    const conn = new WebSocketConnection(clientSide, { role: 'client', ...NO_TIMER });
    server.write(frame(Opcode.Text, 'masked by a server'));
    const f = await server.readFrame();
    expect(f.opcode).toBe(Opcode.Close);
    expect(f.payload).toEqual(closeBody(1002, 'masked frame from server'));
    serverSide.end();
    const info = await conn.closed;
    expect(info.code).toBe(1006);
    expect(info.sentCode).toBe(1002);
    expect(info.reason).toBe('masked frame from server');
  });
});

describe('close() guards the wire', () => {
  it('refuses codes that may never be sent (§7.4.1: 1005, 1006, 1015 are for reports only)', async () => {
    const t = await startApp();
    const conn = await connect(t.url('/echo'), { closeTimeoutMs: NO_CLOSE_TIMER_MS });
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000]) {
      expect(() => conn.close(code), String(code)).toThrow(RangeError);
    }
    expect(conn.readyState).toBe('open');
    conn.close(4000, 'fine');
    const info = await conn.closed;
    expect([info.code, info.sentCode]).toEqual([4000, 4000]);
  });
});
