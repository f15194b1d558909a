/**
 * Nothing leaks: connecting, joining and leaving a thousand times leaves no client, connection,
 * socket or timer behind.
 */
import { createHook } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { startApp } from './helpers/app';
import { ChatPeer } from './helpers/chat';
import { turns } from './helpers/wait';

describe('nothing leaks', () => {
  const count = (kind: string): number => process.getActiveResourcesInfo().filter((r) => r === kind).length;

  it('1,000 connect / join / close cycles leave no client, connection, socket or timer behind', async () => {
    const t = await startApp();
    const cycle = async (name: string): Promise<void> => {
      const c = await ChatPeer.join(t.port, name);
      const info = await c.close();
      expect(info.code).toBe(1000);
    };
    await cycle('warm-up');
    await t.logged((l) => l.startsWith('disconnect name="warm-up"'));
    const baseline = { timeouts: count('Timeout'), sockets: count('TCPSocketWrap') };
    // getActiveResourcesInfo() leaves out unref'd timers (the connection's heartbeat and close timers
    // are unref'd), so every timer and TCP handle created during the cycles is tracked here too.
    const live = new Map<number, string>();
    const hook = createHook({
      init(id, type) {
        if (type === 'Timeout' || type === 'TCPWRAP') live.set(id, type);
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();

    const total = 1000;
    const concurrency = 20;
    try {
      for (let i = 0; i < total; i += concurrency) {
        await Promise.all(Array.from({ length: concurrency }, (_, j) => cycle(`user${i + j}`)));
      }
      // Each server-side handler logs its disconnect last, after the Hub has let go of the client.
      await t.logged((l) => l.startsWith('disconnect '), total + 1);
      await turns(2); // Node runs the async_hooks destroy callbacks it batches in the next turns
    } finally {
      hook.disable();
    }
    expect([...live.values()]).toEqual([]);
    expect(count('TCPSocketWrap')).toBe(baseline.sockets);
    expect(count('Timeout')).toBeLessThanOrEqual(baseline.timeouts); // vitest may own one of them
    expect(t.app.connections.size).toBe(0);
    expect(await t.roster()).toEqual({ count: 0, clients: [] });
  });
});
