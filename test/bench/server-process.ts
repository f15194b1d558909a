/**
 * A server under test as a separate process: the one helper the bench and the soak start servers
 * with, whatever the server (ours, another checkout's, a reference server in Go or Node).
 *
 * It runs under `sh -c 'ulimit -n N; exec "$@"'`: a process cannot raise its own open-files limit
 * from JavaScript, and `exec` keeps the pid, so the child's pid is the server itself. The server's
 * output goes straight to a log file (nothing in this process pays for reading it). Its CPU and RSS
 * are summed over its process tree, so a server that forks workers is measured whole.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect as netConnect } from 'node:net';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect } from '../../src/websocket/client';
import { processTree, usageOf, type Usage } from './proc';
import { sleep } from './time';

export interface ProcessSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  /** On top of this process's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Open-files limit to ask for (ulimit -n); a lower hard limit is taken instead. */
  readonly openFiles: number;
  /** stdout and stderr go here. */
  readonly logFile: string;
  /**
   * How to know it listens: a log line whose first group is the port (the server chose it), or the
   * port the server was told to use (connected to until it accepts).
   */
  readonly ready: { readonly line: RegExp } | { readonly port: number };
  readonly readyTimeoutMs?: number;
}

/** A process the server needs and whose cost is the server's (the Redis of a cluster target). */
export interface Companion {
  readonly pid: number | undefined;
  /** Redis's counters: commands processed (those run by scripts included) and script calls (EVALSHA). */
  commands(): Promise<{ readonly total: number; readonly scripts: number }>;
  dispose(): Promise<void>;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const running = new Set<ChildProcess>();

/** Kills every server still running (SIGKILL). Safe to call from an 'exit' handler. */
export function killAllServers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** `command args` under `ulimit -n limit` (the hard limit if it is lower), as [file, args] for spawn. */
export function withOpenFilesLimit(limit: number, command: string, args: readonly string[]): [string, string[]] {
  const script = 'ulimit -n "$0" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"';
  return ['sh', ['-c', script, String(limit), command, ...args]];
}

/** The process tree is looked up again at most this often (a scan of /proc takes a few ms). */
const TREE_TTL_MS = 1_000;

export class ServerProcess {
  readonly pid: number;
  port = 0;
  /** Set when the process has exited. */
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  /** Set by the target that started one (its CPU and RSS count as the server's; it stops with it). */
  companion: Companion | undefined;
  private tree: { pids: number[]; at: number } | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.pid = child.pid!;
    running.add(child);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        running.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
  }

  /** Starts the process and resolves once it listens; on failure it is stopped and the error says why. */
  static async start(spec: ProcessSpec): Promise<ServerProcess> {
    mkdirSync(dirname(spec.logFile), { recursive: true });
    const fd = openSync(spec.logFile, 'w');
    const [file, args] = withOpenFilesLimit(spec.openFiles, spec.command, spec.args);
    const child = spawn(file, args, { cwd: spec.cwd, stdio: ['ignore', fd, fd], env: { ...process.env, ...spec.env } });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`cannot start ${spec.command}`);
    const server = new ServerProcess(child, spec.logFile);
    try {
      await server.waitReady(spec.ready, spec.readyTimeoutMs ?? 10_000);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  private async waitReady(ready: ProcessSpec['ready'], timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (this.exit !== undefined) throw new Error(`server exited (${describeExit(this.exit)}): ${this.log().trim()}`);
      if ('line' in ready) {
        const m = ready.line.exec(this.log());
        if (m !== null) {
          this.port = Number(m[1]);
          return;
        }
      } else if (await accepts(ready.port)) {
        this.port = ready.port;
        return;
      }
      await sleep(25);
    }
    throw new Error(`server not listening after ${timeoutMs} ms: ${this.log().trim().slice(-500)}`);
  }

  /** CPU and RSS of the server and its descendants (and its companion); NaN once it has exited. */
  usage(): Usage {
    const now = performance.now();
    if (this.tree === undefined || now - this.tree.at > TREE_TTL_MS) {
      const companion = this.companion?.pid;
      this.tree = { pids: [...processTree(this.pid), ...(companion === undefined ? [] : [companion])], at: now };
    }
    return usageOf(this.tree.pids);
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** GET /clients -> count (every server we measure answers it). */
  clientCount(): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port: this.port, path: '/clients', agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          try {
            resolve((JSON.parse(Buffer.concat(parts).toString('utf8')) as { count: number }).count);
          } catch (error) {
            reject(error as Error);
          }
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('GET /clients timed out')));
      req.on('error', reject);
    });
  }

  /**
   * Forces a full garbage collection in a Node server started with `--inspect=127.0.0.1:0`, through
   * the inspector protocol and our own WebSocket client. Resolves when V8 is done.
   */
  async collectGarbage(): Promise<void> {
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(this.log());
    if (m === null) throw new Error('the server was not started with the inspector');
    const conn = await connect(m[1]!, { timeoutMs: 5_000 });
    try {
      conn.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
      for (let reply = await conn.read(); reply !== null; reply = await conn.read()) {
        if (!reply.binary && (JSON.parse(reply.data) as { id?: number }).id === 1) return;
      }
      throw new Error('the inspector closed the connection');
    } finally {
      conn.close();
    }
  }

  /** SIGTERM (a Node server writes its --cpu-prof profile then), SIGKILL if it lingers. */
  async stop(graceMs = 5_000): Promise<ExitInfo> {
    if (this.exit === undefined) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await this.companion?.dispose();
    this.companion = undefined;
    return this.exit!;
  }
}

export function describeExit(exit: ExitInfo): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** Does something accept TCP connections on 127.0.0.1:port? */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
