/**
 * app.shutdown() (SIGINT/SIGTERM in the real process, see server-process.test.ts): stop accepting,
 * close every client with 1001 "server shutting down" (§7.4.1 going away), wait for them within the
 * grace period, and release every connection, whatever state the clients are in.
 */
import { describe, expect, it } from 'vitest';
import { connect, Opcode, type CloseInfo } from '../src/websocket';
import { startApp } from './helpers/app';
import { ChatPeer, joinAll, rawChat, rawJoin } from './helpers/chat';
import { RawPeer } from './helpers/raw-peer';
import { turns, within } from './helpers/wait';
import { frame, upgradeRequest } from './helpers/wire';

describe('shutdown', () => {
  it('closes every client with 1001: named, still choosing a name, and /echo', async () => {
    const t = await startApp();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    const unnamed = await ChatPeer.open(t.port);
    const echo = await connect(t.url('/echo'));
    await t.logged(/^connect /, 4);

    await t.app.shutdown();
    const infos: CloseInfo[] = await Promise.all([alice!.closed, bob!.closed, unnamed.closed, echo.closed]);
    for (const info of infos) {
      expect(info.code).toBe(1001);
      expect(info.reason).toBe('server shutting down');
      expect(info.wasClean).toBe(true);
    }
    expect(t.app.connections.size).toBe(0);
    expect(t.app.server.listening).toBe(false);
    // Shutting down does not announce everyone leaving.
    expect(alice!.received('leave')).toEqual([]);
  });

  it('sockets vanishing while app.shutdown() runs: it completes, every connection is released', async () => {
    const t = await startApp();
    const app = t.app;
    const chatters = await Promise.all(['a', 'b', 'c', 'd'].map((n) => ChatPeer.join(t.port, n)));
    const raws = await Promise.all(['e', 'f', 'g', 'h'].map((n) => rawJoin(t.port, n)));
    const unnamed = await Promise.all([0, 1].map(() => rawChat(t.port)));
    const halfHandshakes = await Promise.all([0, 1].map(() => RawPeer.open(t.port)));
    for (const p of halfHandshakes) p.write(upgradeRequest(t.port, '/ws').slice(0, 40));
    // e is mid-frame when the shutdown starts.
    raws[0]!.write(frame(Opcode.Text, 'never finished').subarray(0, 6));
    await t.logged(/^connect /, 10);
    expect(app.connections.size).toBe(10);

    const shutdown = app.shutdown(1_000);
    // Some vanish at once, some a turn or two later, one never answers the close (paused), the rest
    // close cleanly.
    raws[0]!.destroy();
    unnamed[0]!.destroy();
    halfHandshakes[0]!.destroy();
    raws[1]!.pause();
    setImmediate(() => {
      raws[2]!.destroy();
      chatters[0]!.conn.terminate();
      halfHandshakes[1]!.destroy();
    });
    void turns(2).then(() => {
      raws[3]!.destroy();
      unnamed[1]!.destroy();
    });
    await within(shutdown, 5_000, 'app.shutdown() to finish');

    expect(app.connections.size).toBe(0);
    expect(app.server.listening).toBe(false);
    // The clients that stayed were told why.
    for (const c of chatters.slice(1)) expect((await c.closed).code).toBe(1001);
    // The paused one learns of the server's close once it reads again.
    raws[1]!.resume();
    await Promise.all([...raws, ...unnamed].map((r) => r.closed));
    expect(raws[1]!.closeFrame()).toEqual({ code: 1001, reason: 'server shutting down' });
  });
});
