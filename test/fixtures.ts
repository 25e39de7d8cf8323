/** Locating the shared reference fixtures (../shared beside the repo, or $DIFFGUIDE_SHARED). */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../lib/paths.js';

export const SHARED = resolve(process.env.DIFFGUIDE_SHARED ?? join(packageRoot(), '..', 'shared'));
export const PARITY = join(SHARED, 'parity');
export const BENCH = join(SHARED, 'bench');
export const HAVE_PARITY = existsSync(join(PARITY, 'README.md'));

/** Path of a parity fixture file. */
export function parity(name: string): string {
  return join(PARITY, name);
}
