/**
 * Many unguided samples from a `Diffuser`, in batches: the one sampler behind `diffguide eval unet`,
 * `eval methods` and training's `sampleUNet`, so that the same weights and seed give the same samples
 * in each. Sample i starts from x_T drawn from `deriveSeed(seed, i)` alone, so with DDIM (eta 0) it is
 * the same image whatever `n` and `batch` are: the first k of n samples are the k samples.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../random.js';
import { checkCount, checkSeed } from '../options.js';
import { respace, respaceEven } from '../../samplers/schedule.js';
import { sampleDdim } from '../../samplers/ddim.js';
import { sampleDdpm } from '../../samplers/ddpm.js';
import { logSnrTimesteps, sampleDpmSolver2M } from '../../samplers/dpm-solver.js';
import { diffusionModelOf, type Diffuser } from './diffuser.js';

export interface BatchedSampleOptions {
  /** Steps, evenly respaced over the model's schedule (default 50; at most its length). */
  steps?: number;
  /**
   * 'ddim' (default; deterministic at eta 0), 'ddpm' (ancestral) or 'dpm2m' (DPM-Solver++(2M): the
   * same ODE as DDIM at eta 0, to second order, so fewer steps reach DDIM's many-step samples; its
   * timesteps are spaced evenly in log-SNR, and where the schedule's end is steeper than a step they
   * merge, so it may run a few steps fewer than asked).
   */
  sampler?: 'ddim' | 'ddpm' | 'dpm2m';
  /** DDIM eta (default 0). */
  eta?: number;
  seed?: number;
  /**
   * Images per sampler call (default 64: a batch of 512 holds every activation of a step at once and
   * runs out of wasm's 4 GB heap). Only DDPM's (and eta > 0's) step noise depends on it.
   */
  batch?: number;
  /** Clip each predicted x0 to [-1, 1] (default true). */
  clipDenoised?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** The starting noise of samples `from`..`from + count - 1` of a seed: [count, H, W, C], one stream per image. */
export function batchedStartNoise(d: Diffuser, seed: number, from: number, count: number): tf.Tensor4D {
  const s = d.unet.config.imageSize ?? 32;
  const c = d.unet.config.inChannels;
  return tf.tidy(() =>
    tf.concat(
      Array.from({ length: count }, (_, j) =>
        tf.randomNormal([1, s, s, c], 0, 1, 'float32', deriveSeed(seed, from + j)),
      ),
    ),
  ) as tf.Tensor4D;
}

/** `n` unguided samples [n, H, W, C] in [-1, 1] (clipped), `batch` at a time. */
export async function sampleBatched(d: Diffuser, n: number, opts: BatchedSampleOptions = {}): Promise<tf.Tensor4D> {
  checkCount('n', n);
  const seed = checkSeed('seed', opts.seed ?? 0);
  const batch = checkCount('batch', opts.batch ?? 64);
  const steps = opts.steps ?? 50;
  if (!Number.isInteger(steps) || steps < 1 || steps > d.schedule.length)
    throw new Error(`steps must be an integer in [1, ${d.schedule.length}] (the model's schedule), got ${steps}`);
  const sampler = opts.sampler ?? 'ddim';
  if (!['ddim', 'ddpm', 'dpm2m'].includes(sampler))
    throw new Error(`sampler must be 'ddim', 'ddpm' or 'dpm2m', got ${JSON.stringify(sampler)}`);
  const sched =
    sampler === 'dpm2m' ? respace(d.schedule, logSnrTimesteps(d.schedule, steps)) : respaceEven(d.schedule, steps);
  const model = diffusionModelOf(d);
  const parts: tf.Tensor4D[] = [];
  try {
    for (let i = 0, k = 0; i < n; i += batch, k++) {
      const b = Math.min(batch, n - i);
      const x = batchedStartNoise(d, seed, i, b);
      // step noise (DDPM, eta > 0): one stream per batch, apart from the images' streams
      const so = { seed: deriveSeed(seed ^ 0x5bd1e995, k), clipDenoised: opts.clipDenoised ?? true };
      let y: tf.Tensor4D;
      try {
        y =
          sampler === 'ddpm'
            ? await sampleDdpm(model, x, sched, so)
            : sampler === 'dpm2m'
              ? sampleDpmSolver2M(model, x, sched, so)
              : await sampleDdim(model, x, sched, { ...so, eta: opts.eta ?? 0 });
      } finally {
        x.dispose();
      }
      parts.push(tf.tidy(() => y.clipByValue(-1, 1)) as tf.Tensor4D);
      y.dispose();
      opts.onProgress?.(i + b, n);
    }
    return tf.concat(parts) as tf.Tensor4D;
  } finally {
    tf.dispose(parts);
  }
}
