/**
 * The chat page in headless Chromium over TLS: the page loads from https:// and its WebSocket connects
 * over wss:// to the same port. The browser trusts exactly our test certificate: its public key is
 * pinned with --ignore-certificate-errors-spki-list (every other check still applies), and a page from
 * a second certificate, not pinned, is refused.
 *
 * Without Chromium or openssl the file is skipped locally; in CI (CI set) a missing one fails it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { createApp, type App } from '../src/http/app';
import { CdpClient, CdpPage } from './helpers/cdp';
import { findChromium, launchChromium, type Chromium } from './helpers/chromium';
import { findOpenssl, makeCertificate, type TestCertificate } from './helpers/openssl';

const chromiumBinary = findChromium();
const openssl = findOpenssl();
const missing = chromiumBinary === undefined ? 'chromium' : openssl === undefined ? 'openssl' : undefined;

if (missing !== undefined && process.env.CI) {
  describe('the chat page over https and wss', () => {
    it(`has ${missing}`, () => {
      throw new Error(`CI needs ${missing} for the browser TLS test: apt-get install ${missing}`);
    });
  });
} else if (missing !== undefined) {
  console.warn(`test/tls-browser.test.ts SKIPPED: no ${missing} found (apt-get install ${missing})`);
}

const ROSTER = `JSON.stringify([...document.querySelectorAll('#roster [data-name]')].map((e) => e.dataset.name))`;

describe.skipIf(missing !== undefined)('the chat page over https and wss', () => {
  let dir = '';
  let pinned: TestCertificate;
  let other: TestCertificate;
  let app: App | undefined;
  let otherApp: App | undefined;
  let chromium: Chromium | undefined;
  let cdp: CdpClient | undefined;
  const pages: CdpPage[] = [];

  const serve = async (c: TestCertificate): Promise<{ app: App; port: number }> => {
    const env = { PORT: '0', HOST: '127.0.0.1', TLS_CERT_FILE: c.certFile, TLS_KEY_FILE: c.keyFile };
    const a = createApp(loadConfig(env));
    return { app: a, port: (await a.listen()).port };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wschat-tls-browser-'));
    pinned = makeCertificate(openssl!, dir, 'pinned');
    other = makeCertificate(openssl!, dir, 'other');
    chromium = await launchChromium(chromiumBinary!, 15_000, [`--ignore-certificate-errors-spki-list=${pinned.spki}`]);
    cdp = await CdpClient.connect(chromium.wsUrl);
  });

  afterAll(async () => {
    for (const page of pages) await page.close().catch(() => {});
    await cdp?.close().catch(() => {});
    await chromium?.close();
    await app?.shutdown();
    await otherApp?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads the page over https; two tabs join over wss and see each other', async () => {
    const served = await serve(pinned);
    app = served.app;
    const url = `https://127.0.0.1:${served.port}/`;
    const [alice, bob] = [await CdpPage.open(cdp!), await CdpPage.open(cdp!)];
    pages.push(alice, bob);
    await alice.goto(url);
    await bob.goto(url);
    expect(await alice.evaluate('location.protocol')).toBe('https:');
    await alice.type('#name', 'alice');
    await bob.type('#name', 'bob');
    for (const page of [alice, bob]) {
      await page.waitFor(`${ROSTER} === '["alice","bob"]' || ${ROSTER} === '["bob","alice"]'`, 'both in the roster');
    }
    expect(await alice.evaluate(`document.body.dataset.state`)).toBe('joined');
    // The page opened its WebSocket over wss://, same origin (the Origin check let it in).
    expect(alice.problems.filter((p) => p.level === 'error')).toEqual([]);
  });

  it('a certificate that is not pinned is refused: the page does not load', async () => {
    const served = await serve(other);
    otherApp = served.app;
    const page = await CdpPage.open(cdp!);
    pages.push(page);
    const url = `https://127.0.0.1:${served.port}/`;
    const { errorText } = await page.send<{ errorText?: string }>('Page.navigate', { url });
    expect(errorText).toBe('net::ERR_CERT_AUTHORITY_INVALID');
  });
});
