/**
 * Floods: a chatter over its rate limit, a ping flood (read and unread), and more connections than
 * MAX_CONNECTIONS. Each time, the abuser is refused or cut off and the other clients keep chatting.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, HandshakeError } from '../src/websocket';
import { ChatPeer, RawPeer, RawWs, roundTrip, startServer, upgradeRequest, waitUntil, within, type TestServer } from './helpers/abuse';

let s: TestServer | undefined;

afterEach(async () => {
  await s?.stop();
  s = undefined;
});

describe('rate limit (RATE_LIMIT_PER_SEC / RATE_LIMIT_BURST)', () => {
  it('refuses messages over the burst with a System error, closes a client that keeps flooding with 1008, and others chat on', async () => {
    // One token a second: the flood below takes milliseconds, so no token comes back during it.
    const burst = 5;
    s = await startServer({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: String(burst) });
    const bob = await ChatPeer.join(s.wsUrl(), 'bob');
    const carol = await ChatPeer.join(s.wsUrl(), 'carol');
    const flooder = await ChatPeer.join(s.wsUrl(), 'flooder');

    // burst messages pass; the next `burst` are refused one by one; one more is too many.
    const flood = 2 * burst + 1;
    for (let i = 0; i < flood; i++) flooder.say(`flood ${i}`);
    bob.say('bob during the flood');

    const info = await within(flooder.closed, 5_000, 'the flooder to be closed');
    expect(info.code).toBe(1008);
    expect(info.reason).toBe('rate limit exceeded');

    // Exactly the first `burst` messages went out to everyone.
    await carol.next((m) => m.type === 'leave' && m.message === 'flooder left the chat');
    expect(carol.chats('flooder')).toEqual(Array.from({ length: burst }, (_, i) => `flood ${i}`));
    expect(bob.chats('flooder')).toEqual(carol.chats('flooder'));
    // Each refused message got its System error, written before the close frame (the writePump runs
    // between two reads of the readPump, so every error is on the wire before the close).
    const errors = flooder.received.filter((m) => m.type === 'error');
    expect(errors).toHaveLength(burst);
    for (const e of errors) expect(e).toMatchObject({ type: 'error', user: 'System', message: 'rate limit exceeded: slow down' });

    // Bob was never limited: his message during the flood, and two more after it, arrive in order.
    bob.say('bob after the flood 1');
    bob.say('bob after the flood 2');
    await carol.next((m) => m.type === 'chat' && m.message === 'bob after the flood 2');
    expect(carol.chats('bob')).toEqual(['bob during the flood', 'bob after the flood 1', 'bob after the flood 2']);
    expect(bob.received.filter((m) => m.type === 'error')).toEqual([]);
    expect(await s.clientCount()).toBe(2);
  });
});

describe('private messages to nobody', () => {
  it.each([
    // 19 of the default burst of 20: the 20th token is for the broadcast that follows.
    ['19 in one go with SEND_QUEUE=16', { SEND_QUEUE: '16' }, 19],
    ['2,000 with no rate limit and the default SEND_QUEUE (256)', { RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000' }, 2_000],
  ])('a reading client that sends %s gets one "not online" error each and is not dropped as slow', async (_name, env, count) => {
    s = await startServer(env);
    const bob = await ChatPeer.join(s.wsUrl(), 'bob');
    const sender = await ChatPeer.join(s.wsUrl(), 'sender');
    for (let i = 0; i < count; i++) sender.say(`@nobody hello ${i}`);
    sender.say('and now for everyone');
    await bob.next((m) => m.type === 'chat' && m.message === 'and now for everyone');
    // Every refusal reached the sender: it reads, so it must never count as a slow consumer.
    await waitUntil(() => sender.received.filter((m) => m.type === 'error').length === count || sender.conn.readyState !== 'open', `${count} errors`);
    expect(s.logs.filter((l) => l.startsWith('dropped'))).toEqual([]);
    expect(sender.conn.readyState).toBe('open');
    expect(sender.received.filter((m) => m.type === 'error').map((m) => m.message)).toEqual(Array.from({ length: count }, () => 'nobody is not online'));
    await roundTrip(bob, sender, 'after the private flood');
  });
});

describe('ping flood', () => {
  it('5,000 pings from a raw client are all answered with their pongs, in order, while the chat goes on', async () => {
    s = await startServer();
    const bob = await ChatPeer.join(s.wsUrl(), 'bob');
    const carol = await ChatPeer.join(s.wsUrl(), 'carol');
    const pinger = await RawWs.join(s.port, 'pinger');

    const count = 5_000;
    const frames: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(i);
      frames.push(Buffer.from([0x89, 0x84, 0, 0, 0, 0]), payload); // masked ping, key 0 (§5.3 allows any key)
    }
    pinger.peer.write(Buffer.concat(frames));
    // While the pongs are on their way, a broadcast still gets through.
    await roundTrip(bob, carol, 'during the ping flood');

    const done = await pinger.waitFor(() => pinger.frames.filter((f) => f.kind === 'pong').length === count);
    expect(done).toBe(true);
    const pongs = pinger.frames.filter((f) => f.kind === 'pong').map((f) => (f as { data: Buffer }).data.readUInt32BE(0));
    expect(pongs).toEqual(Array.from({ length: count }, (_, i) => i));
    // §5.5.2: pongs only, no close: a ping flood is not a protocol error.
    expect(pinger.frames.some((f) => f.kind === 'close')).toBe(false);
    await roundTrip(carol, bob, 'after the ping flood');
  });

  it('a ping flood from a client that never reads its pongs is cut off at MAX_BUFFERED_BYTES', async () => {
    s = await startServer({ MAX_BUFFERED_BYTES: String(64 * 1024) });
    const bob = await ChatPeer.join(s.wsUrl(), 'bob');
    const carol = await ChatPeer.join(s.wsUrl(), 'carol');
    const pinger = await RawWs.open(s.port);
    pinger.pause();

    // 125-byte pings (the §5.5 maximum), 1 MiB at a time, until the server hangs up. The kernels
    // buffer a few MB of pongs; after that the server's own buffer passes 64 KiB and it drops us.
    const ping = Buffer.concat([Buffer.from([0x89, 0xfd, 0, 0, 0, 0]), Buffer.alloc(125, 0x70)]);
    const batch = Buffer.concat(Array.from({ length: Math.floor((1024 * 1024) / ping.length) }, () => ping));
    const cap = 512 * 1024 * 1024;
    let sent = 0;
    while (!pinger.peer.isClosed && sent < cap) {
      if (!pinger.peer.write(batch)) await new Promise((r) => (pinger.peer.socket.once('drain', r), pinger.peer.socket.once('close', r)));
      sent += batch.length;
    }
    await within(pinger.closed, 10_000, 'the ping flooder to be cut off');
    expect(sent).toBeLessThan(cap);
    const line = await s.logged(/^disconnect name="" /);
    expect(line).toContain('reason="too slow: outbound buffer full" sent=1008');

    await roundTrip(bob, carol, 'after the unread ping flood');
    await waitUntil(() => s!.app.connections.size === 2, 'the flooder to leave app.connections');
  });
});

describe('MAX_CONNECTIONS', () => {
  it('answers the connection over the cap with 503 before upgrading, and admits again once one leaves', async () => {
    s = await startServer({ MAX_CONNECTIONS: '3' });
    const a = await ChatPeer.join(s.wsUrl(), 'a');
    const b = await ChatPeer.join(s.wsUrl(), 'b');
    const echo = await connect(s.wsUrl('/echo')); // every WebSocket counts, not only chat ones

    const refused = await connect(s.wsUrl()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(HandshakeError);
    expect((refused as HandshakeError).status).toBe(503);
    expect((refused as HandshakeError).body).toBe('too many connections: try again later\n');

    // The same over a raw socket: a complete 503 with Retry-After, never a 101, then the close.
    const raw = await RawPeer.open(s.port);
    raw.write(upgradeRequest(s.port, '/ws'));
    await within(raw.closed, 5_000, 'the refused socket to close');
    expect(raw.text()).toBe(
      'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\n' +
        'Content-Length: 38\r\nConnection: close\r\n\r\ntoo many connections: try again later\n',
    );
    expect(s.app.connections.size).toBe(3);
    expect(s.logs.filter((l) => l.includes('reason="connection limit 3"'))).toHaveLength(2);

    // The chat still works at the cap.
    await roundTrip(a, b, 'at the cap');

    echo.close();
    await echo.closed;
    await waitUntil(() => s!.app.connections.size === 2, 'the echo connection to leave app.connections');
    const c = await ChatPeer.join(s.wsUrl(), 'c');
    await roundTrip(c, a, 'admitted after one left');
  });
});
