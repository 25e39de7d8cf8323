/** Locations inside the installed package (works from sources via tsx and from dist/). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/** The package root: the nearest ancestor folder whose package.json is named "diffguide". */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'diffguide')
      return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error('diffguide: cannot locate the package root (package.json named "diffguide")');
    dir = up;
  }
}

/** The package version from package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** A path inside the shipped `weights/` folder. */
export function weightsPath(...parts: string[]): string {
  return join(packageRoot(), 'weights', ...parts);
}
