/**
 * Interop with a peer nobody here wrote: Node's built-in WebSocket client (undici), in a child process.
 * On Node 20/21 it sits behind --experimental-websocket; from Node 22 it is a global.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { loadConfig } from '../src/config';
import { createApp, type App } from '../src/http/app';
import { sharedApp } from './helpers/app';
import { frameHeads, Tap } from './helpers/deflate';

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const NODE_FLAGS = NODE_MAJOR < 22 ? ['--experimental-websocket'] : [];

/** Runs `script` in a fresh Node with the WebSocket global; resolves with its last stdout line as JSON. */
function runClient(script: string, env: Record<string, string>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, '-e', script], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`client exited ${code}: ${out}\n${err}`));
      }
    });
  });
}

/** Shared by the client scripts: open, a message queue, and a close waiter. */
const PRELUDE = `
const url = 'ws://127.0.0.1:' + process.env.PORT + '/echo';
function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const queue = [];
    let waiter = null;
    ws.onmessage = (e) => { if (waiter) { const w = waiter; waiter = null; w(e.data); } else queue.push(e.data); };
    ws.next = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => (waiter = r));
    ws.closedEvent = new Promise((r) =>
      ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason, wasClean: e.wasClean })),
    );
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('WebSocket error before open'));
  });
}
function pseudoRandom(n, seed) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; b[i] = x >>> 24; }
  return b;
}
`;

const ECHO_SCRIPT = `${PRELUDE}
(async () => {
  const ws = await open();
  const checks = [];
  const textSmall = 'héllo wörld 𝄞 ✓';
  const binSmall = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  // 1 MiB of text with 1-, 2-, 3- and 4-byte characters.
  const unit = 'aé€𝄞z\\n'; // 1 + 2 + 3 + 4 + 1 + 1 = 12 bytes
  const textBig = unit.repeat(Math.floor((1024 * 1024) / 12));
  const binBig = pseudoRandom(1024 * 1024, 42);
  const sends = [['text-small', textSmall], ['binary-small', binSmall], ['text-1MiB', textBig]];
  sends.push(['binary-1MiB', binBig], ['text-empty', '']);
  for (const [name, data] of sends) ws.send(data);
  for (const [name, data] of sends) {
    const got = await ws.next();
    if (typeof data === 'string') {
      checks.push({ name, type: typeof got, bytes: Buffer.byteLength(got), equal: got === data });
    } else {
      const b = Buffer.from(got);
      const type = got instanceof ArrayBuffer ? 'arraybuffer' : typeof got;
      checks.push({ name, type, bytes: b.length, equal: b.equals(data) });
    }
  }
  ws.close(4000, 'interop done ✓');
  const close = await ws.closedEvent;
  console.log(JSON.stringify({ checks, close }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); });
`;

const TOO_BIG_SCRIPT = `${PRELUDE}
(async () => {
  const ws = await open();
  ws.send(pseudoRandom(3 * 1024 * 1024, 7)); // above the server's 2 MiB limit
  const close = await ws.closedEvent;
  console.log(JSON.stringify({ close }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); });
`;

const FLAGGED = NODE_FLAGS.length ? ' (--experimental-websocket)' : '';

describe(`interop: Node ${process.versions.node} built-in WebSocket client${FLAGGED}`, () => {
  const shared = sharedApp({ MAX_MESSAGE_BYTES: String(2 * 1024 * 1024) });

  it('echoes text and binary, small and 1 MiB, byte for byte, and closes with 4000', async () => {
    const result = (await runClient(ECHO_SCRIPT, { PORT: String(shared.port) })) as {
      error?: string;
      checks: { name: string; type: string; bytes: number; equal: boolean }[];
      close: { code: number; reason: string; wasClean: boolean };
    };
    expect(result.error).toBeUndefined();
    expect(result.checks).toEqual([
      { name: 'text-small', type: 'string', bytes: Buffer.byteLength('héllo wörld 𝄞 ✓'), equal: true },
      { name: 'binary-small', type: 'arraybuffer', bytes: 256, equal: true },
      { name: 'text-1MiB', type: 'string', bytes: expect.any(Number), equal: true },
      { name: 'binary-1MiB', type: 'arraybuffer', bytes: 1024 * 1024, equal: true },
      { name: 'text-empty', type: 'string', bytes: 0, equal: true },
    ]);
    expect(result.checks[2]!.bytes).toBe(Math.floor((1024 * 1024) / 12) * 12);
    // The server echoes the code (no reason) and closes TCP: a clean close on the client's side.
    expect(result.close).toEqual({ code: 4000, reason: '', wasClean: true });
    // The server's CloseInfo saw the client's code and reason.
    const [line] = await shared.t.logged(/^disconnect path=\/echo code=4000 /);
    expect(line).toMatch(
      /^disconnect path=\/echo code=4000 reason="interop done ✓" sent=4000 peer=127\.0\.0\.1:\d+$/,
    );
  });

  it('a message above MAX_MESSAGE_BYTES is closed with 1009', async () => {
    const result = (await runClient(TOO_BIG_SCRIPT, { PORT: String(shared.port) })) as {
      error?: string;
      close: { code: number; reason: string };
    };
    expect(result.error).toBeUndefined();
    expect(result.close.code).toBe(1009);
    expect(result.close.reason).toBe('message too big');
  });
});

const DEFLATE_SCRIPT = `${PRELUDE}
(async () => {
  const ws = await open();
  const long = '{"type":"chat","user":"alice","message":"' + 'compressible '.repeat(800) + '"}';
  const texts = [long, 'short', 'é𝄞'.repeat(30)];
  for (const t of texts) ws.send(t);
  const equal = [];
  for (const t of texts) equal.push((await ws.next()) === t);
  ws.close(1000);
  await ws.closedEvent;
  console.log(JSON.stringify({ extensions: ws.extensions, equal }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); });
`;

describe("interop: permessage-deflate with Node's built-in WebSocket client (RFC 7692)", () => {
  let app: App;
  let tap: Awaited<ReturnType<typeof Tap.start>>;
  beforeAll(async () => {
    app = createApp(loadConfig({ PORT: '0', HOST: '127.0.0.1', MAX_MESSAGE_BYTES: String(64 * 1024) }));
    tap = await Tap.start((await app.listen()).port);
  });
  afterAll(async () => {
    await tap.close();
    await app.shutdown();
  });

  it('it offers permessage-deflate, we accept, and it inflates our compressed frames', async () => {
    type Result = { error?: string; extensions: string; equal: boolean[] };
    const result = (await runClient(DEFLATE_SCRIPT, { PORT: String(tap.port) })) as Result;
    expect(result.error).toBeUndefined();
    expect(result.equal).toEqual([true, true, true]);
    const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
    expect(result.extensions).toBe(ANSWER);
    const request = Buffer.concat(tap.connections[0]!.fromClient).toString('latin1');
    expect(request).toMatch(/\r\nsec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n/i);
    const { head, frames } = tap.serverSide(0);
    expect(head).toContain(`\r\nSec-WebSocket-Extensions: ${ANSWER}\r\n`);
    // The three echoes, then our close: the long text and the 60 multi-byte characters compressed, "short" not.
    expect(frameHeads(frames).map((f) => [f.opcode, f.rsv1])).toEqual([[1, true], [1, false], [1, true], [8, false]]);
  });
});
