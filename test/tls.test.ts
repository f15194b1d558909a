/**
 * TLS (TLS_CERT_FILE, TLS_KEY_FILE): https:// and wss:// on one port, with a self-signed certificate
 * made by Debian's openssl in the test. Through our own client (wss://, the certificate as its CA),
 * Node's built-in WebSocket (NODE_EXTRA_CA_CERTS), the terminal client, and `node dist/server.js`.
 * SIGHUP reloads the certificate: a new connection sees the new one, an open one stays up; a broken
 * new certificate keeps the old one. (Chromium over https/wss: test/tls-browser.test.ts.)
 *
 * Without openssl the file is skipped locally; in CI (CI set) a missing openssl fails it.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config';
import { createApp, type App } from '../src/http/app';
import { connect, type WebSocketConnection } from '../src/websocket';
import { ChatPeer, chatFrom, joined } from './helpers/chat';
import { findOpenssl, makeCertificate, type TestCertificate } from './helpers/openssl';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const openssl = findOpenssl();
const NODE_FLAGS = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];

if (openssl === undefined && process.env.CI) {
  describe('TLS', () => {
    it('has openssl to make certificates', () => {
      throw new Error('CI needs openssl for the TLS tests: apt-get install openssl');
    });
  });
} else if (openssl === undefined) {
  console.warn('test/tls.test.ts SKIPPED: no openssl found (apt-get install openssl)');
}

/** A process of ours: its output so far, a wait for a line, its exit. */
interface Proc {
  stdout: string;
  stderr: string;
  readonly exit: Promise<number | null>;
  printed(pattern: RegExp): Promise<RegExpExecArray>;
  kill(signal: NodeJS.Signals): void;
}

function run(args: readonly string[], env: Record<string, string>, input?: string): Proc {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
  const watchers: { pattern: RegExp; resolve: (m: RegExpExecArray) => void; reject: (e: Error) => void }[] = [];
  const p: Proc = {
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => child.on('close', (code) => resolve(code))),
    printed(pattern) {
      const m = pattern.exec(p.stdout);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => watchers.push({ pattern, resolve, reject }));
    },
    kill: (signal) => child.kill(signal),
  };
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    p.stdout += s;
    for (const w of [...watchers]) {
      const m = w.pattern.exec(p.stdout);
      if (m) watchers.splice(watchers.indexOf(w), 1) && w.resolve(m);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (p.stderr += s));
  void p.exit.then((code) => {
    for (const w of watchers) {
      w.reject(new Error(`exited (${code}) before printing ${w.pattern}: ${p.stdout}${p.stderr}`));
    }
  });
  if (input !== undefined) child.stdin.end(input);
  return p;
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown. */
function certificateSeen(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

function httpsGet(url: string, ca: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    }).on('error', reject);
  });
}

async function echoes(conn: WebSocketConnection, text: string): Promise<void> {
  conn.send(text);
  expect(await conn.read()).toEqual({ binary: false, data: text });
}

describe.skipIf(openssl === undefined)('TLS', () => {
  let dir = '';
  let a: TestCertificate;
  let b: TestCertificate;
  /** The files the server is configured with; a test copies a certificate onto them. */
  let live: { cert: string; key: string };
  let app: App | undefined;
  let lines: string[] = [];
  const open: WebSocketConnection[] = [];
  const procs: Proc[] = [];

  const install = (c: TestCertificate): void => {
    copyFileSync(c.certFile, live.cert);
    copyFileSync(c.keyFile, live.key);
  };
  const tlsEnv = (): Record<string, string> => ({ TLS_CERT_FILE: live.cert, TLS_KEY_FILE: live.key });
  const start = async (): Promise<number> => {
    lines = [];
    app = createApp(loadConfig({ PORT: '0', HOST: '127.0.0.1', ...tlsEnv() }), (l) => lines.push(l));
    return (await app.listen()).port;
  };
  const wss = async (port: number, ca: string, path = '/echo'): Promise<WebSocketConnection> => {
    const conn = await connect(`wss://127.0.0.1:${port}${path}`, { ca });
    open.push(conn);
    return conn;
  };
  const configError = (env: Record<string, string>): string => {
    try {
      createApp(loadConfig({ PORT: '0', ...env }));
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).message;
    }
    throw new Error('createApp did not throw');
  };
  const loaded = (c: TestCertificate, name: string): RegExp =>
    new RegExp(`^tls_loaded subject="CN=${name}" expires="[A-Z][a-z]{2} [ \\d]\\d [\\d:]{8} \\d{4} GMT" ` +
      `fingerprint="${c.fingerprint}"$`);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wschat-tls-'));
    a = makeCertificate(openssl!, dir, 'a', 'wschat A');
    b = makeCertificate(openssl!, dir, 'b', 'wschat B');
    live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.terminate();
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    await app?.shutdown(100);
    app = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the page over https and the chat over wss on the same port, to our client', async () => {
    install(a);
    const port = await start();
    expect(lines[0]).toMatch(loaded(a, 'wschat A'));
    const page = await httpsGet(`https://127.0.0.1:${port}/`, a.pem);
    expect(page).toMatchObject({ status: 200, type: 'text/html; charset=utf-8' });
    expect(page.body).toContain('<ol class="log" id="log"');

    const alice = ChatPeer.over(await wss(port, a.pem, '/ws'));
    // By name this time: SNI, and the certificate's DNS name checked.
    const bob = ChatPeer.over(await connect(`wss://localhost:${port}/ws`, { ca: a.pem }));
    open.push(bob.conn);
    alice.send('alice');
    await alice.next(joined('alice'));
    bob.send('bob');
    await alice.next(joined('bob'));
    alice.send('hello over TLS');
    await bob.next(chatFrom('alice', 'hello over TLS'));
    expect(lines.some((l) => /^connect peer=127\.0\.0\.1:\d+ path=\/ws$/.test(l))).toBe(true);
  });

  it('our client checks the certificate: without the CA it refuses to talk', async () => {
    install(a);
    const port = await start();
    const url = `wss://127.0.0.1:${port}/echo`;
    await expect(connect(url)).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    await expect(connect(`wss://127.0.0.1:${port}/echo`, { ca: b.pem })).rejects.toThrow(/self-signed certificate/);
    await echoes(await wss(port, a.pem), 'trusted');
  });

  it("Node's built-in WebSocket (undici) connects over wss with NODE_EXTRA_CA_CERTS, and not without", async () => {
    install(a);
    const port = await start();
    const script = `
      const ws = new WebSocket(process.env.URL);
      ws.onopen = () => ws.send('hello from undici');
      ws.onmessage = (e) => { console.log(JSON.stringify({ echo: e.data })); ws.close(1000); };
      ws.onerror = () => console.log(JSON.stringify({ error: true }));
      ws.onclose = (e) => console.log(JSON.stringify({ code: e.code }));`;
    const url = `wss://127.0.0.1:${port}/echo`;
    const trusted = run([...NODE_FLAGS, '-e', script], { URL: url, NODE_EXTRA_CA_CERTS: a.certFile });
    const untrusted = run([...NODE_FLAGS, '-e', script], { URL: url });
    procs.push(trusted, untrusted);
    expect(await trusted.exit).toBe(0);
    expect(trusted.stdout).toBe('{"echo":"hello from undici"}\n{"code":1000}\n');
    expect(await untrusted.exit).toBe(0);
    expect(untrusted.stdout.startsWith('{"error":true}\n')).toBe(true); // the certificate refused: no echo
  });

  it('the terminal client speaks wss:// (CA from NODE_EXTRA_CA_CERTS), and says why it cannot without', async () => {
    install(a);
    const port = await start();
    const bob = ChatPeer.over(await wss(port, a.pem, '/ws'));
    bob.send('bob');
    await bob.next(joined('bob'));
    const url = `wss://127.0.0.1:${port}/ws`;
    const env = { NODE_EXTRA_CA_CERTS: a.certFile, NO_COLOR: '1' };
    const cli = run(['dist/client.js', url, 'carol'], env, 'hi over wss\n');
    procs.push(cli);
    await bob.next(chatFrom('carol', 'hi over wss'));
    expect(await cli.exit).toBe(0);
    const refused = run(['dist/client.js', url, 'dave'], { NO_COLOR: '1' }, '');
    procs.push(refused);
    expect(await refused.exit).toBe(1);
    expect(refused.stderr).toBe(`wschat-client: cannot connect to ${url}: self-signed certificate\n`);
  });

  it('reload: new connections get the new certificate, open ones stay up', async () => {
    install(a);
    const port = await start();
    const before = await wss(port, a.pem);
    expect(await certificateSeen(port)).toBe(a.fingerprint);

    install(b);
    expect(app!.reloadCertificate()).toBe(true);
    expect(lines.at(-1)).toMatch(loaded(b, 'wschat B'));
    expect(await certificateSeen(port)).toBe(b.fingerprint);
    await expect(connect(`wss://127.0.0.1:${port}/echo`, { ca: a.pem })).rejects.toThrow(/self-signed certificate/);
    await echoes(await wss(port, b.pem), 'new connection, new certificate');
    await echoes(before, 'the old connection is still up');
    expect(before.readyState).toBe('open');
  });

  it('a reload with a broken certificate keeps the one in use and logs why', async () => {
    install(a);
    const port = await start();
    const before = await wss(port, a.pem);

    writeFileSync(live.cert, 'not a certificate\n');
    expect(app!.reloadCertificate()).toBe(false);
    expect(lines.at(-1)).toBe(
      `tls_reload_failed reason="TLS_CERT_FILE: ${live.cert} holds no PEM certificate" kept="${a.fingerprint}"`,
    );
    copyFileSync(b.certFile, live.cert); // B's certificate with A's key: not a pair
    expect(app!.reloadCertificate()).toBe(false);
    expect(lines.at(-1)).toBe(
      `tls_reload_failed reason="TLS_KEY_FILE: ${live.key} is not the key of the certificate in ${live.cert}" ` +
        `kept="${a.fingerprint}"`,
    );
    rmSync(live.key);
    expect(app!.reloadCertificate()).toBe(false);
    expect(lines.at(-1)).toBe(
      `tls_reload_failed reason="TLS_KEY_FILE: cannot read ${live.key}: ENOENT" kept="${a.fingerprint}"`,
    );

    expect(await certificateSeen(port)).toBe(a.fingerprint);
    await echoes(before, 'still here');
    await echoes(await wss(port, a.pem), 'and new connections still get A');
  });

  it('a certificate that cannot be used is a configuration error naming the variable', () => {
    const missing = join(dir, 'missing.pem');
    expect(configError({ TLS_CERT_FILE: missing, TLS_KEY_FILE: a.keyFile })).toBe(
      `TLS_CERT_FILE: cannot read ${missing}: ENOENT`,
    );
    expect(configError({ TLS_CERT_FILE: a.keyFile, TLS_KEY_FILE: a.keyFile })).toBe(
      `TLS_CERT_FILE: ${a.keyFile} holds no PEM certificate`,
    );
    expect(configError({ TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: b.keyFile })).toBe(
      `TLS_KEY_FILE: ${b.keyFile} is not the key of the certificate in ${a.certFile}`,
    );
    expect(configError({ TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: a.certFile })).toMatch(
      new RegExp(`^TLS_KEY_FILE: ${a.certFile} holds no usable private key \\(.+\\)$`),
    );
    expect(() => loadConfig({ TLS_CERT_FILE: a.certFile })).toThrow('TLS_KEY_FILE: is needed with TLS_CERT_FILE');
    expect(() => loadConfig({ TLS_KEY_FILE: a.keyFile })).toThrow('TLS_CERT_FILE: is needed with TLS_KEY_FILE');
  });

  it('node dist/server.js: SIGHUP swaps the certificate, connections stay; exit 2 for a bad one', async () => {
    install(a);
    const server = run(['dist/server.js'], { PORT: '0', HOST: '127.0.0.1', ...tlsEnv() });
    procs.push(server);
    const [, port] = await server.printed(
      /Z listening on https:\/\/127\.0\.0\.1:(\d+) \(chat: wss:\/\/127\.0\.0\.1:\d+\/ws\)\n/,
    );
    const before = await wss(Number(port), a.pem);

    install(b);
    server.kill('SIGHUP');
    await server.printed(new RegExp(`Z tls_loaded subject="CN=wschat B" .* fingerprint="${b.fingerprint}"\n`));
    expect(await certificateSeen(Number(port))).toBe(b.fingerprint);
    await echoes(before, 'survived SIGHUP');

    server.kill('SIGTERM');
    expect(await server.exit).toBe(0);
    expect(server.stderr).toBe('');

    const bad = run(['dist/server.js'], { PORT: '0', TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: b.keyFile });
    procs.push(bad);
    expect(await bad.exit).toBe(2);
    expect(bad.stderr).toBe(
      `wschat: invalid configuration: TLS_KEY_FILE: ${b.keyFile} is not the key of the certificate in ${a.certFile}\n`,
    );
  });
});
