/**
 * DDPM ancestral sampling (Ho et al.; guided-diffusion's p_sample_loop): x_{i-1} ~ N(mean, Sigma)
 * with the model's variance type (fixed small, fixed large, learned range). Guidance shifts the mean
 * by Sigma * g ('mean', classifier/SDG style) or the noise by -sqrt(1 - abar) g ('eps').
 */
import * as tf from '@tensorflow/tfjs';
import { SamplingRun, type Move, type MoveResult, type SamplerOptions } from './core.js';
import type { DiffusionModel } from './model.js';
import type { Schedule } from './schedule.js';

/** One ancestral move from index `move.index` to `move.to` (= index - 1). Call inside a tidy. */
export function ddpmMove(run: SamplingRun, x: tf.Tensor4D, move: Move, k: number, total: number): MoveResult {
  const i = move.index;
  const s = run.schedule;
  const { pred, grad } = run.predict(x, i, k, total);
  let mean = pred.mean;
  let x0 = pred.x0;
  if (grad) {
    if ((run.opts.guidanceMode ?? 'mean') === 'mean') {
      mean = mean.add(pred.variance.mul(grad)) as tf.Tensor4D;
    } else {
      const ab = s.alphasCumprod[i];
      const eps = pred.eps.sub(grad.mul(Math.sqrt(1 - ab)));
      x0 = eps
        .mul(-Math.sqrt(1 - ab))
        .add(x)
        .div(Math.sqrt(ab)) as tf.Tensor4D;
      mean = x0.mul(s.posteriorMeanCoef1[i]).add(x.mul(s.posteriorMeanCoef2[i])) as tf.Tensor4D;
    }
  }
  if (i === 0) return { x: mean, x0 };
  const z = run.rng.normal<tf.Rank.R4>(x.shape);
  return { x: mean.add(tf.exp(pred.logVariance.mul(0.5)).mul(z)) as tf.Tensor4D, x0 };
}

/**
 * DDPM ancestral sampling from x (at `startIndex`, default the last index) down to `endIndex`
 * (default -1: the clean image).
 * @param x [N, H, W, C] x_t at startIndex (pure noise for full sampling; a noised guide for SDEdit)
 * @returns [N, H, W, C]
 */
export async function sampleDdpm(
  model: DiffusionModel,
  x: tf.Tensor4D,
  schedule: Schedule,
  opts: SamplerOptions = {},
): Promise<tf.Tensor4D> {
  const run = new SamplingRun(model, schedule, opts);
  try {
    const moves = run.downMoves();
    return await run.run(x, moves, (xt, m, k) => ddpmMove(run, xt, m, k, moves.length));
  } finally {
    run.dispose();
  }
}
