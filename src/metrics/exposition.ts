/**
 * Metric families as plain data, and their rendering in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/). Plain data, so a worker process can send
 * its families to the primary over IPC and the primary can merge them (see ./workers.ts).
 */

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly labels?: Labels;
  readonly value: number;
}

/** One histogram: counts per bucket (NOT cumulative; the last one is above every bound), sum and count. */
export interface HistogramSample {
  readonly labels?: Labels;
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

interface FamilyHead {
  /** A counter's name ends in `_total` (the 0.0.4 convention promtool checks). */
  readonly name: string;
  readonly help: string;
}

export type Family =
  | (FamilyHead & { readonly type: 'counter' | 'gauge'; readonly samples: readonly Sample[] })
  | (FamilyHead & {
      readonly type: 'histogram';
      /** Upper bounds, ascending; `+Inf` is added when rendered. */
      readonly bounds: readonly number[];
      readonly samples: readonly HistogramSample[];
    });

/** A family of one unlabelled counter. */
export function counter(name: string, help: string, value: number): Family {
  return { name, help, type: 'counter', samples: [{ value }] };
}

/** A family of one unlabelled gauge. */
export function gauge(name: string, help: string, value: number): Family {
  return { name, help, type: 'gauge', samples: [{ value }] };
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Renders families in order, each once (HELP and TYPE, then its samples). Throws on a malformed name. */
export function render(families: readonly Family[]): string {
  let out = '';
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`invalid metric name ${JSON.stringify(f.name)}`);
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} must end in _total`);
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    if (f.type !== 'histogram') {
      for (const s of f.samples) out += `${f.name}${labelText(s.labels)} ${number(s.value)}\n`;
      continue;
    }
    for (const s of f.samples) {
      if (s.counts.length !== f.bounds.length + 1) throw new Error(`${f.name}: expected ${f.bounds.length + 1} counts`);
      let cumulative = 0;
      for (let i = 0; i <= f.bounds.length; i++) {
        cumulative += s.counts[i]!;
        const le = i < f.bounds.length ? number(f.bounds[i]!) : '+Inf';
        out += `${f.name}_bucket${labelText({ ...s.labels, le })} ${number(cumulative)}\n`;
      }
      out += `${f.name}_sum${labelText(s.labels)} ${number(s.sum)}\n`;
      out += `${f.name}_count${labelText(s.labels)} ${number(s.count)}\n`;
    }
  }
  return out;
}

/**
 * Families from several sources as one exposition: each source's samples get its labels (`worker="1"`),
 * and a family that several sources have is rendered once, with all their samples.
 */
export function merge(sources: readonly { readonly labels: Labels; readonly families: readonly Family[] }[]): Family[] {
  const byName = new Map<string, Family>();
  for (const { labels, families } of sources) {
    for (const f of families) {
      const samples = f.samples.map((s) => ({ ...s, labels: { ...labels, ...s.labels } }));
      const seen = byName.get(f.name);
      if (seen === undefined) byName.set(f.name, { ...f, samples } as Family);
      else if (seen.type === f.type) (seen.samples as unknown[]).push(...samples);
    }
  }
  return [...byName.values()];
}

function labelText(labels: Labels | undefined): string {
  if (labels === undefined) return '';
  let text = '';
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL.test(key)) throw new Error(`invalid label name ${JSON.stringify(key)}`);
    text += `${text === '' ? '' : ','}${key}="${escapeValue(value)}"`;
  }
  return text === '' ? '' : `{${text}}`;
}

/** 0.0.4: in HELP, backslash and line feed are escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** 0.0.4: in a label value, backslash, double quote and line feed are escaped. */
function escapeValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Go's ParseFloat spellings for the special values; integers without an exponent. */
function number(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return Number.isInteger(value) && Math.abs(value) < 1e21 ? value.toFixed(0) : String(value);
}
