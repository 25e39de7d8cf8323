/** `diffguide unclip`: text -> prior -> decoder, image variations, interpolation, text diffs. */
import * as tf from '@tensorflow/tfjs';
import type { Command } from '../command.js';
import { note, progressBar } from '../progress.js';
import {
  METHOD_OPTIONS,
  UsageError,
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
import * as unclip from '../../methods/unclip.js';
import { ETA_RANGE } from '../../options.js';

const cmd: Command = {
  name: 'unclip',
  summary: 'unCLIP: text-to-image via a prior and an embedding decoder; variations, interpolations, text diffs',
  usage:
    'diffguide unclip --text T [--n N] | --image A.png [--image2 B.png | --source S --target T] [--prior-scale 2] [--decoder-scale 3] [--best-of 2]',
  examples: [
    "diffguide unclip --text 'red heart' --n 4 --seed 1",
    'diffguide unclip --image cat.png --n 4            # variations',
    'diffguide unclip --image cat.png --image2 dog.png --frames 5   # interpolation',
    "diffguide unclip --image cat.png --source 'cat face' --target 'dog face'   # text diff",
  ],
  options: {
    ...METHOD_OPTIONS,
    text: { type: 'string', help: 'prompt(s) for text-to-image; several separated by |' },
    image: { type: 'string', help: 'input image (variations / interpolation / text diff)' },
    image2: { type: 'string', help: 'second image: interpolate between --image and it' },
    source: { type: 'string', help: 'text diff: text describing --image' },
    target: { type: 'string', help: 'text diff: text describing the wanted image' },
    n: { type: 'string', help: 'images per prompt / variations (default 4)' },
    frames: { type: 'string', help: 'interpolation frames incl. ends (default 5)' },
    thetas: { type: 'string', help: 'text diff fractions (default 0,0.125,0.25,0.375,0.5)' },
    'prior-scale': { type: 'string', help: 'prior classifier-free scale (default 2)' },
    'decoder-scale': { type: 'string', help: 'decoder classifier-free scale (default 3)' },
    'prior-steps': { type: 'string', help: 'prior sampling steps (default 64)' },
    'best-of': { type: 'string', help: 'prior candidates per image, best CLIP match kept (default 2)' },
    eta: { type: 'string', help: 'decoder DDIM eta (default 0; variations default 1)' },
    clip: { type: 'string', help: 'CLIP weights (default shipped weights/clip)' },
    prior: { type: 'string', help: 'prior weights (default shipped weights/prior)' },
  },
  run: (args) =>
    guarded('unclip', async () => {
      const text = strOpt(args, 'text');
      const image = strOpt(args, 'image');
      if (!text && !image)
        throw new UsageError(
          'give --text (text-to-image) or --image (variations, with --image2 interpolation, with --source/--target a text diff)',
        );
      const seed = seedOf(args);
      const steps = count(args, 'steps', 50);
      const decoderScale = numOpt(args, 'decoder-scale', 3);
      // checked before any work: counts, eta and the output folder
      const n = count(args, 'n', 4);
      const variationsOnly = !text && !strOpt(args, 'image2') && !strOpt(args, 'source') && !strOpt(args, 'target');
      const eta = numOpt(args, 'eta', variationsOnly ? 1 : 0, ETA_RANGE);
      const frames = count(args, 'frames', 5, { min: 2 });
      const priorScale = numOpt(args, 'prior-scale', 2);
      const priorSteps = count(args, 'prior-steps', 64);
      const bestOf = count(args, 'best-of', 2);
      const thetas = numList(args, 'thetas', [0, 0.125, 0.25, 0.375, 0.5]);
      const dir = outDir(args, 'unclip');
      const m = await loadModels(args, text ? ['cond', 'clip', 'prior'] : ['cond', 'clip']);
      const models: unclip.UnclipModels = {
        decoder: m.cond!,
        prior: m.prior?.prior as never,
        priorSchedule: m.prior?.schedule as never,
        clip: m.clip!,
      };
      const size = imageSizeOf(m.cond!);
      const onProgress = progressBar();
      const common = { weights: m.cond!.source, seed, steps, decoderScale };
      try {
        if (text) {
          const prompts = text
            .split('|')
            .map((s) => s.trim())
            .filter(Boolean);
          const r = await unclip.textToImage(models, prompts, {
            n,
            seed,
            steps,
            decoderScale,
            priorScale,
            priorSteps,
            bestOf,
            eta,
            onProgress,
          });
          const labels = prompts.flatMap((p) => Array.from({ length: n }, (_, i) => `${p} #${i}`));
          writeOutputs(dir, 'unclip-text', r.images, labels, {
            ...r.settings,
            weights: m.cond!.source,
            similarity: r.similarity,
          });
          tf.dispose([r.images, r.imageEmbeddings]);
          return;
        }
        const a = readInput(image!, size, 'image');
        try {
          const image2 = strOpt(args, 'image2');
          const source = strOpt(args, 'source');
          const target = strOpt(args, 'target');
          if (image2) {
            const b = readInput(image2, size, 'image2');
            const r = await unclip.interpolate(models, a, b, {
              frames,
              steps,
              decoderScale,
              seed,
              onProgress,
              onNote: note,
            });
            const inputs = tf.concat([a, b]) as tf.Tensor4D;
            writeOutputs(
              dir,
              'unclip-interp',
              r.images,
              r.thetas.map((t) => `theta ${t.toFixed(2)}`),
              { ...common, frames: r.thetas.length },
              { images: inputs, labels: ['A', 'B'] },
            );
            tf.dispose([b, inputs, r.images, r.embeddings, r.endpoints]);
          } else if (source || target) {
            if (!source || !target) throw new UsageError('a text diff needs both --source and --target');
            const r = await unclip.textDiff(models, a, {
              source,
              target,
              thetas,
              steps,
              decoderScale,
              seed,
              onProgress,
              onNote: note,
            });
            writeOutputs(
              dir,
              'unclip-textdiff',
              r.images,
              r.thetas.map((t) => `theta ${t}`),
              { ...common, source, target },
              { images: a, labels: ['input'] },
            );
            tf.dispose([r.images, r.embeddings]);
          } else {
            const r = await unclip.variations(models, a, {
              n,
              steps,
              decoderScale,
              eta,
              seed,
              onProgress,
              onNote: note,
            });
            writeOutputs(
              dir,
              'unclip-variations',
              r.images,
              Array.from({ length: n }, (_, i) => `variation #${i}`),
              { ...common, n, eta },
              { images: a, labels: ['input'] },
            );
            tf.dispose([r.images, r.embedding]);
          }
        } finally {
          a.dispose();
        }
      } finally {
        m.dispose();
      }
    }),
};
export default cmd;
