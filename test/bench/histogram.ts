/**
 * A latency histogram in whole microseconds: exact below 256 µs, then 128 buckets per power of two
 * (under 0.8% error), up to 2^31 µs. Recording is a few integer operations and one array
 * increment, so it can sit on the per-delivery path of the load client.
 */

const LINEAR = 256; // values below this get their own bucket
const SUB_BITS = 7; // 128 buckets per power of two above it
const SUB = 1 << SUB_BITS;
const MAX_EXP = 31;
const BUCKETS = LINEAR + (MAX_EXP - 8) * SUB;

/** A histogram as plain data, to send from a worker thread to the main thread (postMessage). */
export interface HistogramData {
  readonly counts: Float64Array;
  readonly count: number;
  readonly max: number;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;

  record(us: number): void {
    let v = us < 0 ? 0 : Math.floor(us);
    if (v > 0x7fffffff) v = 0x7fffffff;
    this.counts[indexOf(v)]!++;
    this.count++;
    if (v > this.max) this.max = v;
  }

  add(other: HistogramData): void {
    if (other.counts.length !== BUCKETS) throw new Error('histogram: bucket layouts differ');
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    if (other.max > this.max) this.max = other.max;
  }

  /** A copy of the samples as plain data (another histogram merges it with add()). */
  data(): HistogramData {
    return { counts: this.counts.slice(), count: this.count, max: this.max };
  }

  reset(): void {
    this.counts.fill(0);
    this.count = this.max = 0;
  }

  /** The value (µs, a bucket's midpoint) below which a fraction `q` (0..1) of the samples lie. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.max);
    }
    return this.max;
  }
}

function indexOf(v: number): number {
  if (v < LINEAR) return v;
  const e = 31 - Math.clz32(v); // 8 .. 30
  const shift = e - SUB_BITS;
  return LINEAR + (e - 8) * SUB + ((v >>> shift) - SUB);
}

function valueOf(i: number): number {
  if (i < LINEAR) return i;
  const e = 8 + Math.floor((i - LINEAR) / SUB);
  const shift = e - SUB_BITS;
  const sub = ((i - LINEAR) % SUB) + SUB;
  return (sub << shift) + ((1 << shift) >>> 1);
}
