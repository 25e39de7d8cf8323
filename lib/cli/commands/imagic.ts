/** `diffguide imagic`: text-based editing of one image (embedding optimisation, fine-tuning, interpolation). */
import * as tf from '@tensorflow/tfjs';
import type { Command } from '../command.js';
import { note, progressBar } from '../progress.js';
import {
  METHOD_OPTIONS,
  UsageError,
  choice,
  count,
  intOpt,
  guarded,
  loadModels,
  numList,
  numOpt,
  outDir,
  readInput,
  seedOf,
  strOpt,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf } from '../../methods/common.js';
import { IMAGIC_DEFAULTS as D, imagic } from '../../methods/imagic.js';

const cmd: Command = {
  name: 'imagic',
  summary: 'Imagic: edit one image toward a text (optimise embedding, fine-tune, interpolate with eta)',
  usage: `diffguide imagic IMAGE.png --text 'TARGET' [--etas ${D.etas.join(',')}] [--emb-steps ${D.embSteps}] [--ft-steps ${D.ftSteps}]`,
  examples: ["diffguide imagic cat.png --text 'dog face' --etas 0,0.5,0.7,0.9,1 --seed 1"],
  options: {
    ...METHOD_OPTIONS,
    steps: { type: 'string', help: `sampling steps (default ${D.steps})` },
    text: { type: 'string', help: 'target text' },
    etas: { type: 'string', help: `interpolation weights, comma list (default ${D.etas.join(',')})` },
    'emb-steps': { type: 'string', help: `stage 1 embedding optimisation steps (default ${D.embSteps})` },
    'ft-steps': { type: 'string', help: `stage 2 fine-tuning steps (default ${D.ftSteps})` },
    batch: { type: 'string', help: `noise draws per optimisation step (default ${D.batch})` },
    'emb-lr': { type: 'string', help: `stage 1 learning rate (default ${D.embLr})` },
    'ft-lr': { type: 'string', help: `stage 2 learning rate (default ${D.ftLr})` },
    'guidance-scale': { type: 'string', help: `classifier-free scale at sampling (default ${D.guidanceScale})` },
    'guidance-from': {
      type: 'string',
      help: `the guidance's reference branch: zero (classifier-free, the paper) | eopt (amplify only the step from e_opt; eta 0 unguided) (default ${D.guidanceFrom})`,
    },
    sampler: { type: 'string', help: `ddim | ddpm (default ${D.sampler})` },
    start: {
      type: 'string',
      help: `stage 3's x_T: noise (the paper) | inversion (DDIM inversion of the input; ddim only) (default ${D.start})`,
    },
    clip: { type: 'string', help: 'CLIP weights (default shipped weights/clip)' },
  },
  run: (args) =>
    guarded('imagic', async () => {
      const path = args.positionals[0];
      const text = strOpt(args, 'text');
      if (!path || !text) throw new UsageError("give an image and --text: diffguide imagic IMAGE.png --text 'target'");
      // every value is checked, and the output folder made, before the models load
      const o = {
        etas: numList(args, 'etas', [...D.etas]),
        embSteps: intOpt(args, 'emb-steps', D.embSteps, { min: 0 }),
        ftSteps: intOpt(args, 'ft-steps', D.ftSteps, { min: 0 }),
        batch: count(args, 'batch', D.batch),
        embLr: numOpt(args, 'emb-lr', D.embLr, { above: 0 }),
        ftLr: numOpt(args, 'ft-lr', D.ftLr, { above: 0 }),
        guidanceScale: numOpt(args, 'guidance-scale', D.guidanceScale),
        guidanceFrom: choice(args, 'guidance-from', ['zero', 'eopt'] as const, D.guidanceFrom),
        sampler: choice(args, 'sampler', ['ddim', 'ddpm'] as const, D.sampler),
        start: choice(args, 'start', ['noise', 'inversion'] as const, D.start),
        steps: count(args, 'steps', D.steps),
        seed: seedOf(args),
      };
      const dir = outDir(args, 'imagic');
      const m = await loadModels(args, ['cond', 'clip']);
      const x = readInput(path, imageSizeOf(m.cond!), 'input');
      try {
        const r = await imagic(m.cond!, m.clip!, x, text, { ...o, onProgress: progressBar(), onNote: note });
        writeOutputs(
          dir,
          'imagic',
          r.images,
          r.etas.map((e) => `eta ${e}`),
          {
            ...r.settings,
            weights: m.cond!.source,
            finalEmbLoss: r.losses.embedding.at(-1),
            finalFtLoss: r.losses.finetune.at(-1),
          },
          { images: x, labels: ['input'] },
        );
        tf.dispose([r.images, r.embeddings, r.eOpt, r.eTarget]);
      } finally {
        x.dispose();
        m.dispose();
      }
    }),
};
export default cmd;
