/** `diffguide unclip`: text -> prior -> decoder, image variations, interpolation, text diffs. */
import * as tf from '@tensorflow/tfjs';
import type { Command, ParsedArgs } from '../command.js';
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
  stepsOption,
  strOpt,
  withDefault,
  writeOutputs,
} from '../method-args.js';
import { imageSizeOf } from '../../methods/common.js';
import * as unclip from '../../methods/unclip.js';
import { ETA_RANGE } from '../../options.js';

const U = unclip.UNCLIP_DEFAULTS;

/** Which unCLIP entry point the flags ask for. */
export type UnclipMode = 'text' | 'variations' | 'interpolate' | 'textDiff';

export function unclipModeOf(args: ParsedArgs): UnclipMode {
  if (strOpt(args, 'text')) return 'text';
  if (strOpt(args, 'image2')) return 'interpolate';
  if (strOpt(args, 'source') || strOpt(args, 'target')) return 'textDiff';
  return 'variations';
}

/**
 * The unCLIP options the command line asks for, for `mode` (n and eta default per entry point);
 * each absent flag falls back to `UNCLIP_DEFAULTS`. Everything is checked here, before any work.
 */
export function unclipOptionsFrom(
  args: ParsedArgs,
  mode: UnclipMode = unclipModeOf(args),
): {
  seed: number;
  steps: number;
  decoderScale: number;
  n: number;
  eta: number;
  frames: number;
  priorScale: number;
  priorSteps: number;
  bestOf: number;
  thetas: number[];
} {
  return {
    seed: seedOf(args),
    steps: count(args, 'steps', U.decode.steps),
    decoderScale: numOpt(args, 'decoder-scale', U.decode.decoderScale),
    n: count(args, 'n', mode === 'text' ? U.textToImage.n : U.variations.n),
    eta: numOpt(args, 'eta', mode === 'variations' ? U.variations.eta : U.decode.eta, ETA_RANGE),
    frames: count(args, 'frames', U.interpolate.frames, { min: 2 }),
    priorScale: numOpt(args, 'prior-scale', U.prior.priorScale),
    priorSteps: count(args, 'prior-steps', U.prior.priorSteps),
    bestOf: count(args, 'best-of', U.prior.bestOf),
    thetas: numList(args, 'thetas', [...U.textDiff.thetas]),
  };
}

const cmd: Command = {
  name: 'unclip',
  summary: 'unCLIP: text-to-image via a prior and an embedding decoder; variations, interpolations, text diffs',
  usage:
    'diffguide unclip --text T [--n N] | --image A.png [--image2 B.png | --source S --target T] [--prior-scale S] [--decoder-scale S] [--best-of K]',
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
    steps: stepsOption(U.decode.steps, 'decoder steps (respaced)'),
    n: {
      type: 'string',
      help: `${withDefault('images per prompt', U.textToImage.n)}; ${withDefault('variations', U.variations.n)}`,
    },
    frames: { type: 'string', help: withDefault('interpolation frames incl. ends', U.interpolate.frames) },
    thetas: { type: 'string', help: withDefault('text diff fractions', U.textDiff.thetas) },
    'prior-scale': { type: 'string', help: withDefault('prior classifier-free scale', U.prior.priorScale) },
    'decoder-scale': { type: 'string', help: withDefault('decoder classifier-free scale', U.decode.decoderScale) },
    'prior-steps': { type: 'string', help: withDefault('prior sampling steps', U.prior.priorSteps) },
    'best-of': {
      type: 'string',
      help: withDefault('prior candidates per image, best CLIP match kept', U.prior.bestOf),
    },
    eta: {
      type: 'string',
      help: `${withDefault('decoder DDIM eta', U.decode.eta)}; ${withDefault('variations', U.variations.eta)}`,
    },
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
      // checked before any work: counts, eta and the output folder
      const { seed, steps, decoderScale, n, eta, frames, priorScale, priorSteps, bestOf, thetas } =
        unclipOptionsFrom(args);
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
      const weights = m.cond!.source;
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
            weights,
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
              { ...r.settings, weights },
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
              { ...r.settings, weights },
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
              { ...r.settings, weights },
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
