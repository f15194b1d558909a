/**
 * The chat page on protocol v2, in a real browser (headless Chromium over the DevTools protocol): rooms
 * (join, switch, unread counts, leave), earlier messages shown apart with "load earlier" paging, a socket
 * cut with the server kept up (the page resumes with no gap and no duplicate, and resends what it typed
 * offline exactly once), a reload that carries on, and screenshots. Every test starts its own server on
 * port 0 and its own tabs; the other chatters are v2 clients of our own (test/helpers/v2.ts).
 *
 * Without a Chromium binary the file is skipped locally; in CI (CI set) a missing browser fails it.
 */
import { mkdirSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { CdpPage } from './helpers/cdp';
import { startApp, type TestApp } from './helpers/app';
import type { ChatPeer } from './helpers/chat';
import { describeWithChromium } from './helpers/chromium';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';
import { all, hello, next, request, type Msg } from './helpers/v2';

const SHOTS = fileURLToPath(new URL('../test-results/screenshots/', import.meta.url));

// ---- what a tab shows, read from its DOM ----
interface Item {
  type?: string;
  user?: string;
  stream?: string;
  offset?: string;
  history?: string;
  pending?: string;
  state?: string;
  text: string;
}
/** The view on screen (#log), top to bottom. */
const VIEW = `[...document.querySelectorAll('#log > li')].map((li) => ({
  ...li.dataset, text: (li.querySelector('.text') ?? li.querySelector('span'))?.textContent ?? '' }))`;
/** The room list: each stream, whether it is on screen, its unread count. */
const ROOMS = `[...document.querySelectorAll('#rooms button[data-stream]')].map((b) => ({
  stream: b.dataset.stream, current: b.getAttribute('aria-current') === 'page',
  unread: b.querySelector('.unread')?.firstChild?.textContent ?? '' }))`;
const ROSTER = `[...document.querySelectorAll('#roster [data-name]')].map((e) => e.dataset.name)`;
/** A stored (not pending) item of this type with this text is in the view on screen. */
const showing = (text: string, type = 'chat'): string =>
  `[...document.querySelectorAll('#log > li[data-type="${type}"]:not([data-pending]) .text')]
    .some((e) => e.textContent === ${JSON.stringify(text)})`;
const stateIs = (state: string): string => `document.body?.dataset.state === '${state}'`;
const titleIs = (title: string): string => `document.getElementById('conv-title').textContent === '${title}'`;
/** The states shown on our messages still pending, top to bottom. */
const PENDING = `[...document.querySelectorAll('#log li[data-pending] .state')].map((e) => e.textContent)`;
const chats = (items: Item[]): string[] => items.filter((i) => i.type === 'chat').map((i) => i.text);

interface Room {
  stream: string;
  current: boolean;
  unread: string;
}

describeWithChromium('rooms, history and resume in a real browser', (browser) => {
  // What each test started, closed after it.
  let apps: TestApp[] = [];
  let proxies: TcpProxy[] = [];
  let pages: CdpPage[] = [];
  let peers: ChatPeer[] = [];

  beforeAll(() => mkdirSync(SHOTS, { recursive: true }));
  afterEach(async () => {
    await Promise.all(pages.map((p) => p.close().catch(() => {})));
    for (const peer of peers) peer.conn.terminate();
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(apps.map((a) => a.close()));
    [apps, proxies, pages, peers] = [[], [], [], []];
  });

  async function server(env: Record<string, string> = {}): Promise<TestApp> {
    const t = await startApp(env);
    apps.push(t);
    return t;
  }
  async function open(port: number): Promise<CdpPage> {
    const page = await CdpPage.open(browser.cdp);
    pages.push(page);
    await page.goto(`http://127.0.0.1:${port}/`);
    return page;
  }
  async function joinAs(page: CdpPage, name: string): Promise<void> {
    await page.type('#name', name);
    const joined = `${stateIs('joined')} && ${ROSTER}.includes(${JSON.stringify(name)})`;
    await page.waitFor(joined, `${name} joined`, 5_000, VIEW);
  }
  /** A v2 chatter of our own, in the lobby, that has seen its own join notice. */
  async function chatter(t: TestApp, name: string): Promise<ChatPeer> {
    const { peer } = await hello(t.port, name);
    peers.push(peer);
    await next(peer, (m) => m.type === 'join' && m.name === name);
    return peer;
  }
  const sees = (page: CdpPage, text: string, type = 'chat'): Promise<unknown> =>
    page.waitFor(showing(text, type), `${JSON.stringify(text)} on screen`, 5_000, VIEW);
  const view = (page: CdpPage): Promise<Item[]> => page.evaluate<Item[]>(VIEW);
  const rooms = (page: CdpPage): Promise<Room[]> => page.evaluate<Room[]>(ROOMS);
  const openRoom = (page: CdpPage, stream: string): Promise<void> =>
    page.click(`#rooms button[data-stream="${stream}"]`);
  async function shot(page: CdpPage, name: string): Promise<void> {
    await page.waitFor(`document.getAnimations().length === 0`, 'animations to settle');
    await page.screenshot(joinPath(SHOTS, `${name}.png`));
  }
  function noProblems(page: CdpPage, expected?: RegExp): void {
    const errors = page.problems.filter((p) => p.level === 'error' && !(expected?.test(p.text) ?? false));
    expect(errors).toEqual([]);
  }

  it('rooms: join (and switch to it), unread counts while elsewhere, switch back, leave', async () => {
    const t = await server();
    const bob = await chatter(t, 'bob');
    const alice = await open(t.port);
    await joinAs(alice, 'alice');
    expect(await rooms(alice)).toEqual([
      { stream: 'lobby', current: true, unread: '' },
      { stream: '@alice', current: false, unread: '' },
    ]);

    // A bad room name is refused on the page, with the rule.
    await alice.type('#room-name', 'no spaces');
    const refused = `document.getElementById('room-error').textContent.startsWith('Room names are')`;
    await alice.waitFor(refused, 'the room-name error');
    await alice.evaluate(`document.getElementById('room-name').value = ''`);
    // "#Rust" is the room rust: the page joins it and shows it.
    await alice.type('#room-name', '#Rust');
    await alice.waitFor(titleIs('#rust'), 'the #rust view', 5_000, ROOMS);
    await sees(alice, 'alice joined #rust', 'join');
    expect((await rooms(alice)).map((r) => [r.stream, r.current])).toEqual([
      ['lobby', false],
      ['rust', true],
      ['@alice', false],
    ]);
    expect(await alice.evaluate(`document.getElementById('room-error').textContent`)).toBe('');

    request(bob, { type: 'join', room: 'rust' });
    await sees(alice, 'bob joined #rust', 'join');
    await alice.waitFor(`JSON.stringify(${ROSTER}) === '["alice","bob"]'`, "#rust's members", 5_000, ROSTER);
    expect(await alice.evaluate(`document.getElementById('roster-label').textContent`)).toBe('In #rust');
    request(bob, { type: 'chat', room: 'rust', message: 'hello rust', cid: 'b1' });
    await sees(alice, 'hello rust');

    // Elsewhere, #rust counts what arrives; private messages count on Private.
    await openRoom(alice, 'lobby');
    await alice.waitFor(titleIs('Lobby'), 'the lobby view');
    for (const text of ['one', 'two']) request(bob, { type: 'chat', room: 'rust', message: text });
    request(bob, { type: 'private', to: 'alice', message: 'psst' });
    await alice.waitFor(
      `JSON.stringify(${ROOMS}.map((r) => r.unread)) === '["","2","1"]'`,
      'unread counts on #rust and Private',
      5_000,
      ROOMS,
    );
    expect(chats(await view(alice))).toEqual([]); // the lobby shows none of it
    const label = await alice.evaluate(`document.querySelector('#rooms [data-stream="rust"]').textContent`);
    expect(label).toBe('#rust2 unread'); // "2 unread" for screen readers

    await openRoom(alice, 'rust');
    expect(chats(await view(alice))).toEqual(['hello rust', 'one', 'two']);
    expect((await rooms(alice)).map((r) => r.unread)).toEqual(['', '', '1']);
    await openRoom(alice, '@alice');
    await sees(alice, 'psst', 'private');
    expect((await rooms(alice)).map((r) => r.unread)).toEqual(['', '', '']);
    // Joining a room one is in just shows it.
    await alice.type('#room-name', 'rust');
    await alice.waitFor(titleIs('#rust'), 'back in #rust');

    // Leave: the room goes from the list, the lobby is shown, the others hear it.
    await alice.click('#leave-room');
    await alice.waitFor(`${ROOMS}.length === 2 && ${titleIs('Lobby')}`, 'the room gone', 5_000, ROOMS);
    await sees(alice, 'You left #rust', 'info');
    expect(await rooms(alice)).toEqual([
      { stream: 'lobby', current: true, unread: '' },
      { stream: '@alice', current: false, unread: '' },
    ]);
    const left = await next(bob, (m) => m.type === 'leave' && m.stream === 'rust');
    expect(left).toMatchObject({ message: 'alice left #rust' });

    // A refusal names what it refers to: the message stays on screen, marked, with the reason beside it.
    await alice.type('#text', '@nobody are you there?');
    await alice.waitFor(titleIs('Private'), 'the Private view');
    await sees(alice, '“are you there?” was not sent: nobody is not online', 'error');
    const refusedMessage = (await view(alice)).filter((i) => i.text === 'are you there?');
    expect(refusedMessage).toMatchObject([{ type: 'private', state: 'failed' }]);
    noProblems(alice);
    expect(await alice.evaluate('window.__csp')).toEqual([]);
  });

  it('history: earlier messages shown apart, "load earlier" pages back in order to the beginning', async () => {
    const t = await server({ HISTORY_ON_JOIN: '10', RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000' });
    const bob = await chatter(t, 'bob'); // offset 1: "bob joined the chat"
    const said = Array.from({ length: 130 }, (_, i) => `m${i + 1}`); // offsets 2..131
    for (const text of said) request(bob, { type: 'chat', message: text, cid: text });
    await next(bob, (m) => m.type === 'ack' && m.cid === 'm130');

    const alice = await open(t.port);
    await joinAs(alice, 'alice');
    // Earlier: head, history, fence; then live: alice's own join.
    const EARLIER = `${VIEW}.filter((i) => i.history === 'true').map((i) => i.text)`;
    await alice.waitFor(`${EARLIER}.length === 10`, 'the history on joining', 5_000, VIEW);
    const first = await view(alice);
    expect(first.map((i) => i.type)).toEqual(['earlier', ...Array(10).fill('chat'), 'fence', 'join']);
    expect(first.slice(1, 11).map((i) => [i.text, i.offset, i.history])).toEqual(
      said.slice(120).map((text, i) => [text, String(122 + i), 'true']),
    );
    expect(first[12]).toMatchObject({ type: 'join', text: 'alice joined the chat', offset: '132' });
    expect(first[12]!.history).toBeUndefined();

    // Each click loads the 50 before the oldest shown, above them, in order.
    const clicks: number[] = [];
    for (const expected of [60, 110, 131]) {
      await alice.click('#log .earlier button');
      await alice.waitFor(`${EARLIER}.length === ${expected}`, `${expected} earlier messages`, 5_000, EARLIER);
      clicks.push(expected);
    }
    expect(clicks).toEqual([60, 110, 131]);
    expect(await alice.evaluate(EARLIER)).toEqual(['bob joined the chat', ...said]);
    const offsets = (await view(alice)).filter((i) => i.history === 'true').map((i) => Number(i.offset));
    expect(offsets).toEqual(Array.from({ length: 131 }, (_, i) => i + 1));
    // The beginning: no button, and the head says so.
    const head = `[document.querySelector('#log .earlier button').hidden,
      document.querySelector('#log .earlier-label').textContent]`;
    expect(await alice.evaluate(head)).toEqual([true, 'Beginning of the lobby']);

    // Live messages keep coming below the fence.
    request(bob, { type: 'chat', message: 'live one' });
    await sees(alice, 'live one');
    const last = await view(alice);
    expect(last.slice(-3).map((i) => [i.type, i.text, i.history])).toEqual([
      ['fence', '', undefined],
      ['join', 'alice joined the chat', undefined],
      ['chat', 'live one', undefined],
    ]);
    noProblems(alice);
  });

  it('a socket cut with the server up: every message once, in order; what was typed offline is sent once', async () => {
    const t = await server({ RESUME_GRACE_MS: '60000' });
    const bob = await chatter(t, 'bob');
    // The page reaches the server through a proxy that can hold its traffic and cut it.
    const proxy = await startTcpProxy(t.port);
    proxies.push(proxy);
    const alice = await open(proxy.port);
    await joinAs(alice, 'alice');
    request(bob, { type: 'chat', message: 'before', cid: 'b0' });
    await sees(alice, 'before');

    // alice sends into a link that holds everything, while bob talks on.
    proxy.blackhole();
    await alice.type('#text', 'in flight');
    await alice.waitFor(`${PENDING}.join() === 'Sending…'`, 'the pending message', 5_000, VIEW);
    request(bob, { type: 'chat', message: 'held 1', cid: 'b1' });
    request(bob, { type: 'chat', message: 'held 2', cid: 'b2' });
    await next(bob, (m) => m.type === 'ack' && m.cid === 'b2');
    // What alice sent reaches the server, then the link is cut: alice never hears the ack, nor bob's lines.
    proxy.closeOnAccept(true); // and no reconnect gets through for now
    proxy.heal();
    proxy.cut();
    await alice.waitFor(stateIs('waiting'), 'the page to notice the cut', 10_000);

    // Offline: alice types; bob talks.
    await alice.type('#text', 'typed offline');
    await alice.waitFor(
      `${PENDING}.join() === 'Waiting for the connection…,Waiting for the connection…'`,
      'both messages waiting',
      5_000,
      VIEW,
    );
    request(bob, { type: 'chat', message: 'while away 1', cid: 'b3' });
    request(bob, { type: 'chat', message: 'while away 2', cid: 'b4' });
    await next(bob, (m) => m.type === 'ack' && m.cid === 'b4');

    // The link is back: the page resumes (nudged through its "online" handler instead of waiting out the backoff).
    proxy.closeOnAccept(false);
    await alice.waitFor(
      `(() => {
        if (${stateIs('waiting')}) window.dispatchEvent(new Event('online'));
        return ${stateIs('joined')};
      })()`,
      'the page to resume',
      20_000,
      `document.body.dataset.state`,
    );
    await t.logged((line: string) => line.startsWith('resumed name="alice"'));
    await alice.waitFor(`${PENDING}.length === 0`, 'the outbox to empty', 5_000, VIEW);
    request(bob, { type: 'chat', message: 'after', cid: 'b5' });
    await sees(alice, 'after');

    // What the page shows, live, is exactly what the lobby stored from alice's join on: every offset once, in order.
    const res = await fetch(`http://127.0.0.1:${t.port}/rooms/lobby/history?limit=100`);
    const lobby = ((await res.json()) as { messages: Msg[] }).messages;
    const stored = (await view(alice)).filter((i) => i.offset !== undefined && i.history === undefined);
    const joinedAt = lobby.findIndex((m) => m.type === 'join' && m.name === 'alice');
    expect(stored.map((i) => [Number(i.offset), i.text])).toEqual(
      lobby.slice(joinedAt).map((m) => [m.offset, m.message]),
    );
    const everything = ['before', 'held 1', 'held 2', 'in flight', 'while away 1', 'while away 2', 'typed offline'];
    everything.push('after');
    expect(chats(stored).sort()).toEqual(everything.sort());
    // Delivered once each, whichever way the first copy of "in flight" went.
    const fromAlice = all(bob).filter((m) => m.type === 'chat' && m.user === 'alice').map((m) => m.message);
    expect(fromAlice.sort()).toEqual(['in flight', 'typed offline']);
    // Nothing failed, and nobody saw alice leave: she came back within the grace period.
    expect((await view(alice)).filter((i) => i.state === 'failed' || i.type === 'error')).toEqual([]);
    expect(all(bob).filter((m) => m.type === 'leave')).toEqual([]);
    await sees(alice, 'Reconnected', 'local');
    noProblems(alice, /WebSocket connection to '.*\/ws' failed/);
  });

  it('a reloaded tab carries on: same name and rooms, what it had seen as history, its unsent messages', async () => {
    const t = await server();
    const bob = await chatter(t, 'bob');
    const proxy = await startTcpProxy(t.port);
    proxies.push(proxy);
    const alice = await open(proxy.port);
    await joinAs(alice, 'alice');
    await alice.type('#room-name', 'ops');
    await sees(alice, 'alice joined #ops', 'join');
    request(bob, { type: 'join', room: 'ops' });
    request(bob, { type: 'chat', room: 'ops', message: 'deploy at noon' });
    await sees(alice, 'deploy at noon');

    // A message sent into a link that holds it, then a reload (its request held too), then the link is back.
    proxy.blackhole();
    await alice.type('#text', 'sent before the reload');
    await alice.waitFor(`${PENDING}.length === 1`, 'the pending message');
    await alice.send('Page.reload');
    proxy.heal();
    await alice.waitFor(stateIs('joined'), 'the reloaded tab to join', 10_000, VIEW);
    expect((await rooms(alice)).map((r) => [r.stream, r.current])).toEqual([
      ['lobby', false],
      ['ops', true],
      ['@alice', false],
    ]);
    // What it had seen comes back as earlier messages; what it had not got acknowledged is sent again.
    await alice.waitFor(
      `${VIEW}.some((i) => i.history === 'true' && i.text === 'deploy at noon')`,
      'the earlier messages of #ops',
      5_000,
      VIEW,
    );
    await sees(alice, 'sent before the reload');
    await alice.waitFor(`${PENDING}.length === 0`, 'the outbox to empty', 5_000, VIEW);
    request(bob, { type: 'chat', room: 'ops', message: 'after your reload' });
    await sees(alice, 'after your reload');
    const texts = chats(await view(alice));
    for (const text of ['deploy at noon', 'sent before the reload', 'after your reload']) {
      expect(texts.filter((x) => x === text)).toHaveLength(1);
    }
    const fromAlice = all(bob).filter((m) => m.type === 'chat' && m.user === 'alice').map((m) => m.message);
    expect(fromAlice).toEqual(['sent before the reload']);
    noProblems(alice);
  });

  it('a duplicated tab takes the session over; the first one waits to be asked back, no ping-pong', async () => {
    const t = await server();
    const first = await open(t.port);
    await joinAs(first, 'alice');
    // A duplicated tab starts with a copy of its sessionStorage: the same name, token and positions.
    const state = await first.evaluate<string>(`sessionStorage.getItem('wschat.session')`);
    const second = await open(t.port);
    await second.evaluate(`sessionStorage.setItem('wschat.session', ${JSON.stringify(state)})`);
    await second.send('Page.reload');
    await second.waitFor(stateIs('joined'), 'the copy to take the session', 10_000, VIEW);
    const BANNER = `[document.getElementById('banner-text').textContent, document.getElementById('retry').textContent]`;
    await first.waitFor(stateIs('replaced'), 'the first tab to step aside', 5_000, BANNER);
    expect(await first.evaluate(BANNER)).toEqual(['This chat is now open in another tab.', 'Use it here']);
    await t.logged((line: string) => line.startsWith('resumed name="alice" replaced=true'));

    // Asked back, it takes the session again; now the copy steps aside.
    await first.click('#retry');
    await first.waitFor(stateIs('joined'), 'the first tab back', 5_000, BANNER);
    await second.waitFor(stateIs('replaced'), 'the copy to step aside', 5_000, BANNER);
    await first.type('#text', 'back here');
    await sees(first, 'back here');
    expect(t.log.filter((line) => line.startsWith('resumed name="alice"'))).toHaveLength(2);
    noProblems(first);
  });

  it('screenshots: rooms, history and unread counts on desktop and phone, light and dark', async () => {
    const t = await server({ HISTORY_ON_JOIN: '4' });
    const bob = await chatter(t, 'bob');
    const carol = await chatter(t, 'carol');
    for (const [peer, text] of [
      [bob, 'Morning! Standup in 10?'],
      [carol, 'Yes — I will share the release notes.'],
      [bob, 'Great, the build is green again.'],
      [carol, 'Coffee first ☕'],
      [bob, 'Who is reviewing the websocket change?'],
      [carol, 'Me, after lunch.'],
    ] as const) {
      request(peer, { type: 'chat', message: text, cid: text });
      await next(peer, (m) => m.type === 'ack' && m.cid === text); // one after the other, as people talk
    }
    for (const peer of [bob, carol]) request(peer, { type: 'join', room: 'design' });
    request(bob, { type: 'join', room: 'release' });

    const alice = await open(t.port);
    await joinAs(alice, 'alice');
    for (const room of ['design', 'release']) {
      await alice.type('#room-name', room);
      await sees(alice, `alice joined #${room}`, 'join');
    }
    await openRoom(alice, 'lobby');
    request(bob, { type: 'chat', room: 'design', message: 'New mock-ups are up.' });
    request(carol, { type: 'chat', room: 'design', message: 'Looks great on phones too.' });
    request(bob, { type: 'private', to: 'alice', message: 'Can you look at my PR?' });
    request(bob, { type: 'chat', message: 'Welcome alice!' });
    await sees(alice, 'Welcome alice!');
    await alice.waitFor(`${ROOMS}.filter((r) => r.unread !== '').length === 2`, 'unread counts', 5_000, ROOMS);
    await alice.type('#text', 'Thanks! Catching up on the history now.');
    await sees(alice, 'Thanks! Catching up on the history now.');

    await shot(alice, 'rooms-desktop');
    await alice.colorScheme('dark');
    await shot(alice, 'rooms-desktop-dark');
    await alice.colorScheme('light');
    await alice.viewport(390, 844, true, 2);
    await alice.evaluate(`document.getElementById('log').scrollTop = 0`);
    await shot(alice, 'rooms-phone');
    await openRoom(alice, 'design');
    await alice.colorScheme('dark');
    await shot(alice, 'rooms-phone-dark');
    await alice.colorScheme('light');
    await alice.viewport(1280, 800);
    await openRoom(alice, '@alice');
    await shot(alice, 'rooms-private');
    noProblems(alice);
  });
});
