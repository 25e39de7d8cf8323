/**
 * The variational-bound term of Improved DDPM's hybrid loss, for nets that learn their variance
 * (`learnSigma`): L_t = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 0 and the discretised
 * Gaussian decoder NLL of x_0 at t = 0, in bits per dimension. As in the paper, the mean's gradient is
 * stopped in this term so that it trains only the variance; L_simple trains the mean.
 */
import * as tf from '@tensorflow/tfjs';
import type { Schedule } from '../../samplers/schedule.js';
import type { DiffusionModel } from '../../samplers/model.js';
import { stopGradient } from '../ops/tape.js';

/** KL(N(mean1, exp(logVar1)) || N(mean2, exp(logVar2))), elementwise, in nats. */
export function normalKl(mean1: tf.Tensor, logVar1: tf.Tensor, mean2: tf.Tensor, logVar2: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(
      0.5,
      tf
        .exp(logVar1.sub(logVar2))
        .add(mean1.sub(mean2).square().mul(tf.exp(logVar2.neg())))
        .add(logVar2.sub(logVar1))
        .sub(1),
    ),
  );
}

/** A fast approximation of the standard normal CDF (the tanh form the reference uses). */
export function approxStandardNormalCdf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf
      .tanh(x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI)))
      .add(1)
      .mul(0.5),
  );
}

/**
 * log-likelihood (nats, elementwise) of 8-bit data x in [-1, 1] under N(mean, exp(logScale)^2)
 * discretised to 256 bins of width 2/255; the end bins take the tails.
 */
export function discretizedGaussianLogLikelihood(x: tf.Tensor, mean: tf.Tensor, logScale: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const centered = x.sub(mean);
    const invStd = tf.exp(logScale.neg());
    const cdfPlus = approxStandardNormalCdf(centered.add(1 / 255).mul(invStd));
    const cdfMin = approxStandardNormalCdf(centered.sub(1 / 255).mul(invStd));
    const logCdfPlus = tf.log(tf.maximum(cdfPlus, 1e-12));
    const logOneMinusCdfMin = tf.log(tf.maximum(tf.sub(1, cdfMin), 1e-12));
    const logDelta = tf.log(tf.maximum(cdfPlus.sub(cdfMin), 1e-12));
    return tf.where(x.less(-0.999), logCdfPlus, tf.where(x.greater(0.999), logOneMinusCdfMin, logDelta));
  });
}

/**
 * L_t per sample in bits/dim, gradient only into the variance half of `out`.
 * @param model a learned-variance model ('learnedRange' or 'learned')
 * @param x0 [N, H, W, C] clean images; xt [N, H, W, C] their noised versions at schedule indices `idx`
 * @param out [N, H, W, 2C] the net's raw output at (xt, idx)
 * @returns [N]
 */
export function vlbTerms(
  model: DiffusionModel,
  schedule: Schedule,
  x0: tf.Tensor4D,
  xt: tf.Tensor4D,
  idx: number[],
  out: tf.Tensor4D,
): tf.Tensor1D {
  if (!model.learnsVariance)
    throw new Error(
      `vlbTerms: the model's variance is '${model.variance}'; the bound trains a learned one ('learnedRange' or 'learned')`,
    );
  return tf.tidy(() => {
    const n = x0.shape[0];
    const c = x0.shape[3];
    const frozen = tf.concat(
      [stopGradient(out.slice([0, 0, 0, 0], [-1, -1, -1, c])), out.slice([0, 0, 0, c], [-1, -1, -1, c])],
      3,
    ) as tf.Tensor4D;
    const p = model.fromOutput(xt, frozen, schedule, idx);
    const col = (v: ArrayLike<number>) =>
      tf.tensor4d(
        Float32Array.from(idx, (i) => v[i]),
        [n, 1, 1, 1],
      );
    const trueMean = x0.mul(col(schedule.posteriorMeanCoef1)).add(xt.mul(col(schedule.posteriorMeanCoef2)));
    const trueLogVar = col(schedule.posteriorLogVarianceClipped);
    const meanOver = (t: tf.Tensor) => t.reshape([n, -1]).mean(1).div(Math.LN2) as tf.Tensor1D;
    const kl = meanOver(normalKl(trueMean, trueLogVar, p.mean, p.logVariance));
    const nll = meanOver(discretizedGaussianLogLikelihood(x0, p.mean, p.logVariance.mul(0.5)).neg());
    const atZero = tf.tensor1d(
      idx.map((i) => (i === 0 ? 1 : 0)),
      'bool',
    );
    return tf.where(atZero, nll, kl) as tf.Tensor1D;
  });
}
