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
import { UNCLIP_DEFAULTS, decode, samplePrior } from '../methods/unclip.js';
import { embedImages, type Bar } from '../metrics/clip-dataset.js';
import { categoryPrompt } from '../data/prompts.js';
import { matchRate } from '../metrics/retrieval.js';

/**
 * Decoder DDIM steps of these bars: half of `UNCLIP_DEFAULTS.decode.steps`, for speed (the bars of
 * issue 6 and `eval methods`' prompt bar were measured with it).
 */
export const UNCLIP_EVAL_DECODER_STEPS = 25;

export interface UnclipEvalOptions {
  /** Samples per category (default 4). */
  perCategory?: number;
  /** Decoder DDIM steps (default `UNCLIP_EVAL_DECODER_STEPS`). */
  steps?: number;
  /** Decoder guidance (default `UNCLIP_DEFAULTS.decode.decoderScale`). */
  decoderScale?: number;
  /** Prior steps, guidance and candidates (defaults `UNCLIP_DEFAULTS.prior`). */
  priorSteps?: number;
  priorScale?: number;
  bestOf?: number;
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
    priorSteps: opts.priorSteps,
    priorScale: opts.priorScale,
    bestOf: opts.bestOf,
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
      steps: opts.steps ?? UNCLIP_EVAL_DECODER_STEPS,
      decoderScale: opts.decoderScale,
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
  /** The prior's and decoder's settings these samples ran with. */
  settings: Record<string, number>;
}

/** The prior's and decoder's settings of these bars: `opts` over their defaults. */
export function unclipEvalSettings(
  opts: UnclipEvalOptions,
): Record<'priorScale' | 'priorSteps' | 'bestOf' | 'decoderScale' | 'steps', number> {
  const P = UNCLIP_DEFAULTS.prior;
  return {
    priorScale: opts.priorScale ?? P.priorScale,
    priorSteps: opts.priorSteps ?? P.priorSteps,
    bestOf: opts.bestOf ?? P.bestOf,
    decoderScale: opts.decoderScale ?? UNCLIP_DEFAULTS.decode.decoderScale,
    steps: opts.steps ?? UNCLIP_EVAL_DECODER_STEPS,
  };
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
  const settings = unclipEvalSettings(opts);
  const { z, labels } = await priorCategorySamples(prior, priorSchedule, clip, ds, { ...opts, ...settings });
  const nn = nearestHeldOutCategory(clip, ds, z);
  const pred = await decodeAndJudge(decoder, judge, z, { ...opts, ...settings });
  z.dispose();
  return {
    promptCategoryRate: matchRate(labels, pred),
    priorNearestCategory: matchRate(labels, nn),
    samples: labels.length,
    settings,
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
