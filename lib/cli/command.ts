/** The shape every `diffguide <command>` implements; `lib/cli/main.ts` parses and dispatches. */
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
  backend: { type: 'string', help: 'tfjs backend: auto|tensorflow-gpu|tensorflow|webgpu|wasm|cpu (default auto, or $DIFFGUIDE_BACKEND)' },
  help: { type: 'boolean', short: 'h', help: 'show help for this command' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress output on stderr' },
  threads: { type: 'string', help: 'wasm threads, 1..8 (default $DIFFGUIDE_WASM_THREADS, else the idle CPUs, at most 4); 1 = single-threaded' },
};

/** Typed getters for parsed values, with clear errors. */
export function str(args: ParsedArgs, name: string, fallback?: string): string {
  const v = args.values[name];
  if (typeof v === 'string') return v;
  if (fallback !== undefined) return fallback;
  throw new Error(`missing --${name}`);
}
export function num(args: ParsedArgs, name: string, fallback?: number): number {
  const v = args.values[name];
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing --${name}`);
  }
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}
export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}
