/**
 * Quality bars of the conditional UNet (unCLIP decoder) and the unCLIP prior, measured with the judge
 * (issue 6): samples for a category prompt ("an emoji of <category>") must be judged that category
 * >= 50% of the time (chance 1/9). Also two diagnostics that isolate each model:
 * - decoder: images decoded from held-out images' CLIP embeddings, judged the source image's category;
 * - prior: the category of the nearest held-out image embedding to each prior sample.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import type { CLIP } from '../../nets/clip/index.js';
import type { Judge } from '../../nets/judge/model.js';
import type { Prior } from '../../nets/prior/index.js';
import type { Schedule } from '../../samplers/schedule.js';
import type { Diffuser } from '../models/diffuser.js';
import { decode, samplePrior } from '../methods/unclip.js';
import { embedImages, type Bar } from '../metrics/clip-dataset.js';
import { categoryPrompt } from '../data/prompts.js';
import { matchRate } from '../metrics/retrieval.js';

export interface UnclipEvalOptions {
  /** Samples per category (default 4). */
  perCategory?: number;
  /** Decoder DDIM steps (default 25) and guidance (default 3). */
  steps?: number;
  decoderScale?: number;
  /** Prior steps (default 64) and guidance (default 2). */
  priorSteps?: number;
  priorScale?: number;
  seed?: number;
  onProgress?: (msg: string) => void;
}

// matchRate lives in lib/metrics (its one home); re-exported for this module's users.
export { matchRate };

function judgeCategories(judge: Judge, x: tf.Tensor4D): number[] {
  return Array.from(judge.predict(x).category);
}

function unitTexts(clip: CLIP, texts: string[]): tf.Tensor2D {
  return tf.tidy(() => {
    const e = clip.encodeText(texts, { truncate: true });
    return e.div(tf.norm(e, 'euclidean', 1, true)) as tf.Tensor2D;
  });
}

/** Labels (category index per sample) for `per` samples of each category, category-major. */
function promptLabels(ds: Dataset, per: number): number[] {
  return ds.categoryNames.flatMap((_, c) => new Array(per).fill(c));
}

/** Prior samples for the category prompts: unit-norm [K * per, D] and their labels. */
export async function priorCategorySamples(
  prior: Prior,
  schedule: Schedule,
  clip: CLIP,
  ds: Dataset,
  opts: UnclipEvalOptions = {},
): Promise<{ z: tf.Tensor2D; labels: number[] }> {
  const per = opts.perCategory ?? 4;
  const labels = promptLabels(ds, per);
  const zt = unitTexts(
    clip,
    labels.map((c) => categoryPrompt(ds.categoryNames[c])),
  );
  const r = await samplePrior(prior, schedule, zt, {
    priorSteps: opts.priorSteps ?? 64,
    priorScale: opts.priorScale ?? 2,
    seed: opts.seed ?? 0,
  });
  zt.dispose();
  return { z: r.embeddings, labels };
}

/** Category of the nearest held-out image embedding to each z [N, D]. */
export function nearestHeldOutCategory(clip: CLIP, ds: Dataset, z: tf.Tensor2D): number[] {
  const test = ds.indicesOf('test');
  const gal = embedImages((x) => clip.encodeImage(x).embedding, ds, test);
  const nn = tf.tidy(() =>
    tf.argMax(tf.matMul(z, gal.div(tf.norm(gal, 'euclidean', 1, true)), false, true), 1).dataSync(),
  );
  gal.dispose();
  return Array.from(nn, (j) => ds.categoryIds[test[j]]);
}

/** Decode in chunks and judge. */
async function decodeAndJudge(
  decoder: Diffuser,
  judge: Judge,
  z: tf.Tensor2D,
  opts: UnclipEvalOptions,
): Promise<number[]> {
  const out: number[] = [];
  const n = z.shape[0];
  for (let i = 0; i < n; i += 48) {
    const zi = z.slice([i, 0], [Math.min(48, n - i), z.shape[1]]);
    const img = await decode(decoder, zi, {
      steps: opts.steps ?? 25,
      decoderScale: opts.decoderScale ?? 3,
      seed: (opts.seed ?? 0) * 1000 + i + 1,
    });
    out.push(...judgeCategories(judge, img));
    tf.dispose([zi, img]);
    opts.onProgress?.(`decoded ${Math.min(n, i + 48)}/${n}`);
  }
  return out;
}

/** Decoder diagnostic: decode held-out images' CLIP embeddings; fraction judged the source's category. */
export async function decoderReconstructionCategory(
  decoder: Diffuser,
  clip: CLIP,
  judge: Judge,
  ds: Dataset,
  opts: UnclipEvalOptions & { n?: number } = {},
): Promise<number> {
  const test = ds.indicesOf('test');
  const n = Math.min(opts.n ?? 72, test.length);
  const pick = Array.from({ length: n }, (_, i) => test[Math.floor((i * test.length) / n)]);
  const z = embedImages((x) => clip.encodeImage(x).embedding, ds, pick);
  const pred = await decodeAndJudge(decoder, judge, z, opts);
  z.dispose();
  return matchRate(
    pick.map((i) => ds.categoryIds[i]),
    pred,
  );
}

export interface UnclipEvalResult {
  /** Category prompt -> prior -> decoder -> judge: fraction judged the prompt's category. */
  promptCategoryRate: number;
  /** Prior alone: fraction whose nearest held-out image embedding has the prompt's category. */
  priorNearestCategory: number;
  samples: number;
}

/** The joint bar: category prompt -> prior -> decoder -> judge. */
export async function evalUnclipPrompts(
  decoder: Diffuser,
  prior: Prior,
  priorSchedule: Schedule,
  clip: CLIP,
  judge: Judge,
  ds: Dataset,
  opts: UnclipEvalOptions = {},
): Promise<UnclipEvalResult> {
  const { z, labels } = await priorCategorySamples(prior, priorSchedule, clip, ds, opts);
  const nn = nearestHeldOutCategory(clip, ds, z);
  const pred = await decodeAndJudge(decoder, judge, z, opts);
  z.dispose();
  return {
    promptCategoryRate: matchRate(labels, pred),
    priorNearestCategory: matchRate(labels, nn),
    samples: labels.length,
  };
}

export function unclipBars(r: UnclipEvalResult, decoderRecon?: number): Record<string, Bar> {
  const bars: Record<string, Bar> = {
    prompt_category_rate: {
      value: r.promptCategoryRate,
      goal: `>= 0.5 of ${r.samples} samples for "an emoji of <category>" (prior -> decoder) judged that category (chance 0.11)`,
      pass: r.promptCategoryRate >= 0.5,
    },
  };
  if (decoderRecon !== undefined)
    bars.decoder_reconstruction_category = {
      value: decoderRecon,
      goal: 'diagnostic: decodes of held-out image embeddings judged the source category (no goal)',
      pass: true,
    };
  bars.prior_nearest_category = {
    value: r.priorNearestCategory,
    goal: 'diagnostic: prior samples whose nearest held-out image embedding has the prompt category (no goal)',
    pass: true,
  };
  return bars;
}
