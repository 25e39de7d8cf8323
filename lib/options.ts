/**
 * Range-checked option values: the one home for "is this count / seed / level valid", shared by the
 * API (the methods' option resolution) and the CLI (`lib/cli/command.ts` parses strings, then checks
 * here). A value out of range is refused with an `OptionError` naming the option, the valid range
 * and the value, never clamped or wrapped silently.
 */

/** A bad option value (the CLI exits with status 2 and points at --help). */
export class OptionError extends RangeError {
  override name = 'OptionError';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Range {
  /** Smallest valid value (inclusive). */
  min?: number;
  /** Largest valid value (inclusive). */
  max?: number;
  /** Values must be greater than this (exclusive lower bound, e.g. t0 in (0, 1]). */
  above?: number;
  /** Appended to the message in parentheses, e.g. "the model's schedule has 1000 steps". */
  why?: string;
}

/** DDIM's eta: 0 deterministic, 1 DDPM-like; above 1 a step asks for more noise than it has room for (sqrt(1 - abar_prev - sigma^2) < 0). */
export const ETA_RANGE: Range = { min: 0, max: 1, why: '0 = deterministic DDIM, 1 = DDPM-like noise' };

/** A noise level as a fraction of the schedule (SDEdit's, DiffusionCLIP's and inversion's t0). */
export const T0_RANGE: Range = {
  above: 0,
  max: 1,
  why: 'a fraction of the schedule: small = faithful, large = realistic',
};

/** Seeds are 32-bit: every integer in [0, 2^32) is a distinct seed, anything else is refused. */
export const SEED_MAX = 2 ** 32 - 1;

function describe(r: Range, integer: boolean): string {
  const lo = r.above !== undefined ? `(${r.above}` : r.min !== undefined ? `[${r.min}` : '(-inf';
  const hi = r.max !== undefined ? `${r.max}]` : 'inf)';
  const kind = integer ? 'an integer' : 'a number';
  if (r.max === undefined && r.above === undefined && r.min !== undefined) return `${kind} >= ${r.min}`;
  if (r.max === undefined && r.above !== undefined && r.min === undefined) return `${kind} > ${r.above}`;
  return `${kind} in ${lo}, ${hi}`;
}

function fail(option: string, value: unknown, r: Range, integer: boolean): never {
  const got = typeof value === 'string' ? JSON.stringify(value) : String(value);
  throw new OptionError(option, `${option} must be ${describe(r, integer)}${r.why ? ` (${r.why})` : ''}, got ${got}`);
}

function inRange(v: number, r: Range): boolean {
  return (
    (r.min === undefined || v >= r.min) && (r.max === undefined || v <= r.max) && (r.above === undefined || v > r.above)
  );
}

/** `v` if it is a finite number in `range`; else an OptionError. `shown` is what the user wrote (default v). */
export function checkNumber(option: string, v: number, range: Range = {}, shown: unknown = v): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !inRange(v, range)) fail(option, shown, range, false);
  return v;
}

/** `v` if it is an exactly representable integer (|v| < 2^53) in `range`; else an OptionError. */
export function checkInt(option: string, v: number, range: Range = {}, shown: unknown = v): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || !inRange(v, range)) fail(option, shown, range, true);
  return v;
}

/** A count of things (images, repeats, steps): an integer >= 1 (or `min`). */
export function checkCount(option: string, v: number, range: Range = {}, shown: unknown = v): number {
  return checkInt(option, v, { min: 1, ...range }, shown);
}

/** A seed: an integer in [0, 2^32). Seeds are hashed as 32-bit words, so larger values would alias smaller ones. */
export function checkSeed(option: string, v: number, shown: unknown = v): number {
  return checkInt(option, v, { min: 0, max: SEED_MAX, why: 'seeds are 32-bit' }, shown);
}
