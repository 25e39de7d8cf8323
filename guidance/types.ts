/**
 * Guidance functions.
 *
 * SIGN CONVENTION: a guidance function returns an objective to MAXIMISE (a log-probability-like
 * score: a cosine similarity, a negative distance). The sampler moves x_t along its gradient. To use
 * one as a training loss, negate it (`asLoss`).
 *
 * BATCH CONVENTION: the returned scalar is the SUM over the batch of per-sample objectives, so each
 * sample's gradient does not depend on the batch size.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Schedule } from '../samplers/schedule.js';

export interface GuidanceContext {
  /**
   * Predicted x0 [N, H, W, C], differentiable w.r.t. x_t: through the net when the sampler runs with
   * `guidanceX0: 'model'`, otherwise as (x_t - sqrt(1 - abar) * eps) / sqrt(abar) with eps held fixed
   * ('linear', the default: no net backward). Not clipped.
   */
  x0: tf.Tensor4D;
  /** Predicted noise [N, H, W, C] (constant in 'linear' mode). */
  eps: tf.Tensor4D;
  schedule: Schedule;
  /** Schedule index of x_t. */
  index: number;
  /** Sampler step number (0-based) and total steps. */
  step: number;
  total: number;
  /** alpha_bar at `index`. */
  alphaBar: number;
  /** A reference image [M, H, W, C] noised to this step's level with fixed per-reference noise (same noise every step). */
  noised(ref: tf.Tensor4D): tf.Tensor4D;
}

/**
 * A differentiable guidance signal. x: [N, H, W, C] = x_t; t: [N] model-scale timesteps (what the net
 * and a time-conditioned encoder receive). Returns a scalar to maximise (sum over the batch).
 */
export type GuidanceFn = (x: tf.Tensor4D, t: tf.Tensor1D, ctx: GuidanceContext) => tf.Scalar;
