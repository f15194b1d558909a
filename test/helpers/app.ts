/**
 * The app starter: createApp() on 127.0.0.1, port 0, with a recording logger; plus one plain HTTP
 * request. Started inside a test, the app is closed when the test finishes; started in a beforeAll,
 * close it in the afterAll.
 *
 * The close timer is off (CLOSE_TIMEOUT_MS far above any test's timeout) unless a test sets it: a
 * closing handshake in a test completes by the protocol or not at all, never through the timer.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config';
import { createApp, type App } from '../../src/http/app';
import { Signal } from './wait';

/** Far above any test's timeout (and a hook's): a close timer this long never fires in a test. */
export const NO_CLOSE_TIMER_MS = 3_600_000;

/** No rate limit in the way of a test's own traffic. */
export const NO_RATE_LIMIT = { RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000' };

export interface TestApp {
  readonly app: App;
  readonly port: number;
  /** Every line the app logged, in order. */
  readonly log: string[];
  /** Resolves with the first `count` logged lines (past or future) that match. */
  logged(match: RegExp | ((line: string) => boolean), count?: number): Promise<string[]>;
  /** ws://127.0.0.1:<port><path> */
  url(path?: string): string;
  /** GET /clients, parsed. */
  roster(): Promise<{ count: number; clients: { name: string; connectedAt: string }[] }>;
  /** Resolves once at most `n` TCP connections (of any kind) are open on the server. */
  untilSockets(n: number): Promise<void>;
  /** Resolves once at most `n` WebSocket connections are open (app.connections). */
  untilConnections(n: number): Promise<void>;
  /** Shuts the app down (clients get 1001) and waits for the listening socket to close. */
  close(): Promise<void>;
}

/** `env` is the environment the config is read from, on top of PORT=0, HOST=127.0.0.1 and no close timer. */
export async function startApp(env: Record<string, string> = {}): Promise<TestApp> {
  const log: string[] = [];
  const logSignal = new Signal();
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', CLOSE_TIMEOUT_MS: String(NO_CLOSE_TIMER_MS), ...env });
  const app = createApp(config, (line) => {
    log.push(line);
    logSignal.notify();
  });
  const sockets = new Set<Socket>();
  const socketSignal = new Signal();
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      socketSignal.notify();
    });
  });
  const { port } = await app.listen();
  let closing: Promise<void> | undefined;
  const t: TestApp = {
    app,
    port,
    log,
    logged(match, count = 1) {
      const test = typeof match === 'function' ? match : (line: string) => match.test(line);
      const found: string[] = [];
      let seen = 0;
      return logSignal.until(() => {
        for (; seen < log.length && found.length < count; seen++) if (test(log[seen]!)) found.push(log[seen]!);
        return found.length >= count ? found : undefined;
      });
    },
    url: (path = '/ws') => `ws://127.0.0.1:${port}${path}`,
    async roster() {
      const res = await httpRequest(port, '/clients');
      if (res.status !== 200) throw new Error(`GET /clients: ${res.status} ${res.body}`);
      return JSON.parse(res.body);
    },
    untilSockets: (n) => socketSignal.until(() => (sockets.size <= n ? true : undefined)).then(() => {}),
    async untilConnections(n) {
      // app.connections forgets a connection in a callback on its `closed` promise: await those.
      while (app.connections.size > n) {
        await Promise.race([...app.connections].map((c) => c.closed));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
    close: () =>
      (closing ??= (async () => {
        await app.shutdown(500);
        if (app.server.listening) await new Promise((resolve) => app.server.close(resolve));
      })()),
  };
  try {
    onTestFinished(() => t.close());
  } catch {
    // Not inside a test (a beforeAll): the caller closes it.
  }
  return t;
}

/**
 * One app for every test of the enclosing describe (or file): started in a beforeAll, closed in the
 * afterAll. Read `port` and `t` inside the tests.
 */
export function sharedApp(env: Record<string, string> = {}): { readonly t: TestApp; readonly port: number } {
  let app: TestApp | undefined;
  beforeAll(async () => {
    app = await startApp(env);
  });
  afterAll(() => app?.close());
  const started = (): TestApp => {
    if (app === undefined) throw new Error('sharedApp: the app is started in beforeAll; use it inside a test');
    return app;
  };
  return {
    get t() {
      return started();
    },
    get port() {
      return started().port;
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One plain HTTP request on a fresh connection; resolves once that connection is closed too. */
export function httpRequest(port: number, path: string, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    // agent: false sends Connection: close; resolving after the socket is gone lets a test that
    // counts open sockets afterwards not see this one.
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const result = { status: res.statusCode ?? 0, headers: res.headers, body };
        if (req.socket === null || req.socket.destroyed) resolve(result);
        else req.socket.once('close', () => resolve(result));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
