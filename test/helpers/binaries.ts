/** Finding a program a test needs (openssl, nginx, haproxy...): the first candidate that runs. */
import { spawnSync } from 'node:child_process';

/** The first of `candidates` (paths or names on PATH) that exits 0 with `args`; undefined if none. */
export function findBinary(candidates: readonly (string | undefined)[], args: readonly string[]): string | undefined {
  for (const candidate of candidates) {
    if (candidate === undefined || candidate === '') continue;
    if (spawnSync(candidate, args, { stdio: 'ignore' }).status === 0) return candidate;
  }
  return undefined;
}
