/**
 * What Linux tells us about a process (the one reader of CPU and RSS for the bench and the soak):
 * CPU time from /proc/<pid>/stat (utime + stime, all threads), RSS from /proc/<pid>/status, a
 * process's descendants (a server that forks workers is measured as a whole), the open-files limit,
 * and the machine's busy time from /proc/stat (to see how much CPU other work took).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc times (getconf CLK_TCK; 100 on Linux). */
const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

const ticksToUs = (ticks: number): number => (ticks * 1e6) / CLK_TCK;

/** The fields of /proc/<pid>/stat from field 3 (state) on, or null once the process is gone. */
function statFields(pid: number): string[] | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2 (comm) may contain spaces and parentheses: count fields after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time (user + system, every thread) of a process in microseconds, NaN once it is gone. */
function procCpuUs(pid: number): number {
  const fields = statFields(pid);
  if (fields === null) return NaN;
  return ticksToUs(Number(fields[11]) + Number(fields[12])); // fields 14 (utime) and 15 (stime)
}

/** Resident set size in KiB (VmRSS), or NaN once the process is gone. */
function procRssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** `pid` and every live process descended from it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = Number(statFields(Number(entry))?.[1]); // field 4: ppid
    if (Number.isFinite(parent)) children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

export interface Usage {
  /** CPU time, user + system, µs. */
  readonly cpuUs: number;
  readonly rssKiB: number;
}

/**
 * CPU and RSS summed over a process tree (processTree()): NaN once its root is gone; descendants that
 * are gone count for nothing.
 */
export function usageOf(tree: readonly number[]): Usage {
  if (!Number.isFinite(procRssKiB(tree[0]!))) return { cpuUs: NaN, rssKiB: NaN };
  let cpuUs = 0;
  let rssKiB = 0;
  for (const pid of tree) {
    const cpu = procCpuUs(pid);
    const rss = procRssKiB(pid);
    if (Number.isFinite(cpu)) cpuUs += cpu;
    if (Number.isFinite(rss)) rssKiB += rss;
  }
  return { cpuUs, rssKiB };
}

/** The soft "Max open files" limit of a process. */
export function procOpenFilesLimit(pid: number | 'self'): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m === null ? NaN : m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return NaN;
  }
}

/** Machine-wide CPU time in microseconds, summed over all cores: busy (not idle/iowait) and softirq. */
export function machineCpuUs(): { busy: number; softirq: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3]! + v[4]!;
  return { busy: ticksToUs(total - idle), softirq: ticksToUs(v[6]!) };
}
