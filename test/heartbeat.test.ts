/**
 * The heartbeat (gorilla's pingPeriod / pongWait): the server pings every PING_INTERVAL_MS and drops a
 * peer that has not answered for PONG_TIMEOUT_MS. Through the app on a raw socket, and on a socket
 * pair with fake time, where the exact schedule can be counted.
 */
import { describe, expect, it, vi } from 'vitest';
import { WebSocketConnection } from '../src/websocket';
import { Opcode } from '../src/websocket/opcodes';
import { NO_CLOSE_TIMER_MS, sharedApp } from './helpers/app';
import { RawPeer, socketPair } from './helpers/raw-peer';
import { frame } from './helpers/wire';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('the schedule, on a socket pair with fake time', () => {
  it('pings every pingIntervalMs, not more often', async () => {
    const [serverSide, clientSide] = await socketPair();
    const peer = RawPeer.wrap(clientSide);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const conn = new WebSocketConnection(serverSide, {
      role: 'server',
      maxMessageBytes: 1024,
      pingIntervalMs: 1_000,
      pongTimeoutMs: 60_000,
      closeTimeoutMs: NO_CLOSE_TIMER_MS,
    });
    /** Pings on the wire so far: everything before a marker message sent now. */
    const pingsBefore = async (marker: string): Promise<number> => {
      conn.send(marker);
      for (let pings = 0; ; pings++) {
        const f = await peer.readFrame();
        if (f.opcode !== Opcode.Ping) {
          expect(f.payload.toString()).toBe(marker);
          return pings;
        }
        expect(hex(f.raw)).toBe('8900');
      }
    };
    try {
      vi.advanceTimersByTime(999);
      expect(await pingsBefore('at 999 ms')).toBe(0);
      vi.advanceTimersByTime(1);
      expect(await pingsBefore('at 1 s')).toBe(1);
      vi.advanceTimersByTime(9_000);
      expect(await pingsBefore('at 10 s')).toBe(9);
      // The peer never answered, yet it is kept until PONG_TIMEOUT_MS.
      expect(conn.readyState).toBe('open');
    } finally {
      vi.useRealTimers();
      conn.terminate();
    }
  });
});

describe('through the app (PING_INTERVAL_MS=50, PONG_TIMEOUT_MS=500)', () => {
  const shared = sharedApp({ PING_INTERVAL_MS: '50', PONG_TIMEOUT_MS: '500' });

  it('pings, and drops a peer that never answers (no close handshake)', async () => {
    const c = await RawPeer.upgrade(shared.port);
    expect(hex((await c.readFrame()).raw)).toBe('8900');
    const { rest } = await c.untilClosed();
    // Only more empty pings came before the drop: the peer is gone, so no close frame is sent.
    expect(hex(rest)).toMatch(/^(8900)*$/);
  });

  it('keeps a peer that answers every ping, across many intervals', async () => {
    const c = await RawPeer.upgrade(shared.port);
    let pings = 0;
    // Pings are at least 50 ms apart, so 14 of them span more than the 500 ms pong timeout: only the
    // pongs keep us connected.
    while (pings < 14) {
      const f = await c.readFrame();
      expect(hex(f.raw)).toBe('8900');
      pings++;
      c.write(frame(Opcode.Pong));
    }
    c.write(frame(Opcode.Text, 'alive'));
    let echo = await c.readFrame();
    while (echo.opcode === Opcode.Ping) {
      c.write(frame(Opcode.Pong));
      echo = await c.readFrame();
    }
    expect(hex(echo.raw)).toBe('8105' + hex(Buffer.from('alive')));
    expect(c.isClosed).toBe(false);
    c.destroy();
  });

  it('any message from the peer also counts as a sign of life', async () => {
    const c = await RawPeer.upgrade(shared.port);
    let pings = 0;
    while (pings < 14) {
      const f = await c.readFrame();
      if (f.opcode === Opcode.Ping) {
        pings++;
        c.write(frame(Opcode.Text, `tick ${pings}`)); // a message, not a pong
      } else {
        expect(f.opcode).toBe(Opcode.Text);
      }
    }
    expect(c.isClosed).toBe(false);
    c.destroy();
  });
});

