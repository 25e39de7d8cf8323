/** `diffguide sample`: unguided samples from the unconditional UNet (the baseline of every method). */
import type { Command, ParsedArgs } from '../command.js';
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
  stepsOption,
  withDefault,
  writeOutputs,
} from '../method-args.js';
import { SAMPLE_DEFAULTS, SAMPLERS, sample, type SampleOptions } from '../../methods/sample.js';
import { ETA_RANGE } from '../../options.js';

/** The `sample` options the command line asks for; each absent flag falls back to `SAMPLE_DEFAULTS`. */
export function sampleOptionsFrom(
  args: ParsedArgs,
): Required<Pick<SampleOptions, 'n' | 'steps' | 'sampler' | 'eta' | 'seed'>> {
  const D = SAMPLE_DEFAULTS;
  const n = count(args, 'n', D.n);
  const steps = count(args, 'steps', D.steps);
  const sampler = choice(args, 'sampler', SAMPLERS, D.sampler);
  const eta = numOpt(args, 'eta', D.eta, ETA_RANGE);
  if (args.values.eta !== undefined && sampler === 'ddpm')
    throw new UsageError('--eta is a DDIM setting; drop it or use --sampler ddim');
  return { n, steps, sampler, eta, seed: seedOf(args) };
}

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
    steps: stepsOption(SAMPLE_DEFAULTS.steps),
    n: { type: 'string', help: withDefault('number of images', SAMPLE_DEFAULTS.n) },
    sampler: { type: 'string', help: withDefault(SAMPLERS.join(' | '), SAMPLE_DEFAULTS.sampler) },
    eta: { type: 'string', help: withDefault('DDIM eta', SAMPLE_DEFAULTS.eta) },
  },
  run: (args) =>
    guarded('sample', async () => {
      const o = sampleOptionsFrom(args);
      const dir = outDir(args, 'sample');
      const m = await loadModels(args, ['unet']);
      try {
        const r = await sample(m.unet!, { ...o, onProgress: progressBar() });
        writeOutputs(
          dir,
          'sample',
          r.images,
          Array.from({ length: r.settings.n }, (_, i) => `#${i}`),
          { ...r.settings, weights: m.unet!.source },
        );
        r.images.dispose();
      } finally {
        m.dispose();
      }
    }),
};
export default cmd;
