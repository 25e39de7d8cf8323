/**
 * What the five methods share: progress reporting, embedding maths (normalise, cosine, slerp), input checks and schedules.
 */
import * as tf from '@tensorflow/tfjs';
import type { Diffuser } from '../models/diffuser.js';
import { respace, respaceEven, type Schedule } from '../../samplers/schedule.js';
import type { StepCallback } from '../../samplers/core.js';
import { resize } from '../image/resize.js';
import { l2normalize } from '../ops/vectors.js';
import { ETA_RANGE, OptionError, T0_RANGE, checkCount, checkNumber } from '../options.js';

// The model bundle moved to lib/models (beneath lib/train and lib/methods); re-exported for existing importers.
export {
  cloneUNet,
  diffusionModelOf,
  makeDiffuser,
  unetNet,
  unetVariance,
  withUNet,
  type Diffuser,
} from '../models/diffuser.js';

/**
 * The seed every method uses when none is given (the methods' `*_DEFAULTS.seed` and the CLI's --seed
 * name this one value).
 */
export const DEFAULT_SEED = 0;

/** `v` if it is one of `allowed`; else an OptionError naming them. */
export function checkChoice<T extends string>(option: string, v: T, allowed: readonly T[]): T {
  if (!allowed.includes(v))
    throw new OptionError(
      option,
      `${option} must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(v)}`,
    );
  return v;
}

/**
 * The batch size of a sampling call: `n`, else the given starting noise's batch, else `fallback`; a
 * count that must agree with the noise when both are given.
 */
export function checkBatch(n: number | undefined, noise: tf.Tensor4D | undefined, fallback: number): number {
  const count = checkCount('n', n ?? noise?.shape[0] ?? fallback);
  if (noise && noise.shape[0] !== count)
    throw new OptionError(
      'n',
      `n is ${count} but the given noise holds ${noise.shape[0]} images; give one or make them agree`,
    );
  return count;
}

/** Progress of a long method run: `stage` names the phase ("invert", "finetune", "sample", ...). */
export interface MethodProgress {
  stage: string;
  /** 1-based step within the stage, and the stage's total. */
  step: number;
  total: number;
  /** Optional figure to show (e.g. the current loss). */
  loss?: number;
}
export type ProgressFn = (p: MethodProgress) => void;

// The embedding maths has one home (lib/ops/vectors.ts, one epsilon); re-exported for the methods' users.
export { cosine, l2normalize } from '../ops/vectors.js';

/**
 * Spherical interpolation between rows of a and b ([N, D] or [1, D]) at fraction `t` in [0, 1].
 * Returns exactly a at t = 0 and exactly b at t = 1 (any norm: the norm is interpolated linearly);
 * falls back to linear interpolation for (anti)parallel vectors.
 */
export function slerp(a: tf.Tensor2D, b: tf.Tensor2D, t: number): tf.Tensor2D {
  if (t === 0) return tf.tidy(() => (a.shape[0] >= b.shape[0] ? a.clone() : tf.broadcastTo(a, b.shape))) as tf.Tensor2D;
  if (t === 1) return tf.tidy(() => (b.shape[0] >= a.shape[0] ? b.clone() : tf.broadcastTo(b, a.shape))) as tf.Tensor2D;
  return tf.tidy(() => {
    const na = tf.norm(a, 2, 1, true);
    const nb = tf.norm(b, 2, 1, true);
    const ua = a.div(na.add(1e-12));
    const ub = b.div(nb.add(1e-12));
    const dot = tf.clipByValue(tf.sum(ua.mul(ub), 1, true), -1, 1);
    const omega = tf.acos(dot);
    const sinOmega = tf.sin(omega);
    const safe = sinOmega.abs().greater(1e-6);
    const wa = tf.where(safe, tf.sin(omega.mul(1 - t)).div(sinOmega.add(1e-12)), tf.fill(sinOmega.shape, 1 - t));
    const wb = tf.where(safe, tf.sin(omega.mul(t)).div(sinOmega.add(1e-12)), tf.fill(sinOmega.shape, t));
    const dir = ua.mul(wa).add(ub.mul(wb));
    const norm = na.mul(1 - t).add(nb.mul(t));
    return l2normalize(dir as tf.Tensor2D).mul(norm) as tf.Tensor2D;
  });
}

/**
 * Bring images to the model's size: [N, H, W, 3] in [-1, 1]; other sizes are resized (area/bilinear)
 * and `note` is told. Returns a new tensor (the input is not disposed).
 */
export function fitImage(x: tf.Tensor4D, size: number, what: string, note?: (msg: string) => void): tf.Tensor4D {
  if (x.rank !== 4 || x.shape[3] !== 3)
    throw new Error(`${what}: expected an image batch [N, H, W, 3], got shape [${x.shape}]`);
  if (x.shape[1] === size && x.shape[2] === size) return tf.clone(x);
  note?.(`${what}: resized from ${x.shape[2]}x${x.shape[1]} to ${size}x${size} (the model's size)`);
  return resize(x, size, x.shape[1] > size ? 'area' : 'bilinear');
}

/** The first image of a batch, fitted to the model's size (see `fitImage`); a new tensor. */
export function fitFirst(x: tf.Tensor4D, size: number, what: string, note?: (msg: string) => void): tf.Tensor4D {
  if (x.shape[0] === 1) return fitImage(x, size, what, note);
  const first = x.slice(0, 1);
  try {
    return fitImage(first, size, what, note);
  } finally {
    first.dispose();
  }
}

/** The model's square image size (config.imageSize, default 32). */
export function imageSizeOf(d: Diffuser): number {
  return d.unet.config.imageSize ?? 32;
}

/** Sampling steps for `schedule`: an integer in [1, its length] (respacing cannot make more steps than the schedule has). */
export function checkSteps(schedule: Schedule, steps: number, option = 'steps'): number {
  return checkCount(option, steps, { max: schedule.length, why: `the model's schedule has ${schedule.length} steps` });
}

/**
 * Steps for a method's resolver: with the schedule, an integer in [1, its length] (`checkSteps`);
 * without one (options resolved before a model is at hand), a count.
 */
export function checkStepsFor(schedule: Schedule | undefined, steps: number, option = 'steps'): number {
  return schedule ? checkSteps(schedule, steps, option) : checkCount(option, steps);
}

/** Options `O` as a resolver returns them: the defaulted keys `K` present and defined. */
export type WithDefaults<O, K extends keyof O> = Omit<O, K> & { [P in K]-?: Exclude<O[P], undefined> };

/** DDIM's eta in [0, 1]: 0 deterministic, 1 DDPM-like; above 1 the step's noise exceeds what the schedule allows. */
export function checkEta(eta: number, option = 'eta'): number {
  return checkNumber(option, eta, ETA_RANGE);
}

/** A noise level t0 as a fraction of the schedule, in (0, 1]. */
export function checkT0(t0: number, option = 't0'): number {
  return checkNumber(option, t0, T0_RANGE);
}

/**
 * Images must be finite and in [-1, 1] (up to `slack`, default 0.5, for arithmetic round-off and
 * composites); anything else would saturate every step (e.g. a guide of 1e30 becomes a white image).
 * One reduction, no tensors left behind.
 */
export function checkImageRange(x: tf.Tensor, what: string, slack = 0.5): void {
  const [lo, hi, finite] = tf.tidy(() => tf.stack([tf.min(x), tf.max(x), tf.all(tf.isFinite(x)).toFloat()]).dataSync());
  if (!finite) throw new OptionError(what, `${what} has NaN or Inf values; images are finite, in [-1, 1]`);
  if (lo < -1 - slack || hi > 1 + slack) {
    throw new OptionError(
      what,
      `${what} has values in [${lo.toPrecision(3)}, ${hi.toPrecision(3)}]; images are in [-1, 1] (from [0, 255]: x / 127.5 - 1; from [0, 1]: 2x - 1)`,
    );
  }
}

/** Schedule index of a fraction t0 in (0, 1] of the full schedule (t0 = 1: the last index). */
export function indexOfFraction(schedule: Schedule, t0: number): number {
  checkT0(t0);
  return Math.max(0, Math.min(schedule.length - 1, Math.round(t0 * schedule.length) - 1));
}

/**
 * `steps` evenly spaced timesteps from 0 to the full-schedule index `lastIndex` inclusive
 * (DiffusionCLIP's / SDEdit's sub-chain), as a respaced schedule whose last index is `lastIndex`.
 * `steps` must be in [1, schedule length]; more than the lastIndex + 1 levels below t0 runs those
 * levels (the result's length says how many: record that, not the request).
 */
export function subChain(schedule: Schedule, lastIndex: number, steps: number, option = 'steps'): Schedule {
  checkSteps(schedule, steps, option);
  const n = Math.min(steps, lastIndex + 1);
  const keep = new Set<number>();
  for (let k = 0; k < n; k++) keep.add(n === 1 ? lastIndex : Math.round((k * lastIndex) / (n - 1)));
  return respace(schedule, keep);
}

/** The schedule respaced to `steps` evenly spaced steps over the whole range; `steps` in [1, schedule length]. */
export function fullChain(schedule: Schedule, steps: number, option = 'steps'): Schedule {
  checkSteps(schedule, steps, option);
  return respaceEven(schedule, steps);
}

/**
 * The progress helpers: every method reports through one of these two, never a hand-written lambda.
 * `stepProgress`: a sampler callback that reports progress for `stage` (and nothing else).
 */
export function stepProgress(
  stage: string,
  onProgress?: ProgressFn,
  offset = 0,
  grandTotal?: number,
): StepCallback | undefined {
  if (!onProgress) return undefined;
  return (s) => onProgress({ stage, step: offset + s.step + 1, total: grandTotal ?? s.total });
}

/** An `optimize` onStep that reports each update's loss for `stage` (1-based step of `total`). */
export function lossProgress(
  stage: string,
  total: number,
  onProgress?: ProgressFn,
): ((step: number, loss: number) => void) | undefined {
  if (!onProgress) return undefined;
  return (step, loss) => onProgress({ stage, step, total, loss });
}

/** Throws naming the step when a tensor has NaN/Inf. */
export function checkFinite(x: tf.Tensor, what: string): void {
  const bad = tf.tidy(() => tf.any(tf.logicalNot(tf.isFinite(x))).dataSync()[0]);
  if (bad) throw new Error(`${what}: NaN or Inf; the run diverged (try a smaller learning rate or guidance scale)`);
}

/** Clip images to [-1, 1] (new tensor). */
export function clampImage(x: tf.Tensor4D): tf.Tensor4D {
  return tf.clipByValue(x, -1, 1);
}

/** Mean absolute error between two same-shape tensors, as a number. */
export function mae(a: tf.Tensor, b: tf.Tensor): number {
  const m = tf.tidy(() => tf.mean(tf.abs(a.sub(b))));
  const v = m.dataSync()[0];
  m.dispose();
  return v;
}

/** Repeat a batch `k` times along N (each image k times in a row). x: [N, ...]. */
export function repeatEach<T extends tf.Tensor>(x: T, k: number): T {
  if (k === 1) return tf.clone(x);
  return tf.tidy(() => {
    const n = x.shape[0];
    const rest = x.shape.slice(1);
    return tf.tile(x.expandDims(1), [1, k, ...rest.map(() => 1)]).reshape([n * k, ...rest]) as T;
  });
}
