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
import { SamplingRun, type Move, type MoveResult, type SamplerOptions, type StepCallback } from './core.js';
import type { Cond, DiffusionModel } from './model.js';
import type { Schedule } from './schedule.js';
import { ETA_RANGE, checkNumber } from '../lib/options.js';

export interface DdimOptions extends SamplerOptions {
  /** 0 = deterministic DDIM, 1 = DDPM-like ancestral variance. Default 0. */
  eta?: number;
}

/**
 * The DDIM update itself (pure tensor maths, the one copy every DDIM path uses): from the predicted x0
 * and eps at a level with alpha-bar `ab` to the level `to` with alpha-bar `abTo`,
 * x_to = sqrt(abTo) x0 + sqrt(1 - abTo - sigma^2) eps + sigma z, sigma = eta sqrt((1 - abTo) / (1 - ab)) sqrt(1 - ab / abTo).
 * `noise` is called (drawn) only when the step adds noise (sigma > 0 and `to` >= 0). Call inside a tidy.
 */
export function ddimUpdate(
  x0: tf.Tensor4D,
  eps: tf.Tensor4D,
  ab: number,
  abTo: number,
  to: number,
  eta: number,
  noise: () => tf.Tensor4D,
): tf.Tensor4D {
  const sigma = eta * Math.sqrt((1 - abTo) / (1 - ab)) * Math.sqrt(1 - ab / abTo);
  const xn = x0.mul(Math.sqrt(abTo)).add(eps.mul(Math.sqrt(Math.max(0, 1 - abTo - sigma * sigma)))) as tf.Tensor4D;
  return sigma > 0 && to >= 0 ? (xn.add(noise().mul(sigma)) as tf.Tensor4D) : xn;
}

/** One DDIM move index i -> i-1 of a sampler run (guidance, hooks, the run's RNG). Call inside a tidy. */
export function ddimMove(
  run: SamplingRun,
  x: tf.Tensor4D,
  move: Move,
  k: number,
  total: number,
  eta: number,
): MoveResult {
  const i = move.index;
  const s = run.schedule;
  const { pred, grad } = run.predict(x, i, k, total, true);
  let eps = pred.eps;
  let x0 = pred.x0;
  const ab = s.alphasCumprod[i];
  if (grad) {
    if (run.opts.guidanceMode === 'mean') {
      throw new Error(
        "DDIM has no sampling variance to scale a 'mean' guidance shift by; use guidanceMode: 'eps' (the default for DDIM) or sampleDdpm",
      );
    }
    eps = eps.sub(grad.mul(Math.sqrt(1 - ab)));
    x0 = x.sub(eps.mul(Math.sqrt(1 - ab))).div(Math.sqrt(ab)) as tf.Tensor4D;
  }
  return {
    x: ddimUpdate(x0, eps, ab, s.alphaBar(move.to), move.to, eta, () => run.rng.normal<tf.Rank.R4>(x.shape)),
    x0,
  };
}

/**
 * DDIM sampling from x at `startIndex` (default last) down to `endIndex` (default -1, clean).
 * @param x [N, H, W, C]
 */
export async function sampleDdim(
  model: DiffusionModel,
  x: tf.Tensor4D,
  schedule: Schedule,
  opts: DdimOptions = {},
): Promise<tf.Tensor4D> {
  const eta = checkNumber('eta', opts.eta ?? 0, ETA_RANGE);
  const run = new SamplingRun(model, schedule, opts);
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
export async function ddimInvert(
  model: DiffusionModel,
  x: tf.Tensor4D,
  schedule: Schedule,
  opts: DdimInversionOptions = {},
): Promise<tf.Tensor4D> {
  const from = opts.fromIndex ?? -1;
  const to = opts.toIndex ?? schedule.length - 1;
  if (!(from >= -1 && to < schedule.length && to > from))
    throw new Error(`ddimInvert: need -1 <= fromIndex < toIndex <= ${schedule.length - 1}, got ${from} -> ${to}`);
  const iters = opts.fixedPointIters ?? 0;
  const run = new SamplingRun(model, schedule, {
    cond: opts.cond,
    callback: opts.callback,
    checkFinite: opts.checkFinite,
    seed: 0,
  });
  const moves: Move[] = [];
  for (let i = from + 1; i <= to; i++) moves.push({ index: i, from: i - 1, to: i, hooks: false });
  const predictEps = (xv: tf.Tensor4D, i: number) =>
    model.predict(xv, schedule, i, { cond: opts.cond, epsOnly: true }).eps;
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
export function ddimStep(
  model: DiffusionModel,
  x: tf.Tensor4D,
  schedule: Schedule,
  index: number,
  opts: DdimStepOptions = {},
): { x: tf.Tensor4D; x0: tf.Tensor4D } {
  const to = opts.to ?? index - 1;
  if (!(to >= -1 && to < index)) throw new Error(`ddimStep: target index ${to} must be in -1..${index - 1}`);
  return tf.tidy(() => {
    const { eps, x0 } = model.predict(x, schedule, index, {
      cond: opts.cond,
      clipDenoised: opts.clipDenoised,
      epsOnly: true,
    });
    const noise = () => {
      if (!opts.noise) throw new Error('ddimStep: eta > 0 needs opts.noise');
      return opts.noise;
    };
    return { x: ddimUpdate(x0, eps, schedule.alphaBar(index), schedule.alphaBar(to), to, opts.eta ?? 0, noise), x0 };
  });
}

export interface DdimChainOptions {
  cond?: Cond;
  /** Clip each predicted x0 to [-1, 1] (training's sample grids). Default false. */
  clipDenoised?: boolean;
  /**
   * Free each intermediate (and `xT`) as the chain goes: for use outside a tape, when only the result
   * is wanted. Default false: nothing is disposed, so gradients flow through every step (call inside a
   * tidy or a gradient tape, e.g. DiffusionCLIP's fine-tune and latent optimisation).
   */
  consume?: boolean;
}

/**
 * Deterministic DDIM (eta 0) from `xT` at the last index of `schedule` down to a clean sample, as a
 * synchronous chain of `ddimStep`s (the same numbers as `sampleDdim` with eta 0 and the same
 * clipDenoised; training loops call their sample-grid hooks synchronously, and a gradient tape needs
 * the whole chain in one function).
 * @param xT [N, H, W, C]
 */
export function ddimChainSync(
  model: DiffusionModel,
  xT: tf.Tensor4D,
  schedule: Schedule,
  opts: DdimChainOptions = {},
): tf.Tensor4D {
  let x = xT;
  for (let i = schedule.length - 1; i >= 0; i--) {
    const step = ddimStep(model, x, schedule, i, { cond: opts.cond, clipDenoised: opts.clipDenoised });
    if (opts.consume) {
      step.x0.dispose();
      x.dispose();
    }
    x = step.x;
  }
  return x;
}
