/**
 * permessage-deflate with a real browser (RFC 7692): headless Chromium opens the chat page through a
 * TCP tap, so the test sees the bytes on the wire: the extension in our 101 answer, RSV1 on the
 * server's chat frames, and Chromium's own compressed frames, inflated by the server (the page shows
 * the message). Skipped without a Chromium binary, except in CI (as test/browser.test.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { createApp, type App } from '../src/http/app';
import { CdpPage } from './helpers/cdp';
import { describeWithChromium } from './helpers/chromium';
import { frameHeads, Tap } from './helpers/deflate';

describeWithChromium('permessage-deflate with headless Chromium', (browser) => {
  let app: App | undefined;
  let tap: Awaited<ReturnType<typeof Tap.start>> | undefined;

  beforeAll(async () => {
    app = createApp(loadConfig({ PORT: '0', HOST: '127.0.0.1' }));
    tap = await Tap.start((await app.listen()).port);
  });

  afterAll(async () => {
    await tap?.close();
    await app?.shutdown();
  });

  it('negotiates it with the page, and frames are compressed on the wire both ways', async () => {
    const page = await CdpPage.open(browser.cdp);
    await page.goto(`http://127.0.0.1:${tap!.port}/`);
    await page.type('#name', 'alice');
    await page.waitFor(`document.body.dataset.state === 'joined'`, 'alice joined');
    const text = 'Hello from Chromium: this chat message is long enough to be compressed, compressed, compressed.';
    await page.type('#text', text);
    const shown = `[...document.querySelectorAll('#log > li[data-type="chat"] .text')]`;
    await page.waitFor(
      `${shown}.some((e) => e.textContent === ${JSON.stringify(text)})`,
      'the message back from the server',
    );

    const ws = tap!.connections.findIndex((c) => Buffer.concat(c.fromClient).toString('latin1').startsWith('GET /ws '));
    expect(ws).toBeGreaterThanOrEqual(0);
    const request = Buffer.concat(tap!.connections[ws]!.fromClient);
    const requestHead = request.subarray(0, request.indexOf('\r\n\r\n') + 4).toString('latin1');
    expect(requestHead).toMatch(/\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n/);
    const { head, frames } = tap!.serverSide(ws);
    expect(head).toContain(
      '\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n',
    );
    // The server's frames: the join notice and the chat message, both JSON over 64 bytes: RSV1 set.
    const fromServer = frameHeads(frames);
    expect(fromServer.length).toBeGreaterThanOrEqual(2);
    expect(fromServer.filter((f) => f.opcode === 1).every((f) => f.rsv1)).toBe(true);
    // Chromium's frames: the name, then the message; it compresses them (RSV1), and the server inflated them.
    const fromClient = frameHeads(request.subarray(requestHead.length));
    expect(fromClient.map((f) => [f.opcode, f.rsv1])).toEqual([
      [1, true],
      [1, true],
    ]);
    await page.close();
  });
});
