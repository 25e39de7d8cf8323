/**
 * SDEdit (Meng et al., "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential
 * Equations"), Algorithm 1 and its masked variant:
 *
 *   given a guide x^g (strokes, a composite, an image to edit), a level t0 in (0, 1]
 *   for k = 1..K (SDEdit's `--sample_step`: a repeat count, not a step count):
 *     x(t0) ~ N(sqrt(abar_t0) x^g, (1 - abar_t0) I)                          (perturb)
 *     for t = t0 -> 0: x <- reverse-SDE step (VP: DDPM ancestral; VE: Euler-Maruyama)   (denoise)
 *       [masked]  x <- mask * (x^g noised to the new level) + (1 - mask) * x
 *   return the K samples
 *
 * Small t0 keeps the output faithful to the guide; large t0 makes it realistic. The reverse chain
 * from t0 uses `steps` evenly spaced levels of the model's schedule between 0 and t0 (the reference
 * walks every one of the t0 * 1000 levels; fewer suffice for our small models).
 */
import * as tf from '@tensorflow/tfjs';
import { qSample } from '../../samplers/core.js';
import { sampleDdpm } from '../../samplers/ddpm.js';
import { sampleEulerMaruyama } from '../../samplers/sde.js';
import { sampleMasked } from '../../samplers/masked.js';
import { maskHook } from '../../samplers/hooks.js';
import { Rng } from '../random.js';
import { checkCount, checkSeed } from '../options.js';
import {
  DEFAULT_SEED,
  checkChoice,
  checkImageRange,
  checkT0,
  fitImage,
  imageSizeOf,
  indexOfFraction,
  repeatEach,
  subChain,
  type ProgressFn,
  stepProgress,
  checkStepsFor,
  type WithDefaults,
} from './common.js';
import { diffusionModelOf, type Diffuser } from '../models/diffuser.js';

/** SDEdit's defaults: the one definition the API, the CLI (and its help), the demo, the notebooks and the playground use. */
export const SDEDIT_DEFAULTS = {
  /**
   * Noise level t0 as a fraction of the schedule, in (0, 1]: 0.3 faithful ... 0.8 realistic. 0.5 is
   * the reference's t = 500 of 1000 (the paper sweeps 0.3 to 0.6 for strokes).
   */
  t0: 0.5,
  /**
   * Reverse steps from t0 to 0, evenly spaced levels of the schedule (the reference walks all
   * t0 * 1000 levels; fewer suffice for our small models). A small t0 with fewer levels runs those.
   */
  steps: 25,
  /** Samples per guide: SDEdit's K (`--sample_step`, a repeat count, not a step count). */
  repeats: 1,
  /** 'vp' (DDPM ancestral reverse steps) or 've' (Euler-Maruyama on the VE SDE). */
  sde: 'vp',
  /** Clip each predicted x0 to [-1, 1]. */
  clipDenoised: true,
  /** `sdeditComposite` only: keep the background outside the region exactly (masked editing). */
  keepBackground: true,
  /** Seed of the starting noise and of every draw (`DEFAULT_SEED`). */
  seed: DEFAULT_SEED,
} as const;

/** The reverse SDEs SDEdit runs. */
export const SDES = ['vp', 've'] as const;

export interface SDEditOptions {
  /** Noise level as a fraction of the schedule (0, 1]. Default `SDEDIT_DEFAULTS.t0`. */
  t0?: number;
  /** Reverse steps from t0 to 0. Default `SDEDIT_DEFAULTS.steps`. */
  steps?: number;
  /** Samples per guide (SDEdit's K, `--sample_step`). Default `SDEDIT_DEFAULTS.repeats`. */
  repeats?: number;
  /** 'vp' (DDPM ancestral reverse steps) or 've' (Euler-Maruyama on the VE SDE). Default `SDEDIT_DEFAULTS.sde`. */
  sde?: 'vp' | 've';
  /**
   * Masked editing: [1 or N, H, W, 1] with 1 = keep the guide (known region), 0 = regenerate. The kept
   * region of the output equals the guide.
   */
  mask?: tf.Tensor4D;
  /** Clip predicted x0 to [-1, 1]. Default `SDEDIT_DEFAULTS.clipDenoised`. */
  clipDenoised?: boolean;
  seed?: number;
  onProgress?: ProgressFn;
  /** Told when an input is resized. */
  onNote?: (msg: string) => void;
}

/** `SDEditOptions` with every default filled in and every value checked. */
export type ResolvedSDEditOptions = WithDefaults<
  SDEditOptions,
  Exclude<keyof typeof SDEDIT_DEFAULTS, 'keepBackground'>
>;

/**
 * The options `sdedit` runs with: defaults from `SDEDIT_DEFAULTS`, every value range-checked (an
 * `OptionError` names the bad one). With the model `d`, steps are also checked against its schedule.
 */
export function resolveSDEditOptions(opts: SDEditOptions = {}, d?: Diffuser): ResolvedSDEditOptions {
  const D = SDEDIT_DEFAULTS;
  const t0 = checkT0(opts.t0 ?? D.t0);
  const steps = checkStepsFor(d?.schedule, opts.steps ?? D.steps);
  const repeats = checkCount('repeats', opts.repeats ?? D.repeats);
  const sde = checkChoice('sde', opts.sde ?? D.sde, SDES);
  const seed = checkSeed('seed', opts.seed ?? D.seed);
  return { ...opts, t0, steps, repeats, sde, seed, clipDenoised: opts.clipDenoised ?? D.clipDenoised };
}

export interface SDEditResult {
  /** [N * K, H, W, 3] in [-1, 1]: the K samples of guide 0, then of guide 1, ... */
  images: tf.Tensor4D;
  settings: {
    t0: number;
    t0Timestep: number;
    steps: number;
    repeats: number;
    sde: 'vp' | 've';
    masked: boolean;
    seed: number;
  };
}

/**
 * Stroke-to-image / image editing: perturb the guide to t0 and denoise.
 * @param guide [N, H, W, 3] in [-1, 1] (other sizes are resized with a note)
 */
export async function sdedit(d: Diffuser, guide: tf.Tensor4D, opts: SDEditOptions = {}): Promise<SDEditResult> {
  // every option is checked before the first tensor is made: a refused call leaves nothing behind
  const o = resolveSDEditOptions(opts, d);
  const { t0, steps, repeats: K, sde, seed } = o;
  checkImageRange(guide, 'guide');
  const lastIndex = indexOfFraction(d.schedule, t0);
  const sched = subChain(d.schedule, lastIndex, steps);
  if (sched.length < steps)
    o.onNote?.(
      `t0=${t0} spans ${lastIndex + 1} of the schedule's ${d.schedule.length} levels: ${sched.length} steps run instead of ${steps}`,
    );
  const size = imageSizeOf(d);
  const g0 = fitImage(guide, size, 'guide', o.onNote);
  const g = repeatEach(g0, K);
  g0.dispose();
  let mask: tf.Tensor4D | undefined;
  let refNoise: tf.Tensor4D | undefined;
  let xt: tf.Tensor4D | undefined;
  let out: tf.Tensor4D;
  try {
    if (o.mask) {
      const m0 =
        o.mask.shape[1] === size && o.mask.shape[2] === size
          ? tf.clone(o.mask)
          : tf.image.resizeNearestNeighbor(o.mask, [size, size]);
      mask = m0.shape[0] === 1 ? m0 : repeatEach(m0, K);
      if (mask !== m0) m0.dispose();
    }
    const start = sched.length - 1;
    const model = diffusionModelOf(d);
    const rng = new Rng(seed);
    refNoise = rng.normal<tf.Rank.R4>(g.shape);
    // x(t0) = sqrt(abar) x^g + sqrt(1 - abar) z, with the same z the masked steps use for the guide
    xt = qSample(g, sched, start, refNoise);
    const callback = stepProgress('sdedit', o.onProgress);
    const samplerOpts = {
      seed: rng.nextSeed(),
      clipDenoised: o.clipDenoised,
      callback,
      refNoise,
      startIndex: start,
    };
    if (sde === 'vp') {
      out = mask
        ? await sampleMasked(model, xt, sched, { ...samplerOpts, reference: g, mask })
        : await sampleDdpm(model, xt, sched, samplerOpts);
    } else {
      out = await sampleEulerMaruyama(model, xt, sched, {
        ...samplerOpts,
        sde: 've',
        stepHook: mask ? maskHook(g, mask) : undefined,
      });
    }
  } finally {
    tf.dispose([g, ...[xt, refNoise, mask].filter((t): t is tf.Tensor4D => !!t)]);
  }
  const images = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
  out.dispose();
  return {
    images,
    settings: {
      t0,
      t0Timestep: sched.timestepMap[sched.length - 1],
      steps: sched.length,
      repeats: K,
      sde,
      masked: !!o.mask,
      seed,
    },
  };
}

/**
 * SDEdit image compositing: paste `overlay` into `background` where `region` is 1, then SDEdit the
 * composite; by default the background outside the region is kept exactly (masked editing) so only
 * the pasted part is harmonised.
 * @param background, overlay [1, H, W, 3] in [-1, 1]; region [1, H, W, 1] in {0, 1}
 */
export async function sdeditComposite(
  d: Diffuser,
  background: tf.Tensor4D,
  overlay: tf.Tensor4D,
  region: tf.Tensor4D,
  opts: SDEditOptions & { keepBackground?: boolean } = {},
): Promise<SDEditResult & { composite: tf.Tensor4D }> {
  resolveSDEditOptions(opts, d); // refused before any tensor is made
  checkImageRange(background, 'background');
  checkImageRange(overlay, 'overlay');
  const size = imageSizeOf(d);
  const bg = fitImage(background, size, 'background', opts.onNote);
  const ov = fitImage(overlay, size, 'overlay', opts.onNote);
  const reg = region.shape[1] === size ? tf.clone(region) : tf.image.resizeNearestNeighbor(region, [size, size]);
  const composite = tf.tidy(() => ov.mul(reg).add(bg.mul(tf.scalar(1).sub(reg)))) as tf.Tensor4D;
  const keep =
    (opts.keepBackground ?? SDEDIT_DEFAULTS.keepBackground)
      ? (tf.tidy(() => tf.scalar(1).sub(reg)) as tf.Tensor4D)
      : undefined;
  try {
    const r = await sdedit(d, composite, { ...opts, mask: keep ?? opts.mask });
    return { ...r, composite };
  } catch (e) {
    composite.dispose();
    throw e;
  } finally {
    tf.dispose([bg, ov, reg]);
    keep?.dispose();
  }
}
