/**
 * Behind real reverse proxies: Debian's nginx and HAProxy, each started by the test on a free loopback
 * port with the configuration the README shows (test/helpers/proxies.ts renders both), in front of our
 * server on port 0. For each: the WebSocket upgrade passes and a chat works; an idle connection outlives
 * the proxy's idle timeout because our pings keep it busy (and, without them, the proxy does close it);
 * the client's address arrives through X-Forwarded-For only with TRUST_PROXY, a forged header is
 * ignored, and the per-address limit counts clients, not the proxy.
 *
 * Clients connect from 127.0.0.2 and 127.0.0.3 (all of 127/8 is loopback on Linux), so the address the
 * proxy appends is told apart from the proxy's own, 127.0.0.1.
 *
 * Without the binaries the proxy tests are skipped locally; in CI (CI set) a missing one fails them.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { startApp, type TestApp } from './helpers/app';
import {
  findProxy,
  haproxyConfig,
  nginxSite,
  README_SETTINGS,
  startProxy,
  type ProxyKind,
  type RunningProxy,
} from './helpers/proxies';
import { RawPeer } from './helpers/raw-peer';
import { closeBody, frame, upgradeRequest } from './helpers/wire';

const KINDS: readonly ProxyKind[] = ['nginx', 'haproxy'];
const inCI = Boolean(process.env.CI);

/** The proxy's idle timeout in these tests, and our ping period well below it. */
const PROXY_IDLE = '1s';
const PROXY_IDLE_MS = 1000;
const PING_MS = 200;

describe('the README shows the configurations the tests run', () => {
  const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  it.each([
    ['nginx', nginxSite(README_SETTINGS)],
    ['haproxy', haproxyConfig(README_SETTINGS)],
  ])('%s', (_kind, text) => {
    expect(readme).toContain('```\n' + text + '```\n');
  });
});

for (const kind of KINDS) {
  const binary = findProxy(kind);
  if (binary === undefined && inCI) {
    describe(`behind ${kind}`, () => {
      it(`has ${kind} to run`, () => {
        throw new Error(`CI needs ${kind} for the proxy tests: apt-get install ${kind}`);
      });
    });
  } else if (binary === undefined) {
    console.warn(`test/proxies.test.ts: ${kind} tests SKIPPED (apt-get install ${kind})`);
  }

  describe.skipIf(binary === undefined)(`behind ${kind}`, () => {
    let server: TestApp | undefined;
    let proxy: RunningProxy | undefined;
    const clients: RawPeer[] = [];

    afterEach(async () => {
      for (const c of clients.splice(0)) c.destroy();
      await proxy?.stop();
      await server?.close();
      proxy = server = undefined;
    });

    /** Our server with `env`, and the proxy in front of it. */
    async function setup(env: Record<string, string>, idle = '30s'): Promise<void> {
      server = await startApp(env);
      proxy = await startProxy(kind, server.port, idle);
    }

    /** An upgrade through the proxy, from `from` (a loopback address), with extra request headers. */
    async function upgrade(
      path: string,
      from = '127.0.0.2',
      headers: Record<string, string> = {},
    ): Promise<{ client: RawPeer; status: number; head: string; body: string }> {
      const socket = netConnect({ host: '127.0.0.1', port: proxy!.port, localAddress: from });
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const client = RawPeer.wrap(socket);
      clients.push(client);
      client.write(upgradeRequest(proxy!.port, path, headers));
      const response = await client.readHttpResponse();
      return { client, status: response.status, head: response.head, body: response.body.toString() };
    }

    /** Sends a text frame and expects it back (on /echo). */
    async function echoes(client: RawPeer, text: string): Promise<void> {
      client.write(frame(Opcode.Text, text));
      let f = await client.readFrame();
      while (f.opcode === Opcode.Ping) {
        client.write(frame(Opcode.Pong, f.payload));
        f = await client.readFrame();
      }
      expect({ opcode: f.opcode, text: f.payload.toString() }).toEqual({ opcode: Opcode.Text, text });
    }

    it('passes the upgrade; a chat works, and a same-origin page is let in (Host reaches us)', async () => {
      await setup({});
      const origin = { Origin: `http://127.0.0.1:${proxy!.port}` };
      const alice = await upgrade('/ws', '127.0.0.2', origin);
      const bob = await upgrade('/ws', '127.0.0.3', origin);
      expect([alice.status, bob.status]).toEqual([101, 101]);
      alice.client.write(frame(Opcode.Text, 'alice'));
      bob.client.write(frame(Opcode.Text, 'bob'));
      await server!.logged(/^connect .* path=\/ws$/);
      const said = async (client: RawPeer, text: string): Promise<void> => {
        for (;;) {
          const m = JSON.parse((await client.readFrame()).payload.toString()) as { type: string; message: string };
          if (m.type === 'chat' && m.message === text) return;
        }
      };
      // bob joined after alice: once alice sees bob's join, bob is in the Hub and will see alice's message.
      for (;;) {
        const m = JSON.parse((await alice.client.readFrame()).payload.toString()) as { message: string };
        if (m.message === 'bob joined the chat') break;
      }
      alice.client.write(frame(Opcode.Text, 'hello through the proxy'));
      await said(bob.client, 'hello through the proxy');

      const evil = await upgrade('/ws', '127.0.0.2', { Origin: 'http://evil.example' });
      expect(evil.status).toBe(403);
      const page = await fetch(`http://127.0.0.1:${proxy!.port}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<ol class="log" id="log"');
    });

    it('an idle connection outlives the proxy idle timeout: our pings keep it busy', async () => {
      await setup({ PING_INTERVAL_MS: String(PING_MS), PONG_TIMEOUT_MS: String(PROXY_IDLE_MS * 5) }, PROXY_IDLE);
      const { client, status } = await upgrade('/echo');
      expect(status).toBe(101);
      // Pings come at least PING_MS apart: after this many, well over 2 proxy timeouts have passed
      // with nothing sent by either application.
      const pings = Math.ceil((2 * PROXY_IDLE_MS) / PING_MS) + 2;
      for (let seen = 0; seen < pings; ) {
        const f = await client.readFrame();
        expect(f.opcode).toBe(Opcode.Ping);
        client.write(frame(Opcode.Pong, f.payload)); // what every WebSocket client does (§5.5.2)
        seen++;
      }
      await echoes(client, 'still here');
    });

    it('without pings within its timeout, the proxy closes an idle connection (the timeout is real)', async () => {
      await setup({}, PROXY_IDLE); // PING_INTERVAL_MS: 54 s
      const { client, status } = await upgrade('/echo');
      expect(status).toBe(101);
      expect(await client.untilClosed()).toMatchObject({ rest: Buffer.alloc(0) });
      expect((await server!.logged(/^disconnect path=\/echo/))[0]).toMatch(/ code=1006 /);
    });

    it('X-Forwarded-For names the client only with TRUST_PROXY; a forged header is ignored', async () => {
      await setup({ TRUST_PROXY: '127.0.0.1' });
      const forged = { 'X-Forwarded-For': '203.0.113.66' };
      expect((await upgrade('/echo', '127.0.0.2', forged)).status).toBe(101);
      const [connected] = await server!.logged(/^connect /);
      expect(connected).toMatch(/^connect peer=127\.0\.0\.2 via=127\.0\.0\.1:\d+ path=\/echo$/);
      await proxy!.stop();
      await server!.close();

      await setup({}); // no TRUST_PROXY: the header is not believed, the client is the proxy
      expect((await upgrade('/echo', '127.0.0.2', forged)).status).toBe(101);
      expect((await server!.logged(/^connect /))[0]).toMatch(/^connect peer=127\.0\.0\.1:\d+ path=\/echo$/);
    });

    it('MAX_CONNECTIONS_PER_IP counts each client behind the proxy; forging the header gains nothing', async () => {
      await setup({ TRUST_PROXY: '127.0.0.1', MAX_CONNECTIONS_PER_IP: '1' });
      const first = await upgrade('/echo', '127.0.0.2');
      expect(first.status).toBe(101);
      const second = await upgrade('/echo', '127.0.0.2', { 'X-Forwarded-For': '198.51.100.9' });
      expect(second.status).toBe(429);
      expect(second.head).toMatch(/\r\nretry-after: 5\r\n/i);
      expect(second.body).toBe('too many connections from your address: at most 1 at once\n');
      expect((await server!.logged(/^refused /))[0]).toMatch(
        new RegExp(
          String.raw`^refused peer=127\.0\.0\.2 via=127\.0\.0\.1:\d+ path=/echo status=429 ` +
            String.raw`reason="connections per address limit 1"$`,
        ),
      );
      expect((await upgrade('/echo', '127.0.0.3')).status).toBe(101); // another client: its own count

      // The first client leaves: its slot is free again.
      first.client.write(frame(Opcode.Close, closeBody(1000)));
      await first.client.untilClosed();
      await server!.logged(/^disconnect path=\/echo code=1000 .*peer=127\.0\.0\.2 /);
      expect((await upgrade('/echo', '127.0.0.2')).status).toBe(101);
    });
  });
}
