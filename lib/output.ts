/**
 * Output paths: prove a folder or file can be written before long work starts (creating nothing),
 * so a bad `--out` fails in milliseconds with the reason instead of after sampling or training; and
 * make folders safely when the outputs are written.
 *
 * Folders are created one level at a time: Node's `mkdirSync(p, { recursive: true })` loops forever
 * (100% CPU, deaf to SIGTERM) on a path under /proc, where mkdir answers ENOENT for a parent that exists.
 */
import { closeSync, mkdirSync, openSync, rmdirSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** An output path that cannot be written (names the path, the reason and the fix). */
export class OutputError extends Error {
  override name = 'OutputError';
}

function code(e: unknown): string {
  const c = (e as NodeJS.ErrnoException)?.code;
  const m = e instanceof Error ? e.message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '') : String(e);
  return c ? `${c}: ${m}` : m;
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOENT' || c === 'ENOTDIR') return null; // ENOTDIR: a file further up, found by walking up
    throw e;
  }
}

/**
 * Create `dir` and any missing parents without recursive mkdir; returns the folders it created
 * (outermost first). Throws an OutputError naming `label` (e.g. "--out /proc/x") on failure, after
 * removing the folders it created.
 */
export function makeDirs(dir: string, label = `output folder ${dir}`): string[] {
  const abs = resolve(dir);
  const missing: string[] = [];
  for (let p = abs, base = nearestExisting(abs, label); p !== base; p = dirname(p)) missing.unshift(p);
  const made: string[] = [];
  for (const m of missing) {
    try {
      mkdirSync(m);
      made.push(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statOrNull(m)?.isDirectory()) continue; // made meanwhile
      removeMade(made);
      throw new OutputError(`${label}: cannot create the folder ${m} (${code(e)}); choose a folder you can write to`);
    }
  }
  return made;
}

function removeMade(made: string[]): void {
  for (const m of [...made].reverse()) {
    try {
      rmdirSync(m);
    } catch {
      // not empty or gone: leave it
    }
  }
}

/**
 * Make `dir` (see `makeDirs`) and prove a file can be created in it (a probe file, removed at
 * once). Returns the absolute path. `label` names the path in errors, e.g. "--out /proc/x".
 */
export function ensureWritableDir(dir: string, label = `output folder ${dir}`): string {
  const abs = resolve(dir);
  const made = makeDirs(abs, label);
  const probe = join(abs, `.diffguide-write-test-${process.pid}-${Date.now()}`);
  try {
    writeFileSync(probe, '', { flag: 'wx' });
  } catch (e) {
    removeMade(made);
    throw new OutputError(`${label}: cannot write into ${abs} (${code(e)}); choose a folder you can write to`);
  }
  unlinkSync(probe);
  return abs;
}

/** The nearest existing ancestor of `abs` (itself if it exists); refuses a file in the way. */
function nearestExisting(abs: string, label: string): string {
  let p = abs;
  for (;;) {
    let st: Stats | null;
    try {
      st = statOrNull(p);
    } catch (e) {
      throw new OutputError(`${label}: cannot look at ${p} (${code(e)}); choose a folder you can write to`);
    }
    if (st) {
      if (!st.isDirectory()) throw new OutputError(`${label}: ${p} is a file, not a folder; choose another path`);
      return p;
    }
    const up = dirname(p);
    if (up === p) return p;
    p = up;
  }
}

/**
 * Check, creating nothing, that `dir` can be written: it (or, when missing, its nearest existing
 * ancestor, where it would be created) must be a folder that accepts a new file (a probe file,
 * removed at once). Returns the absolute path; create it later with `makeDirs` (writeOutputs and
 * the training loop do). `label` names the path in errors, e.g. "--out /proc/x".
 */
export function checkWritableDir(dir: string, label = `output folder ${dir}`): string {
  const abs = resolve(dir);
  const base = nearestExisting(abs, label);
  const probe = join(base, `.diffguide-write-test-${process.pid}-${Date.now()}`);
  try {
    writeFileSync(probe, '', { flag: 'wx' });
  } catch (e) {
    const where =
      base === abs ? `cannot write into ${abs}` : `cannot create ${abs}: ${base} does not accept new entries`;
    throw new OutputError(`${label}: ${where} (${code(e)}); choose a folder you can write to`);
  }
  unlinkSync(probe);
  return abs;
}

/**
 * Check, creating nothing, that the file `path` can be written: its folder as in `checkWritableDir`,
 * and an existing file must be a file that opens for writing (it is not changed). Returns the absolute path.
 */
export function checkWritableFile(path: string, label = `output file ${path}`): string {
  const abs = resolve(path);
  const st = statOrNull(abs);
  if (st?.isDirectory()) throw new OutputError(`${label}: ${abs} is a folder; give a file name`);
  checkWritableDir(dirname(abs), label);
  if (st) {
    try {
      closeSync(openSync(abs, 'r+'));
    } catch (e) {
      throw new OutputError(`${label}: ${abs} exists and cannot be written (${code(e)}); choose another file`);
    }
  }
  return abs;
}
