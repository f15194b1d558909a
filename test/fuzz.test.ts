/**
 * Fuzzing the frame parser (RFC 6455 §5): seeded streams of valid, invalid, truncated, mutated and
 * random client frames, each parsed whole and in several random chunkings.
 *
 * Properties checked on every case:
 *   1. push() never throws;
 *   2. at most one final event (close or protocol error), nothing after it;
 *   3. memory: no single allocation exceeds maxMessageBytes, none exceeds twice the bytes received so
 *      far (or 1 KiB), and the message buffer it keeps is never larger than min(limit, max(1 KiB,
 *      2 x bytes of the message received)) - so a lying length reserves nothing, and live message
 *      memory is at most 2 x limit (old + new buffer while growing) + one 125-byte control buffer;
 *   4. the verdict (events, with message bytes) is the same however the stream is chunked;
 *   5. differential oracle: for generated streams whose meaning is known, the verdict is that meaning.
 *
 * Default (`npm test`): 20,000 cases from each of four fixed run seeds, so CI is repeatable, and 20,000
 * from a random run seed (printed), to explore. Longer: FUZZ_CASES=N or FUZZ_SECONDS=N. One run seed: FUZZ_SEED=S.
 * Replay one failing case: FUZZ_REPLAY=<case seed> (printed on failure).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameParser, type FrameHandler } from '../src/websocket';
import {
  caseSeed,
  chunkings,
  diffEvents,
  frameBytes,
  generateCase,
  type FuzzCase,
  type ParseEvent,
} from './helpers/fuzz';
import { installProbe, probe, probedPush, removeProbe } from './helpers/alloc-probe';
import { mulberry32 } from './helpers/rng';

/** `npm test`: these run seeds every time (repeatable), plus one random run seed (exploration). */
const FIXED_RUN_SEEDS = [0x5eed0001, 0x5eed0002, 0x5eed0003, 0x5eed0004];
const CASES_PER_SEED = 20_000;
/** The parser's first buffer for a fragmented message (frame-parser.ts MIN_MESSAGE_BUFFER). */
const MIN_MESSAGE_BUFFER = 1024;

function envNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number >= 0, got ${JSON.stringify(raw)}`);
  return n;
}

const FUZZ_CASES = envNumber('FUZZ_CASES');
const FUZZ_SECONDS = envNumber('FUZZ_SECONDS');
const FUZZ_REPLAY = envNumber('FUZZ_REPLAY');
const FUZZ_SEED = envNumber('FUZZ_SEED');
const RANDOM_RUN_SEED = (Date.now() ^ (process.pid << 16)) >>> 0;
const LONG_RUN = FUZZ_CASES !== undefined || FUZZ_SECONDS !== undefined;

// ---- allocation probe (helpers/alloc-probe.ts): every Buffer allocation inside push() is bounded ----

/** The parser's private message buffer, read for property 3 (white-box on purpose). */
interface ParserInternals {
  messageBuffer: Buffer | null;
  messageLength: number;
}

// ---- one parse of one stream ----

interface RunResult {
  readonly events: ParseEvent[];
  /** The first broken property, if any. */
  readonly problem: string | undefined;
}

class Recorder implements FrameHandler {
  readonly events: ParseEvent[] = [];
  problem: string | undefined;
  private ended = false;

  private add(e: ParseEvent): void {
    if (this.ended && this.problem === undefined) this.problem = `event after the final one: ${e.kind}`;
    this.events.push(e);
  }
  onMessage(binary: boolean, data: Buffer): void {
    this.add({ kind: 'message', binary, data });
  }
  onPing(payload: Buffer): void {
    this.add({ kind: 'ping', data: payload });
  }
  onPong(payload: Buffer): void {
    this.add({ kind: 'pong', data: payload });
  }
  onClose(code: number, reason: string): void {
    this.add({ kind: 'close', code, reason });
    this.ended = true;
  }
  onProtocolError(code: number): void {
    this.add({ kind: 'error', code });
    this.ended = true;
  }
}

/** Parses `stream` cut at `cuts` (null: one chunk). The parser gets its own copy: push() unmasks in place. */
function parse(stream: Buffer, limit: number, cuts: readonly number[] | null): RunResult {
  const bytes = Buffer.from(stream);
  const recorder = new Recorder();
  const parser = new FrameParser({ maxMessageBytes: limit, expectMasked: true }, recorder);
  const internals = parser as unknown as ParserInternals;
  let problem: string | undefined;
  let from = 0;
  let pushed = 0;
  const pieces = cuts === null ? 1 : cuts.length + 1;
  for (let i = 0; i < pieces; i++) {
    const to = cuts === null || i === cuts.length ? bytes.length : cuts[i]!;
    const chunk = bytes.subarray(from, to);
    from = to;
    pushed += chunk.length;
    problem ??= probedPush(() => parser.push(chunk), Math.min(limit, Math.max(MIN_MESSAGE_BUFFER, 2 * pushed)));
    const kept = internals.messageBuffer;
    if (kept !== null && kept.length > Math.min(limit, Math.max(MIN_MESSAGE_BUFFER, 2 * internals.messageLength))) {
      const received = internals.messageLength;
      problem ??= `keeps a ${kept.length}-byte message buffer for ${received} bytes received (limit ${limit})`;
    }
    if (problem !== undefined) break;
  }
  problem ??= recorder.problem;
  const last = recorder.events[recorder.events.length - 1];
  if (problem === undefined && last !== undefined && (last.kind === 'close' || last.kind === 'error') && !parser.done) {
    problem = 'parser not done after its final event';
  }
  return { events: recorder.events, problem };
}

/** Checks every property on one case; returns what broke, or undefined. */
function checkCase(seed: number, c: FuzzCase): string | undefined {
  const whole = parse(c.bytes, c.maxMessageBytes, null);
  if (whole.problem !== undefined) return `whole stream: ${whole.problem}`;
  if (c.expected !== undefined) {
    const diff = diffEvents(whole.events, c.expected);
    if (diff !== undefined) return `differs from the generator's intent (parsed vs intended): ${diff}`;
  }
  const cutRng = mulberry32(seed ^ 0x5bd1e995);
  for (const cuts of chunkings(cutRng, c.bytes.length)) {
    const run = parse(c.bytes, c.maxMessageBytes, cuts);
    const at = `chunked at [${cuts.slice(0, 20).join(',')}${cuts.length > 20 ? ',…' : ''}]`;
    if (run.problem !== undefined) return `${at}: ${run.problem}`;
    const diff = diffEvents(whole.events, run.events);
    if (diff !== undefined) return `${at} differs from one chunk (whole vs chunked): ${diff}`;
  }
  return undefined;
}

function failureReport(runSeed: number, index: number, seed: number, c: FuzzCase, problem: string): string {
  const hex = c.bytes.subarray(0, 256).toString('hex');
  return (
    `fuzz case #${index} failed (run seed ${runSeed}, case seed ${seed}; replay with FUZZ_REPLAY=${seed}):\n` +
    `  ${c.kind} (${c.note}), maxMessageBytes=${c.maxMessageBytes}, ${c.bytes.length} bytes: ` +
    `${hex}${c.bytes.length > 256 ? '…' : ''}\n` +
    `  ${problem}`
  );
}

describe('FrameParser under fuzzing', () => {
  beforeEach(installProbe);
  afterEach(removeProbe);

  it('the probe sees the parser allocate (sanity check of the instrumentation)', () => {
    const rng = mulberry32(1);
    const payload = rng.bytes(3000);
    // Two fragments delivered in pieces: the parser has to buffer the message.
    const stream = Buffer.concat([
      frameBytes({ fin: false, opcode: 0x2, payload: payload.subarray(0, 1000) }, rng),
      frameBytes({ fin: true, opcode: 0x0, payload: payload.subarray(1000) }, rng),
    ]);
    probe.largest = 0;
    probe.count = 0;
    const run = parse(stream, 4096, [500, 1500, 2500]);
    expect(run.problem).toBeUndefined();
    expect(run.events).toHaveLength(1);
    expect(run.events[0]).toEqual({ kind: 'message', binary: true, data: payload });
    expect(probe.count).toBeGreaterThan(0);
    // 1024 first, then the final frame's exact size: 1000 + 2000 bytes.
    expect(probe.largest).toBe(3000);
  });

  it('the generator frames match the project encoder for every length form (§5.2)', () => {
    const rng = mulberry32(2);
    for (const size of [0, 1, 125, 126, 127, 0xffff, 0x10000, 70_000]) {
      const payload = rng.bytes(size);
      for (const opcode of [0x1, 0x2, 0x9]) {
        if (opcode === 0x9 && size > 125) continue;
        const oracle = frameBytes({ fin: true, opcode, payload, masked: false }, rng);
        expect(oracle.equals(encodeFrame(opcode, payload, false))).toBe(true);
      }
    }
  });

  /** Cases `caseSeed(runSeed, 0..)` until `maxCases` or the deadline; fails on the first broken property. */
  function fuzzRun(runSeed: number, maxCases: number, deadline = Number.POSITIVE_INFINITY): void {
    const byKind = new Map<string, number>();
    let bytes = 0;
    const started = process.hrtime.bigint();
    let n = 0;
    for (; n < maxCases; n++) {
      if ((n & 1023) === 0 && Date.now() >= deadline) break;
      const seed = caseSeed(runSeed, n);
      const c = generateCase(seed);
      byKind.set(c.kind, (byKind.get(c.kind) ?? 0) + 1);
      bytes += c.bytes.length;
      const problem = checkCase(seed, c);
      if (problem !== undefined) expect.fail(failureReport(runSeed, n, seed, c, problem));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const kinds = [...byKind].map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(
      `fuzz: run seed ${runSeed}: ${n} cases (${kinds}; ${(bytes / 1e6).toFixed(1)} MB, each parsed whole + 3 ` +
        `chunkings) in ${seconds.toFixed(2)} s = ${Math.round(n / seconds)} cases/s`,
    );
    expect(n).toBeGreaterThan(0);
    // Every kind of stream was exercised.
    const kindsSeen = [...byKind.keys()].sort();
    expect(kindsSeen).toEqual(['invalid', 'mutated', 'random-bytes', 'random-frames', 'truncated', 'valid']);
  }

  if (FUZZ_REPLAY !== undefined) {
    it(`holds every property on the replayed case ${FUZZ_REPLAY}`, () => {
      const c = generateCase(FUZZ_REPLAY);
      const problem = checkCase(FUZZ_REPLAY, c);
      if (problem !== undefined) expect.fail(failureReport(NaN, 0, FUZZ_REPLAY, c, problem));
    });
  } else if (LONG_RUN || FUZZ_SEED !== undefined) {
    const runSeed = FUZZ_SEED ?? RANDOM_RUN_SEED;
    it(`holds every property on a run from seed ${runSeed}`, () => {
      const maxCases = FUZZ_CASES ?? (FUZZ_SECONDS !== undefined ? Number.MAX_SAFE_INTEGER : CASES_PER_SEED);
      fuzzRun(runSeed, maxCases, FUZZ_SECONDS !== undefined ? Date.now() + FUZZ_SECONDS * 1000 : undefined);
    }, 24 * 3600 * 1000);
  } else {
    it.each(FIXED_RUN_SEEDS)(`holds every property on ${CASES_PER_SEED} cases from fixed run seed %i`, (seed) => {
      fuzzRun(seed, CASES_PER_SEED);
    });
    it(`holds every property on ${CASES_PER_SEED} cases from a random run seed (${RANDOM_RUN_SEED})`, () => {
      fuzzRun(RANDOM_RUN_SEED, CASES_PER_SEED);
    });
  }
});
