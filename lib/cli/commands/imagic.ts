/** `diffguide imagic`: text-based editing of one image (embedding optimisation, fine-tuning, interpolation). */
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
  numOpt,
  outDir,
  readInput,
  seedOf,
  strOpt,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf } from '../../methods/common.js';
import { imagic } from '../../methods/imagic.js';

const cmd: Command = {
  name: 'imagic',
  summary: 'Imagic: edit one image toward a text (optimise embedding, fine-tune, interpolate with eta)',
  usage: "diffguide imagic IMAGE.png --text 'TARGET' [--etas 0,0.4,0.6,0.8,1] [--emb-steps 100] [--ft-steps 120]",
  examples: ["diffguide imagic cat.png --text 'dog face' --etas 0,0.5,0.7,0.9,1 --seed 1"],
  options: {
    ...METHOD_OPTIONS,
    text: { type: 'string', help: 'target text' },
    etas: { type: 'string', help: 'interpolation weights, comma list (default 0,0.4,0.6,0.8,1)' },
    'emb-steps': { type: 'string', help: 'stage 1 embedding optimisation steps (default 100)' },
    'ft-steps': { type: 'string', help: 'stage 2 fine-tuning steps (default 120)' },
    batch: { type: 'string', help: 'noise draws per optimisation step (default 1)' },
    'emb-lr': { type: 'string', help: 'stage 1 learning rate (default 1e-3)' },
    'ft-lr': { type: 'string', help: 'stage 2 learning rate (default 1e-4)' },
    'guidance-scale': { type: 'string', help: 'classifier-free scale at sampling (default 1)' },
    sampler: { type: 'string', help: 'ddim | ddpm (default ddim)' },
    clip: { type: 'string', help: 'CLIP weights (default shipped weights/clip)' },
  },
  run: (args) =>
    guarded('imagic', async () => {
      const path = args.positionals[0];
      const text = strOpt(args, 'text');
      if (!path || !text) throw new UsageError("give an image and --text: diffguide imagic IMAGE.png --text 'target'");
      // every value is checked, and the output folder made, before the models load
      const o = {
        etas: numList(args, 'etas', [0, 0.4, 0.6, 0.8, 1]),
        embSteps: count(args, 'emb-steps', 100),
        ftSteps: count(args, 'ft-steps', 120),
        batch: count(args, 'batch', 1),
        embLr: numOpt(args, 'emb-lr', 1e-3, { above: 0 }),
        ftLr: numOpt(args, 'ft-lr', 1e-4, { above: 0 }),
        guidanceScale: numOpt(args, 'guidance-scale', 1),
        sampler: choice(args, 'sampler', ['ddim', 'ddpm'] as const, 'ddim'),
        steps: count(args, 'steps', 50),
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
