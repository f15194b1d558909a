/**
 * The v2 chat protocol through real sockets, every rule with its exact JSON: hello and welcome, history
 * on joining, offsets without gaps, chat with acks and cid de-duplication, private messages stored in two
 * inboxes, rooms (join, leave, limits), history requests, refusals that keep the connection up, and the
 * lesson's clients beside v2 ones.
 */
import { describe, expect, it } from 'vitest';
import { startApp, type TestApp } from './helpers/app';
import { ChatPeer } from './helpers/chat';
import { all, expectStored, hello, next, request, type Msg } from './helpers/v2';


const TOKEN = /^[A-Za-z0-9_-]{24}$/;
const EPOCH = /^[A-Za-z0-9_-]{8}$/;

/** A v2 client that has seen its own join notice in the lobby. */
async function member(t: TestApp, name: string): Promise<{ peer: ChatPeer; lobby: string }> {
  const { peer, welcome } = await hello(t.port, name);
  await next(peer, (m) => m.type === 'join' && m.name === name);
  return { peer, lobby: welcome.streams[0]!.epoch };
}

describe('hello and welcome', () => {
  it('welcome first: the name, a token, and each stream with its epoch and latest offset', async () => {
    const t = await startApp();
    const { peer, welcome } = await hello(t.port, 'alice');
    expect(Object.keys(welcome)).toEqual(['type', 'name', 'token', 'streams']);
    expect(welcome.name).toBe('alice');
    expect(welcome.token).toMatch(TOKEN);
    expect(welcome.streams).toEqual([
      { stream: 'lobby', epoch: expect.stringMatching(EPOCH), offset: 0, recovered: false },
      { stream: '@alice', epoch: expect.stringMatching(EPOCH), offset: 0, recovered: false },
    ]);
    expect(all(peer)[0]).toBe(welcome as unknown as Msg);
    // Then live: its own join notice, offset 1 of the lobby.
    const join = await next(peer, 'join');
    expectStored(join, {
      type: 'join',
      user: 'System',
      message: 'alice joined the chat',
      name: 'alice',
      stream: 'lobby',
      offset: 1,
      epoch: welcome.streams[0]!.epoch,
    });
  });

  it('a newcomer gets the last HISTORY_ON_JOIN messages, each marked history, then its own join live', async () => {
    const t = await startApp({ HISTORY_ON_JOIN: '3' });
    const { peer: alice } = await member(t, 'alice');
    for (const text of ['one', 'two', 'three']) request(alice, { type: 'chat', message: text });
    await next(alice, (m) => m.message === 'three');
    const { peer: bob, welcome } = await hello(t.port, 'bob');
    expect(welcome.streams[0]).toMatchObject({ stream: 'lobby', offset: 4, recovered: false });
    const history = [await next(bob, 'chat'), await next(bob, 'chat'), await next(bob, 'chat')];
    expect(history.map((m) => [m.message, m.offset, m.history])).toEqual([
      ['one', 2, true],
      ['two', 3, true],
      ['three', 4, true],
    ]);
    expectStored(history[0]!, {
      type: 'chat',
      user: 'alice',
      message: 'one',
      stream: 'lobby',
      offset: 2,
      epoch: welcome.streams[0]!.epoch,
      history: true,
    });
    const join = await next(bob, 'join');
    expect([join.name, join.offset, join.history]).toEqual(['bob', 5, undefined]);
    expect(all(bob).map((m) => m.type)).toEqual(['welcome', 'chat', 'chat', 'chat', 'join']);
  });

  it('a JSON first message that is not a proper hello is refused: an error saying why, then 1008', async () => {
    const t = await startApp();
    for (const [first, why] of [
      ['{"type":"chat","message":"hi"}', 'the first message must be {"type":"hello","name":...}'],
      ['{nope', 'hello: invalid JSON'],
      ['{"type":"hello"}', 'hello: "name" must be a string'],
      [
        '{"type":"hello","name":"a","resume":[1]}',
        'hello: "resume" must be an object: {"<stream>": {"epoch": "...", "offset": n}}',
      ],
      ['{"type":"hello","name":"аlice"}', 'name mixes Cyrillic and Latin letters: use one script'],
    ] as const) {
      const peer = await ChatPeer.open(t.port);
      peer.send(first);
      const error = await next(peer, 'error');
      expect(error.message).toBe(why);
      expect((await peer.closed).code).toBe(1008);
    }
  });
});

describe('chat, acks and offsets', () => {
  it('stores each message at the next offset; every member gets it; the sender an ack with its cid', async () => {
    const t = await startApp();
    const { peer: alice, lobby } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    await next(alice, (m) => m.type === 'join' && m.name === 'bob');
    request(alice, { type: 'chat', room: 'lobby', message: 'hi', cid: 'c-17' });
    for (const peer of [alice, bob]) {
      expectStored(await next(peer, 'chat'), {
        type: 'chat',
        user: 'alice',
        message: 'hi',
        stream: 'lobby',
        offset: 3,
        epoch: lobby,
      });
    }
    const ack = await next(alice, 'ack');
    expect(ack).toEqual({ type: 'ack', cid: 'c-17', stream: 'lobby', offset: 3, epoch: lobby });
    expect(Object.keys(ack)).toEqual(['type', 'cid', 'stream', 'offset', 'epoch']);
    // "room" defaults to the lobby; no cid, no ack.
    request(bob, { type: 'chat', message: 'yo' });
    expect((await next(alice, 'chat')).offset).toBe(4);
    request(bob, { type: 'chat', message: 'marker', cid: 'm' });
    await next(bob, 'ack');
    expect(all(bob).filter((m) => m.type === 'ack').map((m) => m.cid)).toEqual(['m']);
  });

  it('a cid resent (a retry after a reconnect) stores nothing new and acks the first offset again', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(alice, { type: 'chat', message: 'once', cid: 'c-1' });
    const first = await next(alice, 'ack');
    request(alice, { type: 'chat', message: 'once', cid: 'c-1' });
    const again = await next(alice, 'ack');
    expect(again).toEqual(first);
    // Another sender may use the same cid: it is theirs.
    request(bob, { type: 'chat', message: 'mine', cid: 'c-1' });
    expect((await next(bob, 'ack')).offset).toBe((first.offset as number) + 1);
    request(alice, { type: 'chat', message: 'after', cid: 'c-2' });
    await next(alice, (m) => m.type === 'chat' && m.message === 'after');
    expect(all(alice).filter((m) => m.type === 'chat').map((m) => m.message)).toEqual(['once', 'mine', 'after']);
  });

  it('offsets have no gaps across chat, join and leave notices', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(bob, { type: 'chat', message: 'x' });
    await next(alice, 'chat');
    await bob.close();
    await next(alice, 'leave');
    request(alice, { type: 'chat', message: 'y' });
    await next(alice, (m) => m.message === 'y');
    const lobby = all(alice).filter((m) => m.stream === 'lobby');
    expect(lobby.map((m) => [m.type, m.offset])).toEqual([
      ['join', 1],
      ['join', 2],
      ['chat', 3],
      ['leave', 4],
      ['chat', 5],
    ]);
  });
});

describe('private messages', () => {
  it("are stored in the addressee's inbox and as a copy in the sender's; they reach only those two", async () => {
    const t = await startApp();
    const { peer: alice, welcome: wa } = await hello(t.port, 'alice');
    const { peer: bob, welcome: wb } = await hello(t.port, 'Bob');
    const { peer: carol } = await member(t, 'carol');
    await next(alice, (m) => m.type === 'join' && m.name === 'carol');
    request(alice, { type: 'private', to: 'BOB', message: 'psst', cid: 'c-18' });
    const copy = await next(alice, 'private');
    expectStored(copy, {
      type: 'private',
      user: 'alice',
      message: 'psst',
      to: 'Bob',
      stream: '@alice',
      offset: 1,
      epoch: wa.streams[1]!.epoch,
    });
    expect(await next(alice, 'ack')).toEqual({
      type: 'ack',
      cid: 'c-18',
      stream: '@alice',
      offset: 1,
      epoch: wa.streams[1]!.epoch,
    });
    expectStored(await next(bob, 'private'), {
      type: 'private',
      user: 'alice',
      message: 'psst',
      to: 'Bob',
      stream: '@bob',
      offset: 1,
      epoch: wb.streams[1]!.epoch,
    });
    request(carol, { type: 'chat', message: 'marker' });
    for (const peer of [alice, bob, carol]) await next(peer, (m) => m.message === 'marker');
    expect(all(carol).filter((m) => m.type === 'private')).toEqual([]);
  });

  it('to someone offline: an error with the cid, nothing stored', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'alice');
    request(alice, { type: 'private', to: 'nobody', message: 'hello?', cid: 'c-9' });
    const error = await next(alice, 'error');
    expect(Object.keys(error)).toEqual(['type', 'user', 'message', 'time', 'cid']);
    expect([error.user, error.message, error.cid]).toEqual(['System', 'nobody is not online', 'c-9']);
  });

  it("a lesson client's private message reaches a v2 client's inbox; the lesson client gets no copy", async () => {
    const t = await startApp();
    const { peer: bob } = await member(t, 'bob');
    const ann = await ChatPeer.join(t.port, 'ann');
    ann.send('@bob hello from the lesson');
    expect(await next(bob, 'private')).toMatchObject({ user: 'ann', to: 'bob', stream: '@bob', offset: 1 });
    ann.send('done');
    await ann.next((m) => m.type === 'chat' && m.message === 'done');
    expect(ann.received('private')).toEqual([]);
    // And back: the v2 client's private message reaches the lesson client, with its place.
    request(bob, { type: 'private', to: 'ann', message: 'hi ann' });
    expect(await ann.next('private')).toMatchObject({ user: 'bob', to: 'ann', message: 'hi ann', stream: '@ann' });
  });
});

describe('rooms', () => {
  it('join: joined, the room history, then the join notice to its members; leave: left, then the notice', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(alice, { type: 'join', room: 'rust' });
    const joined = await next(alice, 'joined');
    const epoch = expect.stringMatching(EPOCH) as unknown;
    expect(joined).toEqual({ type: 'joined', room: 'rust', stream: 'rust', epoch, offset: 0 });
    expectStored(await next(alice, (m) => m.type === 'join' && m.stream === 'rust'), {
      type: 'join',
      user: 'System',
      message: 'alice joined #rust',
      name: 'alice',
      stream: 'rust',
      offset: 1,
      epoch: joined.epoch,
    });
    request(alice, { type: 'chat', room: 'rust', message: 'borrowck', cid: 'r1' });
    expect(await next(alice, 'ack')).toMatchObject({ stream: 'rust', offset: 2 });
    request(bob, { type: 'join', room: 'rust', cid: 'j' });
    expect(await next(bob, 'joined')).toMatchObject({ room: 'rust', offset: 2 });
    const history = [await next(bob, 'join'), await next(bob, 'chat')];
    expect(history.map((m) => [m.stream, m.offset, m.history])).toEqual([
      ['rust', 1, true],
      ['rust', 2, true],
    ]);
    const bobJoined = await next(alice, (m) => m.type === 'join' && m.name === 'bob');
    expect(bobJoined).toMatchObject({ stream: 'rust', offset: 3 });
    request(bob, { type: 'leave', room: 'rust' });
    expect(await next(bob, 'left')).toEqual({ type: 'left', room: 'rust' });
    const bobLeft = await next(alice, 'leave');
    expect(bobLeft).toMatchObject({ message: 'bob left #rust', name: 'bob', stream: 'rust', offset: 4 });
    // After leaving, the room is not bob's to speak in.
    request(bob, { type: 'chat', room: 'rust', message: 'still here?', cid: 'x' });
    expect(await next(bob, 'error')).toMatchObject({ message: 'you are not in #rust', cid: 'x' });
  });

  it('messages of a room reach its members only', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(alice, { type: 'join', room: 'go' });
    await next(alice, 'joined');
    request(alice, { type: 'chat', room: 'go', message: 'in go' });
    await next(alice, (m) => m.message === 'in go');
    request(alice, { type: 'chat', message: 'in lobby' });
    await next(bob, (m) => m.message === 'in lobby');
    expect(all(bob).filter((m) => m.stream === 'go')).toEqual([]);
  });

  it('MAX_ROOMS_PER_CLIENT (the lobby counts) and MAX_ROOMS: errors, and the connection stays up', async () => {
    const t = await startApp({ MAX_ROOMS_PER_CLIENT: '2', MAX_ROOMS: '3' });
    const { peer: alice } = await member(t, 'alice');
    const { peer: bob } = await member(t, 'bob');
    request(alice, { type: 'join', room: 'a' });
    await next(alice, 'joined');
    request(alice, { type: 'join', room: 'b', cid: 'j2' });
    expect(await next(alice, 'error')).toMatchObject({ message: 'too many rooms: at most 2 at once', cid: 'j2' });
    request(bob, { type: 'join', room: 'b' });
    await next(bob, 'joined');
    // lobby, a, b: the server is full while all three have members.
    request(alice, { type: 'leave', room: 'a' });
    await next(alice, 'left');
    request(alice, { type: 'join', room: 'c' }); // a is empty now: it makes way
    expect(await next(alice, 'joined')).toMatchObject({ room: 'c' });
    request(bob, { type: 'leave', room: 'b' });
    await next(bob, 'left');
    request(bob, { type: 'join', room: 'a', cid: 'again' }); // b makes way; a starts a new epoch
    expect(await next(bob, 'joined')).toMatchObject({ room: 'a', offset: 0 });
    const full = await startApp({ MAX_ROOMS: '2' });
    const { peer: carol } = await member(full, 'carol');
    request(carol, { type: 'join', room: 'x' });
    await next(carol, 'joined');
    request(carol, { type: 'join', room: 'y', cid: 'y' });
    expect(await next(carol, 'error')).toMatchObject({ message: 'too many rooms on this server: at most 2', cid: 'y' });
  });
});

describe('history requests', () => {
  it('pages backwards with before and limit; says whether more is held', async () => {
    const t = await startApp();
    const { peer: alice, lobby } = await member(t, 'alice');
    for (let i = 1; i <= 5; i++) request(alice, { type: 'chat', message: `m${i}` });
    await next(alice, (m) => m.message === 'm5');
    request(alice, { type: 'history', stream: 'lobby', limit: 2 });
    const latest = await next(alice, 'history');
    expect(Object.keys(latest)).toEqual(['type', 'stream', 'epoch', 'messages', 'more']);
    expect([latest.stream, latest.epoch, latest.more]).toEqual(['lobby', lobby, true]);
    const messages = latest.messages as Msg[];
    expect(messages.map((m) => [m.message, m.offset])).toEqual([
      ['m4', 5],
      ['m5', 6],
    ]);
    const m4 = { type: 'chat', user: 'alice', message: 'm4', stream: 'lobby', offset: 5, epoch: lobby };
    expectStored(messages[0]!, m4);
    request(alice, { type: 'history', stream: 'lobby', before: 5, limit: 100 });
    const older = await next(alice, 'history');
    expect((older.messages as Msg[]).map((m) => m.offset)).toEqual([1, 2, 3, 4]);
    expect(older.more).toBe(false);
  });

  it('a history request with a cid gets it back in the reply', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'alice');
    request(alice, { type: 'history', stream: 'lobby', limit: 1, cid: 'h-1' });
    const page = await next(alice, 'history');
    expect(Object.keys(page)).toEqual(['type', 'stream', 'epoch', 'messages', 'more', 'cid']);
    expect([page.cid, (page.messages as Msg[]).map((m) => m.offset)]).toEqual(['h-1', [1]]);
  });

  it('reads your own inbox (any form of the name), never a room you are not in or another inbox', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'Alice');
    await member(t, 'bob');
    request(alice, { type: 'history', stream: '@ALICE' });
    expect(await next(alice, 'history')).toMatchObject({ stream: '@alice', messages: [], more: false });
    request(alice, { type: 'history', stream: '@bob', cid: 'h1' });
    expect(await next(alice, 'error')).toMatchObject({ message: 'you cannot read @bob: join it first', cid: 'h1' });
    request(alice, { type: 'history', stream: 'rust', cid: 'h2' });
    expect(await next(alice, 'error')).toMatchObject({ message: 'you cannot read rust: join it first', cid: 'h2' });
  });
});

describe('bad requests get an error and the connection stays up', () => {
  it.each([
    ['not JSON', 'invalid JSON', undefined],
    ['[1,2]', 'expected a JSON object', undefined],
    ['{"type":"dance","cid":"d"}', 'unknown message type "dance"', 'd'],
    [
      '{"type":"chat","room":"Rust Lang","message":"x","cid":"r"}',
      'invalid room name "Rust Lang": 1-32 lowercase letters, digits, "-" or "_"',
      'r',
    ],
    [
      '{"type":"join","room":"' + 'x'.repeat(33) + '"}',
      `invalid room name "${'x'.repeat(33)}": 1-32 lowercase letters, digits, "-" or "_"`,
      undefined,
    ],
    ['{"type":"chat","message":""}', 'empty messages are not sent', undefined],
    ['{"type":"chat","message":7}', '"message" must be a string', undefined],
    [`{"type":"chat","message":"x","cid":"${'c'.repeat(65)}"}`, '"cid" must be a string of 1 to 64 characters'],
    ['{"type":"history","stream":"lobby","limit":0,"cid":"l"}', '"limit" must be a whole number from 1 to 100', 'l'],
    ['{"type":"history","stream":"lobby","limit":101}', '"limit" must be a whole number from 1 to 100', undefined],
    ['{"type":"history","stream":"lobby","before":0}', '"before" must be an offset (a whole number from 1)', undefined],
    ['{"type":"chat","room":"rust","message":"x","cid":"n"}', 'you are not in #rust', 'n'],
    ['{"type":"leave","room":"rust"}', 'you are not in #rust', undefined],
    ['{"type":"join","room":"lobby"}', 'you are already in #lobby', undefined],
    ['{"type":"private","to":"","message":"x"}', '"to" must be a name', undefined],
  ])('%s', async (text: string, why: string, cid?: string) => {
    const t = await startApp();
    const { peer } = await member(t, 'alice');
    peer.send(text);
    const error = await next(peer, 'error');
    expect([error.message, error.cid]).toEqual([why, cid]);
    request(peer, { type: 'chat', message: 'still here', cid: 'ok' });
    expect(await next(peer, 'ack')).toMatchObject({ cid: 'ok' });
  });
});

describe('the rate limit', () => {
  it("a request refused for the rate limit is named by its cid, so the client knows which to send again", async () => {
    const t = await startApp({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '2' });
    const { peer: alice } = await member(t, 'alice');
    for (const cid of ['a', 'b', 'c']) request(alice, { type: 'chat', message: cid, cid });
    const refused = await next(alice, 'error');
    expect([refused.message, refused.cid]).toEqual(['rate limit exceeded: slow down', 'c']);
    expect(all(alice).filter((m) => m.type === 'ack').map((m) => m.cid)).toEqual(['a', 'b']);
  });
});

describe('names', () => {
  it('are one regardless of case and compatibility forms; shown as typed; the later one is refused', async () => {
    const t = await startApp();
    const { peer: alice } = await member(t, 'Alice');
    for (const name of ['alice', 'ＡＬＩＣＥ']) {
      const peer = await ChatPeer.open(t.port);
      peer.send(JSON.stringify({ type: 'hello', name }));
      expect((await next(peer, 'error')).message).toBe(`the name ${name} is taken: choose another`);
      expect((await peer.closed).code).toBe(1008);
    }
    const lesson = await ChatPeer.open(t.port);
    lesson.send('ALICE');
    expect((await lesson.next('error')).message).toBe('the name ALICE is taken: choose another');
    request(alice, { type: 'chat', message: 'still me' });
    expect(await next(alice, 'chat')).toMatchObject({ user: 'Alice', message: 'still me' });
  });
});
