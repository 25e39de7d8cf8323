/** `diffguide sdedit`: SDEdit stroke-to-image, masked editing and compositing. */
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
  numList,
  outDir,
  readInput,
  readMask,
  seedOf,
  stepsOption,
  strOpt,
  withDefault,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf } from '../../methods/common.js';
import { SDEDIT_DEFAULTS, SDES, sdedit, sdeditComposite } from '../../methods/sdedit.js';
import { T0_RANGE } from '../../options.js';

/** The `sdedit` options the command line asks for (t0: a list to sweep); each absent flag falls back to `SDEDIT_DEFAULTS`. */
export function sdeditOptionsFrom(args: ParsedArgs): {
  t0s: number[];
  repeats: number;
  sde: 'vp' | 've';
  steps: number;
  seed: number;
} {
  const D = SDEDIT_DEFAULTS;
  return {
    t0s: numList(args, 't0', [D.t0], T0_RANGE),
    repeats: count(args, 'repeats', D.repeats),
    sde: choice(args, 'sde', SDES, D.sde),
    steps: count(args, 'steps', D.steps),
    seed: seedOf(args),
  };
}

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
    steps: stepsOption(SDEDIT_DEFAULTS.steps, 'reverse steps from t0 to 0 (fewer when t0 spans fewer levels)'),
    t0: {
      type: 'string',
      help: withDefault(
        'noise level(s) in (0,1], comma list for a sweep: small = faithful, large = realistic',
        SDEDIT_DEFAULTS.t0,
      ),
    },
    repeats: { type: 'string', help: withDefault("samples per guide, SDEdit's K", SDEDIT_DEFAULTS.repeats) },
    sde: {
      type: 'string',
      help: withDefault('vp (DDPM steps) | ve (Euler-Maruyama on the VE SDE)', SDEDIT_DEFAULTS.sde),
    },
    mask: { type: 'string', help: 'mask PNG: white = regenerate, black = keep exactly' },
    overlay: { type: 'string', help: 'compositing: image pasted into GUIDE where --region is white' },
    region: { type: 'string', help: 'compositing: region PNG (white = pasted part, harmonised; the rest is kept)' },
  },
  run: (args) =>
    guarded('sdedit', async () => {
      const path = args.positionals[0];
      if (!path) throw new UsageError('give a guide image: diffguide sdedit GUIDE.png');
      const { t0s, repeats, sde, steps, seed } = sdeditOptionsFrom(args);
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
