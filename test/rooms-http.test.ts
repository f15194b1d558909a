/**
 * The rooms over HTTP: GET /rooms, GET /rooms/<room>/history (after= or before=, limit=), and
 * GET /clients?room=. Private inboxes are never readable over HTTP.
 */
import { describe, expect, it } from 'vitest';
import { startApp, type TestApp } from './helpers/app';
import { hello, next, request } from './helpers/v2';


async function get(t: TestApp, path: string): Promise<{ status: number; type: string | null; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${t.port}${path}`);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), body: JSON.parse(text) };
}

/** alice and bob in the lobby, alice in #rust with three messages. */
async function scene(): Promise<{ t: TestApp; lobby: string; rust: string }> {
  const t = await startApp();
  const { peer: alice, welcome } = await hello(t.port, 'alice');
  await hello(t.port, 'bob');
  request(alice, { type: 'join', room: 'rust' });
  const joined = await next(alice, 'joined');
  for (const m of ['r1', 'r2', 'r3']) request(alice, { type: 'chat', room: 'rust', message: m, cid: m });
  await next(alice, (m) => m.type === 'ack' && m.cid === 'r3');
  return { t, lobby: welcome.streams[0]!.epoch, rust: joined.epoch as string };
}

describe('GET /rooms', () => {
  it('lists every room with its members, latest offset and epoch', async () => {
    const { t, lobby, rust } = await scene();
    const res = await get(t, '/rooms');
    expect([res.status, res.type]).toEqual([200, 'application/json; charset=utf-8']);
    expect(res.body).toEqual({
      rooms: [
        { room: 'lobby', members: 2, epoch: lobby, offset: 2 },
        { room: 'rust', members: 1, epoch: rust, offset: 4 },
      ],
    });
  });
});

describe('GET /rooms/<room>/history', () => {
  it('after=, before= and limit= page through the stored messages, oldest first', async () => {
    const { t, rust } = await scene();
    const all = await get(t, '/rooms/rust/history');
    expect(all.status).toBe(200);
    const body = all.body as { room: string; epoch: string; offset: number; messages: Record<string, unknown>[] };
    expect([body.room, body.epoch, body.offset]).toEqual(['rust', rust, 4]);
    expect(body.messages.map((m) => [m.type, m.message, m.offset])).toEqual([
      ['join', 'alice joined #rust', 1],
      ['chat', 'r1', 2],
      ['chat', 'r2', 3],
      ['chat', 'r3', 4],
    ]);
    const page = async (q: string): Promise<unknown[]> => {
      const body = (await get(t, `/rooms/rust/history?${q}`)).body as { messages: { offset: number }[] };
      return body.messages.map((m) => m.offset);
    };
    expect(await page('after=1&limit=2')).toEqual([2, 3]);
    expect(await page('after=3')).toEqual([4]);
    expect(await page('before=4&limit=2')).toEqual([2, 3]);
    expect(await page('before=1')).toEqual([]);
    expect(await page('limit=1')).toEqual([4]);
  });

  it('400 for bad parameters, 404 for an unknown room or a private inbox', async () => {
    const { t } = await scene();
    for (const q of ['after=1&before=3', 'after=x', 'limit=0', 'limit=101', 'before=-1']) {
      expect((await get(t, `/rooms/rust/history?${q}`)).status).toBe(400);
    }
    const unknown = ['/rooms/nope/history', '/rooms/@alice/history', '/rooms/%40alice/history', '/rooms/Rust/history'];
    for (const path of unknown) {
      expect((await get(t, path)).status).toBe(404);
    }
  });
});

describe('GET /clients?room=', () => {
  it("lists one room's members; an unknown room is 404", async () => {
    const { t } = await scene();
    const rust = (await get(t, '/clients?room=rust')).body as { count: number; clients: { name: string }[] };
    expect([rust.count, rust.clients.map((c) => c.name)]).toEqual([1, ['alice']]);
    const lobby = (await get(t, '/clients?room=lobby')).body as { clients: { name: string }[] };
    expect(lobby.clients.map((c) => c.name)).toEqual(['alice', 'bob']);
    expect((await get(t, '/clients?room=nope')).status).toBe(404);
  });
});
