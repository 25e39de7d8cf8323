/** `diffguide invert`: DDIM inversion of an image to t0 and regeneration (reconstruction check). */
import * as tf from '@tensorflow/tfjs';
import type { Command, ParsedArgs } from '../command.js';
import { note, progressBar } from '../progress.js';
import {
  METHOD_OPTIONS,
  UsageError,
  count,
  guarded,
  loadModels,
  numOpt,
  outDir,
  readInput,
  stepsOption,
  withDefault,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf, mae } from '../../methods/common.js';
import * as dclip from '../../methods/diffusionclip.js';

const D = dclip.DIFFUSIONCLIP_DEFAULTS;

/** The inversion the command line asks for; absent flags fall back to `DIFFUSIONCLIP_DEFAULTS` (n-gen: to n-inv). */
export function invertOptionsFrom(args: ParsedArgs): { t0: number; nInv: number; nGen: number } {
  const t0 = numOpt(args, 't0', D.t0, T0_RANGE);
  const nInv = count(args, 'n-inv', count(args, 'steps', D.nInv));
  return { t0, nInv, nGen: count(args, 'n-gen', nInv) };
}
import { T0_RANGE } from '../../options.js';

const cmd: Command = {
  name: 'invert',
  summary: 'DDIM-invert an image to noise level t0 and regenerate it; prints the reconstruction error',
  usage: 'diffguide invert IMAGE.png [--t0 T0] [--n-inv N] [--n-gen N]',
  examples: [
    'diffguide invert emoji.png --t0 0.5 --n-inv 40',
    'diffguide invert emoji.png --t0 1 --n-inv 100 --n-gen 100',
  ],
  options: {
    ...METHOD_OPTIONS,
    steps: stepsOption(D.nInv, 'inversion steps (as --n-inv)'),
    t0: { type: 'string', help: withDefault('inversion depth in (0,1]', D.t0) },
    'n-inv': { type: 'string', help: withDefault('inversion steps', D.nInv) },
    'n-gen': { type: 'string', help: "regeneration steps (default: --n-inv's, the chain back mirrors the inversion)" },
  },
  run: (args) =>
    guarded('invert', async () => {
      const path = args.positionals[0];
      if (!path) throw new UsageError('give an image: diffguide invert IMAGE.png');
      const { t0, nInv, nGen } = invertOptionsFrom(args);
      const dir = outDir(args, 'invert');
      const m = await loadModels(args, ['unet']);
      const x = readInput(path, imageSizeOf(m.unet!), 'input');
      try {
        const inv = await dclip.invert(m.unet!, x, { t0, nInv, onProgress: progressBar(), onNote: note });
        const r = await dclip.regenerate(m.unet!, inv, { nGen, onProgress: progressBar() });
        const err = mae(r.images, x);
        const both = tf.tidy(() =>
          tf.concat([inv.latent.clipByValue(-1, 1), r.images.clipByValue(-1, 1)]),
        ) as tf.Tensor4D;
        writeOutputs(
          dir,
          'invert',
          both,
          [`latent t0=${t0}`, `regen MAE ${err.toFixed(4)}`],
          { t0, nInv, nGen, mae: err, weights: m.unet!.source },
          { images: x, labels: ['input'] },
        );
        console.error(`reconstruction MAE ${err.toFixed(5)} (images in [-1, 1])`);
        tf.dispose([inv.latent, r.images, both]);
      } finally {
        x.dispose();
        m.dispose();
      }
    }),
};
export default cmd;
