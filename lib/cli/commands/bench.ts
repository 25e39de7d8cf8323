/** `diffguide bench <suite>`: benchmarks in bench/<suite>.ts, each printing ratios measured in one run. */
import type { Command } from '../command.js';

/** Each suite module exports `run(opts): Promise<object>` returning the JSON report. */
const SUITES: Record<string, () => Promise<{ run: (opts: BenchOptions) => Promise<unknown> }>> = {};

export interface BenchOptions {
  json: boolean;
  /** Repetitions per case (median reported). */
  reps: number;
  /** Run the PyTorch side when /usr/bin/python3 has torch. */
  torch: boolean;
  /** Image sizes for suites that take them (`bench scale`: --sizes 32,64). */
  sizes?: number[];
  /** A run of a few minutes (suites that support it: `bench scale` runs 32 and 64 px only). */
  quick?: boolean;
}

/** Register a bench suite (bench/*.ts call this from lib/cli/bench-suites.ts). */
export function registerSuite(
  name: string,
  load: () => Promise<{ run: (opts: BenchOptions) => Promise<unknown> }>,
): void {
  SUITES[name] = load;
}

const bench: Command = {
  name: 'bench',
  summary: 'benchmarks: ops | nets | sampling | methods | grid (JSON with --json)',
  usage: 'diffguide bench <suite> [--json] [--reps N] [--no-torch]',
  examples: ['diffguide bench ops --json', 'diffguide bench nets --reps 5'],
  options: {
    json: { type: 'boolean', help: 'print one JSON object on stdout' },
    reps: { type: 'string', help: 'repetitions per case, median reported (default 5)' },
    'no-torch': { type: 'boolean', help: 'skip the PyTorch side even when available' },
    sizes: { type: 'string', help: 'image sizes, comma-separated (bench scale; default 32,64,128,256)' },
    quick: { type: 'boolean', help: 'a run of minutes (bench scale: 32 and 64 px)' },
  },
  async run(args) {
    await import('../bench-suites.js');
    const suite = args.positionals[0];
    if (!suite || !SUITES[suite]) {
      console.error(`diffguide bench: name a suite: ${Object.keys(SUITES).join(' | ') || '(none registered)'}`);
      return 2;
    }
    const mod = await SUITES[suite]();
    let sizes: number[] | undefined;
    if (args.values.sizes !== undefined) {
      sizes = String(args.values.sizes)
        .split(',')
        .map((v) => Number(v.trim()));
      if (!sizes.length || sizes.some((v) => !Number.isInteger(v) || v < 1)) {
        console.error(
          `diffguide bench: --sizes takes positive integers, comma-separated (e.g. 32,64), got ${JSON.stringify(args.values.sizes)}`,
        );
        return 2;
      }
    }
    const report = await mod.run({
      json: !!args.values.json,
      reps: Number(args.values.reps ?? 5),
      torch: !args.values['no-torch'],
      sizes,
      quick: !!args.values.quick,
    });
    console.log(args.values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
  },
};
export default bench;
