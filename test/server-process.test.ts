/**
 * The entry point as a real process: `node dist/server.js` (built by the global setup).
 * SIGTERM/SIGINT close every client with 1001 and exit 0; a bad configuration exits 2 naming the variable.
 *
 * About the 2 s shutdown budget: the test asserts no wall-clock threshold (the machine is shared).
 * server.ts exits from one of two places: when app.shutdown() has resolved (every client closed, or
 * the 1.5 s grace spent), or from its 2 s budget timer, which writes "shutdown did not finish ..." to
 * stderr first. So "exit code 0 and an empty stderr" proves the process stopped on its own, inside
 * the budget, by the server's clock rather than the test's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ChatPeer, joined, rawJoin } from './helpers/chat';

const root = fileURLToPath(new URL('..', import.meta.url));

interface ServerProcess {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

function run(env: Record<string, string>): ServerProcess {
  // Only what the server needs: no PORT/HOST/... leaking in from the test runner's environment.
  const child = spawn(process.execPath, ['dist/server.js'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const p: ServerProcess = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (p.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (p.stderr += s));
  return p;
}

/** Starts the server on a free port and resolves with the port it logged. */
async function startServer(env: Record<string, string> = {}): Promise<ServerProcess & { port: number }> {
  const p = run({ PORT: '0', HOST: '127.0.0.1', ...env });
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (): void => {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+) /.exec(p.stdout);
      if (m) {
        p.child.stdout!.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    p.child.stdout!.on('data', onData);
    void p.exited.then(({ code }) => reject(new Error(`server exited (${code}) before listening: ${p.stderr}`)));
  });
  return Object.assign(p, { port });
}

describe('node dist/server.js', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s: every client gets 1001, the process exits 0', async (signal) => {
    const server = await startServer();
    const alice = await ChatPeer.join(server.port, 'alice');
    const bob = await ChatPeer.join(server.port, 'bob');
    await alice.next(joined('bob'));

    server.child.kill(signal);
    const [a, b, exit] = await Promise.all([alice.closed, bob.closed, server.exited]);
    for (const info of [a, b]) {
      expect(info.code).toBe(1001);
      expect(info.reason).toBe('server shutting down');
      expect(info.wasClean).toBe(true);
    }
    expect(exit).toEqual({ code: 0, signal: null });
    expect(server.stderr).toBe(''); // not the budget timer (see the top of this file)
    expect(server.stdout).toMatch(new RegExp(`Z ${signal}: shutting down\\n`));
    expect(server.stdout).toMatch(/Z connect peer=127\.0\.0\.1:\d+ path=\/ws\n/);
  });

  it('SIGTERM, a peer that never answers the close: dropped after the grace, exit 0 within the budget', async () => {
    const server = await startServer();
    const alice = await ChatPeer.join(server.port, 'alice');
    const mute = await rawJoin(server.port, 'mute');
    await alice.next(joined('mute'));
    mute.pause(); // reads nothing, so it never sees the close frame, let alone answers it

    server.child.kill('SIGTERM');
    const [a, exit] = await Promise.all([alice.closed, server.exited]);
    expect(a.code).toBe(1001);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(server.stderr).toBe('');
    // A paused socket does not notice the FIN; reading again, mute finds the close frame it was sent.
    mute.resume();
    await mute.closed;
    expect(mute.closeFrame()).toEqual({ code: 1001, reason: 'server shutting down' });
  });

  it('exits 2 with a stderr line naming the variable when the configuration is invalid', async () => {
    const p = run({ PORT: 'abc' });
    expect(await p.exited).toEqual({ code: 2, signal: null });
    expect(p.stderr).toBe('wschat: invalid configuration: PORT: expected a whole number from 0 to 65535, got "abc"\n');
    expect(p.stdout).toBe('');
  });

  it.each([
    ['SEND_QUEUE', '0'],
    ['ALLOWED_ORIGINS', 'not an origin'],
    ['PONG_TIMEOUT_MS', '5'],
  ])('exits 2 for %s=%j too', async (name, value) => {
    const p = run({ [name]: value });
    expect(await p.exited).toEqual({ code: 2, signal: null });
    expect(p.stderr).toMatch(new RegExp(`^wschat: invalid configuration: ${name}: .+\\n$`));
  });

  it('exits 1 when it cannot listen', async () => {
    const first = await startServer();
    const second = run({ PORT: String(first.port), HOST: '127.0.0.1' });
    expect(await second.exited).toEqual({ code: 1, signal: null });
    expect(second.stderr).toMatch(new RegExp(`^wschat: cannot listen on 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE`));
    first.child.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
  });
});
