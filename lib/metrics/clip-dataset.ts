/**
 * Quality bars of the CLIP models (issue 6): zero-shot category accuracy and text->image retrieval of
 * held-out emoji for CLIP; noisy-image -> clean-caption retrieval at a fixed t for the noisy CLIP.
 * The metric functions work on plain similarity matrices so that they can be checked by hand.
 * In lib/metrics (not lib/eval) because training evaluates with it between epochs (lib/train/tasks/clip.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import type { CLIP, NoisyCLIPImageEncoder } from '../../nets/clip/index.js';
import { qSample } from '../../samplers/core.js';
import type { Schedule } from '../../samplers/schedule.js';
// The bars' prompts are among the templates the CLIP trainer samples.
import { categoryPrompt, namePrompt } from '../data/prompts.js';
import { argmaxAccuracy, cosineMatrix, retrievalTopK } from './retrieval.js';

export interface Bar {
  value: number;
  goal: string;
  pass: boolean;
}

// The similarity-matrix metrics live in lib/metrics (their one home); re-exported for this module's users.
export { argmaxAccuracy, cosineMatrix, retrievalTopK };

/** Image embeddings [N, D] of dataset items in batches. */
export function embedImages(
  enc: (x: tf.Tensor4D) => tf.Tensor2D,
  ds: Dataset,
  indices: number[],
  batch = 128,
): tf.Tensor2D {
  const parts: tf.Tensor2D[] = [];
  for (let i = 0; i < indices.length; i += batch) {
    const x = ds.images(indices.slice(i, i + batch), { rgb: true });
    parts.push(tf.tidy(() => enc(x)));
    x.dispose();
  }
  const out = tf.concat(parts) as tf.Tensor2D;
  tf.dispose(parts);
  return out;
}

/** Text embeddings [N, D] in batches. */
export function embedTexts(
  clip: CLIP,
  texts: string[],
  tokens?: { ids(t: string[]): tf.Tensor2D },
  batch = 256,
): tf.Tensor2D {
  const parts: tf.Tensor2D[] = [];
  for (let i = 0; i < texts.length; i += batch) {
    const chunk = texts.slice(i, i + batch);
    parts.push(
      tf.tidy(() => {
        if (!tokens) return clip.encodeText(chunk, { truncate: true });
        const ids = tokens.ids(chunk);
        return clip.encodeTokens(ids);
      }),
    );
  }
  const out = tf.concat(parts) as tf.Tensor2D;
  tf.dispose(parts);
  return out;
}

export interface ClipEvalResult {
  zeroShotCategoryAccuracy: number;
  nameRetrievalTop5: number;
  images: number;
  names: number;
}

/** Held-out emoji grouped: the unique names (one per emoji) and the group of each image. */
function heldOutNames(
  ds: Dataset,
  indices: number[],
): { names: string[]; groupOfName: string[]; groupOfImage: string[] } {
  const groupOfImage = indices.map((i) => ds.items[i].group ?? ds.items[i].id);
  const seen = new Map<string, string>();
  indices.forEach((i, k) => {
    if (!seen.has(groupOfImage[k])) seen.set(groupOfImage[k], ds.items[i].name ?? '');
  });
  return { names: [...seen.values()], groupOfName: [...seen.keys()], groupOfImage };
}

/**
 * CLIP's two bars on held-out emoji: zero-shot category accuracy ("an emoji of <category>" prompts,
 * argmax) and name -> image retrieval top-5 ("an emoji of <name>" against all held-out images; a hit
 * when either vendor's image of that emoji is in the top 5).
 */
export function evalClipOnDataset(
  clip: CLIP,
  ds: Dataset,
  opts: { indices?: number[]; tokens?: { ids(t: string[]): tf.Tensor2D } } = {},
): ClipEvalResult {
  const indices = opts.indices ?? ds.indicesOf('test');
  const img = embedImages((x) => clip.encodeImage(x).embedding, ds, indices);
  const cats = embedTexts(clip, ds.categoryNames.map(categoryPrompt), opts.tokens);
  const { names, groupOfName, groupOfImage } = heldOutNames(ds, indices);
  const nameEmb = embedTexts(clip, names.map(namePrompt), opts.tokens);
  const simCat = cosineMatrix(img, cats);
  const zs = argmaxAccuracy(
    simCat,
    indices.length,
    ds.categoryNames.length,
    indices.map((i) => ds.categoryIds[i]),
  );
  const simName = cosineMatrix(nameEmb, img);
  const r5 = retrievalTopK(simName, names.length, indices.length, (q, g) => groupOfImage[g] === groupOfName[q], 5);
  tf.dispose([img, cats, nameEmb]);
  return { zeroShotCategoryAccuracy: zs, nameRetrievalTop5: r5, images: indices.length, names: names.length };
}

/** The CLIP bars as `diffguide eval clip` prints them. */
export function clipBars(r: ClipEvalResult): Record<string, Bar> {
  return {
    zero_shot_category_accuracy: {
      value: r.zeroShotCategoryAccuracy,
      goal: '>= 0.70 on held-out emoji (chance 0.11)',
      pass: r.zeroShotCategoryAccuracy >= 0.7,
    },
    name_retrieval_top5: {
      value: r.nameRetrievalTop5,
      goal: `>= 0.25 text->image top-5 among all ${r.images} held-out images`,
      pass: r.nameRetrievalTop5 >= 0.25,
    },
  };
}

export interface NoisyEvalResult {
  t: number;
  noisyTop5: number;
  plainTop5: number;
  ratio: number;
  images: number;
}

/**
 * Noisy-image -> clean-caption retrieval at timestep index `t`: each held-out image is noised with
 * q_sample (fixed seed), encoded by the noisy encoder (with t) and by plain CLIP, and its name caption
 * ("an emoji of <name>", text tower of plain CLIP) must be among the 5 nearest of all held-out names.
 */
export function evalNoisyClipOnDataset(
  noisy: NoisyCLIPImageEncoder,
  clip: CLIP,
  schedule: Schedule,
  ds: Dataset,
  opts: { t?: number; seed?: number; indices?: number[]; tokens?: { ids(t: string[]): tf.Tensor2D } } = {},
): NoisyEvalResult {
  const indices = opts.indices ?? ds.indicesOf('test');
  const t = opts.t ?? 500;
  const { names, groupOfName, groupOfImage } = heldOutNames(ds, indices);
  const nameEmb = embedTexts(clip, names.map(namePrompt), opts.tokens);
  const parts: { noisy: tf.Tensor2D; plain: tf.Tensor2D }[] = [];
  for (let i = 0; i < indices.length; i += 128) {
    const idx = indices.slice(i, i + 128);
    const x = ds.images(idx, { rgb: true });
    const r = tf.tidy(() => {
      // tfjs treats seed 0 as 'no seed', hence the + 1.
      const noise = tf.randomNormal(x.shape, 0, 1, 'float32', (opts.seed ?? 0) * 100003 + i + 1) as tf.Tensor4D;
      const xt = qSample(
        x,
        schedule,
        idx.map(() => t),
        noise,
      );
      const tt = tf.fill([idx.length], schedule.modelT(t)) as tf.Tensor1D;
      return { noisy: noisy.encodeImage(xt, { t: tt }).embedding, plain: clip.encodeImage(xt).embedding };
    });
    x.dispose();
    parts.push(r);
  }
  const noisyEmb = tf.concat(parts.map((p) => p.noisy)) as tf.Tensor2D;
  const plainEmb = tf.concat(parts.map((p) => p.plain)) as tf.Tensor2D;
  tf.dispose(parts.flatMap((p) => [p.noisy, p.plain]));
  const nameIdx = new Map(groupOfName.map((g, k) => [g, k]));
  const rel = (q: number, g: number) => nameIdx.get(groupOfImage[q]) === g;
  const noisyTop5 = retrievalTopK(cosineMatrix(noisyEmb, nameEmb), indices.length, names.length, rel, 5);
  const plainTop5 = retrievalTopK(cosineMatrix(plainEmb, nameEmb), indices.length, names.length, rel, 5);
  tf.dispose([noisyEmb, plainEmb, nameEmb]);
  return {
    t,
    noisyTop5,
    plainTop5,
    ratio: plainTop5 > 0 ? noisyTop5 / plainTop5 : noisyTop5 > 0 ? Infinity : NaN,
    images: indices.length,
  };
}

export function noisyClipBars(r: NoisyEvalResult): Record<string, Bar> {
  return {
    noisy_retrieval_top5_ratio: {
      value: r.ratio,
      goal: `>= 2x plain CLIP's noisy-image -> clean-caption top-5 at t = ${r.t} (noisy ${r.noisyTop5.toFixed(4)}, plain ${r.plainTop5.toFixed(4)})`,
      pass: r.ratio >= 2,
    },
  };
}
