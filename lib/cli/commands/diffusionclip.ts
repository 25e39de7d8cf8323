/** `diffguide diffusionclip`: fine-tune the UNet toward a target text and edit images (DiffusionCLIP). */
import * as tf from '@tensorflow/tfjs';
import { outFile, type Command } from '../command.js';
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
import { withUNet, type Diffuser } from '../../models/diffuser.js';
import * as dclip from '../../methods/diffusionclip.js';
import { DIFFUSIONCLIP_DEFAULTS as D } from '../../methods/diffusionclip.js';
import { T0_RANGE } from '../../options.js';

const cmd: Command = {
  name: 'diffusionclip',
  summary: 'DiffusionCLIP: fine-tune the model with a directional CLIP loss (or load a delta) and edit images',
  usage: `diffguide diffusionclip IMAGE.png [IMAGE2.png ...] --source TEXT --target TEXT [--t0 ${D.t0}] [--n-inv ${D.nInv}] [--n-train ${D.nTrain}] [--n-gen ${D.nGen}] [--mode full|perstep] [--model-ratio 0.5,1] [--save-delta F] [--delta F] [--latent-optim]`,
  examples: [
    "diffguide diffusionclip face.png --source 'smiling face' --target 'angry face' --iters 5 --save-delta angry.safetensors",
    "diffguide diffusionclip other.png --source 'smiling face' --target 'angry face' --delta angry.safetensors --model-ratio 0.5,1 --n-gen 6",
    "diffguide diffusionclip face.png --source 'smiling face' --target 'angry face' --latent-optim",
    "diffguide diffusionclip face.png --delta angry.safetensors --delta cat.safetensors --mix '0.5:1,0;0:0.5,0.5'",
  ],
  options: {
    ...METHOD_OPTIONS,
    source: { type: 'string', help: 'text describing the inputs' },
    target: { type: 'string', help: 'text describing the edit' },
    t0: { type: 'string', help: `inversion depth in (0,1] (default ${D.t0})` },
    'n-inv': { type: 'string', help: `DDIM inversion steps (default ${D.nInv})` },
    'n-train': { type: 'string', help: `generative steps during fine-tuning (default ${D.nTrain})` },
    'n-gen': { type: 'string', help: `generative steps for the edit (default ${D.nGen}; 6 = fast sampling)` },
    mode: { type: 'string', help: `full (gradient through the chain) | perstep (GPU-efficient) (default ${D.mode})` },
    iters: {
      type: 'string',
      help: `passes over the images (default ${D.iters}; with --latent-optim: Adam steps, default ${D.latentIters})`,
    },
    lr: {
      type: 'string',
      help: `Adam learning rate (default ${D.lr}; with --latent-optim ${D.latentLr})`,
    },
    'clip-weight': { type: 'string', help: `directional CLIP loss weight (default ${D.clipWeight})` },
    'l1-weight': { type: 'string', help: `L1 loss weight (default ${D.l1Weight})` },
    'model-ratio': {
      type: 'string',
      help: `blend(s) of fine-tuned and original, comma list (default ${D.modelRatio})`,
    },
    'save-delta': { type: 'string', help: 'write the fine-tuned weights as a delta safetensors file' },
    delta: {
      type: 'string',
      multiple: true,
      help: 'use this delta instead of fine-tuning (repeat with --mix for multi-attribute editing)',
    },
    mix: {
      type: 'string',
      help: "multi-attribute noise mixing of several --delta models: 'F:w1,w2;0:w1,w2' (each segment applies while t >= F * T, F a fraction of the schedule; one segment must start at 0)",
    },
    'latent-optim': { type: 'boolean', help: 'optimise the inverted latent instead of fine-tuning the model' },
    clip: { type: 'string', help: 'CLIP weights (default shipped weights/clip)' },
  },
  run: (args) =>
    guarded('diffusionclip', async () => {
      if (args.positionals.length === 0) throw new UsageError('give at least one input image');
      const source = strOpt(args, 'source');
      const target = strOpt(args, 'target');
      const deltas = (args.values.delta as string[] | undefined) ?? [];
      const deltaPath = deltas[0];
      const mix = strOpt(args, 'mix');
      if (mix && deltas.length < 2) throw new UsageError('--mix needs at least two --delta files');
      if (!deltaPath && (!source || !target))
        throw new UsageError('give --source and --target texts (or --delta FILE)');
      const latent = Boolean(args.values['latent-optim']);
      const t0 = numOpt(args, 't0', D.t0, T0_RANGE);
      const nInv = count(args, 'n-inv', D.nInv);
      const nGen = count(args, 'n-gen', count(args, 'steps', D.nGen));
      const ratios = numList(args, 'model-ratio', [D.modelRatio]);
      const nTrain = count(args, 'n-train', D.nTrain);
      const iters = count(args, 'iters', latent ? D.latentIters : D.iters);
      const lr = numOpt(args, 'lr', latent ? D.latentLr : D.lr, { above: 0 });
      const clipWeight = numOpt(args, 'clip-weight', D.clipWeight, { min: 0 });
      const l1Weight = numOpt(args, 'l1-weight', D.l1Weight, { min: 0 });
      const mode = choice(args, 'mode', ['full', 'perstep'] as const, D.mode);
      const seed = seedOf(args);
      const dir = outDir(args, 'diffusionclip');
      outFile(args, 'save-delta');
      const m = await loadModels(args, deltaPath ? ['unet'] : ['unet', 'clip']);
      const size = imageSizeOf(m.unet!);
      const parts = args.positionals.map((p) => readInput(p, size, 'input'));
      const x = tf.concat(parts) as tf.Tensor4D;
      tf.dispose(parts);
      const onProgress = progressBar();
      const settings: Record<string, unknown> = { source, target, t0, nInv, nGen, seed, weights: m.unet!.source };
      let ft: Diffuser | null = null;
      try {
        if (latent) {
          const r = await dclip.latentOptimize(m.unet!, m.clip!, x, {
            source: source!,
            target: target!,
            t0,
            nInv,
            iters,
            lr,
            clipWeight,
            l1Weight,
            onProgress,
            onNote: note,
          });
          writeOutputs(
            dir,
            'diffusionclip-latent',
            r.images,
            r.images.shape[0] > 0 ? args.positionals.map((_, i) => `edit #${i}`) : [],
            { ...settings, mode: 'latent-optim', finalLoss: r.losses[r.losses.length - 1] },
            { images: x, labels: args.positionals.map((_, i) => `input #${i}`) },
          );
          r.images.dispose();
          return;
        }
        if (mix) {
          const segments = mix.split(';').map((seg) => {
            const [from, ws] = seg.split(':');
            const weights = (ws ?? '').split(',').map(Number);
            if (
              !Number.isFinite(Number(from)) ||
              weights.length !== deltas.length ||
              weights.some((w) => !Number.isFinite(w))
            ) {
              throw new UsageError(
                `--mix segment '${seg}' must be F:w1,...,w${deltas.length} (F a fraction of the schedule, one weight per --delta)`,
              );
            }
            return { minFraction: Number(from), weights };
          });
          const models = [];
          try {
            for (const dp of deltas) models.push(withUNet(m.unet!, await dclip.applyDelta(m.unet!.unet, dp), dp));
            const r = await dclip.mixEdit(m.unet!, models, segments, x, { t0, nInv, nGen, onProgress, onNote: note });
            writeOutputs(
              dir,
              'diffusionclip-mix',
              r.images,
              args.positionals.map((_, i) => `mix #${i}`),
              { ...settings, deltas: deltas.join(','), mix },
              { images: x, labels: args.positionals.map((_, i) => `input #${i}`) },
            );
            r.images.dispose();
          } finally {
            for (const d of models) d.unet.dispose();
          }
          return;
        }
        if (deltaPath) {
          ft = withUNet(m.unet!, await dclip.applyDelta(m.unet!.unet, deltaPath), deltaPath);
          settings.delta = deltaPath;
        } else {
          const r = await dclip.finetune(m.unet!, m.clip!, x, {
            source: source!,
            target: target!,
            t0,
            nInv,
            nTrain,
            mode,
            iters,
            lr,
            clipWeight,
            l1Weight,
            onProgress,
            onNote: note,
          });
          ft = r.model;
          Object.assign(settings, r.settings, { firstLoss: r.losses[0], finalLoss: r.losses[r.losses.length - 1] });
          const save = strOpt(args, 'save-delta');
          if (save) {
            await dclip.saveDelta(save, m.unet!.unet, ft.unet, { source: source!, target: target! });
            note(`fine-tuned weights saved as a delta: ${save}`);
          }
        }
        const outs: tf.Tensor4D[] = [];
        const labels: string[] = [];
        for (const ratio of ratios) {
          const r = await dclip.edit(m.unet!, ft, x, { t0, nInv, nGen, modelRatio: ratio, onProgress });
          outs.push(r.images);
          args.positionals.forEach((_, i) => labels.push(`ratio ${ratio} #${i}`));
        }
        const images = tf.concat(outs) as tf.Tensor4D;
        tf.dispose(outs);
        writeOutputs(
          dir,
          'diffusionclip',
          images,
          labels,
          { ...settings, modelRatio: ratios.join(',') },
          { images: x, labels: args.positionals.map((_, i) => `input #${i}`) },
        );
        images.dispose();
      } finally {
        ft?.unet.dispose();
        x.dispose();
        m.dispose();
      }
    }),
};
export default cmd;
