/**
 * Snapshots of everything a measurement window needs: wall time, the server's CPU, this process's
 * CPU (all its threads), the whole machine's busy time (so CPU taken by anything else shows up),
 * and deliveries.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { machineCpuUs } from './proc';
import type { ServerProcess } from './server-process';

export interface Snapshot {
  readonly wallUs: number;
  readonly serverUs: number;
  readonly clientUs: number;
  readonly machineBusyUs: number;
  readonly softirqUs: number;
  readonly chats: number;
  /** KiB the load client received on the wire so far. */
  readonly wireKiB: number;
}

/** `clients.chats`: deliveries so far (LoadClients sums them over its threads). */
export function snapshot(
  server: ServerProcess,
  clients: { readonly chats: number; readonly wireKiB?: number },
): Snapshot {
  // getrusage(RUSAGE_SELF): every thread of this process, so the load client's worker threads too.
  const cpu = process.cpuUsage();
  const machine = machineCpuUs();
  return {
    wallUs: performance.now() * 1000,
    serverUs: server.usage().cpuUs,
    clientUs: cpu.user + cpu.system,
    machineBusyUs: machine.busy,
    softirqUs: machine.softirq,
    chats: clients.chats,
    wireKiB: clients.wireKiB ?? 0,
  };
}

export interface Window {
  readonly seconds: number;
  readonly deliveries: number;
  readonly deliveriesPerSec: number;
  /** Server CPU time per delivery, µs (/proc ticks are 10 ms: short windows are coarse). */
  readonly serverUsPerDelivery: number;
  /** CPU use as a percentage of one core. */
  readonly serverCpuPct: number;
  readonly clientCpuPct: number;
  /**
   * Everything else on the machine, % of one core: other programs, and kernel time not charged to
   * either process (loopback TCP work done in softirq context is part of it, see softirqPct).
   */
  readonly otherCpuPct: number;
  /** Machine-wide softirq time (mostly the loopback network stack under this load), % of one core. */
  readonly softirqPct: number;
  /** Bytes on the wire per delivery, WebSocket framing included (compressed, when it was). */
  readonly wireBytesPerDelivery: number;
}

export function window(a: Snapshot, b: Snapshot): Window {
  const wall = b.wallUs - a.wallUs;
  const server = b.serverUs - a.serverUs;
  const client = b.clientUs - a.clientUs;
  const busy = b.machineBusyUs - a.machineBusyUs;
  const deliveries = b.chats - a.chats;
  return {
    seconds: wall / 1e6,
    deliveries,
    deliveriesPerSec: deliveries / (wall / 1e6),
    serverUsPerDelivery: deliveries > 0 ? server / deliveries : NaN,
    serverCpuPct: (100 * server) / wall,
    clientCpuPct: (100 * client) / wall,
    otherCpuPct: Math.max(0, (100 * (busy - server - client)) / wall),
    softirqPct: (100 * (b.softirqUs - a.softirqUs)) / wall,
    wireBytesPerDelivery: deliveries > 0 ? ((b.wireKiB - a.wireKiB) * 1024) / deliveries : NaN,
  };
}

export function load(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}
