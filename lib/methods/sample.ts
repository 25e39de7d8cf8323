/**
 * Plain (unguided) sampling from a diffusion model: DDPM ancestral or DDIM on a respaced schedule.
 * The baseline every method is compared with (same seed = same x_T).
 */
import * as tf from '@tensorflow/tfjs';
import { randomStart } from '../../samplers/core.js';
import { sampleDdpm } from '../../samplers/ddpm.js';
import { sampleDdim } from '../../samplers/ddim.js';
import type { Cond } from '../../samplers/model.js';
import { Rng } from '../random.js';
import { checkSeed } from '../options.js';
import {
  DEFAULT_SEED,
  checkBatch,
  checkChoice,
  checkEta,
  fullChain,
  imageSizeOf,
  type ProgressFn,
  stepProgress,
  checkStepsFor,
  type WithDefaults,
} from './common.js';
import { diffusionModelOf, type Diffuser } from '../models/diffuser.js';

/** Plain sampling's defaults: the one definition the API, the CLI (and its help), the demo and the notebooks use. */
export const SAMPLE_DEFAULTS = {
  /** Number of images (when no starting noise is given; with `noise`, its batch). */
  n: 4,
  /** Sampling steps, evenly respaced over the model's schedule (at most its length). */
  steps: 50,
  /** 'ddim' (deterministic at eta 0) or 'ddpm' (ancestral). */
  sampler: 'ddim',
  /** DDIM's eta in [0, 1]: 0 deterministic, 1 DDPM-like noise (DDIM only). */
  eta: 0,
  /** Clip each predicted x0 to [-1, 1]. */
  clipDenoised: true,
  /** Seed of the starting noise and of every draw (`DEFAULT_SEED`). */
  seed: DEFAULT_SEED,
} as const;

/** The samplers `sample` runs. */
export const SAMPLERS = ['ddim', 'ddpm'] as const;

export interface SampleOptions {
  /** Number of images. Default `SAMPLE_DEFAULTS.n`. */
  n?: number;
  /** Respaced steps. Default `SAMPLE_DEFAULTS.steps`. */
  steps?: number;
  /** 'ddpm' (ancestral) or 'ddim'. Default `SAMPLE_DEFAULTS.sampler`. */
  sampler?: 'ddpm' | 'ddim';
  /** DDIM eta. Default `SAMPLE_DEFAULTS.eta`. */
  eta?: number;
  /** Conditioning (embedding-conditioned nets). */
  cond?: Cond;
  /** Starting noise x_T [n, H, W, C] (default drawn from `seed`). */
  noise?: tf.Tensor4D;
  clipDenoised?: boolean;
  seed?: number;
  onProgress?: ProgressFn;
}

/** `SampleOptions` with every default filled in and every value checked. */
export type ResolvedSampleOptions = WithDefaults<SampleOptions, keyof typeof SAMPLE_DEFAULTS>;

/**
 * The options `sample` runs with: defaults from `SAMPLE_DEFAULTS`, every value range-checked (an
 * `OptionError` names the bad one). With the model `d`, steps are also checked against its schedule.
 */
export function resolveSampleOptions(opts: SampleOptions = {}, d?: Diffuser): ResolvedSampleOptions {
  const D = SAMPLE_DEFAULTS;
  const n = checkBatch(opts.n, opts.noise, D.n);
  const steps = checkStepsFor(d?.schedule, opts.steps ?? D.steps);
  const sampler = checkChoice('sampler', opts.sampler ?? D.sampler, SAMPLERS);
  const eta = checkEta(opts.eta ?? D.eta);
  const seed = checkSeed('seed', opts.seed ?? D.seed);
  return { ...opts, n, steps, sampler, eta, seed, clipDenoised: opts.clipDenoised ?? D.clipDenoised };
}

export interface SampleResult {
  /** [n, H, W, C] in [-1, 1]. */
  images: tf.Tensor4D;
  settings: { n: number; steps: number; sampler: 'ddpm' | 'ddim'; eta: number; seed: number };
}

/** The starting noise for `n` images from a seed (the same x_T every method uses for that seed). */
export function startNoise(d: Diffuser, n: number, seed: number): tf.Tensor4D {
  const s = imageSizeOf(d);
  return randomStart([n, s, s, d.unet.config.inChannels], new Rng(seed));
}

export async function sample(d: Diffuser, opts: SampleOptions = {}): Promise<SampleResult> {
  const o = resolveSampleOptions(opts, d);
  const sched = fullChain(d.schedule, o.steps);
  const model = diffusionModelOf(d);
  const x = o.noise ? tf.clone(o.noise) : startNoise(d, o.n, o.seed);
  const callback = stepProgress('sample', o.onProgress);
  const samplerOpts = { seed: o.seed + 1, refSeed: o.seed + 2, cond: o.cond, clipDenoised: o.clipDenoised, callback };
  let out: tf.Tensor4D;
  try {
    out =
      o.sampler === 'ddpm'
        ? await sampleDdpm(model, x, sched, samplerOpts)
        : await sampleDdim(model, x, sched, { ...samplerOpts, eta: o.eta });
  } finally {
    x.dispose();
  }
  const images = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
  out.dispose();
  return { images, settings: { n: o.n, steps: sched.length, sampler: o.sampler, eta: o.eta, seed: o.seed } };
}
