/**
 * The Origin policy on /ws (RFC 6455 §10.2, §4.2.2): a page from another origin is refused with 403;
 * same-origin pages, clients without an Origin and the origins in ALLOWED_ORIGINS get in. /echo, the
 * demo, answers anyone.
 */
import { describe, expect, it } from 'vitest';
import { connect, HandshakeError } from '../src/websocket';
import { startApp } from './helpers/app';
import { ChatPeer, joined } from './helpers/chat';
import { expectAccepted, expectRefusal } from './helpers/raw-peer';
import { upgradeRequest } from './helpers/wire';

/** Our own client's view of a refusal. */
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

describe('by default', () => {
  it('/ws refuses a foreign Origin with 403 and accepts same-origin requests and requests without one', async () => {
    const { port } = await startApp();
    const response = await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: 'http://evil.example' }), 403);
    expect(response.statusLine).toBe('HTTP/1.1 403 Forbidden');
    expect(response.body.toString()).toBe('origin not allowed\n');
    await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: 'null' }), 403);
    // Same host, other port or scheme: a different origin.
    await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: `http://127.0.0.1:${port + 1}` }), 403);
    await expectRefusal(port, upgradeRequest(port, '/ws', { Origin: `ftp://127.0.0.1:${port}` }), 403);
    await expectAccepted(port, '/ws', { Origin: `http://127.0.0.1:${port}` });
    await expectAccepted(port, '/ws', { Origin: `HTTP://127.0.0.1:${port}` });
    await expectAccepted(port, '/ws', { Origin: null });
  });

  it('/echo answers any Origin', async () => {
    const { port } = await startApp();
    await expectAccepted(port, '/echo', { Origin: 'http://evil.example' });
  });

  it('a same-origin page and a tool without Origin can chat; the refusal is logged', async () => {
    const t = await startApp();
    const refused = await refusal(t.url(), 'http://evil.example');
    expect([refused.status, refused.body]).toEqual([403, 'origin not allowed\n']);
    const page = await ChatPeer.open(t.port, { origin: `http://127.0.0.1:${t.port}` });
    page.send('page');
    await page.next(joined('page'));
    const tool = await ChatPeer.join(t.port, 'tool');
    await page.next(joined('tool'));
    const [line] = await t.logged(/^refused peer=/);
    expect(line).toMatch(/^refused peer=127\.0\.0\.1:\d+ path=/);
    const fields = ' path=/ws origin="http://evil.example" status=403 reason="origin not allowed"';
    expect(line!.slice(line!.indexOf(' path='))).toBe(fields);
    await tool.close();
  });
});

describe('ALLOWED_ORIGINS', () => {
  it('admits the origins listed, and only those', async () => {
    const t = await startApp({ ALLOWED_ORIGINS: 'https://chat.example.com, https://other.example:8443' });
    for (const origin of ['https://chat.example.com', 'https://other.example:8443']) {
      await expectAccepted(t.port, '/ws', { Origin: origin });
      const c = await ChatPeer.open(t.port, { origin });
      c.send(`u${origin.length}`);
      await c.next('join');
      await c.close();
    }
    await expectAccepted(t.port, '/ws', { Origin: `http://127.0.0.1:${t.port}` });
    expect((await refusal(t.url(), 'https://chat.example.com.evil.example')).status).toBe(403);
    expect((await refusal(t.url(), 'http://chat.example.com')).status).toBe(403);
    expect((await refusal(t.url(), 'https://other.example')).status).toBe(403);
    expect((await refusal(t.url(), 'null')).status).toBe(403);
  });

  it("'*' admits every origin", async () => {
    const { port } = await startApp({ ALLOWED_ORIGINS: '*' });
    await expectAccepted(port, '/ws', { Origin: 'http://evil.example' });
    await expectAccepted(port, '/ws', { Origin: 'null' });
  });
});
