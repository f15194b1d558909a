/**
 * Ping floods (RFC 6455 §5.5.2): every ping is answered with its pong, in order, and the chat goes
 * on; a flooder that never reads its pongs is cut off at MAX_BUFFERED_BYTES instead of making the
 * server buffer them.
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { startApp } from './helpers/app';
import { ChatPeer, rawJoin, roundTrip } from './helpers/chat';
import { RawPeer } from './helpers/raw-peer';
import { frame } from './helpers/wire';

describe('ping flood', () => {
  it('5,000 pings from a raw client are all answered with their pongs, in order, while the chat goes on', async () => {
    const t = await startApp();
    const bob = await ChatPeer.join(t.port, 'bob');
    const carol = await ChatPeer.join(t.port, 'carol');
    const pinger = await rawJoin(t.port, 'pinger');

    const count = 5_000;
    const pings: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(i);
      pings.push(frame(Opcode.Ping, payload));
    }
    pinger.write(Buffer.concat(pings));
    // While the pongs are on their way, a broadcast still gets through.
    await roundTrip(bob, carol, 'during the ping flood');

    const isPong = (f: { opcode: number }): boolean => f.opcode === Opcode.Pong;
    await pinger.waitForFrame((f) => isPong(f) && f.payload.readUInt32BE(0) === count - 1);
    const pongs = pinger.frames.filter(isPong).map((f) => f.payload.readUInt32BE(0));
    expect(pongs).toEqual(Array.from({ length: count }, (_, i) => i));
    // §5.5.2: pongs only, no close: a ping flood is not a protocol error.
    expect(pinger.closeFrame()).toBeUndefined();
    await roundTrip(carol, bob, 'after the ping flood');
  });

  it('a ping flood from a client that never reads its pongs is cut off at MAX_BUFFERED_BYTES', async () => {
    const t = await startApp({ MAX_BUFFERED_BYTES: String(64 * 1024) });
    const bob = await ChatPeer.join(t.port, 'bob');
    const carol = await ChatPeer.join(t.port, 'carol');
    const pinger = await RawPeer.upgrade(t.port, '/ws');
    pinger.pause();

    // 125-byte pings (the §5.5 maximum), 1 MiB at a time, until the server hangs up. The kernels
    // buffer a few MB of pongs; after that the server's own buffer passes 64 KiB and it drops us.
    const ping = frame(Opcode.Ping, Buffer.alloc(125, 0x70), { mask: Buffer.alloc(4) });
    const batch = Buffer.concat(Array.from({ length: Math.floor((1024 * 1024) / ping.length) }, () => ping));
    const cap = 512 * 1024 * 1024;
    let sent = 0;
    while (!pinger.isClosed && sent < cap) {
      if (!pinger.write(batch)) {
        await new Promise((resolve) => pinger.socket.once('drain', resolve).once('close', resolve));
      }
      sent += batch.length;
    }
    expect(sent).toBeLessThan(cap);
    const [line] = await t.logged(/^disconnect name="" /);
    expect(line).toMatch(
      /^disconnect name="" code=1006 reason="too slow: outbound buffer full" sent=1008 peer=127\.0\.0\.1:\d+$/,
    );

    await roundTrip(bob, carol, 'after the unread ping flood');
    await t.untilConnections(2);
  });
});
