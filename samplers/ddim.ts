/**
 * DDIM (Song et al.) with eta over any (respaced) schedule, and its exact partner: deterministic
 * DDIM inversion.
 *
 * Pairing: sampling step i moves index i -> i-1 evaluating the net at index i. Inversion walks the
 * same pairs backwards: i-1 -> i, evaluating the net at the same index i (on x_{i-1}, the only x it
 * has). With `fixedPointIters` > 0 it then re-solves x_i so that the sampling step from x_i lands on
 * x_{i-1} (eps re-evaluated at x_i), which makes inversion followed by sampling the identity up to the
 * fixed point's convergence, for any model. Index -1 is the clean image, so `ddimInvert(x0)` runs
 * -1 -> 0 -> ... -> toIndex and `sampleDdim(startIndex: toIndex)` runs the same pairs back down.
 * Both must use the same clipDenoised (false for exact pairing).
 */
import * as tf from '@tensorflow/tfjs';
import { Run, type Move, type MoveResult, type SamplerOptions, type StepCallback } from './core.js';
import type { Cond, DiffusionModel } from './model.js';
import type { Schedule } from './schedule.js';
import { ETA_RANGE, checkNumber } from '../lib/options.js';

export interface DdimOptions extends SamplerOptions {
  /** 0 = deterministic DDIM, 1 = DDPM-like ancestral variance. Default 0. */
  eta?: number;
}

/** One DDIM move index i -> i-1. Call inside a tidy. */
export function ddimMove(run: Run, x: tf.Tensor4D, move: Move, k: number, total: number, eta: number): MoveResult {
  const i = move.index;
  const s = run.schedule;
  const { pred, grad } = run.predict(x, i, k, total, true);
  let eps = pred.eps;
  let x0 = pred.x0;
  const ab = s.alphasCumprod[i];
  if (grad) {
    if (run.opts.guidanceMode === 'mean') {
      throw new Error("DDIM has no sampling variance to scale a 'mean' guidance shift by; use guidanceMode: 'eps' (the default for DDIM) or sampleDdpm");
    }
    eps = eps.sub(grad.mul(Math.sqrt(1 - ab)));
    x0 = x.sub(eps.mul(Math.sqrt(1 - ab))).div(Math.sqrt(ab)) as tf.Tensor4D;
  }
  const abPrev = s.alphaBar(move.to);
  const sigma = eta * Math.sqrt((1 - abPrev) / (1 - ab)) * Math.sqrt(1 - ab / abPrev);
  let xn = x0.mul(Math.sqrt(abPrev)).add(eps.mul(Math.sqrt(Math.max(0, 1 - abPrev - sigma * sigma)))) as tf.Tensor4D;
  if (sigma > 0 && move.to >= 0) xn = xn.add(run.rng.normal<tf.Rank.R4>(x.shape).mul(sigma)) as tf.Tensor4D;
  return { x: xn, x0 };
}

/**
 * DDIM sampling from x at `startIndex` (default last) down to `endIndex` (default -1, clean).
 * @param x [N, H, W, C]
 */
export async function sampleDdim(model: DiffusionModel, x: tf.Tensor4D, schedule: Schedule, opts: DdimOptions = {}): Promise<tf.Tensor4D> {
  const eta = checkNumber('eta', opts.eta ?? 0, ETA_RANGE);
  const run = new Run(model, schedule, opts);
  try {
    const moves = run.downMoves();
    return await run.run(x, moves, (xt, m, k) => ddimMove(run, xt, m, k, moves.length, eta));
  } finally {
    run.dispose();
  }
}

export interface DdimInversionOptions {
  /** Level x is at on entry (default -1: a clean image). */
  fromIndex?: number;
  /** Index to invert to (default schedule.length - 1). Sample back with `startIndex: toIndex`. */
  toIndex?: number;
  /** Fixed-point refinements per step (each one more net call). Default 0 (classic DDIM inversion). */
  fixedPointIters?: number;
  cond?: Cond;
  callback?: StepCallback;
  checkFinite?: boolean;
}

/**
 * Deterministic DDIM inversion x_{fromIndex} -> x_{toIndex} (see the module comment for the pairing).
 * @param x [N, H, W, C] (a clean image in [-1, 1] by default)
 * @returns [N, H, W, C] the latent at toIndex
 */
export async function ddimInvert(model: DiffusionModel, x: tf.Tensor4D, schedule: Schedule, opts: DdimInversionOptions = {}): Promise<tf.Tensor4D> {
  const from = opts.fromIndex ?? -1;
  const to = opts.toIndex ?? schedule.length - 1;
  if (!(from >= -1 && to < schedule.length && to > from)) throw new Error(`ddimInvert: need -1 <= fromIndex < toIndex <= ${schedule.length - 1}, got ${from} -> ${to}`);
  const iters = opts.fixedPointIters ?? 0;
  const run = new Run(model, schedule, { cond: opts.cond, callback: opts.callback, checkFinite: opts.checkFinite, seed: 0 });
  const moves: Move[] = [];
  for (let i = from + 1; i <= to; i++) moves.push({ index: i, from: i - 1, to: i, hooks: false });
  const predictEps = (xv: tf.Tensor4D, i: number) => model.predict(xv, schedule, i, { cond: opts.cond, epsOnly: true }).eps;
  try {
    return await run.run(x, moves, (xp, m) => {
      const i = m.index;
      const ab = schedule.alphaBar(i);
      const abPrev = schedule.alphaBar(i - 1);
      // x_{i-1} = sqrt(abPrev) x0 + sqrt(1 - abPrev) eps ; x_i = sqrt(ab) x0 + sqrt(1 - ab) eps
      const up = (eps: tf.Tensor4D) => {
        const x0 = xp.sub(eps.mul(Math.sqrt(1 - abPrev))).div(Math.sqrt(abPrev)) as tf.Tensor4D;
        return { x0, xi: x0.mul(Math.sqrt(ab)).add(eps.mul(Math.sqrt(1 - ab))) as tf.Tensor4D };
      };
      let r = up(predictEps(xp, i));
      for (let it = 0; it < iters; it++) r = up(predictEps(r.xi, i));
      return { x: r.xi, x0: r.x0 };
    });
  } finally {
    run.dispose();
  }
}

export interface DdimStepOptions {
  /** Target index (default index - 1; -1 = clean). */
  to?: number;
  /** 0 = deterministic. With eta > 0 give `noise` [N, H, W, C]. */
  eta?: number;
  noise?: tf.Tensor4D;
  cond?: Cond;
  clipDenoised?: boolean;
}

/**
 * One DDIM step x_index -> x_to as a pure tensor function (no disposal, no async): for use inside a
 * gradient tape, e.g. DiffusionCLIP's fine-tuning through the generative chain or latent optimisation.
 * @param x [N, H, W, C] at `index`
 * @returns x at `to` [N, H, W, C] and the predicted x0
 */
export function ddimStep(model: DiffusionModel, x: tf.Tensor4D, schedule: Schedule, index: number, opts: DdimStepOptions = {}): { x: tf.Tensor4D; x0: tf.Tensor4D } {
  const to = opts.to ?? index - 1;
  if (!(to >= -1 && to < index)) throw new Error(`ddimStep: target index ${to} must be in -1..${index - 1}`);
  return tf.tidy(() => {
    const { eps, x0 } = model.predict(x, schedule, index, { cond: opts.cond, clipDenoised: opts.clipDenoised, epsOnly: true });
    const ab = schedule.alphaBar(index);
    const abTo = schedule.alphaBar(to);
    const eta = opts.eta ?? 0;
    const sigma = eta * Math.sqrt((1 - abTo) / (1 - ab)) * Math.sqrt(1 - ab / abTo);
    let xn = x0.mul(Math.sqrt(abTo)).add(eps.mul(Math.sqrt(Math.max(0, 1 - abTo - sigma * sigma)))) as tf.Tensor4D;
    if (sigma > 0 && to >= 0) {
      if (!opts.noise) throw new Error('ddimStep: eta > 0 needs opts.noise');
      xn = xn.add(opts.noise.mul(sigma)) as tf.Tensor4D;
    }
    return { x: xn, x0 };
  });
}
