/**
 * The chat (the lesson's Hub, readPump, writePump, plus the exercise and the homework) through real
 * sockets: names, join/leave notices, broadcast, private messages, slow and vanished peers, and the
 * log lines they leave. (Routes, the Origin policy, the connection cap, shutdown and leaks have their
 * own files.)
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../src/websocket';
import { NO_RATE_LIMIT, startApp } from './helpers/app';
import {
  chatFrom,
  chatMessages,
  ChatPeer,
  joinAll,
  joined,
  left,
  rawChat,
  rawJoin,
  type ChatMsg,
} from './helpers/chat';
import { frame } from './helpers/wire';

/** The exact JSON shape: these fields, in this order, and a time that is an ISO 8601 date. */
function expectMessage(m: ChatMsg, expected: Omit<ChatMsg, 'time'>): void {
  const { time, stream, offset, epoch, name, ...rest } = m as ChatMsg & Record<string, unknown>;
  expect(rest).toEqual(expected);
  // The lesson's fields first; a stored message then says where it is stored (a notice, whose name).
  const lesson = ['type', 'user', 'message', ...(expected.to === undefined ? [] : ['to'])];
  const place = m.type === 'error' ? [] : ['stream', 'offset', 'epoch'];
  const keys = [...lesson, ...(name !== undefined ? ['name'] : []), 'time', ...place];
  expect(Object.keys(m)).toEqual(keys);
  if (m.type === 'join' || m.type === 'leave') expect(m.message.startsWith(`${String(name)} `)).toBe(true);
  if (place.length > 0) {
    expect([typeof stream, Number.isInteger(offset), typeof epoch]).toEqual(['string', true, 'string']);
  }
  expect(typeof time).toBe('string');
  expect(new Date(time).toISOString()).toBe(time);
}

/** The sequence number in front of a numbered message (`12:xxx`). */
const seq = (message: string): number => Number(message.slice(0, message.indexOf(':')));

/** The names GET /clients lists, in join order. */
async function online(t: { roster(): Promise<{ clients: { name: string }[] }> }): Promise<string[]> {
  return (await t.roster()).clients.map((c) => c.name);
}

describe('joining', () => {
  it('takes the first text message as the name and announces the join to everyone, the newcomer included', async () => {
    const t = await startApp();
    const alice = await ChatPeer.open(t.port);
    alice.send('alice');
    expectMessage(await alice.next(), { type: 'join', user: 'System', message: 'alice joined the chat' });

    const bob = await ChatPeer.open(t.port);
    bob.send('bob');
    expectMessage(await bob.next(), { type: 'join', user: 'System', message: 'bob joined the chat' });
    expectMessage(await alice.next(), { type: 'join', user: 'System', message: 'bob joined the chat' });
    // bob sees only what happened after he joined.
    expect(bob.received()).toHaveLength(1);
  });

  it('accepts a name of exactly 32 characters, counted as characters, not bytes', async () => {
    const t = await startApp();
    const ascii = 'a'.repeat(32);
    const emoji = '😀'.repeat(32); // 64 UTF-16 code units, 128 UTF-8 bytes
    const a = await ChatPeer.join(t.port, ascii);
    const b = await ChatPeer.join(t.port, emoji);
    await a.next(joined(emoji));
    expect(await online(t)).toEqual([ascii, emoji]);
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
    const t = await startApp();
    const watcher = await ChatPeer.join(t.port, 'watcher');
    const c = await ChatPeer.open(t.port);
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
    expect(await online(t)).toEqual(['watcher']);
  });

  it('refuses a name that is taken: a System error, then close 1008; the owner keeps it', async () => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const impostor = await ChatPeer.open(t.port);
    impostor.send('alice');
    const info = await impostor.closed;
    expect(info.code).toBe(1008);
    expect(impostor.messages).toHaveLength(1);
    const taken = 'the name alice is taken: choose another';
    expectMessage(impostor.messages[0]!, { type: 'error', user: 'System', message: taken });
    // The real alice is still there and still alice: no leave notice, no second join.
    alice.send('still here');
    await alice.next(chatFrom('alice', 'still here'));
    expect(alice.received().map((m) => m.type)).toEqual(['join', 'chat']);
    expect(await online(t)).toEqual(['alice']);
  });

  it('never broadcasts what a refused impostor sent right behind the taken name', async () => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    // The name and a message in one TCP segment: the server has both before the Hub answers.
    const impostor = await rawChat(t.port);
    const claim = frame(Opcode.Text, 'I am alice, send me your password');
    impostor.write(Buffer.concat([frame(Opcode.Text, 'alice'), claim]));
    await impostor.closed;
    expect(impostor.closeFrame()?.code).toBe(1008);
    expect(chatMessages(impostor).map((m) => m.message)).toEqual(['the name alice is taken: choose another']);
    alice.send('marker');
    await alice.next(chatFrom('alice', 'marker'));
    expect(alice.received('chat').map((m) => m.message)).toEqual(['marker']);
  });

  it('a client that closes right after its name joins and leaves; the roster keeps no ghost', async () => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const quick = await rawChat(t.port);
    // Name and close frame in one segment: the Hub registers a client whose connection is already closing.
    quick.write(Buffer.concat([frame(Opcode.Text, 'quick'), frame(Opcode.Close, Buffer.from([0x03, 0xe8]))]));
    await alice.next(joined('quick'));
    await alice.next(left('quick'));
    await quick.closed;
    expect(await online(t)).toEqual(['alice']);
    // The name is free again.
    const again = await ChatPeer.join(t.port, 'quick');
    await again.close();
  });

  it('a client that drops TCP right after its name is cleaned up the same way', async () => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const quick = await rawChat(t.port);
    quick.end(frame(Opcode.Text, 'quick'));
    await alice.next(joined('quick'));
    await alice.next(left('quick'));
    expect((await t.roster()).count).toBe(1);
  });
});

describe('broadcast', () => {
  it('sends a chat message to everyone, the sender included, with the sender name', async () => {
    const t = await startApp();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    bob.send('hello everyone');
    for (const c of [alice!, bob!, carol!]) {
      expectMessage(await c.next('chat'), { type: 'chat', user: 'bob', message: 'hello everyone' });
    }
  });

  it("keeps each sender's order, for every receiver", async () => {
    const t = await startApp({ RATE_LIMIT_BURST: '1000' });
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
    const t = await startApp();
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
    const t = await startApp();
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
    const t = await startApp();
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
    const t = await startApp();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    alice!.send('@bob  two  spaces\nand a line');
    const message = ' two  spaces\nand a line';
    expectMessage(await bob!.next(), { type: 'private', user: 'alice', message, to: 'bob' });
  });

  it('to someone offline: the sender gets a System error, nobody else hears of it', async () => {
    const t = await startApp();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    alice!.send('@carol hi');
    expectMessage(await alice!.next(), { type: 'error', user: 'System', message: 'carol is not online' });
    alice!.send('marker');
    expect(await bob!.next()).toMatchObject({ type: 'chat', user: 'alice', message: 'marker' });
  });
});

describe('leaving', () => {
  it('tells the others when a client closes', async () => {
    const t = await startApp();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    const info = await alice!.close();
    expect(info.code).toBe(1000);
    expect(info.wasClean).toBe(true);
    for (const c of [bob!, carol!]) {
      expectMessage(await c.next(), { type: 'leave', user: 'System', message: 'alice left the chat' });
    }
  });

  it("delivers a leaver's last words, private ones included, in order and before its leave notice", async () => {
    const t = await startApp();
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
    const t = await startApp();
    const [alice, bob, carol] = await joinAll(t.port, 'alice', 'bob', 'carol');
    alice!.conn.terminate();
    for (const c of [bob!, carol!]) {
      expectMessage(await c.next(), { type: 'leave', user: 'System', message: 'alice left the chat' });
    }
    expect(await online(t)).toEqual(['bob', 'carol']);
  });
});

describe('a connection that never sends its name', () => {
  it('is closed with 1008 after JOIN_TIMEOUT_MS and never listed', async () => {
    const t = await startApp({ JOIN_TIMEOUT_MS: '100' });
    const c = await ChatPeer.open(t.port);
    const info = await c.closed;
    expect(info.code).toBe(1008);
    expect(info.reason).toBe('no name sent in time');
    expect(c.messages).toEqual([]);
    expect((await t.roster()).count).toBe(0);
  });
});

describe('binary frames on /ws', () => {
  it('as the name: close 1003', async () => {
    const t = await startApp();
    const c = await ChatPeer.open(t.port);
    c.conn.send(Buffer.from('alice'));
    const info = await c.closed;
    expect(info.code).toBe(1003);
    expect(c.messages).toEqual([]);
    expect((await t.roster()).count).toBe(0);
  });

  it('after joining: close 1003 and a leave notice for the others', async () => {
    const t = await startApp();
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    bob!.conn.send(new Uint8Array([1, 2, 3]));
    expect((await bob!.closed).code).toBe(1003);
    expectMessage(await alice!.next(), { type: 'leave', user: 'System', message: 'bob left the chat' });
    expect(await online(t)).toEqual(['alice']);
  });

  it('after joining, while others chat: the Hub keeps running', async () => {
    const t = await startApp({ RATE_LIMIT_BURST: '1000' });
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    for (let i = 0; i < 20; i++) alice!.send(`m${i}`);
    bob!.conn.send(new Uint8Array([1]));
    await alice!.next(left('bob'));
    await alice!.next(chatFrom('alice', 'm19'));
    alice!.send('after');
    await alice!.next(chatFrom('alice', 'after'));
  });
});

describe('slow readers (the lesson: never block on the send channel)', () => {
  it('drops a client that stops reading; the others get every message in order, its leave notice at once', async () => {
    const t = await startApp({ ...NO_RATE_LIMIT, SEND_QUEUE: '8', MAX_MESSAGE_BYTES: '65536' });
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    const slow = await rawJoin(t.port, 'slow');
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
      const chats = stream.filter((m) => m.type === 'chat').map((m) => seq(m.message));
      expect(chats).toEqual(Array.from({ length: sent }, (_, i) => i));
      expect(stream).toHaveLength(sent + 1);
      expect(leaveAt).toBeGreaterThan(0);
      expect(leaveAt).toBeLessThan(sent);
    }
    const dropped = /^dropped name="slow" reason="send queue full" peer=127\.0\.0\.1:\d+$/;
    expect(t.log.some((l) => dropped.test(l))).toBe(true);
    expect(await online(t)).toEqual(['alice', 'bob']);

    // slow reads again: what it gets is a prefix of the stream, then close 1008 saying why (the
    // server waits for slow's answer: its close timer is off in tests).
    slow.resume();
    await slow.closed;
    const got = chatMessages(slow).filter((m) => m.type === 'chat');
    const seqs = got.map((m) => seq(m.message));
    expect(seqs).toEqual(Array.from({ length: got.length }, (_, i) => i));
    expect(slow.closeFrame()).toEqual({ code: 1008, reason: 'too slow: send queue full' });
    const [line] = await t.logged((l) => l.startsWith('disconnect name="slow"'));
    expect(line).toMatch(/^disconnect name="slow" code=1008 reason="" sent=1008 peer=127\.0\.0\.1:\d+$/);
  });

  it("a dropped client's own queued messages are not broadcast after its leave notice", async () => {
    const t = await startApp({ ...NO_RATE_LIMIT, SEND_QUEUE: '8' });
    const [alice] = await joinAll(t.port, 'alice');
    const slow = await rawJoin(t.port, 'slow');
    await alice!.next(joined('slow'));
    slow.pause();
    // slow writes a lot and reads nothing: its own echoes fill its buffers, then its send queue,
    // while the rest of what it wrote is still arriving many frames per TCP read.
    const frames: Buffer[] = [];
    for (let i = 0; i < 4000; i++) frames.push(frame(Opcode.Text, `${i}:${'s'.repeat(3000)}`));
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
    const t = await startApp({ PING_INTERVAL_MS: '50', PONG_TIMEOUT_MS: '150' });
    const alice = await ChatPeer.join(t.port, 'alice'); // our client answers pings by itself
    const ghost = await rawJoin(t.port, 'ghost');
    await alice.next(joined('ghost'));
    ghost.pause(); // no FIN, no pong: to the server it looks like a dead link
    expectMessage(await alice.next(), { type: 'leave', user: 'System', message: 'ghost left the chat' });
    const [line] = await t.logged((l) => l.startsWith('disconnect name="ghost"'));
    expect(line).toMatch(/^disconnect name="ghost" code=1006 reason="pong timeout" peer=127\.0\.0\.1:\d+$/);
    // alice answered every ping and is still in.
    alice.send('still here');
    await alice.next(chatFrom('alice', 'still here'));
    expect(await online(t)).toEqual(['alice']);
    ghost.destroy();
  });
});

describe('log lines', () => {
  it('one per connect, refusal and disconnect, with the close code and reason', async () => {
    const t = await startApp();
    const alice = await ChatPeer.join(t.port, 'alice');
    const bad = await ChatPeer.open(t.port);
    bad.send('System');
    await bad.closed;
    const taken = await ChatPeer.open(t.port);
    taken.send('alice');
    await taken.closed;
    await alice.close();
    await t.logged((l) => l.startsWith('disconnect '), 3);

    const connects = t.log.filter((l) => l.startsWith('connect '));
    expect(connects).toHaveLength(3);
    for (const l of connects) expect(l).toMatch(/^connect peer=127\.0\.0\.1:\d+ path=\/ws$/);
    // Every line about a connection says where it came from (peer=, after the chat's own fields).
    const withoutPeer = (l: string): string => l.replace(/ peer=127\.0\.0\.1:\d+$/, '');
    expect(t.log.filter((l) => l.startsWith('refused ')).map(withoutPeer)).toEqual([
      'refused name="System" reason="the name System is reserved"',
      'refused name="alice" reason="name taken"',
    ]);
    const disconnects = t.log.filter((l) => l.startsWith('disconnect ')).map(withoutPeer);
    expect(disconnects).toHaveLength(3);
    expect(disconnects).toContain('disconnect name="alice" code=1000 reason="" sent=1000');
    // The refused ones: we sent 1008, the client echoed it (§5.5.1).
    expect(disconnects.filter((l) => l.endsWith(' code=1008 reason="" sent=1008'))).toHaveLength(2);
  });
});

