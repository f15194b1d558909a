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
import { deflate, frameHeads, inflate, Tap } from './helpers/deflate';

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
    // The server's text frames, read back: the join notice and the chat message (JSON over 64 bytes) go
    // compressed (RSV1); a frame goes plain only when it is under 32 bytes or deflating it would not make
    // it smaller (the welcome carries a random token, which compresses badly).
    const fromServer = frameHeads(frames).filter((f) => f.opcode === 1);
    const texts = fromServer.map((f) => (f.rsv1 ? inflate(f.payload) : f.payload).toString('utf8'));
    const rsv1Of = (part: string): boolean[] =>
      fromServer.filter((_, i) => texts[i]!.includes(part)).map((f) => f.rsv1);
    expect(rsv1Of('"type":"join"')).toEqual([true]);
    expect(rsv1Of(JSON.stringify(text))).toEqual([true]);
    for (const f of fromServer.filter((f) => !f.rsv1)) {
      if (f.length >= 32) expect(deflate(f.payload).length).toBeGreaterThanOrEqual(f.length);
    }
    // Chromium's frames: the name, then the message; it compresses them (RSV1), and the server inflated them.
    const fromClient = frameHeads(request.subarray(requestHead.length));
    expect(fromClient.map((f) => [f.opcode, f.rsv1])).toEqual([
      [1, true],
      [1, true],
    ]);
    await page.close();
  });
});
