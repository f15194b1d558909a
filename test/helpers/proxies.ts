/**
 * Real reverse proxies in front of a test server: Debian's nginx and HAProxy, started by the test on a
 * free loopback port with a temporary configuration, stopped at its end. Never a system service.
 *
 * The configuration a reader copies (the README's "Behind a reverse proxy") is rendered from the same
 * functions with production values, so what the README shows is what the tests run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './wait';
import { findBinary } from './binaries';
import { freePort } from './redis-server';

export type ProxyKind = 'nginx' | 'haproxy';

export interface ProxySettings {
  /** Where the proxy listens: `80` in the README, `127.0.0.1:<port>` in the tests. */
  readonly listen: string;
  /** Our server, `host:port`. */
  readonly upstream: string;
  /** How long an idle WebSocket may stay open through the proxy (nginx/HAProxy time, e.g. `75s`). */
  readonly idleTimeout: string;
}

/** What the README shows: our server on 8080, the proxy on 80, idle timeout above the 54 s ping. */
export const README_SETTINGS: ProxySettings = { listen: '80', upstream: '127.0.0.1:8080', idleTimeout: '75s' };

/** The nginx part that serves wschat (an `http { }` block's contents). */
export function nginxSite(s: ProxySettings): string {
  return `# WebSocket upgrades need HTTP/1.1 and the hop-by-hop Upgrade and Connection headers passed on.
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}

upstream wschat {
    server ${s.upstream};
}

server {
    listen ${s.listen};

    location / {
        proxy_pass http://wschat;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        # The Host the browser asked for, port included: the Origin check compares the page with it.
        proxy_set_header Host $http_host;
        # Appends the address the request came from; wschat believes it with TRUST_PROXY=<this proxy>.
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # A WebSocket quiet for this long is closed; wschat's pings (PING_INTERVAL_MS) must come sooner.
        proxy_read_timeout ${s.idleTimeout};
        proxy_send_timeout ${s.idleTimeout};
    }
}
`;
}

/** The HAProxy configuration for wschat. */
export function haproxyConfig(s: ProxySettings): string {
  return `defaults
    mode http
    # Adds X-Forwarded-For with the address the request came from; wschat believes it with
    # TRUST_PROXY=<this proxy>.
    option forwardfor
    timeout connect 5s
    timeout http-request 10s
    timeout client 30s
    timeout server 30s
    # After the upgrade: a WebSocket quiet for this long is closed; wschat's pings (PING_INTERVAL_MS)
    # must come sooner.
    timeout tunnel ${s.idleTimeout}

frontend chat
    bind ${s.listen.includes(':') ? s.listen : `:${s.listen}`}
    default_backend wschat

backend wschat
    server wschat ${s.upstream}
`;
}

/** The whole nginx.conf of a test: the site, plus a foreground master with everything in `dir`. */
function nginxTestConfig(dir: string, site: string): string {
  // As root nginx would run its workers as nobody; they need nothing that root owns, but keep it simple.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `daemon off;
worker_processes 1;
${user}pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${site.replace(/^(?=.)/gm, '    ')}}
`;
}

const BINARIES: Record<ProxyKind, readonly (string | undefined)[]> = {
  nginx: [process.env.NGINX, '/usr/sbin/nginx', 'nginx'],
  haproxy: [process.env.HAPROXY, '/usr/sbin/haproxy', 'haproxy'],
};

/** The proxy's binary ($NGINX, $HAPROXY first), or undefined when it is not installed. */
export function findProxy(kind: ProxyKind): string | undefined {
  return findBinary(BINARIES[kind], ['-v']);
}

export interface RunningProxy {
  readonly kind: ProxyKind;
  readonly port: number;
  /** The configuration it runs. */
  readonly config: string;
  stop(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts `kind` on a free loopback port in front of `upstreamPort`; resolves once it accepts connections. */
export async function startProxy(kind: ProxyKind, upstreamPort: number, idleTimeout = '30s'): Promise<RunningProxy> {
  const binary = findProxy(kind);
  if (binary === undefined) throw new Error(`${kind} is not installed (apt-get install ${kind})`);
  const dir = mkdtempSync(join(tmpdir(), `wschat-${kind}-`));
  const port = await freePort();
  const settings = { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${upstreamPort}`, idleTimeout };
  let config: string;
  let args: string[];
  if (kind === 'nginx') {
    config = nginxTestConfig(dir, nginxSite(settings));
    writeFileSync(join(dir, 'nginx.conf'), config);
    args = ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
  } else {
    config = haproxyConfig(settings);
    writeFileSync(join(dir, 'haproxy.cfg'), config);
    args = ['-f', join(dir, 'haproxy.cfg'), '-db'];
  }
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const errorLog = (): string => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(force);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(async () => {
      if (child.exitCode !== null) throw new Error(`${kind} exited with ${child.exitCode}:\n${output}${errorLog()}`);
      return accepts(port);
    }, `${kind} to listen on ${port}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { kind, port, config, stop };
}
