/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): the top functions by self time, with their
 * inclusive time, and self time per source file. Locations in compiled .js files are mapped back
 * to their .ts sources through the .js.map files tsc writes next to them.
 *
 *   node dist-bench/test/bench/profile-summary.js /tmp/prof/CPU.*.cpuprofile [--top=25]
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './targets';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number; // 0-based
  columnNumber: number; // 0-based
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionRow {
  readonly name: string;
  readonly location: string;
  readonly file: string;
  readonly selfMs: number;
  readonly selfPct: number;
  readonly totalMs: number;
  readonly totalPct: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly durationMs: number;
  readonly sampledMs: number;
  readonly top: FunctionRow[];
  readonly files: { file: string; selfMs: number; selfPct: number }[];
}

const sourceMaps = new Map<string, SourceMap | null>();

function sourceMapFor(path: string): SourceMap | null {
  if (!sourceMaps.has(path)) {
    let map: SourceMap | null = null;
    try {
      const payload = JSON.parse(readFileSync(path + '.map', 'utf8')) as SourceMapPayload;
      map = new SourceMap(payload);
    } catch {
      map = null;
    }
    sourceMaps.set(path, map);
  }
  return sourceMaps.get(path)!;
}

/** "src/chat/models/hub.ts:123" for our code, "node:internal/net:456" for Node's, "(gc)" etc. for V8's. */
function locate(frame: CallFrame): { file: string; location: string } {
  const url = frame.url;
  if (url === '') return { file: '(native/V8)', location: '' };
  let path = url;
  if (url.startsWith('file://')) path = fileURLToPath(url);
  if (path.startsWith('/')) {
    const map = path.endsWith('.js') ? sourceMapFor(path) : null;
    if (map !== null) {
      const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as {
        originalSource?: string;
        originalLine?: number;
      };
      if (entry.originalSource !== undefined && entry.originalLine !== undefined) {
        const source = entry.originalSource.startsWith('file://')
          ? fileURLToPath(entry.originalSource)
          : resolve(dirname(path), entry.originalSource);
        const file = relative(ROOT, source);
        return { file, location: `${file}:${entry.originalLine + 1}` };
      }
    }
    const file = relative(ROOT, path);
    return { file, location: `${file}:${frame.lineNumber + 1}` };
  }
  return { file: url, location: `${url}:${frame.lineNumber + 1}` };
}

/** Self time per profile node (each sample lasts until the next one; the last one gets the mean), µs. */
function selfTimes(profile: CpuProfile): { selfUs: Map<number, number>; sampledUs: number } {
  const selfUs = new Map<number, number>();
  const n = profile.samples.length;
  let sampledUs = 0;
  for (let i = 0; i < n; i++) {
    const dt = i + 1 < n ? profile.timeDeltas[i + 1]! : (profile.endTime - profile.startTime) / Math.max(1, n);
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    sampledUs += dt;
  }
  return { selfUs, sampledUs };
}

interface Row {
  name: string;
  location: string;
  file: string;
  self: number;
  total: number;
}

/**
 * Self and inclusive time by function (name + location). Inclusive time counts a function once per
 * stack even when it recurses.
 */
function functionRows(profile: CpuProfile, selfUs: ReadonlyMap<number, number>): Row[] {
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const keyOf = new Map<number, string>();
  const rows = new Map<string, Row>();
  for (const node of profile.nodes) {
    const { file, location } = locate(node.callFrame);
    const name = node.callFrame.functionName || '(anonymous)';
    const key = `${name}\u0000${location}`;
    keyOf.set(node.id, key);
    if (!rows.has(key)) rows.set(key, { name, location, file, self: 0, total: 0 });
    rows.get(key)!.self += selfUs.get(node.id) ?? 0;
  }
  // Inclusive time of every subtree, children before parents (an iterative DFS, then backwards).
  const root = profile.nodes[0]!;
  const subtree = new Map<number, number>();
  const order: number[] = [];
  for (const stack = [root.id]; stack.length > 0; ) {
    const id = stack.pop()!;
    order.push(id);
    for (const c of byId.get(id)!.children ?? []) stack.push(c);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const node = byId.get(order[i]!)!;
    let t = selfUs.get(node.id) ?? 0;
    for (const c of node.children ?? []) t += subtree.get(c) ?? 0;
    subtree.set(node.id, t);
  }
  // Added to each distinct function on the path.
  const onStack = new Map<string, number>();
  const visit = (id: number): void => {
    const key = keyOf.get(id)!;
    const depth = onStack.get(key) ?? 0;
    if (depth === 0) rows.get(key)!.total += subtree.get(id) ?? 0;
    onStack.set(key, depth + 1);
    for (const c of byId.get(id)!.children ?? []) visit(c);
    onStack.set(key, depth);
  };
  visit(root.id);
  return [...rows.values()].filter((r) => r.name !== '(root)');
}

export function summarize(path: string, topN = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const { selfUs, sampledUs } = selfTimes(profile);
  const all = functionRows(profile, selfUs);
  const total = Math.max(1, sampledUs);
  const top = [...all]
    .sort((a, b) => b.self - a.self)
    .slice(0, topN)
    .map((r) => ({
      name: r.name,
      location: r.location,
      file: r.file,
      selfMs: r.self / 1000,
      selfPct: (100 * r.self) / total,
      totalMs: r.total / 1000,
      totalPct: (100 * r.total) / total,
    }));
  const perFile = new Map<string, number>();
  for (const r of all) {
    const file = r.file === '(native/V8)' ? r.name : r.file; // (garbage collector), (program), (idle)
    perFile.set(file, (perFile.get(file) ?? 0) + r.self);
  }
  const files = [...perFile.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([file, self]) => ({ file, selfMs: self / 1000, selfPct: (100 * self) / total }));
  const durationMs = (profile.endTime - profile.startTime) / 1000;
  return { file: path, durationMs, sampledMs: sampledUs / 1000, top, files };
}

export function formatSummary(s: ProfileSummary): string {
  const lines: string[] = [];
  lines.push(`profile ${s.file}: ${(s.durationMs / 1000).toFixed(1)} s (sampled ${(s.sampledMs / 1000).toFixed(1)} s)`);
  lines.push(`  ${'self ms'.padStart(9)} ${'self%'.padStart(6)} ${'total%'.padStart(7)}  function  (location)`);
  for (const r of s.top) {
    lines.push(
      `  ${r.selfMs.toFixed(0).padStart(9)} ${r.selfPct.toFixed(1).padStart(6)} ` +
        `${r.totalPct.toFixed(1).padStart(7)}  ${r.name}${r.location ? `  (${r.location})` : ''}`,
    );
  }
  lines.push('  self time by file:');
  for (const f of s.files) {
    lines.push(`  ${f.selfMs.toFixed(0).padStart(9)} ${f.selfPct.toFixed(1).padStart(6)}          ${f.file}`);
  }
  return lines.join('\n');
}

/** The newest .cpuprofile in a directory. */
export function newestProfile(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return files[0];
}

if (require.main === module) {
  const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 25);
  const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (files.length === 0) {
    process.stderr.write('usage: node dist-bench/test/bench/profile-summary.js <file.cpuprofile | dir> [--top=25]\n');
    process.exit(2);
  }
  for (const f of files) {
    const path = statSync(f).isDirectory() ? newestProfile(f) : f;
    if (path === undefined) {
      process.stderr.write(`no .cpuprofile in ${f}\n`);
      process.exit(1);
    }
    console.log(formatSummary(summarize(path, top)));
  }
}
