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
}

/** Register a bench suite (bench/*.ts call this from lib/cli/bench-suites.ts). */
export function registerSuite(name: string, load: () => Promise<{ run: (opts: BenchOptions) => Promise<unknown> }>): void {
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
  },
  async run(args) {
    await import('../bench-suites.js');
    const suite = args.positionals[0];
    if (!suite || !SUITES[suite]) {
      console.error(`diffguide bench: name a suite: ${Object.keys(SUITES).join(' | ') || '(none registered)'}`);
      return 2;
    }
    const mod = await SUITES[suite]();
    const report = await mod.run({ json: !!args.values.json, reps: Number(args.values.reps ?? 5), torch: !args.values['no-torch'] });
    console.log(args.values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
  },
};
export default bench;
