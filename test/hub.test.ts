/**
 * The chat (the lesson's Hub, readPump, writePump, plus the exercise and the homework) through real
 * sockets: names, join/leave notices, broadcast, private messages, /clients, the Origin policy, slow
 * and vanished peers, the connection cap, shutdown, and that nothing is left behind.
 */
import { createHook } from 'node:async_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, HandshakeError, Opcode, type CloseInfo } from '../src/websocket';
import {
  chatFrom,
  clientFrame,
  httpRequest,
  joinChat,
  joined,
  left,
  openChat,
  RawChatPeer,
  startApp,
  type ChatClient,
  type ChatMsg,
  type TestApp,
} from './helpers/chat';

let running: TestApp[] = [];
async function start(env: Record<string, string> = {}): Promise<TestApp> {
  const t = await startApp(env);
  running.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(running.map((t) => t.close()));
  running = [];
});

/**
 * The lesson's JSON shape: these fields, in this order, and a time that is an ISO 8601 date. Stored
 * messages also carry their place in a stream (and notices the member's name) after the lesson's fields.
 */
function expectMessage(m: ChatMsg, expected: Omit<ChatMsg, 'time'>): void {
  const { time, stream, offset, epoch, name, ...rest } = m as ChatMsg & Record<string, unknown>;
  expect(rest).toEqual(expected);
  const lesson = expected.to === undefined ? ['type', 'user', 'message'] : ['type', 'user', 'message', 'to'];
  const keys = Object.keys(m);
  expect(keys.slice(0, lesson.length)).toEqual(lesson);
  expect(keys).toContain('time');
  if (m.type !== 'error') {
    expect(keys.filter((k) => !lesson.includes(k))).toEqual(
      m.type === 'join' || m.type === 'leave' ? ['name', 'time', 'stream', 'offset', 'epoch'] : ['time', 'stream', 'offset', 'epoch'],
    );
    expect(typeof stream).toBe('string');
    expect(Number.isInteger(offset)).toBe(true);
    expect(typeof epoch).toBe('string');
  }
  expect(typeof time).toBe('string');
  expect(new Date(time as string).toISOString()).toBe(time);
}

/** GET /clients, parsed. */
async function roster(port: number): Promise<{ count: number; clients: { name: string; connectedAt: string }[] }> {
  const res = await httpRequest(port, '/clients');
  expect(res.status).toBe(200);
  return JSON.parse(res.body);
}

/** Joins several clients one after another and waits until each has seen every later join. */
async function joinAll(port: number, ...names: string[]): Promise<ChatClient[]> {
  const clients: ChatClient[] = [];
  for (const name of names) clients.push(await joinChat(port, name));
  for (const [i, c] of clients.entries()) for (const later of names.slice(i + 1)) await c.next(joined(later));
  return clients;
}

describe('joining', () => {
  it('takes the first text message as the name and announces the join to everyone, the newcomer included', async () => {
    const t = await start();
    const alice = await openChat(t.port);
    alice.send('alice');
    expectMessage(await alice.next(), { type: 'join', user: 'System', message: 'alice joined the chat' });

    const bob = await openChat(t.port);
    bob.send('bob');
    expectMessage(await bob.next(), { type: 'join', user: 'System', message: 'bob joined the chat' });
    expectMessage(await alice.next(), { type: 'join', user: 'System', message: 'bob joined the chat' });
    // bob sees only what happened after he joined.
    expect(bob.received()).toHaveLength(1);
  });

  it('accepts a name of exactly 32 characters, counted as characters, not bytes', async () => {
    const t = await start();
    const ascii = 'a'.repeat(32);
    const emoji = '😀'.repeat(32); // 64 UTF-16 code units, 128 UTF-8 bytes
    const a = await joinChat(t.port, ascii);
    const b = await joinChat(t.port, emoji);
    await a.next(joined(emoji));
    expect((await roster(t.port)).clients.map((c) => c.name)).toEqual([ascii, emoji]);
    b.send('hi');
    expectMessage(await a.next('chat'), { type: 'chat', user: emoji, message: 'hi' });
  });

  const refusals: [string, string, string][] = [
    ['an empty name', '', 'name must not be empty'],
    ['a 33-character name', 'b'.repeat(33), 'name must be at most 32 characters'],
    ['a 33-emoji name', '😀'.repeat(33), 'name must be at most 32 characters'],
    ['a name with a space', 'al ice', 'name must not contain whitespace'],
    ['a name with a tab', 'al\tice', 'name must not contain whitespace'],
    ['System', 'System', 'the name System is reserved'],
    ['system', 'system', 'the name System is reserved'],
    ['SYSTEM', 'SYSTEM', 'the name System is reserved'],
    ['a zero-width character', 'ali\u200bce', 'name must not contain control or invisible characters'],
  ];
  it.each(refusals)('refuses %s: a System error saying why, then close 1008', async (_what, name, why) => {
    const t = await start();
    const watcher = await joinChat(t.port, 'watcher');
    const c = await openChat(t.port);
    c.send(name);
    const info = await c.closed;
    expect(info.code).toBe(1008);
    // The error arrived before the close, and nothing else did.
    expect(c.messages).toHaveLength(1);
    expectMessage(c.messages[0]!, { type: 'error', user: 'System', message: why });
    // Nobody was told about a join, and the roster does not list the name.
    watcher.send('marker');
    await watcher.next(chatFrom('watcher', 'marker'));
    expect(watcher.received('join').map((m) => m.message)).toEqual(['watcher joined the chat']);
    expect((await roster(t.port)).clients.map((x) => x.name)).toEqual(['watcher']);
  });

  it('refuses a name that is taken: a System error, then close 1008; the owner keeps it', async () => {
    const t = await start();
    const alice = await joinChat(t.port, 'alice');
    const impostor = await openChat(t.port);
    impostor.send('alice');
    const info = await impostor.closed;
    expect(info.code).toBe(1008);
    expect(impostor.messages).toHaveLength(1);
    expectMessage(impostor.messages[0]!, { type: 'error', user: 'System', message: 'the name alice is taken: choose another' });
    // The real alice is still there and still alice: no leave notice, no second join.
    alice.send('still here');
    await alice.next(chatFrom('alice', 'still here'));
    expect(alice.received().map((m) => m.type)).toEqual(['join', 'chat']);
    expect((await roster(t.port)).clients.map((x) => x.name)).toEqual(['alice']);
  });

  it('never broadcasts what a refused impostor sent right behind the taken name', async () => {
    const t = await start();
    const alice = await joinChat(t.port, 'alice');
    // The name and a message in one TCP segment: the server has both before the Hub answers.
    const impostor = await RawChatPeer.open(t.port);
    impostor.write(Buffer.concat([clientFrame(Opcode.Text, 'alice'), clientFrame(Opcode.Text, 'I am alice, send me your password')]));
    await impostor.ended;
    expect(impostor.closeCode).toBe(1008);
    expect(impostor.texts.map((s) => JSON.parse(s).message)).toEqual(['the name alice is taken: choose another']);
    alice.send('marker');
    await alice.next(chatFrom('alice', 'marker'));
    expect(alice.received('chat').map((m) => m.message)).toEqual(['marker']);
  });

  it('a client that closes right after its name joins and leaves; the roster keeps no ghost', async () => {
    const t = await start();
    const alice = await joinChat(t.port, 'alice');
    const quick = await RawChatPeer.open(t.port);
    // Name and close frame in one segment: the Hub registers a client whose connection is already closing.
    quick.write(Buffer.concat([clientFrame(Opcode.Text, 'quick'), clientFrame(Opcode.Close, Buffer.from([0x03, 0xe8]))]));
    await alice.next(joined('quick'));
    await alice.next(left('quick'));
    await quick.ended;
    expect((await roster(t.port)).clients.map((x) => x.name)).toEqual(['alice']);
    // The name is free again.
    const again = await joinChat(t.port, 'quick');
    await again.close();
  });

  it('a client that drops TCP right after its name is cleaned up the same way', async () => {
    const t = await start();
    const alice = await joinChat(t.port, 'alice');
    const quick = await RawChatPeer.open(t.port);
    quick.socket.end(clientFrame(Opcode.Text, 'quick'));
    await alice.next(joined('quick'));
    await alice.next(left('quick'));
    expect((await roster(t.port)).count).toBe(1);
  });
});

describe('broadcast', () => {
  it('sends a chat message to everyone, the sender included, with the sender name', async () => {
    const t = await start();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    bob.send('hello everyone');
    for (const c of [alice!, bob!, carol!]) {
      expectMessage(await c.next('chat'), { type: 'chat', user: 'bob', message: 'hello everyone' });
    }
  });

  it("keeps each sender's order, for every receiver", async () => {
    const t = await start({ RATE_LIMIT_BURST: '1000' });
    const clients = await joinAll(t.port, 'alice', 'bob', 'carol');
    const n = 50;
    for (let i = 0; i < n; i++) {
      clients[0]!.send(`a${i}`);
      clients[1]!.send(`b${i}`);
    }
    for (const c of clients) {
      await c.until((all) => all.some(chatFrom('alice', `a${n - 1}`)) && all.some(chatFrom('bob', `b${n - 1}`)));
      expect(c.received(chatFrom('alice')).map((m) => m.message)).toEqual(Array.from({ length: n }, (_, i) => `a${i}`));
      expect(c.received(chatFrom('bob')).map((m) => m.message)).toEqual(Array.from({ length: n }, (_, i) => `b${i}`));
    }
  });

  it('broadcasts text that merely mentions @someone', async () => {
    const t = await start();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    alice!.send('@bob');
    alice!.send('hi @bob');
    alice!.send('@bob ');
    for (const c of [alice!, bob!, carol!]) {
      expectMessage(await c.next('chat'), { type: 'chat', user: 'alice', message: '@bob' });
      expectMessage(await c.next('chat'), { type: 'chat', user: 'alice', message: 'hi @bob' });
      expectMessage(await c.next('chat'), { type: 'chat', user: 'alice', message: '@bob ' });
    }
    expect(bob!.received('private')).toEqual([]);
  });

  it('answers an empty message with a System error and sends nothing', async () => {
    const t = await start();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    alice!.send('');
    expectMessage(await alice!.next(), { type: 'error', user: 'System', message: 'empty messages are not sent' });
    alice!.send('marker');
    await bob!.next(chatFrom('alice', 'marker'));
    expect(bob!.received('chat').map((m) => m.message)).toEqual(['marker']);
  });
});

describe('private messages (@user text)', () => {
  it('go to the addressee only', async () => {
    const t = await start();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    alice!.send('@bob rest');
    alice!.send('marker'); // a broadcast behind it: the private one is handled first (one sender's order)
    expectMessage(await bob!.next(), { type: 'private', user: 'alice', message: 'rest', to: 'bob' });
    await bob!.next(chatFrom('alice', 'marker'));
    for (const other of [alice!, carol!]) {
      await other.next(chatFrom('alice', 'marker'));
      expect(other.received('private')).toEqual([]);
      expect(other.received((m) => m.message === 'rest')).toEqual([]);
    }
  });

  it('keep everything after the first space, spaces included', async () => {
    const t = await start();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    alice!.send('@bob  two  spaces\nand a line');
    expectMessage(await bob!.next(), { type: 'private', user: 'alice', message: ' two  spaces\nand a line', to: 'bob' });
  });

  it('to someone offline: the sender gets a System error, nobody else hears of it', async () => {
    const t = await start();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    alice!.send('@carol hi');
    expectMessage(await alice!.next(), { type: 'error', user: 'System', message: 'carol is not online' });
    alice!.send('marker');
    expect(await bob!.next()).toMatchObject({ type: 'chat', user: 'alice', message: 'marker' });
  });
});

describe('leaving', () => {
  it('tells the others when a client closes', async () => {
    const t = await start();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    const info = await alice!.close();
    expect(info.code).toBe(1000);
    expect(info.wasClean).toBe(true);
    for (const c of [bob!, carol!]) expectMessage(await c.next(), { type: 'leave', user: 'System', message: 'alice left the chat' });
  });

  it("delivers a leaver's last words, private ones included, in order and before its leave notice", async () => {
    const t = await start();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    // Sent back to back with the close: the Hub must not let the unregister overtake them.
    for (const text of ['one', '@bob two', 'three', '@bob four', 'five']) alice!.send(text);
    alice!.conn.close(1000, 'bye');
    await bob!.until((all) => all.some(left('alice')));
    expect(bob!.received().filter((m) => m.type !== 'join').map((m) => `${m.type}:${m.message}`)).toEqual([
      'chat:one',
      'private:two',
      'chat:three',
      'private:four',
      'chat:five',
      'leave:alice left the chat',
    ]);
  });

  it('tells the others when a socket is destroyed without a closing handshake', async () => {
    const t = await start();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    alice!.conn.terminate();
    for (const c of [bob!, carol!]) expectMessage(await c.next(), { type: 'leave', user: 'System', message: 'alice left the chat' });
    expect((await roster(t.port)).clients.map((x) => x.name)).toEqual(['bob', 'carol']);
  });
});

describe('a connection that never sends its name', () => {
  it('is closed with 1008 after JOIN_TIMEOUT_MS and never listed', async () => {
    const t = await start({ JOIN_TIMEOUT_MS: '100' });
    const c = await openChat(t.port);
    const info = await c.closed;
    expect(info.code).toBe(1008);
    expect(info.reason).toBe('no name sent in time');
    expect(c.messages).toEqual([]);
    expect((await roster(t.port)).count).toBe(0);
  });
});

describe('binary frames on /ws', () => {
  it('as the name: close 1003', async () => {
    const t = await start();
    const c = await openChat(t.port);
    c.conn.send(Buffer.from('alice'));
    const info = await c.closed;
    expect(info.code).toBe(1003);
    expect(c.messages).toEqual([]);
    expect((await roster(t.port)).count).toBe(0);
  });

  it('after joining: close 1003 and a leave notice for the others', async () => {
    const t = await start();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    bob!.conn.send(new Uint8Array([1, 2, 3]));
    expect((await bob!.closed).code).toBe(1003);
    expectMessage(await alice!.next(), { type: 'leave', user: 'System', message: 'bob left the chat' });
    expect((await roster(t.port)).clients.map((x) => x.name)).toEqual(['alice']);
  });

  it('after joining, while others chat: the Hub keeps running', async () => {
    const t = await start({ RATE_LIMIT_BURST: '1000' });
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    for (let i = 0; i < 20; i++) alice!.send(`m${i}`);
    bob!.conn.send(new Uint8Array([1]));
    await alice!.next(left('bob'));
    await alice!.next(chatFrom('alice', 'm19'));
    alice!.send('after');
    await alice!.next(chatFrom('alice', 'after'));
  });
});

describe('GET /clients', () => {
  it('lists who is online as JSON, in join order, and follows leaves', async () => {
    const t = await start();
    const empty = await httpRequest(t.port, '/clients');
    expect(empty.status).toBe(200);
    expect(empty.body).toBe('{"count":0,"clients":[]}');

    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    const res = await httpRequest(t.port, '/clients');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const body = JSON.parse(res.body);
    expect(Object.keys(body)).toEqual(['count', 'clients']);
    expect(body.count).toBe(2);
    expect(body.clients.map((c: { name: string }) => c.name)).toEqual(['alice', 'bob']);
    for (const c of body.clients) {
      expect(Object.keys(c)).toEqual(['name', 'connectedAt']);
      expect(new Date(c.connectedAt).toISOString()).toBe(c.connectedAt);
    }
    expect(Date.parse(body.clients[0].connectedAt)).toBeLessThanOrEqual(Date.parse(body.clients[1].connectedAt));

    await alice!.close();
    await bob!.next(left('alice'));
    const after = JSON.parse((await httpRequest(t.port, '/clients')).body);
    expect(after).toEqual({ count: 1, clients: [body.clients[1]] });
  });

  it('does not list connections that have not chosen a name', async () => {
    const t = await start();
    await joinChat(t.port, 'alice');
    await openChat(t.port);
    await t.logged((l) => l.startsWith('connect '), 2);
    expect((await roster(t.port)).clients.map((c) => c.name)).toEqual(['alice']);
  });
});

describe('plain HTTP routes', () => {
  it('GET /healthz is 200', async () => {
    const t = await start();
    const res = await httpRequest(t.port, '/healthz');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.body).toBe('{"status":"ok"}');
  });

  it('GET / serves the page as text/html with a Content-Security-Policy', async () => {
    const t = await start();
    const res = await httpRequest(t.port, '/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'none'; /);
    expect(res.body).toMatch(/<html/i);
  });

  it('an unknown path is 404, POST /clients is 405', async () => {
    const t = await start();
    expect((await httpRequest(t.port, '/nope')).status).toBe(404);
    const post = await httpRequest(t.port, '/clients', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });
});

describe('Origin policy on /ws (RFC 6455 §10.2)', () => {
  async function refusal(url: string, origin: string): Promise<HandshakeError> {
    const error = await connect(url, { origin }).then(
      () => {
        throw new Error('connected');
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(HandshakeError);
    return error as HandshakeError;
  }

  it('refuses a foreign Origin with 403 and accepts same-origin pages and tools without Origin', async () => {
    const t = await start();
    const refused = await refusal(t.url(), 'http://evil.example');
    expect(refused.status).toBe(403);
    expect(refused.body).toBe('origin not allowed\n');
    const same = await openChat(t.port, { origin: `http://127.0.0.1:${t.port}` });
    same.send('page');
    await same.next(joined('page'));
    const tool = await joinChat(t.port, 'tool');
    await tool.close();
    await same.close();
    expect(t.log.some((l) => /^refused peer=127\.0\.0\.1:\d+ path=\/ws origin="http:\/\/evil\.example" reason="handshake"$/.test(l))).toBe(true);
  });

  it('accepts the origins listed in ALLOWED_ORIGINS, and only those', async () => {
    const t = await start({ ALLOWED_ORIGINS: 'https://chat.example.com, https://other.example:8443' });
    for (const origin of ['https://chat.example.com', 'https://other.example:8443']) {
      const c = await openChat(t.port, { origin });
      c.send(`u${origin.length}`);
      await c.next('join');
      await c.close();
    }
    expect((await refusal(t.url(), 'https://chat.example.com.evil.example')).status).toBe(403);
    expect((await refusal(t.url(), 'http://chat.example.com')).status).toBe(403);
    expect((await refusal(t.url(), 'null')).status).toBe(403);
  });
});

describe('MAX_CONNECTIONS', () => {
  it('answers 503 before upgrading once the cap is reached, and admits again after a leave', async () => {
    const t = await start({ MAX_CONNECTIONS: '2' });
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    const error = await connect(t.url()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(HandshakeError);
    expect((error as HandshakeError).status).toBe(503);
    expect((error as HandshakeError).body).toBe('too many connections: try again later\n');
    expect(t.app.connections.size).toBe(2);

    await alice!.close();
    await t.logged((l) => l.startsWith('disconnect name="alice"'));
    const carol = await joinChat(t.port, 'carol');
    await bob!.next(joined('carol'));
    await carol.close();
  });
});

describe('slow readers (the lesson: never block on the send channel)', () => {
  it('drops a client that stops reading; the others get every message in order and its leave notice at once', async () => {
    const t = await start({ SEND_QUEUE: '8', MAX_MESSAGE_BYTES: '65536', RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000' });
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    const slow = await RawChatPeer.join(t.port, 'slow');
    await alice!.next(joined('slow'));
    await bob!.next(joined('slow'));
    slow.pause(); // from here on the kernel buffers fill, then the server's writePump waits for 'drain'

    // alice talks in 32 KiB messages until the Hub gives up on slow. Each round waits for bob to
    // receive the round's last message, so alice never outruns the server (no timing involved).
    const filler = 'x'.repeat(32 * 1024);
    let sent = 0;
    while (bob!.received(left('slow')).length === 0) {
      if (sent > 4000) throw new Error('slow was never dropped');
      for (let i = 0; i < 8; i++) alice!.send(`${sent++}:${filler}`);
      await bob!.next(chatFrom('alice', `${sent - 1}:${filler}`));
    }
    // Some more after the drop: the others are not held up.
    for (let i = 0; i < 8; i++) alice!.send(`${sent++}:${filler}`);
    for (const c of [alice!, bob!]) {
      await c.next(chatFrom('alice', `${sent - 1}:${filler}`));
      const stream = c.received((m) => m.type !== 'join');
      const leaveAt = stream.findIndex(left('slow'));
      expectMessage(stream[leaveAt]!, { type: 'leave', user: 'System', message: 'slow left the chat' });
      // Every chat message, in order, and the leave notice exactly once somewhere in between.
      const chats = stream.filter((m) => m.type === 'chat').map((m) => Number(m.message.slice(0, m.message.indexOf(':'))));
      expect(chats).toEqual(Array.from({ length: sent }, (_, i) => i));
      expect(stream).toHaveLength(sent + 1);
      expect(leaveAt).toBeGreaterThan(0);
      expect(leaveAt).toBeLessThan(sent);
    }
    expect(t.log.some((l) => /^dropped name="slow" reason="send queue full" peer=127\.0\.0\.1:\d+$/.test(l)))
      .toBe(true);
    expect((await roster(t.port)).clients.map((c) => c.name)).toEqual(['alice', 'bob']);

    // slow reads again: what it gets is a prefix of the stream, ended by close 1008 (unless the
    // server's close timer had already destroyed the socket, which also ends the stream).
    await slow.drainToEnd();
    const got = slow.texts.map((s) => JSON.parse(s) as ChatMsg).filter((m) => m.type === 'chat');
    expect(got.map((m) => Number(m.message.slice(0, m.message.indexOf(':'))))).toEqual(Array.from({ length: got.length }, (_, i) => i));
    if (slow.closeCode !== undefined) expect(slow.closeCode).toBe(1008);
    const line = await t.logged((l) => l.startsWith('disconnect name="slow"'));
    expect(line[0]).toMatch(/ sent=1008 peer=127\.0\.0\.1:\d+$/);
  });

  it("a dropped client's own queued messages are not broadcast after its leave notice", async () => {
    const t = await start({ SEND_QUEUE: '8', RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000' });
    const [alice] = await joinAll(t.port, 'alice');
    const slow = await RawChatPeer.join(t.port, 'slow');
    await alice!.next(joined('slow'));
    slow.pause();
    // slow writes a lot and reads nothing: its own echoes fill its buffers, then its send queue,
    // while the rest of what it wrote is still arriving many frames per TCP read.
    const frames: Buffer[] = [];
    for (let i = 0; i < 4000; i++) frames.push(clientFrame(Opcode.Text, `${i}:${'s'.repeat(3000)}`));
    slow.write(Buffer.concat(frames));
    await alice!.next(left('slow'));
    alice!.send('marker');
    await alice!.next(chatFrom('alice', 'marker'));
    const stream = alice!.received((m) => m.type !== 'join');
    const leaveAt = stream.findIndex(left('slow'));
    expect(stream.slice(leaveAt + 1).filter((m) => m.user === 'slow')).toEqual([]);
    slow.destroy();
  });
});

describe('heartbeat at the chat level', () => {
  it('removes a peer that vanished without a FIN and tells the others', async () => {
    const t = await start({ PING_INTERVAL_MS: '50', PONG_TIMEOUT_MS: '150' });
    const alice = await joinChat(t.port, 'alice'); // our client answers pings by itself
    const ghost = await RawChatPeer.join(t.port, 'ghost');
    await alice.next(joined('ghost'));
    ghost.pause(); // no FIN, no pong: to the server it looks like a dead link
    expectMessage(await alice.next(), { type: 'leave', user: 'System', message: 'ghost left the chat' });
    const [line] = await t.logged((l) => l.startsWith('disconnect name="ghost"'));
    expect(line).toMatch(/^disconnect name="ghost" code=1006 reason="pong timeout" peer=127\.0\.0\.1:\d+$/);
    // alice answered every ping and is still in.
    alice.send('still here');
    await alice.next(chatFrom('alice', 'still here'));
    expect((await roster(t.port)).clients.map((c) => c.name)).toEqual(['alice']);
    ghost.destroy();
  });
});

describe('log lines', () => {
  it('one per connect, refusal and disconnect, with the close code and reason', async () => {
    const t = await start();
    const alice = await joinChat(t.port, 'alice');
    const bad = await openChat(t.port);
    bad.send('System');
    await bad.closed;
    const taken = await openChat(t.port);
    taken.send('alice');
    await taken.closed;
    await alice.close();
    await t.logged((l) => l.startsWith('disconnect '), 3);

    const connects = t.log.filter((l) => l.startsWith('connect '));
    expect(connects).toHaveLength(3);
    for (const l of connects) expect(l).toMatch(/^connect peer=127\.0\.0\.1:\d+ path=\/ws$/);
    // Every line about a connection says where it came from (peer=, appended to the chat's own fields).
    const refusals = t.log.filter((l) => l.startsWith('refused ')).map((l) => l.replace(/ peer=127\.0\.0\.1:\d+$/, ''));
    expect(refusals).toEqual([
      'refused name="System" reason="the name System is reserved"',
      'refused name="alice" reason="name taken"',
    ]);
    const disconnects = t.log
      .filter((l) => l.startsWith('disconnect '))
      .map((l) => l.replace(/ peer=127\.0\.0\.1:\d+$/, ''));
    expect(disconnects).toHaveLength(3);
    expect(disconnects).toContain('disconnect name="alice" code=1000 reason="" sent=1000');
    // The refused ones: we sent 1008, the client echoed it (§5.5.1).
    expect(disconnects.filter((l) => l.endsWith(' code=1008 reason="" sent=1008'))).toHaveLength(2);
  });
});

describe('shutdown', () => {
  it('closes every client with 1001: named, still choosing a name, and /echo', async () => {
    const t = await start();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    const unnamed = await openChat(t.port);
    const echo = await connect(t.url('/echo'));
    await t.logged((l) => l.startsWith('connect '), 4);

    await t.app.shutdown();
    const infos: CloseInfo[] = await Promise.all([alice!.closed, bob!.closed, unnamed.closed, echo.closed]);
    for (const info of infos) {
      expect(info.code).toBe(1001);
      expect(info.reason).toBe('server shutting down');
      expect(info.wasClean).toBe(true);
    }
    expect(t.app.connections.size).toBe(0);
    // Shutting down does not announce everyone leaving.
    expect(alice!.received('leave')).toEqual([]);
  });
});

describe('nothing leaks', () => {
  const count = (kind: string): number => process.getActiveResourcesInfo().filter((r) => r === kind).length;
  /** One turn of the event loop: lets Node run the async_hooks destroy callbacks it batches. */
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

  it('1,000 connect / join / close cycles leave no client, connection, socket or timer behind', async () => {
    const t = await start();
    const cycle = async (name: string): Promise<void> => {
      const c = await joinChat(t.port, name);
      const info = await c.close();
      expect(info.code).toBe(1000);
    };
    await cycle('warm-up');
    await t.logged((l) => l.startsWith('disconnect name="warm-up"'));
    const baseline = { timeouts: count('Timeout'), sockets: count('TCPSocketWrap') };
    // getActiveResourcesInfo() leaves out unref'd timers (the connection's heartbeat and close timers
    // are unref'd), so every timer and TCP handle created during the cycles is tracked here too.
    const live = new Map<number, string>();
    const hook = createHook({
      init(id, type) {
        if (type === 'Timeout' || type === 'TCPWRAP') live.set(id, type);
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();

    const total = 1000;
    const concurrency = 20;
    try {
      for (let i = 0; i < total; i += concurrency) {
        await Promise.all(Array.from({ length: concurrency }, (_, j) => cycle(`user${i + j}`)));
      }
      // Each server-side handler logs its disconnect last, after the Hub has let go of the client.
      await t.logged((l) => l.startsWith('disconnect '), total + 1);
      await turn();
      await turn();
    } finally {
      hook.disable();
    }
    expect([...live.values()]).toEqual([]);
    expect(count('TCPSocketWrap')).toBe(baseline.sockets);
    expect(count('Timeout')).toBeLessThanOrEqual(baseline.timeouts); // vitest may own one of them
    expect(t.app.connections.size).toBe(0);
    expect(await roster(t.port)).toEqual({ count: 0, clients: [] });
  });
});
