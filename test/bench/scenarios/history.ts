/**
 * History memory: what stored messages cost. One v2 client per 19 rooms fills `--history-rooms` rooms
 * with HISTORY_SIZE chat messages each (typical chat text, `--padding` more bytes), waiting for each
 * ack in turn; the server's RSS after a forced full GC, before and after, gives the bytes per stored
 * message and what a full server (MAX_ROOMS rooms of HISTORY_SIZE messages) would hold. Our server only.
 */
import { connect, type WebSocketConnection } from '../../../src/websocket';
import type { ServerProcess } from '../server-process';
import type { Target } from '../targets';
import { sleep } from '../time';
import { padding, round, settledRss, withServer } from './common';
import type { BenchArgs, Scenario, ScenarioResult } from './common';

/** Rooms per client: MAX_ROOMS_PER_CLIENT (20 by default) less the lobby. */
const ROOMS_PER_CLIENT = 19;
/** A chat line of typical length (about 60 bytes with its room and number). */
const TYPICAL = ' - a chat line of about the usual length, give or take';
/** Requests in flight per client: enough to keep the server busy, few enough to stay under the rate limit. */
const WINDOW = 64;

/** Sends `count` chat messages to `room` with up to WINDOW unacked at a time; resolves when all are acked. */
async function fill(conn: WebSocketConnection, room: string, count: number, text: string): Promise<void> {
  let sent = 0;
  let acked = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (sent < count && sent - acked < WINDOW) {
        conn.send(JSON.stringify({ type: 'chat', room, message: `${room} ${sent}${text}`, cid: `${room}-${sent}` }));
        sent++;
      }
    };
    void (async () => {
      pump();
      for await (const m of conn) {
        if (m.binary) continue;
        const reply = JSON.parse(m.data) as { type: string; cid?: string; message?: string };
        if (reply.type === 'error') return reject(new Error(`history: server error ${reply.message}`));
        if (reply.type !== 'ack' || !String(reply.cid).startsWith(`${room}-`)) continue;
        if (++acked === count) return resolve();
        pump();
      }
      reject(new Error('history: connection closed while filling'));
    })();
  });
}

async function gcRss(server: ServerProcess): Promise<number> {
  await server.collectGarbage();
  return settledRss(server, 500);
}

async function run(args: BenchArgs, target: Target): Promise<ScenarioResult> {
  const size = args.historySize;
  const rooms = args.historyRooms;
  const env = { HISTORY_SIZE: String(size), MAX_ROOMS: String(Math.max(1000, rooms + 1)) };
  const serverRun = { scenario: 'history', env, inspect: true, load: { threads: 1, senders: 0 } };
  return withServer(args, target, serverRun, async (server) => {
    await sleep(500);
    const before = await gcRss(server);
    const text = TYPICAL + padding(args.padding);
    const fills: Promise<void>[] = [];
    const conns: WebSocketConnection[] = [];
    for (let first = 0; first < rooms; first += ROOMS_PER_CLIENT) {
      const conn = await connect(`ws://127.0.0.1:${server.port}/ws`);
      conns.push(conn);
      conn.send(JSON.stringify({ type: 'hello', name: `filler${first}` }));
      const mine = Array.from({ length: Math.min(ROOMS_PER_CLIENT, rooms - first) }, (_, i) => `h${first + i}`);
      for (const room of mine) conn.send(JSON.stringify({ type: 'join', room }));
      fills.push(mine.reduce((p, room) => p.then(() => fill(conn, room, size, text)), Promise.resolve()));
    }
    await Promise.all(fills);
    const after = await gcRss(server);
    for (const conn of conns) conn.close();
    const stored = rooms * size;
    const bytesPerMessage = ((after - before) * 1024) / stored;
    const sample = `h0 ${size - 1}${text}`;
    return {
      scenario: 'history',
      target: target.name,
      notes: [],
      figures: {
        rooms,
        historySize: size,
        stored,
        textBytes: Buffer.byteLength(sample),
        rssBeforeMiB: round(before / 1024),
        rssAfterMiB: round(after / 1024),
        bytesPerMessage: Math.round(bytesPerMessage),
        // MAX_ROOMS (1000) rooms, each holding HISTORY_SIZE messages of this size.
        fullServerMiB: round((bytesPerMessage * 1000 * size) / 1048576),
      },
    };
  });
}

export const history: Scenario = {
  name: 'history',
  skip: (target) => (target.wschat ? undefined : 'our server only (rooms and history are ours)'),
  run,
};
