/**
 * MAX_CONNECTIONS: over the cap, an upgrade gets a complete 503 before any 101, and every WebSocket
 * counts (chat and echo alike). Once one leaves, the next is admitted; the chat works at the cap.
 */
import { describe, expect, it } from 'vitest';
import { connect, HandshakeError } from '../src/websocket';
import { startApp } from './helpers/app';
import { ChatPeer, joined, roundTrip } from './helpers/chat';
import { RawPeer } from './helpers/raw-peer';
import { upgradeRequest } from './helpers/wire';

describe('MAX_CONNECTIONS', () => {
  it('answers the connection over the cap with 503 before upgrading, and admits again once one leaves', async () => {
    const t = await startApp({ MAX_CONNECTIONS: '3' });
    const a = await ChatPeer.join(t.port, 'a');
    const b = await ChatPeer.join(t.port, 'b');
    const echo = await connect(t.url('/echo')); // every WebSocket counts, not only chat ones

    const refused = await connect(t.url()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(HandshakeError);
    expect((refused as HandshakeError).status).toBe(503);
    expect((refused as HandshakeError).body).toBe('too many connections: try again later\n');

    // The same over a raw socket: a complete 503 with Retry-After, never a 101, then the close.
    const raw = await RawPeer.open(t.port);
    raw.write(upgradeRequest(t.port, '/ws'));
    const { ended, rest } = await raw.untilClosed();
    expect(ended).toBe(true);
    expect(rest.toString('latin1')).toBe(
      'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\n' +
        'Content-Length: 38\r\nConnection: close\r\n\r\ntoo many connections: try again later\n',
    );
    expect(t.app.connections.size).toBe(3);
    expect(t.log.filter((l) => l.includes('reason="connection limit 3"'))).toHaveLength(2);

    // The chat still works at the cap.
    await roundTrip(a, b, 'at the cap');

    echo.close();
    await echo.closed;
    await t.untilConnections(2);
    const c = await ChatPeer.join(t.port, 'c');
    await a.waitFor(joined('c'));
    await roundTrip(c, a, 'admitted after one left');
  });
});
