/** The shape every `diffguide <command>` implements; `lib/cli/main.ts` parses and dispatches. */
import { BACKEND_ORDER, type BackendName } from '../backend.js';
import { OptionError, checkInt, checkNumber, checkSeed, type Range } from '../options.js';
import { OutputError, checkWritableDir, checkWritableFile } from '../output.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** One line for --help; say the unit and the default. */
  help: string;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface Command {
  name: string;
  /** One line shown in `diffguide --help`. */
  summary: string;
  /** e.g. `diffguide inspect FILE` */
  usage: string;
  /** At least one runnable example shown by --help. */
  examples: string[];
  options: Record<string, OptionSpec>;
  /** Returns the exit status (default 0). */
  run(args: ParsedArgs): Promise<number | void>;
}

/** Options every command accepts (handled in main before `run`). */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  backend: {
    type: 'string',
    help: 'tfjs backend: auto|tensorflow-gpu|tensorflow|webgpu|wasm|cpu (default auto, or $DIFFGUIDE_BACKEND)',
  },
  help: { type: 'boolean', short: 'h', help: 'show help for this command' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress output on stderr' },
  threads: {
    type: 'string',
    help: 'wasm threads, 1..8 (default $DIFFGUIDE_WASM_THREADS, else the idle CPUs, at most 4); 1 = single-threaded',
  },
};

/** Bad command-line input: main and `guarded` print it with a pointer to --help and exit with status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * A usage error of any kind (a UsageError, or an OptionError from the CLI getters or a method's option
 * checks). By name as well as class: a module loaded twice (CommonJS and ESM copies) has two classes.
 */
export function isUsageError(e: unknown): boolean {
  return (
    e instanceof UsageError ||
    e instanceof OptionError ||
    (e instanceof Error && (e.name === 'UsageError' || e.name === 'OptionError'))
  );
}

/**
 * Typed getters for parsed values, with clear errors: the one home for the CLI's value checks.
 * The ranges themselves are checked by lib/options.ts (shared with the API), named by the flag.
 */
export function str(args: ParsedArgs, name: string, fallback?: string): string {
  const v = args.values[name];
  if (typeof v === 'string') return v;
  if (fallback !== undefined) return fallback;
  throw new UsageError(`missing --${name}`);
}

/** The number written in `v` ("" and "  " are not 0). */
function parseNumber(name: string, v: unknown, integer: boolean): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (Number.isNaN(n))
    throw new OptionError(
      `--${name}`,
      `--${name} must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`,
    );
  return n;
}

/** A number option (finite, in `range`), or `fallback` when not given. */
export function num(args: ParsedArgs, name: string, fallback?: number, range: Range = {}): number {
  const v = args.values[name];
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new UsageError(`missing --${name}`);
  }
  return checkNumber(`--${name}`, parseNumber(name, v, false), range, v);
}

/** An integer option (exactly representable, in `range`), or `fallback` when not given. */
export function int(args: ParsedArgs, name: string, fallback?: number, range: Range = {}): number {
  const v = args.values[name];
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new UsageError(`missing --${name}`);
  }
  return checkInt(`--${name}`, parseNumber(name, v, true), range, v);
}

/** A count (integer >= 1 unless `range.min` says otherwise). */
export function count(args: ParsedArgs, name: string, fallback?: number, range: Range = {}): number {
  return int(args, name, fallback, { min: 1, ...range });
}

/** A seed: an integer in [0, 2^32) (seeds are 32-bit; larger values would silently alias smaller ones). */
export function seed(args: ParsedArgs, name = 'seed', fallback = 0): number {
  const v = args.values[name];
  if (v === undefined) return fallback;
  return checkSeed(`--${name}`, parseNumber(name, v, true), v);
}

/** A comma-separated list of numbers, each in `range`. */
export function numList(args: ParsedArgs, name: string, fallback: number[], range: Range = {}): number[] {
  const v = args.values[name];
  if (v === undefined) return fallback;
  const parts = String(v).split(',');
  const xs = parts.map((s) => (s.trim() === '' ? NaN : Number(s.trim())));
  if (xs.some((x) => Number.isNaN(x)))
    throw new OptionError(`--${name}`, `--${name} must be comma-separated numbers, got ${JSON.stringify(v)}`);
  xs.forEach((x, i) => checkNumber(`--${name}`, x, range, parts[i].trim()));
  return xs;
}

/** A one-of option. */
export function choice<T extends string>(args: ParsedArgs, name: string, options: readonly T[], fallback: T): T {
  const v = args.values[name];
  if (v === undefined) return fallback;
  if (!options.includes(v as T))
    throw new OptionError(`--${name}`, `--${name} must be one of ${options.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/** --backend: a backend name or 'auto' (undefined when not given). */
export function backend(args: ParsedArgs): BackendName | 'auto' | undefined {
  const v = args.values.backend;
  if (v === undefined) return undefined;
  if (v !== 'auto' && !(BACKEND_ORDER as readonly string[]).includes(v as string)) {
    throw new OptionError(
      '--backend',
      `--backend ${JSON.stringify(v)} is not a backend; use one of: auto, ${BACKEND_ORDER.join(', ')}`,
    );
  }
  return v as BackendName | 'auto';
}

/**
 * An output folder from option `name` (default `fallback`), proved writable now, before any work,
 * and not created yet (see lib/output.ts; writers create it with `makeDirs`). Returns the absolute path.
 */
export function outDir(args: ParsedArgs, name: string, fallback: string): string {
  const given = typeof args.values[name] === 'string' ? (args.values[name] as string) : undefined;
  const dir = given ?? fallback;
  return writable(() =>
    checkWritableDir(
      dir,
      given !== undefined ? `--${name} ${dir}` : `the output folder ${dir} (default; choose another with --${name})`,
    ),
  );
}

/** An output file from option `name` (undefined when not given), proved writable now (nothing is created). */
export function outFile(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  if (typeof v !== 'string') return undefined;
  return writable(() => checkWritableFile(v, `--${name} ${v}`));
}

/** An output path that is not an option (e.g. a positional OUT file), proved writable now. */
export function outPath(path: string, label: string): string {
  return writable(() => checkWritableFile(path, label));
}

function writable(fn: () => string): string {
  try {
    return fn();
  } catch (e) {
    if (e instanceof OutputError || (e instanceof Error && e.name === 'OutputError'))
      throw new UsageError((e as Error).message);
    throw e;
  }
}

/**
 * argv with a negative number after a value-taking option joined to it (`--t0 -0.2` -> `--t0=-0.2`,
 * `-o -1` -> `-o-1`), so node's parseArgs takes it as the value instead of
 * refusing it as "ambiguous"; the value's range check then names the problem.
 */
export function joinNegativeValues(argv: string[], options: Record<string, OptionSpec>): string[] {
  const takesValue = new Set<string>();
  for (const [k, o] of Object.entries(options)) {
    if (o.type !== 'string') continue;
    takesValue.add(`--${k}`);
    if (o.short) takesValue.add(`-${o.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (takesValue.has(a) && next !== undefined && /^-(\d|\.\d|Infinity\b|NaN\b)/.test(next)) {
      out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}
