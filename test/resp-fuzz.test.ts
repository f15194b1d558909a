/**
 * Fuzzing the RESP parser: seeded streams of valid, invalid, over-limit, truncated, corrupted and
 * random RESP2/RESP3 bytes, each parsed whole and in several chunkings (byte by byte, small pieces,
 * a few cuts).
 *
 * Properties checked on every case:
 *   1. push() never throws;
 *   2. at most one protocol error, and nothing after it;
 *   3. memory: no single Buffer allocation inside push() exceeds max(1 KiB, 2 x bytes received so far),
 *      so a declared length reserves nothing;
 *   4. the events (replies, pushes, attributes, error) are the same however the stream is chunked;
 *   5. oracle: valid streams give exactly the generated values; invalid and over-limit streams give
 *      the values before the fault, then the expected error; a truncated stream gives a prefix of the
 *      whole stream's events and no error.
 *
 * Runs fixed seeds (the same cases every time) plus one random seed per run, printed in the log and
 * in any failure. Longer: FUZZ_CASES=N or FUZZ_SECONDS=N (random seed part). Fixed run seed:
 * FUZZ_SEED=S. Replay one failing case: FUZZ_REPLAY=<case seed>.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RespParser } from '../src/redis/resp-parser';
import type { RespValue } from '../src/redis/values';
import { caseSeed, chunkings } from './helpers/fuzz';
import { installProbe, probe, probedPush, removeProbe } from './helpers/alloc-probe';
import { mulberry32 } from './helpers/rng';
import { diffEvents, generateRespCase, type RespEvent, type RespFuzzCase } from './helpers/resp-fuzz';

const FIXED_RUNS: readonly { seed: number; cases: number }[] = [
  { seed: 1, cases: 5000 },
  { seed: 0xc0ffee, cases: 5000 },
];
const RANDOM_CASES = 8000;

function envNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const FUZZ_CASES = envNumber('FUZZ_CASES');
const FUZZ_SECONDS = envNumber('FUZZ_SECONDS');
const FUZZ_REPLAY = envNumber('FUZZ_REPLAY');
const RUN_SEED = envNumber('FUZZ_SEED') ?? (Date.now() ^ (process.pid << 16)) >>> 0;
const LONG_RUN = FUZZ_CASES !== undefined || FUZZ_SECONDS !== undefined;

// ---- allocation probe (as in fuzz.test.ts): every Buffer allocated inside push() is checked ----

// ---- one parse ----

interface Run {
  readonly events: RespEvent[];
  readonly problem: string | undefined;
}

function parse(c: RespFuzzCase, cuts: readonly number[] | null): Run {
  const events: RespEvent[] = [];
  let problem: string | undefined;
  let ended = false;
  const add = (e: RespEvent): void => {
    if (ended) problem ??= `event after the protocol error: ${e.kind}`;
    events.push(e);
  };
  const parser = new RespParser(
    {
      onReply: (value) => add({ kind: 'reply', value }),
      onPush: (value) => add({ kind: 'push', value: value as RespValue }),
      onAttribute: (value) => add({ kind: 'attribute', value }),
      onProtocolError: (message) => {
        add({ kind: 'error', message });
        ended = true;
      },
    },
    c.options,
  );
  let from = 0;
  let pushed = 0;
  const pieces = cuts === null ? 1 : cuts.length + 1;
  for (let i = 0; i < pieces && problem === undefined; i++) {
    const to = cuts === null || i === cuts.length ? c.bytes.length : cuts[i]!;
    const chunk = c.bytes.subarray(from, to);
    from = to;
    pushed += chunk.length;
    problem ??= probedPush(() => parser.push(chunk), Math.max(1024, 2 * pushed));
  }
  if (problem === undefined && ended !== parser.done) problem = 'parser.done disagrees with the error it reported';
  return { events, problem };
}

function checkOracle(c: RespFuzzCase, events: RespEvent[]): string | undefined {
  if (c.kind === 'truncated') {
    if (events.some((e) => e.kind === 'error')) return 'a truncated valid stream reported an error';
    return diffEvents(events, c.whole!.slice(0, events.length));
  }
  if (c.expected === undefined) return undefined;
  if (c.error !== undefined) {
    const last = events[events.length - 1];
    if (last?.kind !== 'error') return `expected a protocol error matching ${c.error}, got ${last?.kind ?? 'nothing'}`;
    if (!c.error.test(last.message)) return `error ${JSON.stringify(last.message)} does not match ${c.error}`;
    return diffEvents(events.slice(0, -1), c.expected.slice(0, -1));
  }
  return diffEvents(events, c.expected);
}

function checkCase(seed: number, c: RespFuzzCase): string | undefined {
  const whole = parse(c, null);
  if (whole.problem !== undefined) return `whole stream: ${whole.problem}`;
  const oracle = checkOracle(c, whole.events);
  if (oracle !== undefined) return `whole stream differs from the generator's intent (parsed vs intended): ${oracle}`;
  const cutRng = mulberry32(seed ^ 0x5bd1e995);
  for (const cuts of chunkings(cutRng, c.bytes.length)) {
    const where = `chunked at [${cuts.slice(0, 20).join(',')}${cuts.length > 20 ? ',…' : ''}]`;
    const run = parse(c, cuts);
    if (run.problem !== undefined) return `${where}: ${run.problem}`;
    const diff = diffEvents(whole.events, run.events);
    if (diff !== undefined) return `${where} differs from one chunk (whole vs chunked): ${diff}`;
  }
  return undefined;
}

function report(runSeed: number, index: number, seed: number, c: RespFuzzCase, problem: string): string {
  const shown = c.bytes.subarray(0, 300);
  return (
    `RESP fuzz case #${index} failed (run seed ${runSeed}, case seed ${seed}; replay with FUZZ_REPLAY=${seed}):\n` +
    `  ${c.kind} (${c.note}), options ${JSON.stringify(c.options)}, ${c.bytes.length} bytes: ` +
    `${JSON.stringify(shown.toString('latin1'))}${c.bytes.length > 300 ? '…' : ''}\n  ${problem}`
  );
}

/** Runs `count` cases of one run seed (or until `deadline`); returns the count per kind. */
function runSeed(seed: number, count: number, deadline = Infinity): Map<string, number> {
  const byKind = new Map<string, number>();
  for (let n = 0; n < count; n++) {
    if ((n & 1023) === 0 && Date.now() >= deadline) break;
    const s = caseSeed(seed, n);
    const c = generateRespCase(s);
    byKind.set(c.kind, (byKind.get(c.kind) ?? 0) + 1);
    const problem = checkCase(s, c);
    if (problem !== undefined) expect.fail(report(seed, n, s, c, problem));
  }
  return byKind;
}

const ALL_KINDS = ['corrupted', 'invalid', 'over-limit', 'random-bytes', 'truncated', 'valid'];

describe('RespParser under fuzzing', () => {
  beforeEach(installProbe);
  afterEach(removeProbe);

  it('the probe sees the parser allocate for a bulk string split across chunks', () => {
    const payload = Buffer.alloc(3000, 0x61);
    const c: RespFuzzCase = {
      kind: 'valid',
      note: 'probe check',
      bytes: Buffer.concat([Buffer.from('$3000\r\n'), payload, Buffer.from('\r\n')]),
      options: { maxBulkBytes: 4096, maxAggregateLength: 8, maxDepth: 4, maxLineBytes: 64, bulkAs: 'buffer' },
      expected: [{ kind: 'reply', value: payload }],
    };
    probe.count = 0;
    const run = parse(c, [500, 1500, 2500]);
    expect(run.problem).toBeUndefined();
    expect(checkOracle(c, run.events)).toBeUndefined();
    expect(probe.count).toBeGreaterThan(0);
  });

  if (FUZZ_REPLAY !== undefined) {
    it('holds every property on the replayed case', () => {
      const c = generateRespCase(FUZZ_REPLAY);
      const problem = checkCase(FUZZ_REPLAY, c);
      if (problem !== undefined) expect.fail(report(0, 0, FUZZ_REPLAY, c, problem));
    });
    return;
  }

  for (const { seed, cases } of FIXED_RUNS) {
    it(`holds every property on ${cases} cases of fixed seed ${seed}`, () => {
      const byKind = runSeed(seed, cases);
      expect([...byKind.keys()].sort()).toEqual(ALL_KINDS);
    }, 60_000);
  }

  it(
    `holds every property on ${LONG_RUN ? 'a long run' : `${RANDOM_CASES} cases`} of a random seed (${RUN_SEED})`,
    () => {
      const count = FUZZ_CASES ?? (FUZZ_SECONDS !== undefined ? Number.MAX_SAFE_INTEGER : RANDOM_CASES);
      const deadline = FUZZ_SECONDS !== undefined ? Date.now() + FUZZ_SECONDS * 1000 : Infinity;
      const started = process.hrtime.bigint();
      const byKind = runSeed(RUN_SEED, count, deadline);
      const total = [...byKind.values()].reduce((a, b) => a + b, 0);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      console.log(
        `resp fuzz: ${total} cases (${[...byKind].map(([k, v]) => `${k} ${v}`).join(', ')}) ` +
          `in ${seconds.toFixed(2)} s, run seed ${RUN_SEED}`,
      );
      expect(total).toBeGreaterThan(0);
    },
    LONG_RUN ? 24 * 3600 * 1000 : 60_000,
  );
});
