/** `diffguide sample`: unguided samples from the unconditional UNet (the baseline of every method). */
import type { Command } from '../command.js';
import { progressBar } from '../progress.js';
import {
  METHOD_OPTIONS,
  UsageError,
  choice,
  count,
  guarded,
  loadModels,
  numOpt,
  outDir,
  seedOf,
  writeOutputs,
} from '../method-args.js';
import { sample } from '../../methods/sample.js';
import { ETA_RANGE } from '../../options.js';

const cmd: Command = {
  name: 'sample',
  summary: 'unguided samples from the diffusion model (DDPM or DDIM)',
  usage: 'diffguide sample [--n N] [--steps S] [--sampler ddim|ddpm] [--eta E] [--seed S] [--weights PATH] [--out DIR]',
  examples: [
    'diffguide sample --n 8 --steps 50 --seed 1',
    'diffguide sample --sampler ddpm --steps 100 --out samples/',
  ],
  options: {
    ...METHOD_OPTIONS,
    n: { type: 'string', help: 'number of images (default 8)' },
    sampler: { type: 'string', help: 'ddim | ddpm (default ddim)' },
    eta: { type: 'string', help: 'DDIM eta (default 0)' },
  },
  run: (args) =>
    guarded('sample', async () => {
      const n = count(args, 'n', 8);
      const steps = count(args, 'steps', 50);
      const sampler = choice(args, 'sampler', ['ddim', 'ddpm'] as const, 'ddim');
      const eta = numOpt(args, 'eta', 0, ETA_RANGE);
      if (args.values.eta !== undefined && sampler === 'ddpm')
        throw new UsageError('--eta is a DDIM setting; drop it or use --sampler ddim');
      const seed = seedOf(args);
      const dir = outDir(args, 'sample');
      const m = await loadModels(args, ['unet']);
      try {
        const r = await sample(m.unet!, { n, steps, sampler, eta, seed, onProgress: progressBar() });
        writeOutputs(
          dir,
          'sample',
          r.images,
          Array.from({ length: n }, (_, i) => `#${i}`),
          { ...r.settings, weights: m.unet!.source },
        );
        r.images.dispose();
      } finally {
        m.dispose();
      }
    }),
};
export default cmd;
