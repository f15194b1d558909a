/**
 * The process's own figures, read at scrape time (the names client libraries use, so dashboards for
 * them work): CPU, memory, event loop delay, start time, open file descriptors.
 */
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { counter, gauge, type Family } from './exposition';

/** The event loop delay is sampled this often (ms): coarse enough to cost nothing, fine enough for p99. */
const LOOP_RESOLUTION_MS = 10;

export class ProcessCollector {
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private readonly startSeconds = Math.round(Date.now() / 1000 - process.uptime());

  constructor() {
    this.loop.enable();
  }

  /** The event loop delay figures cover the time since the previous scrape (the histogram is reset). */
  collect(): Family[] {
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    // perf_hooks records the time between its samples, in nanoseconds: the delay is what exceeds the
    // sampling interval. Nothing sampled yet reads as 0.
    const sampled = this.loop.count > 0;
    const delay = (ns: number): number => (sampled ? Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1e3) : 0);
    const ns = (p: number): number => delay(this.loop.percentile(p));
    const max = delay(this.loop.max);
    const families: Family[] = [
      counter('process_cpu_user_seconds_total', 'User CPU time spent, in seconds.', cpu.user / 1e6),
      counter('process_cpu_system_seconds_total', 'System CPU time spent, in seconds.', cpu.system / 1e6),
      counter('process_cpu_seconds_total', 'User and system CPU time, in seconds.', (cpu.user + cpu.system) / 1e6),
      gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch.', this.startSeconds),
      gauge('process_resident_memory_bytes', 'Resident set size, in bytes.', memory.rss),
      gauge('nodejs_heap_size_total_bytes', 'V8 heap allocated, in bytes.', memory.heapTotal),
      gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.', memory.heapUsed),
      gauge('nodejs_external_memory_bytes', 'C++ objects bound to JavaScript (buffers), in bytes.', memory.external),
      gauge('nodejs_eventloop_lag_p50_seconds', 'Event loop delay since the previous scrape, median.', ns(50)),
      gauge('nodejs_eventloop_lag_p99_seconds', 'Event loop delay since the previous scrape, 99th percentile.', ns(99)),
      gauge('nodejs_eventloop_lag_max_seconds', 'Event loop delay since the previous scrape, largest.', max),
    ];
    this.loop.reset();
    const fds = openFileDescriptors();
    if (fds !== undefined) families.push(gauge('process_open_fds', 'Open file descriptors.', fds));
    return families;
  }

  stop(): void {
    this.loop.disable();
  }
}

/** Linux: one entry per descriptor in /proc/self/fd (the listing's own descriptor included). Elsewhere none. */
function openFileDescriptors(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}
