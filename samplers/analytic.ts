/**
 * Closed-form nets for data whose denoiser is known exactly: a Gaussian mixture
 * p(x0) = sum_k w_k N(m_k, s_k^2 I) under a schedule. For x_t = sqrt(abar) x0 + sqrt(1 - abar) eps,
 *   x_t | k ~ N(sqrt(abar) m_k, (abar s_k^2 + 1 - abar) I)
 *   E[eps | x_t] = sqrt(1 - abar) sum_k r_k(x_t) (x_t - sqrt(abar) m_k) / (abar s_k^2 + 1 - abar)
 * with r_k the posterior responsibilities. Used to test samplers against exact answers, and handy
 * for debugging a sampler without a trained net.
 */
import * as tf from '@tensorflow/tfjs';
import type { NetFn, Parameterization } from './model.js';
import type { Schedule } from './schedule.js';

export interface GaussianComponent {
  /** Mean: one number for all channels, or one per channel (length C). */
  mean: number | number[];
  /** Standard deviation (isotropic). */
  std: number;
  /** Mixture weight (normalised over components). Default 1. */
  weight?: number;
}

export interface AnalyticNetOptions {
  /** Output parameterisation. Default 'eps'. */
  prediction?: Parameterization;
  /**
   * Also output guided-diffusion learned-range channels (2C outputs) holding the exact optimal
   * variance of p(x_{i-1} | x_i) for this (single-Gaussian) data under `sampling`, the respaced
   * schedule being sampled. Only for one component.
   */
  learnedRangeFor?: Schedule;
}

/**
 * The exact denoiser of a Gaussian mixture as a NetFn.
 * @param base the schedule whose original timesteps the net receives (`modelT` values; rescaled
 *   timesteps are mapped back when base.rescaleTimesteps)
 */
export function gaussianMixtureNet(
  base: Schedule,
  components: GaussianComponent[],
  opts: AnalyticNetOptions = {},
): NetFn {
  if (components.length === 0) throw new Error('gaussianMixtureNet: need at least one component');
  const totalW = components.reduce((a, c) => a + (c.weight ?? 1), 0);
  const abarByT = new Map<number, number>();
  for (let i = 0; i < base.length; i++) abarByT.set(base.timestepMap[i], base.alphasCumprod[i]);
  const lr = opts.learnedRangeFor;
  if (lr && components.length !== 1) throw new Error('gaussianMixtureNet: learnedRangeFor needs a single component');
  const prediction = opts.prediction ?? 'eps';
  return (x, t) =>
    tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const d = h * w * c;
      const tv = Array.from(t.dataSync(), (v) =>
        Math.round(base.rescaleTimesteps ? (v * base.originalLength) / 1000 : v),
      );
      const abars = tv.map((tt) => {
        const a = abarByT.get(tt);
        if (a === undefined) throw new Error(`gaussianMixtureNet: timestep ${tt} not in the base schedule`);
        return a;
      });
      const ab = tf.tensor4d(abars, [n, 1, 1, 1]);
      const sab = tf.sqrt(ab);
      const s1 = tf.sqrt(tf.scalar(1).sub(ab));
      const meanOf = (m: number | number[]) =>
        typeof m === 'number' ? tf.fill([1, 1, 1, c], m) : tf.tensor4d(m, [1, 1, 1, c]);
      const terms = components.map((comp) => {
        const varT = ab.mul(comp.std * comp.std).add(tf.scalar(1).sub(ab)); // [n,1,1,1]
        const diff = x.sub(sab.mul(meanOf(comp.mean))); // [n,h,w,c]
        const sq = tf.sum(tf.square(diff), [1, 2, 3], true); // [n,1,1,1]
        const logp = sq
          .div(varT.mul(-2))
          .sub(tf.log(varT).mul(d / 2))
          .add(Math.log((comp.weight ?? 1) / totalW));
        return { logp, eps: diff.div(varT) };
      });
      const logps = tf.concat(
        terms.map((tt) => tt.logp.reshape([n, 1])),
        1,
      ); // [n, K]
      const r = tf.softmax(logps, 1);
      let eps = tf.zerosLike(x) as tf.Tensor4D;
      terms.forEach((tt, k) => {
        eps = eps.add(tt.eps.mul(r.slice([0, k], [n, 1]).reshape([n, 1, 1, 1]))) as tf.Tensor4D;
      });
      eps = eps.mul(s1) as tf.Tensor4D;
      let out: tf.Tensor4D;
      if (prediction === 'eps') out = eps;
      else if (prediction === 'x0') out = x.sub(eps.mul(s1)).div(sab) as tf.Tensor4D;
      else out = eps.sub(x.mul(s1)).div(sab) as tf.Tensor4D; // v
      if (!lr) return out;
      // exact optimal variance: posterior variance + coef1^2 Var(x0 | x_t), as learned-range frac
      const v = components[0].std ** 2;
      const frac = tv.map((tt, b) => {
        const i = lr.indexOfTimestep(tt);
        if (i < 0) throw new Error(`gaussianMixtureNet: timestep ${tt} not in the sampling schedule`);
        const a = abars[b];
        const varX0 = (v * (1 - a)) / (a * v + 1 - a);
        const opt = lr.posteriorVariance[i] + lr.posteriorMeanCoef1[i] ** 2 * varX0;
        const minLog = lr.posteriorLogVarianceClipped[i];
        const maxLog = Math.log(lr.betas[i]);
        return maxLog === minLog ? 0 : (Math.log(opt) - minLog) / (maxLog - minLog);
      });
      const vchan = tf
        .tensor4d(
          frac.map((f) => 2 * f - 1),
          [n, 1, 1, 1],
        )
        .mul(tf.onesLike(x));
      return tf.concat([out, vchan], 3) as tf.Tensor4D;
    });
}
