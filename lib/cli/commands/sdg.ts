/** `diffguide sdg`: semantic diffusion guidance by text, a reference image (content or style), or both. */
import * as tf from '@tensorflow/tfjs';
import type { Command } from '../command.js';
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
  strOpt,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf } from '../../methods/common.js';
import { sdg } from '../../methods/sdg.js';
import { sample } from '../../methods/sample.js';

const cmd: Command = {
  name: 'sdg',
  summary: 'SDG: guide sampling with a noisy-CLIP gradient toward a text and/or a reference image',
  usage:
    'diffguide sdg [--text T] [--image REF.png --mode content|style] [--text-weight W] [--image-weight W] [--scale S] [--n N] [--steps 100]',
  examples: [
    "diffguide sdg --text 'red heart' --n 4 --seed 1",
    'diffguide sdg --image ref.png --mode content --n 4',
    "diffguide sdg --text 'cat face' --image ref.png --mode style --text-weight 1 --image-weight 0.5",
  ],
  options: {
    ...METHOD_OPTIONS,
    text: { type: 'string', help: 'text to guide toward' },
    image: { type: 'string', help: 'reference image PNG for image guidance' },
    mode: {
      type: 'string',
      help: 'image guidance: content (embedding cosine) | style (Gram matrices) (default content)',
    },
    'text-weight': { type: 'string', help: 'weight of the text term (default 1)' },
    'image-weight': { type: 'string', help: 'weight of the image term (default 1)' },
    scale: { type: 'string', help: 'guidance scale on the gradient (default 200)' },
    on: { type: 'string', help: 'xt (noisy CLIP on x_t, SDG) | x0 (plain CLIP on predicted x0) (default xt)' },
    sampler: { type: 'string', help: 'ddpm | ddim (default ddpm)' },
    n: { type: 'string', help: 'number of samples (default 4)' },
    baseline: { type: 'boolean', help: 'also write unguided samples from the same noise' },
    clip: { type: 'string', help: 'CLIP weights (default shipped weights/clip)' },
    'noisy-clip': { type: 'string', help: 'noisy CLIP weights (default shipped weights/noisy-clip)' },
  },
  run: (args) =>
    guarded('sdg', async () => {
      const text = strOpt(args, 'text');
      const imagePath = strOpt(args, 'image');
      if (text === undefined && !imagePath) throw new UsageError('give --text, --image, or both');
      const on = choice(args, 'on', ['xt', 'x0'] as const, 'xt');
      const sampler = choice(args, 'sampler', ['ddpm', 'ddim'] as const, 'ddpm');
      const n = count(args, 'n', 4);
      const steps = count(args, 'steps', 100);
      const seed = seedOf(args);
      const imageMode = choice(args, 'mode', ['content', 'style'] as const, 'content');
      const textWeight = numOpt(args, 'text-weight', 1);
      const imageWeight = numOpt(args, 'image-weight', 1);
      const scale = numOpt(args, 'scale', 200);
      const dir = outDir(args, 'sdg');
      const m = await loadModels(args, on === 'xt' ? ['unet', 'clip', 'noisy'] : ['unet', 'clip']);
      const ref = imagePath ? readInput(imagePath, imageSizeOf(m.unet!), 'reference') : undefined;
      try {
        const r = await sdg(
          m.unet!,
          { noisy: m.noisy, image: m.clip, text: m.clip },
          {
            text,
            image: ref,
            imageMode,
            textWeight,
            imageWeight,
            scale,
            on,
            sampler,
            n,
            steps,
            seed,
            onProgress: progressBar(),
            onNote: note,
          },
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
