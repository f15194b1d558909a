/**
 * Parser throughput: parse + unmask (+ UTF-8 check for text) of masked client frames, the work the
 * server does on every byte a client sends. Not part of `npm test`; run with
 *   npx vitest bench --config test/vitest.config.ts --run test/parser.bench.ts
 * vitest reports ops/s; each op parses STREAM_BYTES of payload, and the MB/s of every bench is also
 * measured here and printed at the end (1 MB = 10^6 bytes).
 */
import { afterAll, bench, describe } from 'vitest';
import { FrameParser, type FrameHandler } from '../src/websocket/frame-parser';
import { PreparedFrame } from '../src/websocket/frame-writer';
import { Opcode } from '../src/websocket/opcodes';
import { frame } from './helpers/wire';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Payload bytes parsed per op, whatever the frame size. */
const STREAM_BYTES = 8 * MiB;
/** What a TCP socket typically hands over per 'data' event. */
const SOCKET_CHUNK = 64 * KiB;

let sink = 0;
const handler: FrameHandler = {
  onMessage: (_binary, data) => {
    sink += data.length;
  },
  onPing: () => {},
  onPong: () => {},
  onClose: () => {},
  onProtocolError: (code, reason) => {
    throw new Error(`bench stream rejected: ${code} ${reason}`);
  },
};

/**
 * STREAM_BYTES of payload as masked frames of `size` bytes. Binary frames use a real key: unmasking
 * in place twice is the identity, so every op re-parses the same bytes without copying them. Text
 * frames use the all-zero key, which leaves the (ASCII) text valid after each in-place unmask while
 * the XOR loop still runs over every byte.
 */
function stream(size: number, opcode: number): Buffer {
  const key = opcode === Opcode.Text ? Buffer.alloc(4) : Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const frames: Buffer[] = [];
  for (let f = 0; f < STREAM_BYTES / size; f++) {
    frames.push(frame(opcode, Buffer.alloc(size, 0x61 + (f % 26)), { mask: key })); // ASCII letters
  }
  return Buffer.concat(frames);
}

/** Own timing per bench, for the MB/s table printed at the end. */
const measured = new Map<string, { bytes: number; ns: bigint }>();
function timed(name: string, bytes: number, fn: () => void): () => void {
  return () => {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = process.hrtime.bigint() - t0;
    const m = measured.get(name) ?? { bytes: 0, ns: 0n };
    m.bytes += bytes;
    m.ns += dt;
    measured.set(name, m);
  };
}

const parser = (): FrameParser => new FrameParser({ maxMessageBytes: 64 * MiB, expectMasked: true }, handler);

for (const [label, size] of [
  ['1 KiB', KiB],
  ['64 KiB', 64 * KiB],
  ['1 MiB', MiB],
] as const) {
  describe(`parse+unmask ${label} masked frames (${STREAM_BYTES / MiB} MiB payload per op)`, () => {
    const binary = stream(size, Opcode.Binary);
    const text = stream(size, Opcode.Text);
    const whole = parser();
    const chunked = parser();
    const textWhole = parser();

    const name1 = `binary ${label} frames, one push`;
    bench(name1, timed(name1, STREAM_BYTES, () => whole.push(binary)));

    const name2 = `binary ${label} frames, ${SOCKET_CHUNK / KiB} KiB socket chunks`;
    bench(
      name2,
      timed(name2, STREAM_BYTES, () => {
        for (let at = 0; at < binary.length; at += SOCKET_CHUNK) chunked.push(binary.subarray(at, at + SOCKET_CHUNK));
      }),
    );

    const name3 = `text ${label} frames (UTF-8 checked), one push`;
    bench(name3, timed(name3, STREAM_BYTES, () => textWhole.push(text)));
  });
}

describe('encode', () => {
  const chat = JSON.stringify({
    type: 'chat',
    user: 'alice',
    message: 'hello everyone, how is it going?',
    time: '2025-01-01T12:00:00.000Z',
  });
  const frameBytes = PreparedFrame.text(chat).bytes.length;
  const name = `PreparedFrame.text of a ${Buffer.byteLength(chat)}-byte chat JSON (${frameBytes}-byte frame)`;
  bench(
    name,
    timed(name, frameBytes, () => {
      sink += PreparedFrame.text(chat).bytes.length;
    }),
  );
});

afterAll(() => {
  const rows = [...measured].map(([name, m]) => {
    const seconds = Number(m.ns) / 1e9;
    return `  ${(m.bytes / seconds / 1e6).toFixed(0).padStart(7)} MB/s  ${name}`;
  });
  console.log(`\nThroughput (payload bytes / own timing):\n${rows.join('\n')}\n(sink ${sink > 0 ? 'ok' : 'empty'})`);
});
