/**
 * The chat page (GET /) in a real browser: headless Chromium, driven over the DevTools protocol by
 * our own WebSocket client (test/helpers/cdp.ts). Tabs join, talk and leave; the tests read what each
 * tab's DOM shows, waiting on DOM changes, never sleeping. Each test starts its own server and opens
 * its own tabs; only the browser is shared. After each test, none of its tabs may have logged an
 * error, an exception or a CSP violation.
 *
 * Without a Chromium binary the file is skipped locally; in CI (CI set) a missing browser fails it.
 * Screenshots go to test-results/screenshots/ (not committed).
 */
import { mkdirSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect, it, onTestFinished } from 'vitest';
import { startApp, type TestApp } from './helpers/app';
import { CdpPage, type PageProblem } from './helpers/cdp';
import { describeWithChromium } from './helpers/chromium';
import { frameHeads, Tap } from './helpers/deflate';


const SHOTS = fileURLToPath(new URL('../test-results/screenshots/', import.meta.url));
const XSS = '<img src=x onerror="window.__pwned=1"><b>bold</b>';

// ---- what a tab shows, read from its DOM ----
const LOG =
  `[...document.querySelectorAll('#log > li')].map((li) => ({ ...li.dataset, ` +
  `meta: li.querySelector('.meta')?.textContent ?? '', text: li.querySelector('.text')?.textContent ?? '' }))`;
const ROSTER = `[...document.querySelectorAll('#roster [data-name]')].map((e) => e.dataset.name)`;
const hasText = (text: string, type?: string): string =>
  `[...document.querySelectorAll('#log > li${type ? `[data-type="${type}"]` : ''} .text')]` +
  `.some((e) => e.textContent === ${JSON.stringify(text)})`;
const rosterIs = (names: string[]): string => `JSON.stringify(${ROSTER}) === ${JSON.stringify(JSON.stringify(names))}`;
const STATE = 'document.body.dataset.state';
const BANNER = `document.getElementById('banner-text').textContent`;

interface LogEntry {
  type?: string;
  user?: string;
  own?: string;
  direction?: string;
  to?: string;
  meta: string;
  text: string;
}

describeWithChromium('the chat page in a real browser', (browser) => {
  /** The tabs the current test opened. */
  let pages: CdpPage[] = [];
  /** Problems a test expects (matched against the text), so the check after it lets them pass. */
  let expected: RegExp[] = [];

  beforeAll(() => mkdirSync(SHOTS, { recursive: true }));

  afterEach(async () => {
    const opened = pages;
    const allowed = expected;
    pages = [];
    expected = [];
    const problems: (PageProblem & { tab: number })[] = opened.flatMap((p, tab) =>
      p.problems.map((x) => ({ ...x, tab })),
    );
    const warnings = problems.filter((p) => p.level === 'warning');
    if (warnings.length > 0) console.warn('browser warnings:', warnings); // shown, not fatal
    const csp = await Promise.all(opened.filter((p) => !p.closed).map((p) => p.evaluate('window.__csp')));
    await Promise.all(opened.filter((p) => !p.closed).map((p) => p.close()));
    expect(problems.filter((p) => p.level === 'error' && !allowed.some((re) => re.test(p.text)))).toEqual([]);
    expect(csp.flat()).toEqual([]);
  });

  /** A new tab showing the chat page of `t`. */
  async function open(t: TestApp): Promise<CdpPage> {
    const page = await CdpPage.open(browser.cdp);
    pages.push(page);
    await page.goto(`http://127.0.0.1:${t.port}/`);
    return page;
  }

  async function join(page: CdpPage, name: string): Promise<void> {
    await page.type('#name', name);
    const joined = `${STATE} === 'joined' && ${ROSTER}.includes(${JSON.stringify(name)})`;
    await page.waitFor(joined, `${name} joined`, 5_000, LOG);
  }

  /** Opens a tab per name and joins them in order; each sees all of them in its roster. */
  async function tabs(t: TestApp, ...names: string[]): Promise<CdpPage[]> {
    const opened = await Promise.all(names.map(() => open(t)));
    for (const [i, page] of opened.entries()) await join(page, names[i]!);
    const full = `${ROSTER}.length === ${names.length}`;
    for (const page of opened) await page.waitFor(full, 'the full roster', 5_000, ROSTER);
    return opened;
  }

  const say = (page: CdpPage, text: string): Promise<void> => page.type('#text', text);
  const sees = (page: CdpPage, text: string, what: string, type?: string): Promise<unknown> =>
    page.waitFor(hasText(text, type), what, 5_000, LOG);
  const log = (page: CdpPage): Promise<LogEntry[]> => page.evaluate<LogEntry[]>(LOG);
  async function shot(page: CdpPage, name: string): Promise<void> {
    await page.animationsDone(); // new messages fade in
    await page.screenshot(joinPath(SHOTS, `${name}.png`));
  }

  it('serves the page as HTML with a strict Content-Security-Policy', async () => {
    const t = await startApp();
    const res = await fetch(`http://127.0.0.1:${t.port}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
    expect(csp).toMatch(/style-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(await res.text()).toContain('<ol class="log" id="log" role="log" aria-live="polite"');
  });

  it('three people join; the roster lists them and a broadcast reaches every tab', async () => {
    const t = await startApp();
    const [alice, bob, carol] = await Promise.all([open(t), open(t), open(t)]);
    await shot(alice!, 'join-form');
    await join(alice!, 'alice');
    await join(bob!, 'bob');
    await join(carol!, 'carol');
    // Everyone's roster: themselves first, then the others in join order.
    await alice!.waitFor(rosterIs(['alice', 'bob', 'carol']), "alice's roster", 5_000, ROSTER);
    await bob!.waitFor(rosterIs(['bob', 'alice', 'carol']), "bob's roster", 5_000, ROSTER);
    await carol!.waitFor(rosterIs(['carol', 'alice', 'bob']), "carol's roster", 5_000, ROSTER);
    expect(await alice!.evaluate('document.activeElement.id')).toBe('text'); // focus moved to the message box

    await say(alice!, 'hello from alice');
    for (const page of [alice!, bob!, carol!]) await sees(page, 'hello from alice', 'the broadcast', 'chat');
    const [mine] = (await log(alice!)).filter((m) => m.text === 'hello from alice');
    expect(mine).toMatchObject({ type: 'chat', user: 'alice', own: 'true' });
    expect(mine!.meta).toMatch(/^You\d\d:\d\d$/);
    const [theirs] = (await log(bob!)).filter((m) => m.text === 'hello from alice');
    expect(theirs).toMatchObject({ type: 'chat', user: 'alice' });
    expect(theirs!.own).toBeUndefined();
    expect(theirs!.meta).toMatch(/^alice\d\d:\d\d$/);
    // The join notices are system notices, not chat messages.
    expect((await log(alice!)).filter((m) => m.type === 'join').map((m) => m.text)).toEqual([
      'alice joined the chat',
      'bob joined the chat',
      'carol joined the chat',
    ]);
  });

  it('a private message reaches only its addressee', async () => {
    const t = await startApp();
    const [alice, bob, carol] = await tabs(t, 'alice', 'bob', 'carol');
    // Clicking bob in alice's roster starts "@bob ".
    await alice!.click('#roster button[data-name="bob"]');
    const box = `[document.activeElement.id, document.getElementById('text').value]`;
    expect(await alice!.evaluate(box)).toEqual(['text', '@bob ']);
    await say(alice!, 'secret');

    await bob!.click('#rooms button[data-stream="@bob"]'); // private messages have a view of their own
    await sees(bob!, 'secret', "bob's private message", 'private');
    const [received] = (await log(bob!)).filter((m) => m.text === 'secret');
    expect(received).toMatchObject({ type: 'private', direction: 'in', user: 'alice' });
    expect(received!.meta).toMatch(/^Privatefromalice\d\d:\d\d$/);

    // alice sees her own private message once, marked "to bob" (the server sends it only to bob).
    const sent = (await log(alice!)).filter((m) => m.text.includes('secret'));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ type: 'private', direction: 'out', to: 'bob', own: 'true' });
    expect(sent[0]!.meta).toMatch(/^Privatetobob\d\d:\d\d$/);

    // carol: once a later broadcast has arrived, the private message would have come before it.
    await bob!.click('#rooms button[data-stream="lobby"]');
    await say(bob!, 'marker after the private one');
    await sees(carol!, 'marker after the private one', "bob's marker on carol's tab");
    expect(await carol!.evaluate<string>(`document.getElementById('log').textContent`)).not.toContain('secret');

    // Clicking a name on a message works too.
    await bob!.click('#rooms button[data-stream="@bob"]');
    await bob!.evaluate(`document.getElementById('text').value = ''`);
    await bob!.click('#log li[data-direction="in"] button.who');
    expect(await bob!.evaluate(`document.getElementById('text').value`)).toBe('@alice ');
  });

  it('HTML typed into a message is shown as text and runs nothing', async () => {
    const t = await startApp();
    const [alice, bob] = await tabs(t, 'alice', 'bob');
    await say(alice!, XSS);
    for (const page of [alice!, bob!]) {
      await sees(page, XSS, 'the HTML message as literal text', 'chat');
      expect(await page.evaluate(`document.querySelectorAll('#log img, #log b').length`)).toBe(0);
      expect(await page.evaluate(`document.querySelectorAll('img').length`)).toBe(0);
      expect(await page.evaluate(`typeof window.__pwned`)).toBe('undefined');
    }
  });

  it("sends a message of exactly the server's MAX_MESSAGE_BYTES (UTF-8 bytes) and refuses one byte more", async () => {
    // alice's tab goes through a tap, uncompressed, so the size of her frames can be read on the wire.
    const t = await startApp({ MAX_MESSAGE_BYTES: '1000', COMPRESSION: 'off' });
    const tap = await Tap.start(t.port);
    onTestFinished(() => tap.close());
    const [bob] = await tabs(t, 'bob');
    const alice = await CdpPage.open(browser.cdp);
    pages.push(alice);
    await alice.goto(`http://127.0.0.1:${tap.port}/`);
    await join(alice, 'alice');
    // The message is JSON around the text: the page counts the text against what the envelope leaves.
    // (The counter shows once the text passes three quarters of what the envelope leaves.)
    await alice.type('#text', 'x'.repeat(900), false);
    const counter = `document.getElementById('bytes').textContent`;
    await alice.waitFor(`/^900 \\/ \\d+ bytes$/.test(${counter})`, 'the byte counter');
    const room = Number(/\/ (\d+) bytes/.exec(await alice.evaluate<string>(counter))![1]);
    const exact = 'é'.repeat(Math.floor(room / 2)) + (room % 2 === 1 ? 'a' : ''); // `room` UTF-8 bytes
    await alice.evaluate(`document.getElementById('text').value = ''`);
    await alice.type('#text', exact, false);
    await alice.waitFor(`${counter} === '${room} / ${room} bytes'`, 'the byte counter');
    await alice.press('Enter');
    await sees(bob!, exact, 'the message of exactly the limit', 'chat');
    // On the wire: alice's largest text frame is exactly MAX_MESSAGE_BYTES.
    const sizes = (): number[] =>
      tap.connections.flatMap((c) => {
        const fromAlice = Buffer.concat(c.fromClient);
        if (!fromAlice.toString('latin1', 0, 8).startsWith('GET /ws ')) return []; // the page, /clients
        const frames = frameHeads(fromAlice.subarray(fromAlice.indexOf('\r\n\r\n') + 4));
        return frames.filter((f) => f.opcode === 1).map((f) => f.length);
      });
    expect(Math.max(...sizes())).toBe(1000);

    const over = exact + 'a'; // one byte more
    await alice.type('#text', over, false);
    await alice.waitFor(`${counter} === '${room + 1} / ${room} bytes'`, 'the byte counter');
    await alice.press('Enter');
    const notice = `[...document.querySelectorAll('#log > li[data-type="error"] .text')]` +
      `.some((e) => e.textContent.startsWith('Message too long: ${room + 1} bytes (the limit is ${room} bytes)'))`;
    await alice.waitFor(notice, 'the too-long notice', 5_000, LOG);
    expect(await alice.evaluate(`document.getElementById('text').value`)).toBe(over); // kept for editing
    expect(await alice.evaluate(STATE)).toBe('joined');
    // Nothing went out: a later message arrives, and nothing before it.
    await alice.evaluate(`document.getElementById('text').value = ''`);
    await say(alice, 'after the long one');
    await sees(bob!, 'after the long one', "alice's next message");
    const chats = (await log(bob!)).filter((m) => m.type === 'chat').map((m) => m.text);
    expect(chats).toEqual([exact, 'after the long one']);
    expect(Math.max(...sizes())).toBe(1000);
  });

  it('a refused name (reserved, or taken) returns to the name form with the reason, without retrying', async () => {
    const t = await startApp();
    const [alice] = await tabs(t, 'alice');
    const dave = await open(t);
    const joinError = `document.getElementById('join-error').textContent`;
    await dave.type('#name', 'System');
    await dave.waitFor(`${joinError} === 'the name System is reserved'`, 'the reserved-name refusal', 5_000, joinError);
    await dave.evaluate(`document.getElementById('name').value = ''`);
    await dave.type('#name', 'alice');
    await dave.waitFor(
      `${joinError} === 'the name alice is taken: choose another' && ${STATE} === 'idle'`,
      'the name-taken refusal',
      5_000,
      `[${STATE}, ${joinError}]`,
    );
    const view = await dave.evaluate(
      `({ join: !document.getElementById('join-view').hidden, chat: !document.getElementById('chat-view').hidden, ` +
        `banner: !document.getElementById('banner').hidden, focus: document.activeElement.id, ` +
        `name: document.getElementById('name').value })`,
    );
    expect(view).toEqual({ join: true, chat: false, banner: false, focus: 'name', name: 'alice' });
    await shot(dave, 'join-refused');
    expect(await alice!.evaluate(ROSTER)).toEqual(['alice']);
    expect((await t.roster()).clients.map((c) => c.name)).toEqual(['alice']);
  });

  it('screenshots: desktop, phone width, dark mode', async () => {
    const t = await startApp();
    const [alice, bob, carol] = await tabs(t, 'alice', 'bob', 'carol');
    await say(alice!, 'hello from alice');
    await say(bob!, 'Anyone up for lunch at 12:30?');
    await say(carol!, 'Sounds good — the usual place?');
    await sees(alice!, 'Sounds good — the usual place?', "carol's reply");
    await sees(bob!, 'Sounds good — the usual place?', "carol's reply");
    await shot(bob!, 'desktop');
    await alice!.viewport(390, 844, true, 2);
    await alice!.evaluate(`document.getElementById('log').scrollTop = 1e9`);
    await shot(alice!, 'phone');
    await bob!.colorScheme('dark');
    expect(await bob!.evaluate(`matchMedia('(prefers-color-scheme: dark)').matches`)).toBe(true);
    await shot(bob!, 'desktop-dark');
    await alice!.colorScheme('dark');
    await shot(alice!, 'phone-dark');
  });

  it('the roster follows a tab closing', async () => {
    const t = await startApp();
    const [alice, bob, carol] = await tabs(t, 'alice', 'bob', 'carol');
    await carol!.close();
    await alice!.waitFor(rosterIs(['alice', 'bob']), "carol leaving alice's roster", 5_000, ROSTER);
    await bob!.waitFor(rosterIs(['bob', 'alice']), "carol leaving bob's roster", 5_000, ROSTER);
    await sees(alice!, 'carol left the chat', 'the leave notice', 'leave');
    expect(await alice!.evaluate(`document.getElementById('count').textContent`)).toBe('2');
  });

  /** Shuts `t` down (every client gets 1001) and waits until each page shows its reconnect banner. */
  async function restartServer(t: TestApp, pagesToWatch: CdpPage[], env: Record<string, string>): Promise<TestApp> {
    // While the server is down, the browser logs the refused connection attempts: expected here.
    expected.push(/WebSocket connection to '.*\/ws' failed|ERR_CONNECTION_REFUSED/);
    await t.close();
    const banner =
      `/^Disconnected — reconnecting in \\d+s…$/.test(${BANNER}) && !document.getElementById('banner').hidden`;
    for (const page of pagesToWatch) await page.waitFor(banner, 'the disconnect banner', 5_000, BANNER);
    // The same address, so the pages' next attempt finds it.
    return startApp({ PORT: String(t.port), ...env });
  }

  it('reconnects with the same name after a server restart (close 1001)', async () => {
    const t = await startApp();
    const [alice, bob] = await tabs(t, 'alice', 'bob');
    await restartServer(t, [alice!, bob!], {});
    await shot(alice!, 'reconnecting');
    for (const page of [alice!, bob!]) {
      const rejoined = `${STATE} === 'joined' && document.getElementById('banner').hidden`;
      await page.waitFor(rejoined, 'the re-join', 20_000, `[${STATE}, ${BANNER}]`);
      await sees(page, 'Reconnected', 'the reconnected notice', 'local');
    }
    await alice!.waitFor(rosterIs(['alice', 'bob']), "alice's roster after the restart", 5_000, ROSTER);
    await say(alice!, 'back again');
    await sees(bob!, 'back again', 'a message after the restart');
  });

  it('a message the server finds too big closes with 1009: the page says so and comes back', async () => {
    const t = await startApp();
    const [alice, bob] = await tabs(t, 'alice', 'bob');
    // The server comes back with a smaller limit than the loaded page knows (it checks 4096).
    await restartServer(t, [alice!, bob!], { MAX_MESSAGE_BYTES: '1000' });
    const rejoined = `${STATE} === 'joined' && document.getElementById('banner').hidden`;
    await alice!.waitFor(rejoined, 'the re-join', 20_000, LOG);
    await alice!.evaluate(
      `document.getElementById('text').value = 'x'.repeat(2000); document.getElementById('send-form').requestSubmit()`,
    );
    await sees(alice!, 'The server closed the connection: message too big.', 'the 1009 notice', 'error');
    const local = `document.querySelectorAll('#log > li[data-type="local"]').length === 2`;
    await alice!.waitFor(`${STATE} === 'joined' && ${local}`, 'the re-join after 1009', 20_000, LOG);
    await bob!.waitFor(rosterIs(['bob', 'alice']), "bob's roster after alice's return", 5_000, ROSTER);
  });

  it('shows the server refusing a flood, and stays joined', async () => {
    const t = await startApp({ RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '3' });
    const [bob] = await tabs(t, 'bob');
    // Burst 3: of five messages sent at once, at least one is refused (a refill takes a second).
    await bob!.evaluate(
      `for (let i = 0; i < 5; i++) { document.getElementById('text').value = 'burst ' + i; ` +
        `document.getElementById('send-form').requestSubmit(); }`,
    );
    await sees(bob!, 'rate limit exceeded: slow down', 'the rate-limit notice', 'error');
    expect(await bob!.evaluate(STATE)).toBe('joined');
  });
});
