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
import { OptionError, checkCount, checkSeed } from '../options.js';
import { checkEta, checkSteps, fullChain, imageSizeOf, type ProgressFn, stepProgress } from './common.js';
import { diffusionModelOf, type Diffuser } from '../models/diffuser.js';

export interface SampleOptions {
  /** Number of images. Default 4. */
  n?: number;
  /** Respaced steps. Default 50. */
  steps?: number;
  /** 'ddpm' (ancestral) or 'ddim'. Default 'ddim'. */
  sampler?: 'ddpm' | 'ddim';
  /** DDIM eta. Default 0. */
  eta?: number;
  /** Conditioning (embedding-conditioned nets). */
  cond?: Cond;
  /** Starting noise x_T [n, H, W, C] (default drawn from `seed`). */
  noise?: tf.Tensor4D;
  clipDenoised?: boolean;
  seed?: number;
  onProgress?: ProgressFn;
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
  const n = checkCount('n', opts.n ?? opts.noise?.shape[0] ?? 4);
  const steps = checkSteps(d.schedule, opts.steps ?? 50);
  const sampler = opts.sampler ?? 'ddim';
  if (sampler !== 'ddim' && sampler !== 'ddpm')
    throw new OptionError('sampler', `sampler must be 'ddim' or 'ddpm', got ${JSON.stringify(sampler)}`);
  const eta = checkEta(opts.eta ?? 0);
  const seed = checkSeed('seed', opts.seed ?? 0);
  if (opts.noise && opts.noise.shape[0] !== n)
    throw new OptionError(
      'n',
      `n is ${n} but the given noise holds ${opts.noise.shape[0]} images; give one or make them agree`,
    );
  const sched = fullChain(d.schedule, steps);
  const model = diffusionModelOf(d);
  const x = opts.noise ? tf.clone(opts.noise) : startNoise(d, n, seed);
  const callback = stepProgress('sample', opts.onProgress);
  const so = { seed: seed + 1, refSeed: seed + 2, cond: opts.cond, clipDenoised: opts.clipDenoised ?? true, callback };
  let out: tf.Tensor4D;
  try {
    out =
      sampler === 'ddpm' ? await sampleDdpm(model, x, sched, so) : await sampleDdim(model, x, sched, { ...so, eta });
  } finally {
    x.dispose();
  }
  const images = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
  out.dispose();
  return { images, settings: { n, steps: sched.length, sampler, eta, seed } };
}
