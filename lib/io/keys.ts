/** Comparing a checkpoint's keys with the keys a net expects. */
import type { StateDict } from './types.js';

export interface KeyReport {
  /** Expected keys the checkpoint lacks. */
  missing: string[];
  /** Checkpoint keys the net does not use. */
  unexpected: string[];
}

/** Missing and unexpected keys (each in its own list's order). */
export function checkKeys(expected: Iterable<string>, got: StateDict | Iterable<string>): KeyReport {
  const exp = [...expected];
  const have = got instanceof Map ? [...got.keys()] : [...got];
  const e = new Set(exp);
  const h = new Set(have);
  return { missing: exp.filter((k) => !h.has(k)), unexpected: have.filter((k) => !e.has(k)) };
}

/**
 * A readable report listing missing and unexpected keys by name ('' when both are empty).
 * `limit` caps names per list (default 50; the rest are counted).
 */
export function formatKeyReport(r: KeyReport, opts: { what?: string; limit?: number } = {}): string {
  const limit = opts.limit ?? 50;
  const what = opts.what ? `${opts.what}: ` : '';
  const list = (xs: string[]) =>
    xs
      .slice(0, limit)
      .map((k) => `  ${k}`)
      .join('\n') + (xs.length > limit ? `\n  ... and ${xs.length - limit} more` : '');
  const parts: string[] = [];
  if (r.missing.length) parts.push(`${what}${r.missing.length} missing key(s):\n${list(r.missing)}`);
  if (r.unexpected.length) parts.push(`${what}${r.unexpected.length} unexpected key(s):\n${list(r.unexpected)}`);
  return parts.join('\n');
}
