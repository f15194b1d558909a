/**
 * RESP codec throughput: the parser on the reply streams a chat bridge sees (pub/sub messages, short
 * replies, a large bulk), cut in 64 KiB socket chunks, and the encoding of PUBLISH commands.
 * Not part of `npm test`; run with
 *   npx vitest bench --config test/vitest.config.ts --run test/resp.bench.ts
 * Each op handles STREAM_BYTES of RESP; the MB/s of every parser bench is printed at the end.
 */
import { afterAll, bench, describe } from 'vitest';
import { RespParser, type RespHandler } from '../src/redis/resp-parser';
import { encodeCommand } from '../src/redis/resp-writer';

const KiB = 1024;
const MiB = 1024 * KiB;
const STREAM_BYTES = 4 * MiB;
const SOCKET_CHUNK = 64 * KiB;

let sink = 0;
const handler: RespHandler = {
  onReply: () => {
    sink++;
  },
  onPush: () => {
    sink++;
  },
  onProtocolError: (message) => {
    throw new Error(`bench stream rejected: ${message}`);
  },
};

/** `unit` repeated up to STREAM_BYTES, as socket-sized chunks. */
function chunks(unit: Buffer): Buffer[] {
  const whole = Buffer.concat(Array.from({ length: Math.max(1, Math.floor(STREAM_BYTES / unit.length)) }, () => unit));
  const out: Buffer[] = [];
  for (let at = 0; at < whole.length; at += SOCKET_CHUNK) out.push(whole.subarray(at, at + SOCKET_CHUNK));
  return out;
}

const chat = JSON.stringify({ type: 'chat', user: 'alice', message: 'x'.repeat(120), time: new Date(0).toISOString() });
const message = `$7\r\nmessage\r\n$4\r\nchat\r\n$${chat.length}\r\n${chat}\r\n`;
const bigBulk = Buffer.concat([Buffer.from(`$${MiB}\r\n`), Buffer.alloc(MiB, 0x61), Buffer.from('\r\n')]);
const streams: Record<string, Buffer[]> = {
  'RESP3 pub/sub messages (~200 B)': chunks(Buffer.from(`>3\r\n${message}`)),
  'RESP2 pub/sub messages (~200 B)': chunks(Buffer.from(`*3\r\n${message}`)),
  'PUBLISH replies (:n)': chunks(Buffer.from(':3\r\n')),
  'short replies (+OK, :n, $-1)': chunks(Buffer.from('+OK\r\n:12345\r\n$-1\r\n')),
  '1 MiB bulk strings': chunks(bigBulk),
};

const timings = new Map<string, { bytes: number; ns: bigint }>();

describe('RespParser', () => {
  for (const [name, parts] of Object.entries(streams)) {
    const bytes = parts.reduce((n, c) => n + c.length, 0);
    for (const bulkAs of ['string', 'buffer'] as const) {
      const label = `${name}, bulkAs ${bulkAs}`;
      bench(label, () => {
        const started = process.hrtime.bigint();
        const parser = new RespParser(handler, { bulkAs });
        for (const chunk of parts) parser.push(chunk);
        const t = timings.get(label) ?? { bytes: 0, ns: 0n };
        t.bytes += bytes;
        t.ns += process.hrtime.bigint() - started;
        timings.set(label, t);
      });
    }
  }
});

describe('encodeCommand', () => {
  bench('PUBLISH chat <~200 B JSON>', () => {
    sink += encodeCommand(['PUBLISH', 'chat', chat]).length;
  });
  bench('PUBLISH chat <~200 B Buffer>', () => {
    sink += encodeCommand(['PUBLISH', 'chat', Buffer.from(chat)]).length;
  });
});

afterAll(() => {
  for (const [label, t] of timings) {
    console.log(`${label}: ${((t.bytes / Number(t.ns)) * 1e3).toFixed(0)} MB/s`);
  }
  if (sink < 0) console.log(sink);
});
