/**
 * Micro-benchmarks of the codec, in this process: what one core does with the pieces the server's
 * hot path is made of. Each case runs for a fixed time and reports operations and bytes per second.
 *
 *   node dist-bench/test/bench/micro.js [--ms=500]
 */
import { performance } from 'node:perf_hooks';
import { chatMessage, encodeStored } from '../../src/chat/models/message';
import { FrameParser, type FrameHandler } from '../../src/websocket/frame-parser';
import { encodeFrame, PreparedFrame } from '../../src/websocket/frame-writer';
import { Opcode } from '../../src/websocket/opcodes';

export interface MicroResult {
  readonly name: string;
  readonly opsPerSec: number;
  /** Payload megabytes (10^6) per second, where bytes mean something. */
  readonly mbPerSec: number | null;
}

class CountingHandler implements FrameHandler {
  messages = 0;
  bytes = 0;
  onMessage(_binary: boolean, data: Buffer): void {
    this.messages++;
    this.bytes += data.length;
  }
  onPing(): void {}
  onPong(): void {}
  onClose(): void {
    throw new Error('unexpected close frame');
  }
  onProtocolError(code: number, reason: string): void {
    throw new Error(`protocol error ${code}: ${reason}`);
  }
}

/** Runs `op` (which does `perOp` operations) until `ms` have passed; returns operations per second. */
function timed(ms: number, perOp: number, op: () => void, between?: () => void): number {
  // Warm up so the JIT has done its work before the clock starts.
  for (let i = 0; i < 20; i++) {
    between?.();
    op();
  }
  let ops = 0;
  let spent = 0;
  while (spent < ms) {
    between?.(); // untimed: e.g. fresh copies of frames the parser unmasks in place
    const t0 = performance.now();
    op();
    spent += performance.now() - t0;
    ops += perOp;
  }
  return (ops * 1000) / spent;
}

const ASCII = 'The quick brown fox jumps over the lazy dog. ';
function text(bytes: number): string {
  return ASCII.repeat(Math.ceil(bytes / ASCII.length)).slice(0, bytes);
}

/**
 * Server side: parse + unmask + UTF-8 check of masked text frames. The parser unmasks in place,
 * so each round gets fresh copies (copied outside the timed part). `chunk` splits the frames like a
 * socket would (0: one push per frame).
 */
function parseMasked(ms: number, payloadBytes: number, chunk: number): MicroResult {
  const frame = encodeFrame(Opcode.Text, text(payloadBytes), /* masked */ true);
  const perRound = Math.max(1, Math.floor((8 * 1024 * 1024) / frame.length));
  const pristine = Buffer.concat(Array.from({ length: perRound }, () => frame));
  const work = Buffer.allocUnsafe(pristine.length);
  const handler = new CountingHandler();
  const parser = new FrameParser({ maxMessageBytes: 2 * payloadBytes + 1024, expectMasked: true }, handler);
  const step = chunk > 0 ? chunk : frame.length;
  const opsPerSec = timed(
    ms,
    perRound,
    () => {
      for (let at = 0; at < work.length; at += step) parser.push(work.subarray(at, Math.min(at + step, work.length)));
    },
    () => pristine.copy(work),
  );
  const label = payloadBytes >= 1048576 ? `${payloadBytes / 1048576} MiB` : `${payloadBytes / 1024} KiB`;
  return {
    name: `parse+unmask text ${label}${chunk > 0 ? ` (${chunk / 1024} KiB chunks)` : ''}`,
    opsPerSec,
    mbPerSec: (opsPerSec * payloadBytes) / 1e6,
  };
}

/** Client side (what the load client does): many small unmasked server frames per socket chunk. */
function parseServerFrames(ms: number): MicroResult {
  const json = encodeStored(chatMessage('c123', 't=123456789 s=3 q=4567'), 'lobby', 123, 'e');
  const frame = PreparedFrame.text(json).bytes;
  const perChunk = 64;
  const chunk = Buffer.concat(Array.from({ length: perChunk }, () => frame));
  const parser = new FrameParser({ maxMessageBytes: 1 << 20, expectMasked: false }, new CountingHandler());
  const opsPerSec = timed(ms, perChunk * 100, () => {
    for (let i = 0; i < 100; i++) parser.push(chunk); // unmasked frames are not modified
  });
  const name = `parse ${json.length} B server frames, ${perChunk}/chunk`;
  return { name, opsPerSec, mbPerSec: (opsPerSec * json.length) / 1e6 };
}

/** The Hub's per-broadcast cost: build the message, JSON it, frame it once. */
function prepareBroadcast(ms: number): MicroResult {
  let sink = 0;
  const opsPerSec = timed(ms, 1000, () => {
    for (let i = 0; i < 1000; i++) {
      const json = encodeStored(chatMessage('c123', `t=${i} s=3 q=4567`), 'lobby', i, 'e');
      sink += PreparedFrame.text(json).bytes.length;
    }
  });
  if (sink < 0) throw new Error('unreachable');
  return { name: 'chatMessage+encodeStored+PreparedFrame.text', opsPerSec, mbPerSec: null };
}

function preparedText(ms: number, bytes: number): MicroResult {
  const payload = text(bytes);
  let sink = 0;
  const opsPerSec = timed(ms, 1000, () => {
    for (let i = 0; i < 1000; i++) sink += PreparedFrame.text(payload).bytes.length;
  });
  if (sink < 0) throw new Error('unreachable');
  return { name: `PreparedFrame.text ${bytes} B`, opsPerSec, mbPerSec: (opsPerSec * bytes) / 1e6 };
}

function encodeMasked(ms: number, bytes: number): MicroResult {
  const payload = Buffer.from(text(bytes));
  let sink = 0;
  const opsPerSec = timed(ms, 1000, () => {
    for (let i = 0; i < 1000; i++) sink += encodeFrame(Opcode.Text, payload, /* masked */ true).length;
  });
  if (sink < 0) throw new Error('unreachable');
  return { name: `encodeFrame masked ${bytes} B (client send)`, opsPerSec, mbPerSec: (opsPerSec * bytes) / 1e6 };
}

export function runMicro(ms: number): MicroResult[] {
  return [
    parseMasked(ms, 1024, 0),
    parseMasked(ms, 64 * 1024, 0),
    parseMasked(ms, 1024 * 1024, 0),
    parseMasked(ms, 1024 * 1024, 64 * 1024),
    parseServerFrames(ms),
    preparedText(ms, 100),
    preparedText(ms, 1024),
    prepareBroadcast(ms),
    encodeMasked(ms, 1024),
  ];
}

export function formatMicro(results: readonly MicroResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = [`${'micro-benchmark'.padEnd(width)}  ${'ops/s'.padStart(12)}  ${'MB/s'.padStart(8)}`];
  for (const r of results) {
    const ops = r.opsPerSec >= 1000 ? Math.round(r.opsPerSec).toLocaleString('en-US') : r.opsPerSec.toFixed(1);
    const mb = r.mbPerSec === null ? '' : r.mbPerSec.toFixed(0);
    lines.push(`${r.name.padEnd(width)}  ${ops.padStart(12)}  ${mb.padStart(8)}`);
  }
  return lines.join('\n');
}

if (require.main === module) {
  const arg = process.argv.find((a) => a.startsWith('--ms='));
  console.log(formatMicro(runMicro(arg ? Number(arg.slice(5)) : 500)));
}
