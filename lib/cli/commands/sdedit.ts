/** `diffguide sdedit`: SDEdit stroke-to-image, masked editing and compositing. */
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
  numList,
  outDir,
  readInput,
  readMask,
  seedOf,
  strOpt,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf } from '../../methods/common.js';
import { sdedit, sdeditComposite } from '../../methods/sdedit.js';
import { T0_RANGE } from '../../options.js';

const cmd: Command = {
  name: 'sdedit',
  summary: 'SDEdit: strokes/edits -> realistic images by noising to t0 and denoising',
  usage:
    'diffguide sdedit GUIDE.png [--t0 0.3,0.5,0.8] [--repeats K] [--sde vp|ve] [--mask MASK.png] [--overlay O.png --region R.png]',
  examples: [
    'diffguide sdedit strokes.png --t0 0.3,0.5,0.8 --repeats 2 --seed 1',
    'diffguide sdedit photo.png --mask edit-region.png --t0 0.6   # white in the mask = regenerate, black = keep',
    'diffguide sdedit background.png --overlay patch.png --region patch-mask.png --t0 0.5',
  ],
  options: {
    ...METHOD_OPTIONS,
    t0: {
      type: 'string',
      help: 'noise level(s) in (0,1], comma list for a sweep: small = faithful, large = realistic (default 0.5)',
    },
    repeats: { type: 'string', help: "samples per guide, SDEdit's K (default 2)" },
    sde: { type: 'string', help: 'vp (DDPM steps) | ve (Euler-Maruyama on the VE SDE) (default vp)' },
    mask: { type: 'string', help: 'mask PNG: white = regenerate, black = keep exactly' },
    overlay: { type: 'string', help: 'compositing: image pasted into GUIDE where --region is white' },
    region: { type: 'string', help: 'compositing: region PNG (white = pasted part, harmonised; the rest is kept)' },
  },
  run: (args) =>
    guarded('sdedit', async () => {
      const path = args.positionals[0];
      if (!path) throw new UsageError('give a guide image: diffguide sdedit GUIDE.png');
      const t0s = numList(args, 't0', [0.5], T0_RANGE);
      const repeats = count(args, 'repeats', 2);
      const sde = choice(args, 'sde', ['vp', 've'] as const, 'vp');
      const steps = count(args, 'steps', 25);
      const seed = seedOf(args);
      const maskPath = strOpt(args, 'mask');
      const overlay = strOpt(args, 'overlay');
      const region = strOpt(args, 'region');
      if (!!overlay !== !!region) throw new UsageError('compositing needs both --overlay and --region');
      const dir = outDir(args, 'sdedit');
      const m = await loadModels(args, ['unet']);
      const size = imageSizeOf(m.unet!);
      const guide = readInput(path, size, 'guide');
      const editMask = maskPath ? readMask(maskPath, size) : undefined;
      const keep = editMask ? (tf.tidy(() => tf.scalar(1).sub(editMask)) as tf.Tensor4D) : undefined;
      const ov = overlay ? readInput(overlay, size, 'overlay') : undefined;
      const reg = region ? readMask(region, size) : undefined;
      const outs: tf.Tensor4D[] = [];
      const labels: string[] = [];
      const stepsRun: number[] = [];
      let composite: tf.Tensor4D | undefined;
      try {
        for (const t0 of t0s) {
          const o = { t0, steps, repeats, sde, seed, onProgress: progressBar(`t0=${t0}`), onNote: note };
          const r =
            ov && reg
              ? await sdeditComposite(m.unet!, guide, ov, reg, o)
              : await sdedit(m.unet!, guide, { ...o, mask: keep });
          if ('composite' in r) {
            composite?.dispose();
            composite = r.composite as tf.Tensor4D;
          }
          outs.push(r.images);
          stepsRun.push(r.settings.steps);
          for (let k = 0; k < repeats; k++) labels.push(`t0=${t0} #${k}`);
        }
        const images = tf.concat(outs) as tf.Tensor4D;
        const inputs = composite ? (tf.concat([guide, composite]) as tf.Tensor4D) : tf.clone(guide);
        const inLabels = composite ? ['background', 'composite'] : ['guide'];
        // the steps that ran for each t0 (a small t0 has fewer levels than --steps asks for)
        const stepsRecord = stepsRun.every((s) => s === stepsRun[0]) ? stepsRun[0] : stepsRun.join(',');
        writeOutputs(
          dir,
          'sdedit',
          images,
          labels,
          {
            t0: t0s.join(','),
            steps: stepsRecord,
            repeats,
            sde,
            masked: !!maskPath,
            composite: !!overlay,
            seed,
            weights: m.unet!.source,
          },
          { images: inputs, labels: inLabels },
        );
        tf.dispose([images, inputs]);
      } finally {
        tf.dispose([guide, ...outs]);
        tf.dispose([editMask, keep, ov, reg, composite].filter((t): t is tf.Tensor4D => !!t));
        m.dispose();
      }
    }),
};
export default cmd;
