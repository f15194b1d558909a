/**
 * Log lines (src/log.ts): one event and its fields, as text (key=value, as grepped by people and tests)
 * or as JSON (LOG_FORMAT=json, one object per line); both say the same thing.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { createApp } from '../src/http/app';
import { eventLog, formatJson, formatText, withFields } from '../src/log';
import { connect } from '../src/websocket';
import { waitUntil } from './helpers/wait';

describe('text', () => {
  it('event, then key=value in order; strings quoted, addresses and paths bare when they are plain tokens', () => {
    expect(formatText('connect', { peer: '127.0.0.1:5000', path: '/ws' })).toBe('connect peer=127.0.0.1:5000 path=/ws');
    expect(formatText('disconnect', { name: 'alice', code: 1000, reason: '', sent: 1000 })).toBe(
      'disconnect name="alice" code=1000 reason="" sent=1000',
    );
    expect(formatText('resumed', { name: 'bob', replaced: true })).toBe('resumed name="bob" replaced=true');
    expect(formatText('refused', { peer: '[::1]:5000', via: undefined, path: '/ws?x=1' })).toBe(
      'refused peer=[::1]:5000 path=/ws?x=1',
    );
  });

  it('a value that could forge another field is quoted, wherever it goes', () => {
    expect(formatText('refused', { path: '/ws reason="fine"', name: 'a" b=1' })).toBe(
      'refused path="/ws reason=\\"fine\\"" name="a\\" b=1"',
    );
    expect(formatText('refused', { path: '', name: 'x\ny' })).toBe('refused path="" name="x\\ny"');
  });

  it('the two sentences tools read are kept as they were', () => {
    expect(formatText('listening', { url: 'http://127.0.0.1:8080', chat: 'ws://127.0.0.1:8080/ws' })).toBe(
      'listening on http://127.0.0.1:8080 (chat: ws://127.0.0.1:8080/ws)',
    );
    expect(formatText('shutdown', { signal: 'SIGTERM' })).toBe('SIGTERM: shutting down');
  });
});

describe('json', () => {
  it('time, level, event, then the fields; undefined fields left out; the three cannot be overwritten', () => {
    const time = new Date('2026-01-02T03:04:05.678Z');
    const fields = { peer: '127.0.0.1:1', via: undefined, status: 429, event: 'x', level: 'y' };
    expect(formatJson('refused', fields, 'warn', time)).toBe(
      '{"time":"2026-01-02T03:04:05.678Z","level":"warn","event":"refused","peer":"127.0.0.1:1","status":429}',
    );
  });

  it('eventLog renders the same event in either format; withFields appends the context', () => {
    const text: string[] = [];
    const json: string[] = [];
    const context = { peer: '192.0.2.1', via: '127.0.0.1:9' };
    withFields(eventLog('text', (l) => text.push(l)), context)('disconnect', { name: 'al ice', code: 1006 });
    withFields(eventLog('json', (l) => json.push(l)), context)('disconnect', { name: 'al ice', code: 1006 }, 'info');
    expect(text).toEqual(['disconnect name="al ice" code=1006 peer=192.0.2.1 via=127.0.0.1:9']);
    const { time, ...rest } = JSON.parse(json[0]!) as Record<string, unknown>;
    expect(new Date(time as string).toISOString()).toBe(time);
    expect(rest).toEqual({ level: 'info', event: 'disconnect', name: 'al ice', code: 1006, ...context });
  });
});

describe('LOG_FORMAT=json in the app', () => {
  it('connect, refusal and disconnect are JSON objects, one per line, with the same fields as the text', async () => {
    const lines: string[] = [];
    const app = createApp(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_FORMAT: 'json' }), (l) => lines.push(l));
    const { port } = await app.listen();
    try {
      const alice = await connect(`ws://127.0.0.1:${port}/ws`);
      alice.send('System');
      await alice.closed;
      await expect(connect(`ws://127.0.0.1:${port}/ws`, { origin: 'http://evil.example' })).rejects.toThrow();
      await waitUntil(() => lines.some((l) => l.includes('"event":"disconnect"')), 'the disconnect line');
      const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const strip = (e: Record<string, unknown>): Record<string, unknown> => {
        const { time: _t, peer, ...rest } = e;
        expect(peer).toMatch(/^127\.0\.0\.1:\d+$/);
        return rest;
      };
      // The chat's disconnect and the refused handshake race: compare in a fixed order.
      expect(events.map(strip).sort((a, b) => order(a) - order(b))).toEqual([
        { level: 'info', event: 'connect', path: '/ws' },
        { level: 'info', event: 'refused', name: 'System', reason: 'the name System is reserved' },
        { level: 'info', event: 'disconnect', name: '', code: 1008, reason: '', sent: 1008 },
        { level: 'info', event: 'refused', path: '/ws', origin: 'http://evil.example', status: 403,
          reason: 'origin not allowed' },
      ]);
    } finally {
      await app.shutdown();
    }
  });
});

function order(e: Record<string, unknown>): number {
  return e.origin !== undefined ? 3 : e.event === 'connect' ? 0 : e.event === 'refused' ? 1 : 2;
}

describe('LOG_FORMAT=json, node dist/server.js', () => {
  it('every line on stdout is one JSON object, from listening to shutdown', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const env = { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_FORMAT: 'json' };
    const child = spawn(process.execPath, ['dist/server.js'], { cwd: root, env });
    let out = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) =>
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        if (out.includes('"event":"listening"')) resolve();
      }),
    );
    const port = Number(/"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(out)![1]);
    const echo = await connect(`ws://127.0.0.1:${port}/echo`);
    echo.close(1000, 'bye');
    await echo.closed;
    await waitUntil(() => out.includes('"event":"disconnect"'), 'the disconnect line');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const events = out.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(['listening', 'connect', 'disconnect', 'shutdown']);
    const where = `127.0.0.1:${port}`;
    expect(events[0]).toMatchObject({ level: 'info', url: `http://${where}`, chat: `ws://${where}/ws` });
    expect(events[2]).toMatchObject({ path: '/echo', code: 1000, reason: 'bye', sent: 1000 });
    expect(events[3]).toMatchObject({ signal: 'SIGTERM' });
  });
});
