/**
 * The server under test as a separate process, and what Linux tells us about it: CPU time from
 * /proc/<pid>/stat (utime + stime, all threads), RSS from /proc/<pid>/status, the machine's busy
 * time from /proc/stat (to see how much CPU other work took during a measurement).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect } from '../../src/websocket/client';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Clock ticks per second for /proc times (getconf CLK_TCK; 100 on Linux). */
export const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system, every thread) of a process, in microseconds. */
export function procCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) may contain spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]); // field 14
  const stime = Number(fields[12]); // field 15
  return ((utime + stime) * 1e6) / CLK_TCK;
}

/** Resident set size in KiB (VmRSS), or NaN once the process is gone. */
export function procRssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** The soft "Max open files" limit of a process. */
export function procOpenFilesLimit(pid: number | 'self'): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m === null ? NaN : m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return NaN;
  }
}

/** Machine-wide CPU time in microseconds: busy (not idle/iowait) and total, summed over all cores. */
export function machineCpuUs(): { busy: number; total: number; softirq: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3]! + v[4]!;
  const us = (ticks: number): number => (ticks * 1e6) / CLK_TCK;
  return { busy: us(total - idle), total: us(total), softirq: us(v[6]!) };
}

export interface ServerOptions {
  /** Extra environment on top of the bench defaults. */
  env?: Record<string, string>;
  /** Run under --cpu-prof, writing the profile into this directory. */
  profileDir?: string;
  /** More node options (e.g. --trace-gc for a diagnosis). */
  nodeArgs?: readonly string[];
  /** Open the inspector on 127.0.0.1 (any port), so collectGarbage() can force a full GC. */
  inspect?: boolean;
  /** Open-files limit to ask for (ulimit -n). */
  openFiles: number;
  /** Log file name under the bench's temp directory. */
  logName: string;
}

const children = new Set<ChildProcess>();

/** Kills every server still running (SIGKILL). Safe to call from an 'exit' handler. */
export function killAllServers(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

export class ServerProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  port = 0;
  private readonly exited: Promise<void>;

  constructor(root: string, options: ServerOptions) {
    const dir = join(tmpdir(), 'wschat-bench');
    mkdirSync(dir, { recursive: true });
    this.logFile = join(dir, options.logName);
    // Server output goes straight to a file: nothing in this process pays for reading it.
    const fd = openSync(this.logFile, 'w');
    const nodeArgs = [
      ...(options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : []),
      ...(options.inspect ? ['--inspect=127.0.0.1:0'] : []),
      ...(options.nodeArgs ?? []),
    ]
      .map((a) => shellQuote(a) + ' ')
      .join('');
    // `exec` keeps the pid: the child's pid is the node process we measure. If the hard limit is
    // lower than asked, ulimit fails and the server runs with what it has (reported by the caller).
    const command = `ulimit -n ${options.openFiles} 2>/dev/null; exec ${shellQuote(process.execPath)} ${nodeArgs}dist/server.js`;
    this.child = spawn('sh', ['-c', command], {
      cwd: root,
      stdio: ['ignore', fd, fd],
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        RATE_LIMIT_PER_SEC: '1000000',
        RATE_LIMIT_BURST: '1000000',
        MAX_CONNECTIONS: '20000',
        ...options.env,
      },
    });
    closeSync(fd);
    children.add(this.child);
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    void this.exited.then(() => children.delete(this.child));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits for the "listening on" log line and reads the port from it. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const log = readFileSync(this.logFile, 'utf8');
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(log);
      if (m) {
        this.port = Number(m[1]);
        return;
      }
      if (this.child.exitCode !== null) throw new Error(`server exited with ${this.child.exitCode}: ${log.trim()}`);
      await sleep(25);
    }
    throw new Error(`server not listening after ${timeoutMs} ms`);
  }

  cpuUs(): number {
    return procCpuUs(this.pid);
  }

  rssKiB(): number {
    return procRssKiB(this.pid);
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** GET /clients -> count. */
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
   * Forces a full garbage collection in the server through the inspector protocol (the server must
   * have been started with `inspect`), using our own WebSocket client. Resolves when V8 is done.
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

  /** SIGTERM (the server says 1001 to everyone and exits; a profile is written), SIGKILL if it lingers. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
