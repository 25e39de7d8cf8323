/**
 * DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a deterministic second-order multistep
 * solver of the probability-flow ODE in the data (x0) prediction, the same ODE DDIM (eta 0) solves to
 * first order. With alpha = sqrt(abar), sigma = sqrt(1 - abar), lambda = log(alpha / sigma) and
 * h = lambda_t - lambda_s, one step from s to t is
 *   x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D,
 * with D = x0_s on the first step (that step is DDIM's) and the last (to the clean image), and otherwise
 *   D = (1 + 1 / (2 r)) x0_s - (1 / (2 r)) x0_prev,  r = h_prev / h.
 */
import * as tf from '@tensorflow/tfjs';
import type { Cond, DiffusionModel } from './model.js';
import type { Schedule } from './schedule.js';

export interface DpmSolverOptions {
  /** Clip each predicted x0 to [-1, 1]. Default false. */
  clipDenoised?: boolean;
  cond?: Cond;
  /** 2 (default) or 1: D = x0_s on every step, which is DDIM at eta 0. */
  order?: 1 | 2;
}

/**
 * Sample from x at the last index of `schedule` (respaced: each index is one step) to the clean image.
 * @param x [N, H, W, C]; not disposed
 */
export function sampleDpmSolver2M(
  model: DiffusionModel,
  x: tf.Tensor4D,
  schedule: Schedule,
  opts: DpmSolverOptions = {},
): tf.Tensor4D {
  const n = x.shape[0];
  const lambda = (ab: number) => 0.5 * Math.log(ab / (1 - ab));
  let xt = tf.clone(x);
  let prevX0: tf.Tensor4D | null = null;
  let prevH = 0;
  try {
    for (let i = schedule.length - 1; i >= 0; i--) {
      const abS = schedule.alphaBar(i);
      const abT = schedule.alphaBar(i - 1);
      const x0 = tf.tidy(
        () =>
          model.predict(xt, schedule, new Array<number>(n).fill(i), {
            clipDenoised: opts.clipDenoised,
            cond: opts.cond,
            epsOnly: true,
          }).x0,
      ) as tf.Tensor4D;
      let next: tf.Tensor4D;
      if (i === 0) {
        next = tf.clone(x0); // to abar = 1: x_0 = D, first order (DPM-Solver++'s lower-order final step)
      } else {
        const h = lambda(abT) - lambda(abS);
        const cx = Math.sqrt((1 - abT) / (1 - abS));
        const cd = -Math.sqrt(abT) * Math.expm1(-h);
        const r = prevH / h;
        const p = prevX0;
        next = tf.tidy(() => {
          const d = p === null || opts.order === 1 ? x0 : x0.mul(1 + 1 / (2 * r)).sub(p.mul(1 / (2 * r)));
          return xt.mul(cx).add(d.mul(cd));
        }) as tf.Tensor4D;
        prevH = h;
      }
      prevX0?.dispose();
      prevX0 = x0;
      xt.dispose();
      xt = next;
    }
    return xt;
  } finally {
    prevX0?.dispose();
  }
}

/**
 * `steps` timesteps of `base` evenly spaced in log-SNR (lambda), both ends kept: the spacing DPM-Solver
 * is made for (every r = 1). Time-even spacing gives the last step a far larger lambda step than the one
 * before it, and the second-order extrapolation (weight 1 / (2r)) then amplifies the error.
 */
export function logSnrTimesteps(base: Schedule, steps: number): number[] {
  const T = base.length;
  if (steps >= T) return Array.from({ length: T }, (_, i) => i);
  const lam = Array.from(base.alphasCumprod, (ab) => 0.5 * Math.log(ab / (1 - ab)));
  const hi = lam[0];
  const lo = lam[T - 1];
  const keep = new Set<number>([0, T - 1]);
  let j = T - 1;
  for (let k = 1; k < steps - 1; k++) {
    const target = lo + ((hi - lo) * k) / (steps - 1);
    while (j > 0 && lam[j - 1] <= target) j--;
    // lam decreases with the index: j is the last index whose lambda is at or above... pick the nearer
    const best = j > 0 && Math.abs(lam[j - 1] - target) < Math.abs(lam[j] - target) ? j - 1 : j;
    keep.add(best);
  }
  return [...keep].sort((a, b) => a - b);
}
