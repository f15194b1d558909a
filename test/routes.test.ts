/**
 * The plain HTTP routes (the lesson's r.GET lines and the homework): GET /clients lists who is online,
 * GET /healthz, GET / serves the page, and unknown paths and methods get 404 and 405.
 */
import { describe, expect, it } from 'vitest';
import { httpRequest, startApp } from './helpers/app';
import { ChatPeer, joinAll, left } from './helpers/chat';

describe('GET /clients', () => {
  it('lists who is online as JSON, in join order, and follows leaves', async () => {
    const t = await startApp();
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
    const t = await startApp();
    await ChatPeer.join(t.port, 'alice');
    await ChatPeer.open(t.port);
    await t.logged((l) => l.startsWith('connect '), 2);
    expect((await t.roster()).clients.map((c) => c.name)).toEqual(['alice']);
  });
});

describe('plain HTTP routes', () => {
  it('GET /healthz is 200', async () => {
    const t = await startApp();
    const res = await httpRequest(t.port, '/healthz');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.body).toBe('{"status":"ok"}');
  });

  it('GET / serves the page as text/html with a Content-Security-Policy', async () => {
    const t = await startApp();
    const res = await httpRequest(t.port, '/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'none'; /);
    expect(res.body).toMatch(/<html/i);
  });

  it('an unknown path is 404, POST /clients is 405', async () => {
    const t = await startApp();
    expect((await httpRequest(t.port, '/nope')).status).toBe(404);
    const post = await httpRequest(t.port, '/clients', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });
});

