/** The soak's verdict and its report: what was sent, delivered and lost, the server's memory and log. */
import type { ResumerTotals } from './soak-resumers';
import type { LedgerTotals } from './soak-ledger';
import type { Counters } from './soak-peers';
import { describeExit, type ExitInfo } from './server-process';

/** RSS of the server at `t` seconds into the run. */
export interface Sample {
  readonly t: number;
  readonly kib: number;
}

export interface SoakResult {
  readonly clients: number;
  readonly stayers: number;
  readonly seed: number;
  readonly ledger: LedgerTotals;
  /** The ledger's first problems, spelled out. */
  readonly examples: readonly string[];
  readonly counters: Counters;
  readonly samples: readonly Sample[];
  /** When the traffic stopped, s into the run. */
  readonly runEnd: number;
  /** The server exited before it was told to stop. */
  readonly died: boolean;
  readonly exit: ExitInfo;
  /** Clients still listed by GET /clients after everyone left (NaN: no answer). */
  readonly leaked: number;
  readonly log: string;
  /** The v2 clients whose connections were cut at random, and what they saw. */
  readonly resumers: ResumerTotals;
}

interface ServerLog {
  /** Log lines by event ("<ISO time> <event> ..."). */
  readonly events: Map<string, number>;
  readonly errors: string[];
  /** Output that is not a log line (the server's stderr). */
  readonly other: string[];
}

function readLog(text: string): ServerLog {
  const log: ServerLog = { events: new Map(), errors: [], other: [] };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (!/^\d{4}-\d\d-\d\dT\S+ /.test(line)) {
      log.other.push(line);
      continue;
    }
    const event = line.split(' ', 2)[1] ?? '';
    log.events.set(event, (log.events.get(event) ?? 0) + 1);
    if (event === 'error' || event === 'fatal') log.errors.push(line);
  }
  return log;
}

export function soakFailures(r: SoakResult): string[] {
  const failures: string[] = [];
  const log = readLog(r.log);
  if (r.ledger.lost + r.ledger.privateLost > 0) failures.push('messages lost');
  if (r.ledger.disorder > 0) failures.push('messages out of order');
  if (r.counters.unexpectedDrops > 0) failures.push('well-behaved clients dropped');
  if (r.counters.chatErrors > 0) failures.push('well-behaved clients got System errors');
  if (r.died) failures.push('the server died');
  else if (r.exit.code !== 0) failures.push(`the server exited with ${describeExit(r.exit)} on SIGTERM`);
  if (log.errors.length > 0) failures.push('the server logged errors');
  if (!r.died && r.leaked !== 0) failures.push(`${r.leaked} client(s) still listed after everyone left`);
  const resumers = r.resumers;
  if (resumers.anomalies.length > 0) failures.push('resuming clients saw a gap, a duplicate or a failed resume');
  if (resumers.behind.length > 0) failures.push('resuming clients never caught up with a stream');
  if (resumers.unacked > 0) failures.push('messages of resuming clients never acked');
  return failures;
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

/** Least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** RSS over the run itself (the settling samples after it are printed as they come, not used here). */
function memoryLines(r: SoakResult): string[] {
  const valid = r.samples.filter((s) => Number.isFinite(s.kib) && s.t <= r.runEnd + 0.5);
  if (valid.length === 0) return ['server RSS          no sample'];
  const nearest = (at: number): Sample => valid.reduce((a, b) => (Math.abs(b.t - at) < Math.abs(a.t - at) ? b : a));
  const at = (s: Sample): string => `${mib(s.kib)} (t=${s.t.toFixed(0)} s)`;
  const secondHalf = valid.filter((s) => s.t >= r.runEnd / 2).map((s) => ({ x: s.t / 60, y: s.kib }));
  const perMin = slope(secondHalf);
  const peak = Math.max(...valid.map((s) => s.kib));
  const trend = Number.isFinite(perMin)
    ? `${perMin >= 0 ? '+' : ''}${perMin.toFixed(0)} KiB/min over ${secondHalf.length} samples`
    : 'n/a (too few samples)';
  return [
    `server RSS          start ${at(valid[0]!)}, middle ${at(nearest(r.runEnd / 2))}, end ${at(valid.at(-1)!)}, ` +
      `peak ${mib(peak)}`,
    `RSS slope, 2nd half ${trend}`,
  ];
}

export function formatSoakReport(r: SoakResult, failures: readonly string[]): string {
  const t = r.ledger;
  const c = r.counters;
  const log = readLog(r.log);
  const exit = describeExit(r.exit);
  const out = [
    '',
    '==== soak report ====',
    `duration            ${r.runEnd.toFixed(0)} s of traffic, ${r.clients} chatters (${r.stayers} stayers), ` +
      `seed ${r.seed}`,
    `sent                ${c.broadcastsSent} broadcasts, ${c.privatesSent} private messages, ` +
      `${c.sessions} sessions, ${c.leaves} clean leaves`,
    `delivered           ${t.delivered} broadcast deliveries, ${t.privateDelivered} private deliveries`,
    `lost                ${t.lost} broadcast, ${t.privateLost} private; out of order ${t.disorder}`,
    `well-behaved        unexpected drops ${c.unexpectedDrops}, System errors ${c.chatErrors}, ` +
      `connect failures ${c.connectFailures}`,
    `misbehaving         flooders ${c.flood.started} (closed 1008: ${c.flood.closed1008}, other: ${c.flood.other}); ` +
      `slow readers ${c.slow.started} (dropped: ${c.slow.dropped}, not dropped: ${c.slow.notDropped}); ` +
      `garbage ${c.garbage.started} (closed: ${c.garbage.closed}, lingering: ${c.garbage.lingering}); ` +
      `abrupt ${c.abrupt.started}`,
    ...memoryLines(r),
    `resuming clients    ${r.resumers.clients} (v2), ${r.resumers.sent} messages sent, ${r.resumers.cuts} cuts; ` +
      `anomalies ${r.resumers.anomalies.length}, behind ${r.resumers.behind.length}, unacked ${r.resumers.unacked}`,
    `server log          ${[...log.events].map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `server exit         ${r.died ? `DIED during the run: ${exit}` : `${exit} on SIGTERM`}; ` +
      `clients left online after the end: ${r.leaked}`,
  ];
  const examples = [...r.examples, ...c.examples, ...log.errors.slice(0, 10)];
  examples.push(...r.resumers.anomalies.slice(0, 10), ...r.resumers.behind.slice(0, 10));
  examples.push(...log.other.slice(0, 10).map((l) => `stderr: ${l}`));
  if (examples.length > 0) out.push('details:', ...examples.map((e) => `  ${e}`));
  out.push(failures.length === 0 ? 'result              PASS' : `result              FAIL: ${failures.join('; ')}`);
  return out.join('\n');
}
