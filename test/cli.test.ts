/**
 * The terminal client (src/client.ts), end to end: a real server on port 0, the built client
 * (dist/client.js, built by the global setup) run as a child process with piped stdin, and an
 * observer connected with our own connect() to see what reached the chat: rooms, private messages, and
 * a connection cut under the client (through a TCP proxy) that it resumes by itself. Plus unit tests of
 * the pure parts (arguments, commands, the conversation's positions and outbox, formatting).
 *
 * Interactive mode (prompt redraw, Ctrl-C as a key press) needs a pseudo-terminal, which Node core
 * cannot make; it was checked by hand in tmux. Everything else is the same code in both modes.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clientsUrl, parseArgs, roomsUrl } from '../src/cli/args';
import { parseLine } from '../src/cli/commands';
import { Conversation } from '../src/cli/conversation';
import {
  describeClose,
  describeConnectError,
  formatMessage,
  formatRaw,
  formatRooms,
  formatRoster,
  parseServerMessage,
  sanitize,
  wantColor,
} from '../src/cli/format';
import type { ServerMessage as ChatMessage } from '../src/cli/format';
import { HandshakeError } from '../src/websocket';
import { startApp, type TestApp } from './helpers/app';
import { ChatPeer, left, type ChatMsg } from './helpers/chat';
import { startTcpProxy } from './helpers/tcp-proxy';
import { all, hello, next, request, type Msg } from './helpers/v2';

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

/** A server on port 0 (the shared app starter) and its chat URL. */
type Server = TestApp & { readonly url: string };
async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const t = await startApp(env);
  return Object.assign(t, { url: t.url() });
}

/** A v2 member of our own (rooms, acks): the other side of the CLI's rooms. */
async function member(port: number, name: string): Promise<ChatPeer> {
  const { peer } = await hello(port, name);
  await next(peer, (m) => m.type === 'join' && m.name === name);
  return peer;
}

/** What the client printed, without times: one entry per line. */
const lines = (out: string): string[] => untimed(out).split('\n').filter((l) => l !== '');

/** bob joined before the client: its welcome brings bob's join notice as history. */
const BOB_EARLIER = 'T -- earlier in the lobby:\nT --> bob joined the chat\n';

// ---- end to end ----

describe('wschat-client against a real server', () => {
  let server: Server;
  beforeEach(async () => {
    server = await startServer();
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
    // The lobby's history, its own join notice, the echo of its broadcast and its own copy of the private
    // message, plain (stdout is a pipe: no colours).
    expect(untimed(stdout)).toBe(
      `${BOB_EARLIER}T --> alice joined the chat\nT alice: hello\nT [private] alice → bob: psst\n`,
    );
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
    expect(untimed(stdout)).toBe(
      `${BOB_EARLIER}T --> alice joined the chat\nT bob: hi all\nT [private] bob → you: just you\n`,
    );
  });

  it('/who prints the roster from GET /clients; /quit closes with 1000, exits 0, sends nothing after', async () => {
    const bob = await ChatPeer.join(server.port, 'bob');
    // Its own join notice comes live, a moment after the welcome: local output waits for it, to keep one order.
    const alice = runClient([server.url, 'alice']);
    await alice.printed('alice joined the chat');
    alice.child.stdin.end('/who\n/quit\nnot sent\n');

    const { code, stdout, stderr } = await alice.exit;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(untimed(stdout)).toBe(`${BOB_EARLIER}T --> alice joined the chat\nT -- online (2): bob, alice (you)\n`);
    // The server reads frames in order: a "not sent" chat would have come before the leave notice.
    expect(await whileRunning(alice, readUpTo(bob, left('alice')))).toEqual([
      { type: 'join', user: 'System', message: 'alice joined the chat' },
      { type: 'leave', user: 'System', message: 'alice left the chat' },
    ]);
    expect((await server.logged(/disconnect name="alice"/))[0]).toMatch(/ code=1000 /);
  });

  it('/help and unknown commands are answered locally; blank lines are skipped; "//x" sends "/x"', async () => {
    const bob = await ChatPeer.join(server.port, 'bob');
    const alice = runClient([server.url, 'alice']);
    await alice.printed('alice joined the chat');
    alice.child.stdin.end('/help\n\n/nope x\n//who\n');

    expect(await whileRunning(alice, readUpTo(bob, left('alice')))).toEqual([
      { type: 'join', user: 'System', message: 'alice joined the chat' },
      { type: 'chat', user: 'alice', message: '/who' },
      { type: 'leave', user: 'System', message: 'alice left the chat' },
    ]);
    const { code, stdout } = await alice.exit;
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([
      'T -- earlier in the lobby:',
      'T --> bob joined the chat',
      'T --> alice joined the chat',
      'T -- text          send to the current room',
      'T -- @user text    private message to user',
      'T -- /join #room   join a room and talk there',
      'T -- /switch #room talk in another room you are in',
      'T -- /leave #room  leave a room (the current one without #room)',
      'T -- /rooms        the rooms on the server',
      'T -- /who [#room]  who is in this room (in the lobby: who is online)',
      'T -- /help         this list',
      'T -- /quit         leave (also Ctrl-C, Ctrl-D)',
      'T -- //text        send a line that starts with "/"',
      'T -- unknown command /nope (try /help)',
      'T alice: /who',
    ]);
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
    await server.close();
    const { code, stderr } = await alice.exit;
    expect(code).toBe(1);
    expect(stderr).toBe('wschat-client: the server is going away (1001: server shutting down)\n');
  });

  it('the server closing the connection in the middle of piped input: its code and reason, exit 1', async () => {
    // A flood: one message a second, a burst of one; two refusals in a row and the server closes with 1008.
    await server.close();
    server = await startServer({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '1' });
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
    const echoed = JSON.stringify('{"type":"hello","name":"alice"}');
    expect(stderr).toBe(`wschat-client: not a wschat server: it answered our hello with ${echoed}\n`);
    expect((await server.logged(/disconnect path=\/echo/))[0]).toMatch(/ code=1000 /);
  });

  it('a refused handshake: status and body on stderr, exit 1', async () => {
    const url = server.url.replace(/\/ws$/, '/nope');
    const { code, stdout, stderr } = await runClient([url, 'alice']).exit;
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    const why = 'the server refused the WebSocket handshake: 404 not found';
    expect(stderr).toBe(`wschat-client: cannot connect to ${url}: ${why}\n`);
  });

  it('rooms: /join goes there, lines go to the current room, other rooms show their name, /leave', async () => {
    const bob = await member(server.port, 'bob');
    request(bob, { type: 'join', room: 'rust' });
    await next(bob, 'joined');
    const alice = runClient([server.url, 'alice']); // stdin stays open: each step waits for the last
    await alice.printed('--> alice joined the chat');
    alice.child.stdin.write('/join #Rust\nhi rust\n');
    await whileRunning(alice, alice.printed('#rust alice: hi rust'));
    request(bob, { type: 'chat', message: 'lobby news' });
    await alice.printed('bob: lobby news');
    alice.child.stdin.write('/who\n/rooms\n/switch lobby\nhi lobby\n');
    await alice.printed('alice: hi lobby');
    request(bob, { type: 'chat', room: 'rust', message: 'rust news' });
    await alice.printed('#rust bob: rust news');
    alice.child.stdin.end('/leave #rust\n@bob psst\n');

    const { code, stdout, stderr } = await alice.exit;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(lines(stdout)).toEqual([
      'T -- earlier in the lobby:',
      'T --> bob joined the chat',
      'T --> alice joined the chat',
      'T -- earlier in #rust:',
      'T --> bob joined #rust',
      'T --> alice joined #rust',
      'T #rust alice: hi rust',
      'T bob: lobby news',
      'T -- in #rust (2): bob, alice (you)',
      'T -- rooms (2): lobby 2 (joined), #rust 2 (here)',
      'T -- talking in the lobby',
      'T alice: hi lobby',
      'T #rust bob: rust news',
      'T -- you left #rust',
      'T [private] alice → bob: psst',
    ]);
    // What bob got from alice, and where.
    await next(bob, (m) => m.type === 'leave' && m.name === 'alice' && m.stream === 'lobby');
    const fromAlice = all(bob).filter((m) => m.user === 'alice' || (m.name === 'alice' && m.type !== 'join'));
    expect(fromAlice.map((m) => [m.type, m.stream, m.message])).toEqual([
      ['chat', 'rust', 'hi rust'],
      ['chat', 'lobby', 'hi lobby'],
      ['leave', 'rust', 'alice left #rust'],
      ['private', '@bob', 'psst'],
      ['leave', 'lobby', 'alice left the chat'],
    ]);
  });

  it('resumes a dropped connection by itself: nothing shown twice or missed, each line sent once', async () => {
    await server.close();
    server = await startServer({ RESUME_GRACE_MS: '60000' });
    const bob = await member(server.port, 'bob');
    // The client reaches the server through a proxy that can hold the link and cut it.
    const proxy = await startTcpProxy(server.port);
    try {
      const alice = runClient([`ws://127.0.0.1:${proxy.port}/ws`, 'alice']);
      await alice.printed('--> alice joined the chat');
      alice.child.stdin.write('one\n');
      await whileRunning(alice, alice.printed('alice: one'));

      // A line into a link that holds everything, bob talks; the held bytes reach the server, the link is cut:
      // alice never hears the ack of her line, nor bob's.
      proxy.blackhole();
      alice.child.stdin.write('in flight\n');
      request(bob, { type: 'chat', message: 'held', cid: 'b1' });
      await next(bob, (m) => m.type === 'ack' && m.cid === 'b1');
      proxy.closeOnAccept(true); // and no attempt gets through for now
      const attempts = proxy.accepted;
      proxy.heal();
      proxy.cut();
      await whileRunning(alice, alice.printed('resuming…'));
      // While it cannot get back: alice types, bob talks.
      alice.child.stdin.write('two\n');
      request(bob, { type: 'chat', message: 'while away', cid: 'b2' });
      await next(bob, (m) => m.type === 'ack' && m.cid === 'b2');
      await proxy.waitForAccepted(attempts + 1); // it has tried again, and failed
      proxy.closeOnAccept(false);
      await whileRunning(alice, alice.printed('-- resumed'));
      await alice.printed('alice: two');
      request(bob, { type: 'chat', message: 'after', cid: 'b3' });
      await alice.printed('bob: after');
      alice.child.stdin.end();

      const { code, stdout, stderr } = await alice.exit;
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      // From alice's join on, exactly what the lobby stored, once each, in the server's order.
      const res = await fetch(`http://127.0.0.1:${server.port}/rooms/lobby/history`);
      const lobby = ((await res.json()) as { messages: Msg[] }).messages;
      const since = lobby.slice(lobby.findIndex((m) => m.type === 'join' && m.name === 'alice'));
      const stored = since.filter((m) => !(m.type === 'leave' && m.name === 'alice')); // her own is not for her
      const printed = lines(stdout);
      const live = printed.slice(printed.indexOf('T --> alice joined the chat')).filter((l) => !l.startsWith('T -- '));
      expect(live).toEqual(stored.map((m) => (m.type === 'chat' ? `T ${m.user}: ${m.message}` : `T --> ${m.message}`)));
      const said = live.filter((l) => l.startsWith('T alice: ')).sort();
      expect(said).toEqual(['T alice: in flight', 'T alice: one', 'T alice: two']);
      expect(printed.filter((l) => l.startsWith('T -- ') && !l.startsWith('T -- earlier'))).toEqual([
        expect.stringMatching(/^T -- connection lost \(1006: .+\): resuming…$/),
        'T -- resumed',
      ]);
      // bob got each line once, and saw alice neither leave nor come back until she quit.
      await next(bob, (m) => m.type === 'leave');
      const fromAlice = all(bob).filter((m) => m.user === 'alice' || m.name === 'alice');
      expect(fromAlice.map((m) => m.message)).toEqual([
        'alice joined the chat',
        'one',
        'in flight',
        'two',
        'alice left the chat',
      ]);
      expect((await server.logged(/^resumed name="alice"/))[0]).toBeTruthy();
    } finally {
      await proxy.close();
    }
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
    const refused = `wschat-client: cannot connect to ${url}: connection refused\n`;
    expect({ code, stdout, stderr }).toEqual({ code: 1, stdout: '', stderr: refused });
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
    const untimely = { type: 'chat', user: 'bob', message: 'x', time: 'soon' } as const;
    expect(formatMessage(untimely, 'alice', false, now)).toBe('23:59:58 bob: x');
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
    expect(describeClose(info(1001, 'server shutting down'))).toBe(
      'the server is going away (1001: server shutting down)',
    );
    expect(describeClose(info(1008, 'too slow: send queue full'))).toBe(
      'the server closed the connection (1008: too slow: send queue full)',
    );
    expect(describeClose({ code: 1006, reason: '', wasClean: false, sentCode: undefined })).toBe(
      'connection lost (1006: no close frame)',
    );
    expect(describeClose(info(1005, ''))).toBe('the server closed the connection (1005: no status code)');

    const url = new URL('ws://h:1/ws');
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(describeConnectError(url, refused)).toBe('cannot connect to ws://h:1/ws: connection refused');
    expect(describeConnectError(url, new AggregateError([refused]))).toBe(
      'cannot connect to ws://h:1/ws: connection refused',
    );
    const busy = new HandshakeError('refused', 503, 'too many connections: try again later\n');
    const refusal = 'the server refused the WebSocket handshake: 503 too many connections: try again later';
    expect(describeConnectError(url, busy)).toBe(`cannot connect to ws://h:1/ws: ${refusal}`);
    expect(describeConnectError(url, new Error('WebSocket handshake timed out'))).toBe(
      'cannot connect to ws://h:1/ws: WebSocket handshake timed out',
    );
  });
});

describe('parseLine', () => {
  it('reads commands (rooms with or without "#", any case) and says everything else', () => {
    expect(parseLine('hello')).toEqual({ kind: 'say', text: 'hello' });
    expect(parseLine(' @bob hi')).toEqual({ kind: 'say', text: ' @bob hi' });
    expect(parseLine('//who')).toEqual({ kind: 'say', text: '/who' });
    expect(parseLine('/ not a command')).toEqual({ kind: 'say', text: '/ not a command' });
    expect(parseLine('   ')).toEqual({ kind: 'nothing' });
    expect(parseLine(' /quit ')).toEqual({ kind: 'quit' });
    expect(parseLine('/join #Rust')).toEqual({ kind: 'join', room: 'rust' });
    expect(parseLine('/switch lobby')).toEqual({ kind: 'switch', room: 'lobby' });
    expect(parseLine('/leave')).toEqual({ kind: 'leave', room: undefined });
    expect(parseLine('/leave #ops')).toEqual({ kind: 'leave', room: 'ops' });
    expect(parseLine('/who')).toEqual({ kind: 'who', room: undefined });
    expect(parseLine('/WHO #ops')).toEqual({ kind: 'who', room: 'ops' });
    expect(parseLine('/rooms')).toEqual({ kind: 'rooms' });
  });

  it('says what is wrong with a command', () => {
    expect(parseLine('/join')).toEqual({ kind: 'problem', text: 'usage: /join #room' });
    expect(parseLine('/join #a b')).toEqual({ kind: 'problem', text: '/join takes at most one argument' });
    expect(parseLine('/join #ünï')).toEqual({
      kind: 'problem',
      text: 'invalid room name "#ünï": 1-32 letters, digits, "-" or "_"',
    });
    expect(parseLine('/quit now')).toEqual({ kind: 'problem', text: '/quit takes no argument' });
    expect(parseLine('/nope x')).toEqual({ kind: 'problem', text: 'unknown command /nope (try /help)' });
  });
});

describe('Conversation', () => {
  const welcome = (streams: { stream: string; epoch: string; offset: number; recovered: boolean }[]) => ({
    type: 'welcome',
    name: 'alice',
    token: 'tok',
    streams,
  });
  const chat = (offset: number, message: string, extra: Record<string, unknown> = {}) => ({
    type: 'chat',
    user: 'bob',
    message,
    time: 't',
    stream: 'lobby',
    offset,
    epoch: 'e1',
    ...extra,
  });
  const texts = (c: Conversation, m: Record<string, unknown>): string[] =>
    c.receive(m).shown.map((s) => (s.kind === 'message' ? s.message.message : `${s.kind}: ${s.text}`));

  it('shows each stored message once, history under a heading, and resumes from its positions', () => {
    const c = new Conversation('alice');
    expect(JSON.parse(c.hello())).toEqual({ type: 'hello', name: 'alice' });
    c.receive(welcome([
      { stream: 'lobby', epoch: 'e1', offset: 2, recovered: false },
      { stream: '@alice', epoch: 'i1', offset: 0, recovered: false },
    ]));
    expect(texts(c, chat(1, 'old', { history: true }))).toEqual(['note: earlier in the lobby:', 'old']);
    expect(texts(c, chat(2, 'older', { history: true }))).toEqual(['older']);
    expect(texts(c, chat(3, 'new'))).toEqual(['new']);
    expect(texts(c, chat(3, 'new'))).toEqual([]); // the same offset again
    expect(texts(c, chat(4, 'other life', { epoch: 'e0' }))).toEqual([]);
    expect(texts(c, chat(1, 'elsewhere', { stream: 'rust' }))).toEqual([]); // not a stream of ours
    expect(JSON.parse(c.hello())).toEqual({
      type: 'hello',
      name: 'alice',
      token: 'tok',
      resume: { lobby: { epoch: 'e1', offset: 3 }, '@alice': { epoch: 'i1', offset: 0 } },
    });

    // Resumed: what was missed follows; what was shown is not shown again.
    expect(texts(c, welcome([{ stream: 'lobby', epoch: 'e1', offset: 5, recovered: true }]))).toEqual([]);
    expect([3, 4, 5].flatMap((n) => texts(c, chat(n, `m${n}`)))).toEqual(['m4', 'm5']);
    // Not resumable: said, and counted from the new epoch on.
    expect(texts(c, welcome([{ stream: 'lobby', epoch: 'e2', offset: 1, recovered: false }]))).toEqual([
      'note: some messages in the lobby may be missing: its history was reset',
    ]);
    expect(texts(c, chat(2, 'fresh', { epoch: 'e2' }))).toEqual(['fresh']);
  });

  it('keeps what was said until acknowledged; refusals name the line; join and leave move the room', () => {
    const c = new Conversation('alice');
    c.receive(welcome([{ stream: 'lobby', epoch: 'e1', offset: 0, recovered: false }]));
    const a = c.say('hello');
    const b = c.say('@bob psst');
    expect(JSON.parse(a.json)).toEqual({ type: 'chat', room: 'lobby', message: 'hello', cid: a.cid });
    expect(JSON.parse(b.json)).toEqual({ type: 'private', to: 'bob', message: 'psst', cid: b.cid });
    expect(a.cid).toMatch(/^[A-Za-z0-9_-]{8}-1$/);
    expect(new Conversation('alice').say('x').cid).not.toBe(a.cid); // unique across runs too
    expect([...c.outbox.keys()]).toEqual([a.cid, b.cid]);

    expect(c.receive({ type: 'ack', cid: a.cid, stream: 'lobby', offset: 1, epoch: 'e1' }).settled).toEqual([a.cid]);
    const refused = c.receive({ type: 'error', user: 'System', message: 'bob is not online', time: 't', cid: b.cid });
    expect(refused.shown).toEqual([{ kind: 'error', text: 'bob is not online (not sent: "@bob psst")', time: 't' }]);
    expect(refused.settled).toEqual([b.cid]);
    expect(c.outbox.size).toBe(0);
    const flood = c.receive({ type: 'error', user: 'System', message: 'rate limit exceeded: slow down' });
    expect(flood.throttled).toBe(true);
    // A rate-limit refusal that names its line keeps the line: it is sent again after a pause.
    const d = c.say('again');
    const limited = c.receive({ type: 'error', user: 'System', message: 'rate limit exceeded: slow down', cid: d.cid });
    expect([limited.throttled, limited.settled, [...c.outbox.keys()]]).toEqual([true, [], [d.cid]]);
    c.receive({ type: 'ack', cid: d.cid, stream: 'lobby', offset: 2, epoch: 'e1' });

    const j = c.request('join', 'rust');
    expect(JSON.parse(j.json)).toEqual({ type: 'join', room: 'rust', cid: j.cid });
    const joined = c.receive({ type: 'joined', room: 'rust', stream: 'rust', epoch: 'r1', offset: 0 });
    expect(joined.settled).toEqual([j.cid]);
    expect([c.current, c.rooms]).toEqual(['rust', ['lobby', 'rust']]);
    expect(JSON.parse(c.say('x').json)).toMatchObject({ type: 'chat', room: 'rust' });
    const l = c.request('leave', 'rust');
    expect(texts(c, { type: 'left', room: 'rust' })).toEqual(['note: you left #rust']);
    expect([c.current, c.rooms]).toEqual(['lobby', ['lobby']]);
    const asked = c.request('join', 'x');
    expect(c.receive({ type: 'error', user: 'System', message: 'too many rooms', cid: asked.cid }).shown).toEqual([
      { kind: 'error', text: 'too many rooms (/join #x)', time: undefined },
    ]);
    expect(l.cid).not.toBe(asked.cid);
  });
});

describe('rooms in the output', () => {
  const time = new Date(2024, 0, 2, 3, 4, 5).toISOString();
  const now = new Date(2024, 0, 2, 3, 4, 5);

  it('shows a room\'s name before its messages; the lobby stays unadorned', () => {
    const msg = (stream: string): ChatMessage => ({ type: 'chat', user: 'bob', message: 'hi', time, stream });
    expect(formatMessage(msg('rust'), 'alice', false)).toBe('03:04:05 #rust bob: hi');
    expect(formatMessage(msg('lobby'), 'alice', false)).toBe('03:04:05 bob: hi');
    expect(formatMessage(msg('rust'), 'alice', true)).toBe(
      '\x1b[2m03:04:05\x1b[22m \x1b[34m#rust\x1b[39m \x1b[1mbob\x1b[22m: hi',
    );
  });

  it('lists the rooms with where we are, and a room\'s members', () => {
    const rows = [
      { room: 'lobby', members: 3 },
      { room: 'rust', members: 2 },
      { room: 'ops', members: 0 },
    ];
    expect(formatRooms(rows, ['lobby', 'rust'], 'rust', false, now)).toBe(
      '03:04:05 -- rooms (3): lobby 3 (joined), #rust 2 (here), #ops 0',
    );
    const roster = [{ name: 'bob', connectedAt: time }];
    expect(formatRoster(roster, 'alice', false, now, 'rust')).toBe('03:04:05 -- in #rust (1): bob');
    expect(clientsUrl(new URL('ws://h:1/ws'), 'rust').href).toBe('http://h:1/clients?room=rust');
    expect(roomsUrl(new URL('ws://h:1/chat/ws')).href).toBe('http://h:1/chat/rooms');
  });
});
