/**
 * What experiment definitions repeat in their `settings` and `merge`: paths relative to the package,
 * weights records (`{ file, sha256 }`), the judge's file check, and mean / sd / table formatting.
 * (experiments/sdedit.ts and sdg.ts use these; the other experiments can adopt them.)
 */
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { fileHash } from './grid.js';
import { packageRoot } from '../paths.js';

/** A path relative to the package root (for settings and tables; absolute paths stay as given outside it). */
export function relPath(p: string): string {
  return relative(packageRoot(), p) || p;
}

/** A weights file as settings record it: its path relative to the package and its sha256 (16 hex digits). */
export function weightsEntry(file: string): { file: string; sha256: string } {
  return { file: relPath(file), sha256: fileHash(file) };
}

/**
 * The judge's weights file in `dir`; throws, naming the experiment and the fix, when it is missing.
 */
export function judgeFileOf(experiment: string, dir: string): string {
  const file = `${dir}/judge.safetensors`;
  if (!existsSync(file))
    throw new Error(
      `experiment ${experiment} needs the judge: ${file} is missing (diffguide train judge, or --param judge=DIR)`,
    );
  return file;
}

/** Arithmetic mean (NaN for no values). */
export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Population standard deviation (ddof 0; NaN for no values). */
export function sd(xs: readonly number[]): number {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

/** A table figure: '–' for null / undefined / NaN, else `digits` decimals. */
export function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits);
}

/** Values over seeds as 'mean ± sd' (just the mean for one value, '–' for none). */
export function meanSd(xs: readonly number[], digits = 3): string {
  if (!xs.length) return '–';
  return xs.length > 1 ? `${fmt(mean(xs), digits)} ± ${fmt(sd(xs), digits)}` : fmt(mean(xs), digits);
}
