/** `diffguide demo` (= `npm run demo`): all five methods on the shipped weights; one HTML page. */
import type { Command } from '../command.js';
import { progressBar } from '../progress.js';
import { METHOD_OPTIONS, guarded, seedOf } from '../method-args.js';
import { outDir } from '../command.js';
import { runDemo } from '../../demo/showcase.js';

const cmd: Command = {
  name: 'demo',
  summary: 'showcase of SDEdit, SDG, DiffusionCLIP, unCLIP and Imagic on the shipped weights -> one HTML page',
  usage: 'diffguide demo [--out DIR] [--seed S] [--quick] [--random-weights]',
  examples: [
    'diffguide demo                # ~minutes on 2 cores; the last line printed is the page',
    'diffguide demo --out showcase --seed 3',
  ],
  options: {
    out: { type: 'string', short: 'o', help: 'output folder (default diffguide-demo)' },
    seed: METHOD_OPTIONS.seed,
    quick: { type: 'boolean', help: 'minimal step counts (a smoke test, not a showcase)' },
    'random-weights': { type: 'boolean', help: 'DEV/TEST ONLY: tiny random models instead of the shipped weights' },
  },
  run: (args) =>
    guarded('demo', async () => {
      const r = await runDemo({
        out: outDir(args, 'out', 'diffguide-demo'),
        seed: seedOf(args),
        quick: !!args.values.quick,
        randomWeights: !!args.values['random-weights'],
        onProgress: progressBar(),
        log: (msg) => {
          if (process.env.DIFFGUIDE_QUIET !== '1') process.stderr.write(`${msg}\n`);
        },
      });
      process.stderr.write(`demo finished in ${(r.wallMs / 1000).toFixed(1)} s\n`);
      console.log(r.page);
    }),
};
export default cmd;
