/**
 * Command-line flags of the bench and the soak: `--name=value` or `--name value`; a switch is
 * `--name` (`--no-name` turns it off); `optional` takes a value only as `--name=value`; a list flag
 * may be repeated (`--env=A=1 --env=B=2`).
 */

export type FlagKind = 'number' | 'string' | 'switch' | 'optional' | 'list';

/** A bad command line: the message says which flag and why. */
export class FlagError extends Error {}

export class Flags {
  private readonly values = new Map<string, string[]>();

  constructor(
    argv: readonly string[],
    private readonly spec: Readonly<Record<string, FlagKind>>,
  ) {
    for (let i = 0; i < argv.length; i++) {
      const m = /^--([a-z][a-z-]*)(?:=(.*))?$/s.exec(argv[i]!);
      if (m === null) throw new FlagError(`unexpected argument ${JSON.stringify(argv[i])}`);
      let name = m[1]!;
      let value = m[2];
      if (value === undefined && name.startsWith('no-') && spec[name.slice(3)] === 'switch') {
        name = name.slice(3);
        value = 'false';
      }
      const kind = spec[name];
      if (kind === undefined) throw new FlagError(`unknown flag --${name}`);
      if (value === undefined) {
        if (kind === 'switch') value = 'true';
        else if (kind === 'optional') value = '';
        else if (i + 1 < argv.length) value = argv[++i]!;
        else throw new FlagError(`--${name} needs a value`);
      }
      this.values.set(name, [...(kind === 'list' ? (this.values.get(name) ?? []) : []), value]);
    }
  }

  private last(name: string): string | undefined {
    if (this.spec[name] === undefined) throw new Error(`flag --${name} is not in the spec`);
    return this.values.get(name)?.at(-1);
  }

  has(name: string): boolean {
    return this.last(name) !== undefined;
  }

  string(name: string): string | undefined {
    return this.last(name);
  }

  list(name: string): string[] {
    this.last(name);
    return this.values.get(name) ?? [];
  }

  /** On or off as given; undefined when not given. */
  switch(name: string): boolean | undefined {
    const raw = this.last(name);
    if (raw !== undefined && raw !== 'true' && raw !== 'false') throw new FlagError(`--${name}: true or false`);
    return raw === undefined ? undefined : raw === 'true';
  }

  /** The number given, else `fallback`; at least `min`, and a whole number when `integer` is set. */
  number(name: string, fallback: number, bounds: { min?: number; integer?: boolean } = {}): number {
    const raw = this.last(name);
    if (raw === undefined) return fallback;
    const v = Number(raw);
    const min = bounds.min ?? 0;
    if (raw.trim() === '' || !Number.isFinite(v) || v < min || (bounds.integer === true && !Number.isInteger(v))) {
      const what = bounds.integer === true ? 'a whole number' : 'a number';
      throw new FlagError(`--${name}: expected ${what} >= ${min}, got ${JSON.stringify(raw)}`);
    }
    return v;
  }
}
