/**
 * Euler-Maruyama for the reverse VP and VE SDEs (SDEdit's formulation, Meng et al. Alg. 1 (VE) and
 * the VP reverse-diffusion update), driven by the same eps model through score = -eps / sqrt(1 - abar).
 *
 * VP:  x_{i-1} = (2 - sqrt(1 - beta_i)) x_i + beta_i s(x_i) + sqrt(beta_i) z
 * VE:  with y = x / sqrt(abar), sigma^2 = (1 - abar) / abar (sigma_{-1} = 0):
 *      y_{i-1} = y_i + (sigma_i^2 - sigma_{i-1}^2) s_y(y_i) + sqrt(sigma_i^2 - sigma_{i-1}^2) z,  s_y = -eps / sigma_i
 * x is exchanged in the VP scale (x = sqrt(abar) y) so both start from the same x_t and end at the
 * clean image. The last move (to the clean image) adds no noise. Guidance shifts the score by g.
 */
import * as tf from '@tensorflow/tfjs';
import { SamplingRun, type SamplerOptions } from './core.js';
import type { DiffusionModel } from './model.js';
import type { Schedule } from './schedule.js';

export interface EulerMaruyamaOptions extends SamplerOptions {
  /** Which SDE. Default 'vp'. */
  sde?: 'vp' | 've';
}

/**
 * Euler-Maruyama sampling from x at startIndex down to endIndex.
 * @param x [N, H, W, C] x_t (VP scale) at startIndex
 */
export async function sampleEulerMaruyama(
  model: DiffusionModel,
  x: tf.Tensor4D,
  schedule: Schedule,
  opts: EulerMaruyamaOptions = {},
): Promise<tf.Tensor4D> {
  const sde = opts.sde ?? 'vp';
  if (sde !== 'vp' && sde !== 've') throw new Error(`sde '${sde as string}' unknown; use 'vp' or 've'`);
  const run = new SamplingRun(model, schedule, opts);
  try {
    const moves = run.downMoves();
    return await run.run(x, moves, (xt, m, k) => {
      const i = m.index;
      const ab = schedule.alphasCumprod[i];
      const { pred, grad } = run.predict(xt, i, k, moves.length, true);
      let score = pred.eps.div(-Math.sqrt(1 - ab)) as tf.Tensor4D;
      if (grad) score = score.add(grad) as tf.Tensor4D;
      const noisy = m.to >= 0;
      if (sde === 'vp') {
        const beta = schedule.betas[i];
        let xn = xt.mul(2 - Math.sqrt(1 - beta)).add(score.mul(beta)) as tf.Tensor4D;
        if (noisy) xn = xn.add(run.rng.normal<tf.Rank.R4>(xt.shape).mul(Math.sqrt(beta))) as tf.Tensor4D;
        return { x: xn, x0: pred.x0 };
      }
      const abTo = schedule.alphaBar(m.to);
      const s2 = (1 - ab) / ab;
      const s2To = m.to >= 0 ? (1 - abTo) / abTo : 0;
      const d = s2 - s2To;
      // score in y = x / sqrt(ab) coordinates: s_y = sqrt(ab) s_x
      const y = xt.div(Math.sqrt(ab));
      let yn = y.add(score.mul(Math.sqrt(ab) * d));
      if (noisy) yn = yn.add(run.rng.normal<tf.Rank.R4>(xt.shape).mul(Math.sqrt(d)));
      return { x: yn.mul(Math.sqrt(abTo)) as tf.Tensor4D, x0: pred.x0 };
    });
  } finally {
    run.dispose();
  }
}
