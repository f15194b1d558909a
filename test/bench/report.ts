/** The bench's tables: one per kind of scenario with a row per target, and the targets side by side. */
import { cpus } from 'node:os';
import { formatMicro, type MicroResult } from './micro';
import { formatSummary, type ProfileSummary } from './profile-summary';
import type { Figures, ScenarioResult } from './scenarios/common';

type Value = Figures[string] | undefined;

function fmt(v: Value): string {
  if (v === undefined || v === null || (typeof v === 'number' && Number.isNaN(v))) return '-';
  if (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) >= 10_000) return v.toLocaleString('en-US');
  return String(v);
}

const mib = (kib: Value): string => (typeof kib === 'number' && Number.isFinite(kib) ? (kib / 1024).toFixed(1) : '-');

/** The first `left` columns left-aligned (labels), the others right-aligned (figures). */
function table(headers: readonly string[], rows: readonly (readonly string[])[], left = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const FLOW_COLUMNS: readonly (readonly [string, string])[] = [
  ['deliveries/s', 'deliveriesPerSec'],
  ['p50 ms', 'p50Ms'],
  ['p90 ms', 'p90Ms'],
  ['p99 ms', 'p99Ms'],
  ['max ms', 'maxMs'],
  ['lost', 'lost'],
  ['srv µs/deliv', 'serverUsPerDelivery'],
  ['srv CPU%', 'serverCpuPct'],
  ['load CPU%', 'clientCpuPct'],
  ['other CPU%', 'otherCpuPct'],
  ['wire B/deliv', 'wireBytesPerDelivery'],
  ['scripts/msg', 'redisScriptsPerMessage'],
  ['redis cmd/msg', 'redisCommandsPerMessage'],
  ['redis µs/msg', 'redisUsPerMessage'],
];

function flowLabel(r: ScenarioResult): string {
  const f = r.figures;
  const tail = ` ${f.loadThreads}t${f.profiled ? ' (profiled)' : ''}`;
  if (r.scenario === 'fixed') return `fixed ${f.clients}c ${f.senders}x${f.ratePerSender}/s${tail}`;
  if (r.scenario === 'saturate') return `saturate ${f.clients}c ${f.senders}s w${f.window}${tail}`;
  return `slow ${f.healthyClients}+1c ${f.senders}x${f.ratePerSender}/s${tail}`;
}

function flowTable(flow: readonly ScenarioResult[]): string {
  const rows = flow.map((r) => [
    r.target,
    flowLabel(r),
    ...FLOW_COLUMNS.map(([, k]) => fmt(k === 'lost' && r.scenario === 'slow' ? r.figures.healthyLost : r.figures[k])),
  ]);
  return [
    table(['target', 'scenario', ...FLOW_COLUMNS.map((c) => c[0])], rows, 2),
    `  (CPU% = % of one core; the machine has ${cpus().length} cores. "other" = everything but server and load client.`,
    '   Nt = the load client ran its connections in N threads; its CPU% covers all of them.',
    '   A cluster target (+WORKERS, +REDIS_URL=auto): srv = all its nodes plus the Redis the bench started;',
    '   scripts/msg = script calls (EVALSHA) per chat message; redis cmd/msg = every command Redis ran per',
    '   message, those inside the scripts included; both count the nodes\' leases; redis µs/msg = Redis\'s',
    '   own CPU per message (its part of srv): one Redis core tops out near 1e6 / that many messages/s.)',
  ].join('\n');
}

function idleTable(results: readonly ScenarioResult[]): string {
  const headers = ['target', 'connections', 'RSS before', 'after join', 'after GC MiB', 'KiB/conn no GC', 'after GC'];
  const rows = results.map(({ target, figures: f }) => [
    target,
    fmt(f.registered),
    mib(f.rssBeforeKiB),
    mib(f.rssAfterJoinKiB),
    mib(f.rssAfterGcKiB),
    fmt(f.kibPerConnNoGc),
    fmt(f.kibPerConnGc),
  ]);
  const joins = results.map(({ target, figures: f }) => [
    target,
    fmt(f.joinNotices),
    fmt(f.joinSeconds),
    fmt(f.joinDeliveriesPerSec),
    fmt(f.joinServerUsPerDelivery),
    fmt(f.joinServerCpuPct),
  ]);
  return [
    table(headers, rows),
    '  (KiB/conn = (RSS - RSS before) / N: "no GC" read as soon as the last join notice arrived; "after GC" after a',
    '   forced full GC, Node.js servers only. RSS is summed over the server\'s process tree.)',
    '',
    table(['target', 'join notices', 'join s', 'join deliv/s', 'srv µs/deliv', 'srv CPU%'], joins),
  ].join('\n');
}

function slowTable(results: readonly ScenarioResult[]): string {
  const headers = ['target', 'dropped', 'after s', 'server reason', 'close sent', 'slow saw', 'healthy lost'];
  headers.push('RSS before/peak/after MiB');
  const rows = results.map(({ target, figures: f }) => [
    target,
    fmt(f.slowDropped),
    fmt(f.secondsToDrop),
    fmt(f.serverDropReason),
    fmt(f.serverSentCloseCode),
    f.slowSawCloseCode !== null ? `close ${f.slowSawCloseCode}` : f.slowSocketEnded ? 'socket ended' : 'nothing',
    fmt(f.healthyLost),
    [f.rssBeforeKiB, f.rssPeakKiB, f.rssAfterKiB].map(mib).join(' / '),
  ]);
  return table(headers, rows);
}

function historyTable(results: readonly ScenarioResult[]): string {
  const headers = ['target', 'rooms', 'per room', 'stored', 'text B', 'RSS before', 'after GC MiB'];
  headers.push('B/message', 'full server MiB');
  const rows = results.map(({ target, figures: f }) => [
    target,
    fmt(f.rooms),
    fmt(f.historySize),
    fmt(f.stored),
    fmt(f.textBytes),
    fmt(f.rssBeforeMiB),
    fmt(f.rssAfterMiB),
    fmt(f.bytesPerMessage),
    fmt(f.fullServerMiB),
  ]);
  return [
    table(headers, rows),
    '  (B/message = (RSS after a forced GC - before) / stored; "full server" = MAX_ROOMS (1000) rooms of that many.)',
  ].join('\n');
}

/** The figures compared side by side: [scenario, figure, column heading]. */
const HEADLINES: readonly (readonly [string, string, string])[] = [
  ['saturate', 'deliveriesPerSec', 'saturate deliv/s'],
  ['saturate', 'serverUsPerDelivery', 'sat. µs/deliv'],
  ['saturate', 'serverCpuPct', 'sat. srv CPU%'],
  ['fixed', 'p50Ms', 'fixed p50 ms'],
  ['fixed', 'p99Ms', 'fixed p99 ms'],
  ['fixed', 'serverUsPerDelivery', 'fixed µs/deliv'],
  ['idle', 'kibPerConnNoGc', 'idle KiB/conn no GC'],
  ['idle', 'kibPerConnGc', 'idle after GC'],
  ['idle', 'joinSeconds', 'idle join s'],
];

/** A row per target, its headline figures, and each one's ratio to the first target's. */
function sideBySide(results: readonly ScenarioResult[], targets: readonly string[]): string {
  const find = (target: string, scenario: string): Figures | undefined =>
    results.find((r) => r.target === target && r.scenario === scenario)?.figures;
  const columns = HEADLINES.filter(([scenario]) => results.some((r) => r.scenario === scenario));
  const rows = targets.map((target, row) => [
    target,
    ...columns.map(([scenario, key]) => {
      const v = find(target, scenario)?.[key];
      const first = find(targets[0]!, scenario)?.[key];
      const ratio =
        row > 0 && typeof v === 'number' && typeof first === 'number' && Number.isFinite(v) && first > 0
          ? ` ×${(v / first).toFixed(2)}`
          : '';
      return fmt(v) + ratio;
    }),
  ]);
  return [
    table(['side by side', ...columns.map((c) => c[2])], rows),
    `  (×: the ratio to ${targets[0]}'s figure in the same run)`,
  ].join('\n');
}

export interface Report {
  readonly targets: readonly string[];
  readonly results: readonly ScenarioResult[];
  readonly micro: readonly MicroResult[] | null;
  readonly profiles: readonly ProfileSummary[];
  /** Lines to print at the end (scenarios skipped on a target, and why). */
  readonly notes: readonly string[];
}

export function formatReport(report: Report): string {
  const { results } = report;
  const of = (...names: string[]): ScenarioResult[] => results.filter((r) => names.includes(r.scenario));
  const parts: string[] = [];
  if (of('fixed', 'saturate', 'slow').length > 0) parts.push(flowTable(of('fixed', 'saturate', 'slow')));
  if (of('idle').length > 0) parts.push(idleTable(of('idle')));
  if (of('slow').length > 0) parts.push(slowTable(of('slow')));
  if (of('history').length > 0) parts.push(historyTable(of('history')));
  const compared = report.targets.length > 1 && of('fixed', 'saturate', 'idle').length > 0;
  if (compared) parts.push(sideBySide(results, report.targets));
  if (report.micro !== null) parts.push(formatMicro(report.micro));
  const notes = [...report.notes, ...results.flatMap((r) => r.notes)];
  if (notes.length > 0) parts.push(notes.map((n) => `NOTE ${n}`).join('\n'));
  for (const p of report.profiles) parts.push(formatSummary(p));
  return parts.join('\n\n');
}
