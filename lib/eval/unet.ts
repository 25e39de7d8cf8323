/**
 * Quality bars measured with the judge (issue 6): held-out accuracy of the judge itself, and for the
 * unconditional UNet the Frechet distance in the judge's feature space vs a Gaussian baseline and the
 * total-variation distance of the judged category distribution.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStateDict } from '../io/index.js';
import { Dataset } from '../data/dataset.js';
import { Judge, type JudgeConfig } from '../../nets/judge/model.js';
import { UNet } from '../../nets/unet/index.js';
import { makeSchedule, type Schedule, type ScheduleName } from '../../samplers/schedule.js';
import { diffusionModel } from '../../samplers/model.js';
import { qSample } from '../../samplers/core.js';
import { judgeAccuracy } from '../train/tasks/judge.js';
import { makeDiffuser, unetVariance, type Diffuser } from '../models/diffuser.js';
import { sampleBatched } from '../models/sample-batched.js';
import { DIFFUSION_DEFAULTS, scheduleSpecFromConfig } from '../models/weights-config.js';
import type { Parameterization } from '../../samplers/model.js';
import { frechetDistanceOfFeatures, totalVariation } from '../metrics/frechet.js';

export interface Bar {
  value: number;
  goal: string;
  pass: boolean;
}

export interface EvalReport {
  model: string;
  bars: Record<string, Bar>;
  [k: string]: unknown;
}

function readConfig(dir: string, model: string): Record<string, unknown> {
  const p = join(dir, 'config.json');
  if (!existsSync(p))
    throw new Error(
      `${p} is missing; train and export the ${model} first (diffguide train ${model}) or pass --weights DIR`,
    );
  return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
}

/** Load the judge from a folder holding judge.safetensors + config.json. */
export async function loadJudge(dir: string): Promise<Judge> {
  const cfg = readConfig(dir, 'judge') as unknown as JudgeConfig;
  const path = join(dir, 'judge.safetensors');
  return Judge.fromStateDict(cfg, await readStateDict(path), path);
}

/** Load an exported UNet (unet.safetensors + config.json) and its schedule name. */
export async function loadUNet(
  dir: string,
): Promise<{ net: UNet; schedule: ScheduleName; timesteps: number; config: Record<string, unknown> }> {
  const cfg = readConfig(dir, 'unet');
  const path = join(dir, 'unet.safetensors');
  const net = UNet.fromStateDict(await readStateDict(path), cfg as never);
  return {
    net,
    ...scheduleSpecFromConfig(cfg), // what a config naming none means: DIFFUSION_DEFAULTS, as every loader
    config: cfg,
  };
}

/** The judge's held-out accuracy. Goals: category >= 0.6 (chance 0.11), vendor >= 0.9 (chance 0.5). */
export function evalJudge(judge: Judge, ds: Dataset): EvalReport {
  const a = judgeAccuracy(judge, ds);
  return {
    model: 'judge',
    n: a.n,
    bars: {
      test_category_accuracy: {
        value: a.category,
        goal: '>= 0.6 on held-out emoji (chance 0.11)',
        pass: a.category >= 0.6,
      },
      test_vendor_accuracy: { value: a.vendor, goal: '>= 0.9 on held-out emoji (chance 0.5)', pass: a.vendor >= 0.9 },
    },
  };
}

/** Judge features and predicted categories of images [N, H, W, 3], batched. */
function judgeOf(judge: Judge, x: tf.Tensor4D): { features: Float32Array; category: number[] } {
  const p = judge.predict(x);
  return { features: p.features, category: p.category };
}

/** Counts of each of `K` category indices. */
export function categoryHistogram(ids: readonly number[], K: number): number[] {
  const h = new Array<number>(K).fill(0);
  for (const i of ids) h[i]++;
  return h;
}

/** What the judge makes of `n` unguided samples: features, categories, and the category TV. */
export interface JudgedSamples {
  n: number;
  steps: number;
  seed: number;
  sampler: 'ddim' | 'dpm2m';
  /** [n * featureDim] judge features. */
  features: Float32Array;
  /** Judged category index of each sample. */
  category: number[];
  /** Samples per judged category. */
  histogram: number[];
  /** TV between the samples' judged category distribution and the labels of the whole dataset (both splits). */
  tv: number;
  /** The same against the training split's labels alone (what the UNet was trained on). */
  tvVsTrainSplit: number;
}

/**
 * The unconditional UNet's samples as both `eval unet` and `eval methods` measure them: `n` samples
 * from `sampleBatched` with `seed` (DDIM at eta 0 unless `sampler` says otherwise), judged; the TV is
 * against the whole dataset's labels (both splits).
 */
export async function judgeSamples(
  d: Diffuser,
  judge: Judge,
  ds: Dataset,
  opts: {
    n: number;
    steps: number;
    seed: number;
    /** Default 'ddim' (eta 0); 'dpm2m' solves the same ODE to second order. */
    sampler?: 'ddim' | 'dpm2m';
    onProgress?: (done: number, total: number) => void;
  },
): Promise<JudgedSamples> {
  const samples = await sampleBatched(d, opts.n, {
    steps: opts.steps,
    seed: opts.seed,
    sampler: opts.sampler ?? 'ddim',
    onProgress: opts.onProgress,
  });
  const s = judgeOf(judge, samples);
  samples.dispose();
  const K = judge.config.categories.length;
  const histogram = categoryHistogram(s.category, K);
  const trainIds = ds.indicesOf('train').map((i) => ds.categoryIds[i]);
  return {
    n: opts.n,
    steps: opts.steps,
    seed: opts.seed,
    sampler: opts.sampler ?? 'ddim',
    features: s.features,
    category: s.category,
    histogram,
    tv: totalVariation(histogram, categoryHistogram(ds.categoryIds, K)),
    tvVsTrainSplit: totalVariation(histogram, categoryHistogram(trainIds, K)),
  };
}

export interface UNetEvalOptions {
  /** Number of samples (default 1000). */
  n?: number;
  /** DDIM steps (default 50). */
  steps?: number;
  /** Default 'ddim' (the model cards' protocol); 'dpm2m' as `eval methods` samples. */
  sampler?: 'ddim' | 'dpm2m';
  seed?: number;
  /** What the net predicts (its config.json `prediction`; default `DIFFUSION_DEFAULTS.unet.prediction`). */
  prediction?: Parameterization;
  onProgress?: (done: number, total: number) => void;
}

/** One row of `x0ErrorByNoiseLevel`. */
export interface X0ErrorRow {
  /** Schedule index and its alpha-bar. */
  index: number;
  alphaBar: number;
  /** MSE of the model's x0 estimate (clipped to [-1, 1]) against the clean images. */
  model: number;
  /** MSE of predicting the train-split mean image, whatever the input (the trivial baseline). */
  meanImage: number;
}

/**
 * Diagnostic: how well the model's x0 estimate recovers held-out images from x_t at several noise
 * levels, against the trivial mean-image predictor. An eps model's x0 estimate divides its error
 * by sqrt(alpha-bar), so small models lose to the mean image near t = T; samplers start there.
 * @param images held-out images [N, H, W, C] in [-1, 1]
 */
export function x0ErrorByNoiseLevel(
  net: UNet,
  schedule: Schedule,
  prediction: Parameterization,
  images: tf.Tensor4D,
  meanImage: tf.Tensor,
  indices = [100, 500, 800, 900, 950, 980, schedule.length - 1],
  seed = 0,
): X0ErrorRow[] {
  const model = diffusionModel((x, t) => net.apply(x, t, {}), { prediction, variance: unetVariance(net) });
  const n = images.shape[0];
  return indices.map((i, k) =>
    tf.tidy(() => {
      const noise = tf.randomNormal(images.shape, 0, 1, 'float32', seed + k) as tf.Tensor4D;
      const xt = qSample(images, schedule, new Array(n).fill(i), noise);
      const p = model.predict(xt, schedule, new Array(n).fill(i), { clipDenoised: true });
      const mse = (a: tf.Tensor) => a.sub(images).square().mean().dataSync()[0];
      return {
        index: i,
        alphaBar: schedule.alphaBar(i),
        model: mse(p.x0),
        meanImage: mse(tf.broadcastTo(meanImage, images.shape)),
      };
    }),
  );
}

/**
 * Unconditional UNet bars: FID(samples, held-out) <= 0.5 FID(baseline, held-out), where the baseline
 * is Gaussian noise around the train-split per-pixel mean with the matched per-pixel variance
 * (clipped to [-1, 1]); TV(judged category distribution of samples, data category distribution) <= 0.2.
 * Also reports `judgeTvOnHeldOut`, the same distance for the judge's calls on real held-out images
 * against their labels: what a perfect sampler would score under this judge.
 */
export async function evalUNet(
  net: UNet,
  scheduleName: ScheduleName,
  timesteps: number,
  judge: Judge,
  ds: Dataset,
  opts: UNetEvalOptions = {},
): Promise<EvalReport> {
  const n = opts.n ?? 1000;
  const steps = opts.steps ?? 50;
  const seed = opts.seed ?? 0;
  const d = judge.featureDim;
  const schedule = makeSchedule(scheduleName, timesteps);
  const diffuser = makeDiffuser(net, schedule, {
    prediction: opts.prediction ?? DIFFUSION_DEFAULTS.unet.prediction,
    variance: unetVariance(net),
  });
  const s = await judgeSamples(diffuser, judge, ds, {
    n,
    steps,
    seed,
    sampler: opts.sampler,
    onProgress: opts.onProgress,
  });
  const testIdx = ds.indicesOf('test');
  const real = ds.images(testIdx, { rgb: true });
  const r = judgeOf(judge, real);
  real.dispose();
  const { mean, variance } = ds.pixelStats(ds.indicesOf('train'));
  // Diagnostic: x0 error by noise level on 64 held-out images (the net sees RGB, as in training).
  const probe = ds.images(testIdx.slice(0, 64), { rgb: true });
  const meanImage = tf.tidy(() => {
    const m = tf.tensor(Float32Array.from(mean), [1, ds.height, ds.width, ds.channels]);
    return ds.channels === 1 ? tf.tile(m, [1, 1, 1, 3]) : m;
  });
  const x0Rows = x0ErrorByNoiseLevel(
    net,
    schedule,
    opts.prediction ?? DIFFUSION_DEFAULTS.unet.prediction,
    probe,
    meanImage,
    undefined,
    seed,
  );
  tf.dispose([probe, meanImage]);
  const base = tf.tidy(() => {
    const shape = [ds.height, ds.width, ds.channels];
    const m = tf.tensor(Float32Array.from(mean), shape);
    const sd = tf.tensor(Float32Array.from(variance, Math.sqrt), shape);
    const z = tf.randomNormal([n, ...shape], 0, 1, 'float32', seed + 12345);
    let b = z.mul(sd).add(m).clipByValue(-1, 1);
    if (ds.channels === 1) b = tf.tile(b, [1, 1, 1, 3]);
    return b as tf.Tensor4D;
  });
  const bj = judgeOf(judge, base);
  base.dispose();
  const fidSamples = frechetDistanceOfFeatures(s.features, n, r.features, testIdx.length, d);
  const fidBaseline = frechetDistanceOfFeatures(bj.features, n, r.features, testIdx.length, d);
  const K = judge.config.categories.length;
  const hist = (ids: number[]) => categoryHistogram(ids, K);
  const sampleHist = s.histogram;
  const tv = s.tv;
  // The instrument's floor: the same distance for the judge's calls on real held-out images.
  const judgeFloorTv = totalVariation(hist(r.category), hist(testIdx.map((i) => ds.categoryIds[i])));
  const ratio = fidSamples / fidBaseline;
  return {
    model: 'unet',
    n,
    ddimSteps: steps,
    sampler: s.sampler,
    heldOut: testIdx.length,
    fid: fidSamples,
    fidBaseline,
    sampleCategories: Object.fromEntries(judge.config.categories.map((c, i) => [c, sampleHist[i]])),
    judgeTvOnHeldOut: judgeFloorTv,
    tvVsTrainSplit: s.tvVsTrainSplit,
    x0ErrorByNoiseLevel: x0Rows,
    bars: {
      fid_ratio_vs_gaussian_baseline: {
        value: ratio,
        goal: `FID(samples, held-out) <= 0.5 x FID(Gaussian baseline, held-out) in the judge's feature space (FID ${fidSamples.toFixed(3)} vs baseline ${fidBaseline.toFixed(3)})`,
        pass: ratio <= 0.5,
      },
      category_tv_distance: {
        value: tv,
        goal: "<= 0.2 total-variation distance between the judge's category distribution of samples and the data's",
        pass: tv <= 0.2,
      },
    },
  };
}
