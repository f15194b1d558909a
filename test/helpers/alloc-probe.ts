/**
 * The allocation probe of the fuzzers: while active, every Buffer.alloc / allocUnsafe / allocUnsafeSlow
 * is checked against a bound, so a parser that allocates what a hostile length announces is caught
 * in the act. Install it in beforeEach and remove it in afterEach.
 */

export interface Probe {
  active: boolean;
  /** Largest allowed allocation while active. */
  bound: number;
  /** The largest allocation seen, and how many there were. */
  largest: number;
  count: number;
  /** The first allocation above the bound, spelled out. */
  violation: string | undefined;
}

export const probe: Probe = { active: false, bound: 0, largest: 0, count: 0, violation: undefined };
const originals = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow };

function record(size: number, how: string): void {
  probe.count++;
  if (size > probe.largest) probe.largest = size;
  if (size > probe.bound && probe.violation === undefined) {
    probe.violation = `Buffer.${how}(${size}) above the bound ${probe.bound}`;
  }
}

export function installProbe(): void {
  // A local monkeypatch (cheaper than vi.spyOn on a hot path), restored by removeProbe().
  Buffer.alloc = ((size: number, ...rest: unknown[]) => {
    if (probe.active) record(size, 'alloc');
    return (originals.alloc as (...a: unknown[]) => Buffer)(size, ...rest);
  }) as typeof Buffer.alloc;
  Buffer.allocUnsafe = ((size: number) => {
    if (probe.active) record(size, 'allocUnsafe');
    return originals.allocUnsafe(size);
  }) as typeof Buffer.allocUnsafe;
  Buffer.allocUnsafeSlow = ((size: number) => {
    if (probe.active) record(size, 'allocUnsafeSlow');
    return originals.allocUnsafeSlow(size);
  }) as typeof Buffer.allocUnsafeSlow;
}

export function removeProbe(): void {
  Buffer.alloc = originals.alloc;
  Buffer.allocUnsafe = originals.allocUnsafe;
  Buffer.allocUnsafeSlow = originals.allocUnsafeSlow;
  probe.active = false;
}

/**
 * Calls `push` with the probe on and every allocation bounded by `bound`; the first problem (a throw, or
 * an allocation above the bound), or undefined.
 */
export function probedPush(push: () => void, bound: number): string | undefined {
  probe.bound = bound;
  probe.violation = undefined;
  probe.active = true;
  try {
    push();
  } catch (error) {
    return `push() threw: ${(error as Error).stack ?? String(error)}`;
  } finally {
    probe.active = false;
  }
  return probe.violation;
}
