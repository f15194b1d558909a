/**
 * The terminal client (src/client.ts), end to end: a real server on port 0, the built client
 * (dist/client.js, built by the global setup) run as a child process with piped stdin, and an
 * observer connected with our own connect() to see what reached the chat. Plus unit tests of the
 * pure parts (argument parsing, formatting).
 *
 * Interactive mode (prompt redraw, Ctrl-C as a key press) needs a pseudo-terminal, which Node core
 * cannot make; it was checked by hand in tmux. Everything else is the same code in both modes.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clientsUrl, parseArgs } from '../src/cli/args';
import {
  describeClose,
  describeConnectError,
  formatMessage,
  formatRaw,
  formatRoster,
  parseServerMessage,
  sanitize,
  wantColor,
} from '../src/cli/format';
import type { ServerMessage as ChatMessage } from '../src/cli/format';
import { HandshakeError } from '../src/websocket';
import { startApp, type TestApp } from './helpers/app';
import { ChatPeer, left, type ChatMsg } from './helpers/chat';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// ---- helpers ----

interface Exit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exit: Promise<Exit>;
  /** Resolves once stdout contains `text`; rejects (showing the output) if the client exits first. */
  printed(text: string): Promise<void>;
}

/** Starts `node dist/client.js ...args`. With `input`, stdin gets it and ends; without, stdin stays open. */
function runClient(args: readonly string[], input?: string): Running {
  const env = { ...process.env, NO_COLOR: '' };
  const child = spawn(process.execPath, ['dist/client.js', ...args], { cwd: ROOT, env });
  let stdout = '';
  let stderr = '';
  const watchers: { text: string; resolve: () => void; reject: (error: Error) => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const w of watchers.filter((w) => stdout.includes(w.text))) w.resolve();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  if (input !== undefined) child.stdin.end(input);
  const exit = new Promise<Exit>((resolve) =>
    child.on('close', (code) => {
      const output = JSON.stringify({ stdout, stderr });
      for (const w of watchers) {
        w.reject(new Error(`client exited (${code}) before printing ${JSON.stringify(w.text)}: ${output}`));
      }
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    child,
    exit,
    printed: (text) =>
      stdout.includes(text)
        ? Promise.resolve()
        : new Promise((resolve, reject) => watchers.push({ text, resolve, reject })),
  };
}

/** Waits for `promise`, but fails at once, showing the output, if the client exits with an error first. */
function whileRunning<T>(run: Running, promise: Promise<T>): Promise<T> {
  const failed = run.exit.then((e) =>
    e.code === 0 ? promise : Promise.reject(new Error(`client failed: ${JSON.stringify(e)}`)),
  );
  return Promise.race([promise, failed]);
}

/** Message times vary: "12:34:56 alice: hi" -> "T alice: hi". */
const untimed = (out: string): string => out.replace(/^\d\d:\d\d:\d\d /gm, 'T ');

/** Reads up to the first message that matches; returns what was read, times left out. */
async function readUpTo(peer: ChatPeer, match: (m: ChatMsg) => boolean): Promise<Omit<ChatMsg, 'time'>[]> {
  // The lesson's fields; a stored message's place in its stream (and a notice's name) is not the CLI's.
  const lesson = (m: ChatMsg): Omit<ChatMsg, 'time'> => {
    const { time: _t, stream: _s, offset: _o, epoch: _e, name: _n, ...rest } = m as ChatMsg & Record<string, unknown>;
    return rest;
  };
  return (await peer.upTo(match)).map(lesson);
}

// ---- end to end ----

describe('wschat-client against a real server', () => {
  let server: TestApp & { url: string };
  const start = async (env: Record<string, string> = {}): Promise<TestApp & { url: string }> => {
    const t = await startApp(env);
    return Object.assign(t, { url: t.url() });
  };
  beforeEach(async () => {
    server = await start();
  });
  afterEach(async () => {
    await server.close();
  });

  it('piped: sends every line, prints what arrives, closes with 1000 at EOF and exits 0', async () => {
    const bob = await ChatPeer.join(server.port, 'bob');
    const alice = runClient([server.url, 'alice'], 'hello\n@bob psst\n');

    expect(await whileRunning(alice, readUpTo(bob, left('alice')))).toEqual([
      { type: 'join', user: 'System', message: 'alice joined the chat' },
      { type: 'chat', user: 'alice', message: 'hello' },
      { type: 'private', user: 'alice', to: 'bob', message: 'psst' },
      { type: 'leave', user: 'System', message: 'alice left the chat' },
    ]);
    const { code, stdout, stderr } = await alice.exit;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    // Its own join notice and the echo of its broadcast, plain (stdout is a pipe: no colours).
    expect(untimed(stdout)).toBe('T --> alice joined the chat\nT alice: hello\n');
    const [line] = await server.logged(/disconnect name="alice"/);
    expect(line).toMatch(/ code=1000 reason="" sent=1000 peer=127\.0\.0\.1:\d+$/);
  });

  it('piped: a file longer than the server\'s burst arrives whole (the client keeps to the rate limit)', async () => {
    const bob = await ChatPeer.join(server.port, 'bob');
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`); // default burst is 20
    const alice = runClient([server.url, 'alice'], lines.join('\n') + '\n');
    const seen = await whileRunning(alice, readUpTo(bob, left('alice')));
    expect(seen.filter((m) => m.type === 'chat').map((m) => m.message)).toEqual(lines);
    const { code, stderr } = await alice.exit;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(untimed((await alice.exit).stdout)).not.toContain('rate limit');
  });

  it('piped: prints messages from others, private ones marked', async () => {
    const bob = await ChatPeer.join(server.port, 'bob');
    const alice = runClient([server.url, 'alice']); // stdin stays open: alice waits
    await alice.printed('alice joined the chat'); // so alice is in the chat and will get what bob says
    bob.conn.send('hi all');
    bob.conn.send('@alice just you');
    await alice.printed('just you');
    alice.child.stdin.end();
    const { code, stdout } = await alice.exit;
    expect(code).toBe(0);
    expect(untimed(stdout)).toBe('T --> alice joined the chat\nT bob: hi all\nT [private] bob → you: just you\n');
  });

  it('/who prints the roster from GET /clients; /quit closes with 1000, exits 0, sends nothing after', async () => {
    const bob = await ChatPeer.join(server.port, 'bob');
    const alice = runClient([server.url, 'alice'], '/who\n/quit\nnot sent\n');

    const { code, stdout, stderr } = await alice.exit;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(untimed(stdout)).toBe('T --> alice joined the chat\nT -- online (2): bob, alice (you)\n');
    // The server reads frames in order: a "not sent" chat would have come before the leave notice.
    expect(await whileRunning(alice, readUpTo(bob, left('alice')))).toEqual([
      { type: 'join', user: 'System', message: 'alice joined the chat' },
      { type: 'leave', user: 'System', message: 'alice left the chat' },
    ]);
    expect((await server.logged(/disconnect name="alice"/))[0]).toMatch(/ code=1000 /);
  });

  it('/help and unknown commands are answered locally; blank lines are skipped; "//x" sends "/x"', async () => {
    const bob = await ChatPeer.join(server.port, 'bob');
    const alice = runClient([server.url, 'alice'], '/help\n\n/nope x\n//who\n');

    expect(await whileRunning(alice, readUpTo(bob, left('alice')))).toEqual([
      { type: 'join', user: 'System', message: 'alice joined the chat' },
      { type: 'chat', user: 'alice', message: '/who' },
      { type: 'leave', user: 'System', message: 'alice left the chat' },
    ]);
    const { code, stdout } = await alice.exit;
    expect(code).toBe(0);
    expect(untimed(stdout)).toBe(
      [
        'T --> alice joined the chat',
        'T -- text          send to everyone',
        'T -- @user text    private message to user',
        'T -- /who          who is online',
        'T -- /help         this list',
        'T -- /quit         leave (also Ctrl-C, Ctrl-D)',
        'T -- //text        send a line that starts with "/"',
        'T -- unknown command /nope (try /help)',
        'T alice: /who',
        '',
      ].join('\n'),
    );
  });

  it('SIGINT (Ctrl-C) closes with 1000 and exits 0', async () => {
    const alice = runClient([server.url, 'alice']);
    await alice.printed('alice joined the chat');
    alice.child.kill('SIGINT');
    const { code, stderr } = await alice.exit;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect((await server.logged(/disconnect name="alice"/))[0]).toMatch(/ code=1000 /);
  });

  it('the server going away: one line with the close code and reason, exit 1', async () => {
    const alice = runClient([server.url, 'alice']);
    await alice.printed('alice joined the chat');
    await server.app.shutdown();
    const { code, stderr } = await alice.exit;
    expect(code).toBe(1);
    expect(stderr).toBe('wschat-client: the server is going away (1001: server shutting down)\n');
  });

  it('the server closing the connection in the middle of piped input: its code and reason, exit 1', async () => {
    // A flood: one message a second, a burst of one; two refusals in a row and the server closes with 1008.
    await server.close();
    server = await start({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '1' });
    const lines = Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join('');
    const { code, stdout, stderr } = await runClient([server.url, 'alice'], lines).exit;
    expect(code).toBe(1);
    expect(stderr).toBe('wschat-client: the server closed the connection (1008: rate limit exceeded)\n');
    expect(untimed(stdout).startsWith('T --> alice joined the chat\n')).toBe(true);
  });

  it('a reserved name: the server\'s reason on stderr, exit 3', async () => {
    const run = runClient([server.url, 'System'], 'hello\n');
    const { code, stdout, stderr } = await run.exit;
    expect({ code, stdout }).toEqual({ code: 3, stdout: '' });
    expect(stderr).toBe('wschat-client: the server refused the name "System": the name System is reserved\n');
    expect((await server.logged(/disconnect name=""/))[0]).toMatch(/ code=1008 /);
  });

  it('a taken name: the server\'s reason on stderr, exit 3', async () => {
    await ChatPeer.join(server.port, 'bob');
    const { code, stderr } = await runClient([server.url, 'bob']).exit;
    expect(code).toBe(3);
    expect(stderr).toBe('wschat-client: the server refused the name "bob": the name bob is taken: choose another\n');
  });

  it('a WebSocket server that does not speak the chat (/echo): says so, exit 1', async () => {
    const url = server.url.replace(/\/ws$/, '/echo');
    const { code, stdout, stderr } = await runClient([url, 'alice']).exit;
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toBe('wschat-client: not a wschat server: it answered our name with "alice"\n');
    expect((await server.logged(/disconnect path=\/echo/))[0]).toMatch(/ code=1000 /);
  });

  it('a refused handshake: status and body on stderr, exit 1', async () => {
    const url = server.url.replace(/\/ws$/, '/nope');
    const { code, stdout, stderr } = await runClient([url, 'alice']).exit;
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    const why = 'the server refused the WebSocket handshake: 404 not found';
    expect(stderr).toBe(`wschat-client: cannot connect to ${url}: ${why}\n`);
  });
});

describe('wschat-client without a server', () => {
  it('an unreachable server: one line on stderr, exit 1', async () => {
    // A port that was free a moment ago: nothing listens there now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as { port: number };
    await new Promise((resolve) => probe.close(resolve));

    const url = `ws://127.0.0.1:${port}/ws`;
    const { code, stdout, stderr } = await runClient([url, 'alice']).exit;
    const line = `wschat-client: cannot connect to ${url}: connection refused\n`;
    expect({ code, stdout, stderr }).toEqual({ code: 1, stdout: '', stderr: line });
  });

  it.each([
    [[], 'missing arguments'],
    [['ws://127.0.0.1:1/ws'], 'missing arguments'],
    [['ws://127.0.0.1:1/ws', 'alice', 'extra'], 'too many arguments'],
    [['http://127.0.0.1:1/ws', 'alice'], 'not a ws:// or wss:// URL: http://127.0.0.1:1/ws'],
    [['not a url', 'alice'], 'not a URL: not a url'],
  ])('usage error %j: exit 2, the problem and the usage on stderr', async (args, problem) => {
    const { code, stdout, stderr } = await runClient(args).exit;
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
    expect(stderr.startsWith(`wschat-client: ${problem}\n\nusage: wschat-client ws://HOST:PORT/ws NAME\n`)).toBe(true);
  });

  it('--help: the usage on stdout, exit 0', async () => {
    const { code, stdout, stderr } = await runClient(['--help']).exit;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout.startsWith('usage: wschat-client ws://HOST:PORT/ws NAME\n')).toBe(true);
  });
});

// ---- units ----

describe('formatMessage', () => {
  // Built from local-time parts, so HH:MM:SS is the same in every time zone.
  const time = new Date(2024, 0, 2, 3, 4, 5).toISOString();
  const at = (m: Omit<ChatMessage, 'time'>): ChatMessage => ({ ...m, time });

  it('renders each message type as one plain line without colours', () => {
    expect(formatMessage(at({ type: 'chat', user: 'bob', message: 'hi' }), 'alice', false)).toBe('03:04:05 bob: hi');
    expect(formatMessage(at({ type: 'join', user: 'System', message: 'bob joined the chat' }), 'alice', false)).toBe(
      '03:04:05 --> bob joined the chat',
    );
    expect(formatMessage(at({ type: 'leave', user: 'System', message: 'bob left the chat' }), 'alice', false)).toBe(
      '03:04:05 <-- bob left the chat',
    );
    expect(formatMessage(at({ type: 'error', user: 'System', message: 'carol is not online' }), 'alice', false)).toBe(
      '03:04:05 error: carol is not online',
    );
    expect(formatMessage(at({ type: 'private', user: 'bob', to: 'alice', message: 'psst' }), 'alice', false)).toBe(
      '03:04:05 [private] bob → you: psst',
    );
    expect(formatMessage(at({ type: 'private', user: 'bob', to: 'carol', message: 'psst' }), 'alice', false)).toBe(
      '03:04:05 [private] bob → carol: psst',
    );
  });

  it('wraps the parts in ANSI SGR codes when colours are on', () => {
    expect(formatMessage(at({ type: 'chat', user: 'bob', message: 'hi' }), 'alice', true)).toBe(
      '\x1b[2m03:04:05\x1b[22m \x1b[1mbob\x1b[22m: hi',
    );
    expect(formatMessage(at({ type: 'chat', user: 'alice', message: 'me' }), 'alice', true)).toBe(
      '\x1b[2m03:04:05\x1b[22m \x1b[1m\x1b[36malice\x1b[39m\x1b[22m: me',
    );
    expect(formatMessage(at({ type: 'error', user: 'System', message: 'no' }), 'alice', true)).toBe(
      '\x1b[2m03:04:05\x1b[22m \x1b[31merror: no\x1b[39m',
    );
    expect(formatMessage(at({ type: 'private', user: 'bob', to: 'alice', message: 'p' }), 'alice', true)).toBe(
      '\x1b[2m03:04:05\x1b[22m \x1b[35m[private]\x1b[39m \x1b[1mbob\x1b[22m → you: p',
    );
  });

  it('shows control characters in other people\'s text as escapes, never as terminal commands', () => {
    expect(formatMessage(at({ type: 'chat', user: 'bob', message: 'a\x1b[2Jb\nfake\tok\x7f' }), 'alice', false)).toBe(
      '03:04:05 bob: a\\x1b[2Jb\\nfake\tok\\x7f',
    );
    expect(sanitize('\r\u009b')).toBe('\\r\\x9b');
  });

  it('uses the time of arrival when the message has no valid time', () => {
    const now = new Date(2024, 0, 2, 23, 59, 58);
    const undated = { type: 'chat', user: 'bob', message: 'x', time: 'soon' } as const;
    expect(formatMessage(undated, 'alice', false, now)).toBe('23:59:58 bob: x');
  });

  it('shows frames that are not chat messages raw, and lists the roster with "(you)"', () => {
    const now = new Date(2024, 0, 2, 3, 4, 5);
    expect(formatRaw('{"hello":1}', false, now)).toBe('03:04:05 ? {"hello":1}');
    const roster = [
      { name: 'bob', connectedAt: time },
      { name: 'alice', connectedAt: time },
    ];
    expect(formatRoster(roster, 'alice', false, now)).toBe('03:04:05 -- online (2): bob, alice (you)');
    expect(formatRoster([], 'alice', false, now)).toBe('03:04:05 -- online (0): nobody');
  });
});

describe('parseServerMessage', () => {
  it('accepts the chat JSON and refuses anything else', () => {
    expect(parseServerMessage('{"type":"private","user":"bob","message":"m","to":"alice","time":"t"}')).toEqual({
      type: 'private',
      user: 'bob',
      message: 'm',
      to: 'alice',
      time: 't',
    });
    expect(parseServerMessage('not json')).toBeUndefined();
    expect(parseServerMessage('null')).toBeUndefined();
    expect(parseServerMessage('{"type":"shout","user":"bob","message":"m"}')).toBeUndefined();
    expect(parseServerMessage('{"type":"chat","user":1,"message":"m"}')).toBeUndefined();
  });
});

describe('colours, arguments and error lines', () => {
  it('uses colours only on a terminal and without NO_COLOR (https://no-color.org)', () => {
    expect(wantColor(true, {})).toBe(true);
    expect(wantColor(true, { NO_COLOR: '' })).toBe(true);
    expect(wantColor(true, { NO_COLOR: '1' })).toBe(false);
    expect(wantColor(false, {})).toBe(false);
    expect(wantColor(undefined, {})).toBe(false);
  });

  it('parses the command line and derives the /clients URL from the ws:// URL', () => {
    const args = parseArgs(['ws://localhost:8080/ws', 'alice']);
    expect(args).toEqual({ kind: 'run', url: new URL('ws://localhost:8080/ws'), name: 'alice' });
    expect(parseArgs(['-h'])).toEqual({ kind: 'help' });
    expect(clientsUrl(new URL('ws://localhost:8080/ws')).href).toBe('http://localhost:8080/clients');
    expect(clientsUrl(new URL('ws://[::1]:9000/chat/ws?x=1')).href).toBe('http://[::1]:9000/chat/clients');
    const secure = new URL('wss://chat.example/ws');
    expect(parseArgs(['wss://chat.example/ws', 'alice'])).toEqual({ kind: 'run', url: secure, name: 'alice' });
    expect(clientsUrl(secure).href).toBe('https://chat.example/clients');
  });

  it('describes closes and connection failures in one line', () => {
    const info = (code: number, reason: string) => ({ code, reason, wasClean: true, sentCode: code });
    const goingAway = info(1001, 'server shutting down');
    expect(describeClose(goingAway)).toBe('the server is going away (1001: server shutting down)');
    expect(describeClose(info(1008, 'too slow: send queue full'))).toBe(
      'the server closed the connection (1008: too slow: send queue full)',
    );
    const lost = { code: 1006, reason: '', wasClean: false, sentCode: undefined };
    expect(describeClose(lost)).toBe('connection lost (1006: no close frame)');
    expect(describeClose(info(1005, ''))).toBe('the server closed the connection (1005: no status code)');

    const url = new URL('ws://h:1/ws');
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(describeConnectError(url, refused)).toBe('cannot connect to ws://h:1/ws: connection refused');
    const prefix = 'cannot connect to ws://h:1/ws: ';
    expect(describeConnectError(url, new AggregateError([refused]))).toBe(`${prefix}connection refused`);
    const busy = new HandshakeError('refused', 503, 'too many connections: try again later\n');
    expect(describeConnectError(url, busy)).toBe(
      `${prefix}the server refused the WebSocket handshake: 503 too many connections: try again later`,
    );
    const timedOut = new Error('WebSocket handshake timed out');
    expect(describeConnectError(url, timedOut)).toBe(`${prefix}WebSocket handshake timed out`);
  });
});
