/** `diffguide sdg`: semantic diffusion guidance by text, a reference image (content or style), or both. */
import * as tf from '@tensorflow/tfjs';
import type { Command, ParsedArgs } from '../command.js';
import { note, progressBar } from '../progress.js';
import {
  METHOD_OPTIONS,
  UsageError,
  choice,
  count,
  guarded,
  loadModels,
  numOpt,
  outDir,
  readInput,
  seedOf,
  stepsOption,
  strOpt,
  withDefault,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf } from '../../methods/common.js';
import { SDG_DEFAULTS, SDG_IMAGE_MODES, SDG_ON, SDG_SAMPLERS, sdg, type SDGOptions } from '../../methods/sdg.js';
import { sample } from '../../methods/sample.js';

/** The `sdg` options the command line asks for (no text/image); each absent flag falls back to `SDG_DEFAULTS`. */
export function sdgOptionsFrom(
  args: ParsedArgs,
): Required<
  Pick<SDGOptions, 'on' | 'sampler' | 'n' | 'steps' | 'seed' | 'imageMode' | 'textWeight' | 'imageWeight' | 'scale'>
> {
  const D = SDG_DEFAULTS;
  const on = choice(args, 'on', SDG_ON, D.on);
  return {
    on,
    sampler: choice(args, 'sampler', SDG_SAMPLERS, D.sampler),
    n: count(args, 'n', D.n),
    steps: count(args, 'steps', D.steps),
    seed: seedOf(args),
    imageMode: choice(args, 'mode', SDG_IMAGE_MODES, D.imageMode),
    textWeight: numOpt(args, 'text-weight', D.textWeight),
    imageWeight: numOpt(args, 'image-weight', D.imageWeight),
    scale: numOpt(args, 'scale', D.scale[on]),
  };
}

const cmd: Command = {
  name: 'sdg',
  summary: 'SDG: guide sampling with a noisy-CLIP gradient toward a text and/or a reference image',
  usage:
    'diffguide sdg [--text T] [--image REF.png --mode content|style] [--text-weight W] [--image-weight W] [--scale S] [--n N] [--steps S]',
  examples: [
    "diffguide sdg --text 'red heart' --n 4 --seed 1",
    'diffguide sdg --image ref.png --mode content --n 4',
    "diffguide sdg --text 'cat face' --image ref.png --mode style --text-weight 1 --image-weight 0.5",
  ],
  options: {
    ...METHOD_OPTIONS,
    text: { type: 'string', help: 'text to guide toward' },
    image: { type: 'string', help: 'reference image PNG for image guidance' },
    steps: stepsOption(SDG_DEFAULTS.steps),
    mode: {
      type: 'string',
      help: withDefault('image guidance: content (embedding cosine) | style (Gram matrices)', SDG_DEFAULTS.imageMode),
    },
    'text-weight': { type: 'string', help: withDefault('weight of the text term', SDG_DEFAULTS.textWeight) },
    'image-weight': { type: 'string', help: withDefault('weight of the image term', SDG_DEFAULTS.imageWeight) },
    scale: {
      type: 'string',
      help: `guidance scale on the gradient: ${withDefault('with --on x0', SDG_DEFAULTS.scale.x0)}, ${withDefault('with --on xt', SDG_DEFAULTS.scale.xt)}`,
    },
    on: {
      type: 'string',
      help: withDefault(
        'xt (noisy CLIP on x_t, SDG; no UNet backward) | x0 (plain CLIP on the predicted x0, gradient through the UNet)',
        SDG_DEFAULTS.on,
      ),
    },
    sampler: { type: 'string', help: withDefault(SDG_SAMPLERS.join(' | '), SDG_DEFAULTS.sampler) },
    n: { type: 'string', help: withDefault('number of samples', SDG_DEFAULTS.n) },
    baseline: { type: 'boolean', help: 'also write unguided samples from the same noise' },
    clip: { type: 'string', help: 'CLIP weights (default shipped weights/clip)' },
    'noisy-clip': { type: 'string', help: 'noisy CLIP weights (default shipped weights/noisy-clip)' },
  },
  run: (args) =>
    guarded('sdg', async () => {
      const text = strOpt(args, 'text');
      const imagePath = strOpt(args, 'image');
      if (text === undefined && !imagePath) throw new UsageError('give --text, --image, or both');
      const o = sdgOptionsFrom(args);
      const { on, sampler, n, steps, seed } = o;
      const dir = outDir(args, 'sdg');
      const m = await loadModels(args, on === 'xt' ? ['unet', 'clip', 'noisy'] : ['unet', 'clip']);
      const ref = imagePath ? readInput(imagePath, imageSizeOf(m.unet!), 'reference') : undefined;
      try {
        const r = await sdg(
          m.unet!,
          { noisy: m.noisy, image: m.clip, text: m.clip },
          { ...o, text, image: ref, onProgress: progressBar(), onNote: note },
        );
        let images = r.images;
        const labels = Array.from({ length: n }, (_, i) => `guided #${i}`);
        if (args.values.baseline) {
          const b = await sample(m.unet!, { n, steps, sampler, seed, onProgress: progressBar('baseline') });
          images = tf.concat([b.images, r.images]) as tf.Tensor4D;
          b.images.dispose();
          labels.unshift(...Array.from({ length: n }, (_, i) => `unguided #${i}`));
        }
        writeOutputs(
          dir,
          'sdg',
          images,
          labels,
          { ...r.settings, weights: m.unet!.source },
          ref ? { images: ref, labels: ['reference'] } : undefined,
        );
        if (images !== r.images) images.dispose();
        r.images.dispose();
      } finally {
        ref?.dispose();
        m.dispose();
      }
    }),
};
export default cmd;
