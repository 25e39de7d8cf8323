/**
 * SDG (Liu et al., "More Control for Free! Image Synthesis with Semantic Diffusion Guidance"):
 *
 *   x_T ~ N(0, I)
 *   for t = T..1 (respaced: `SDG_DEFAULTS.steps` steps unless told):
 *     mu, Sigma = p_theta(x_t)                                   (DDPM ancestral step)
 *     F(x_t, t) = textWeight  * cos(E_I(x_t, t), E_T(text))                      (language guidance)
 *               + imageWeight * cos(E_I(x_t, t), E_I(x'_t, t))                   (image content)
 *               - imageWeight * sum_l ||Gram_l(x_t, t) - Gram_l(x'_t, t)||^2       (image style)
 *     x_{t-1} ~ N(mu + s * Sigma * grad_x F, Sigma)              (the gradient shifts the mean)
 *
 * with E_I the time-conditioned (noisy) CLIP image encoder applied to x_t itself, and x'_t the
 * reference image noised to level t with fixed noise. `on: 'x0'` uses plain CLIP on the predicted x0
 * instead. DDIM is available (the gradient then shifts eps by -sqrt(1 - abar) * s * grad F).
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageEncoder, TextEncoder } from '../../nets/clip/types.js';
import { clipText, imageContent, imageStyle } from '../../guidance/encoders.js';
import { weighted } from '../../guidance/combinators.js';
import type { GuidanceFn } from '../../guidance/types.js';
import { sampleDdpm } from '../../samplers/ddpm.js';
import { sampleDdim } from '../../samplers/ddim.js';
import { checkNumber, checkSeed } from '../options.js';
import {
  DEFAULT_SEED,
  checkBatch,
  checkChoice,
  fitFirst,
  fullChain,
  imageSizeOf,
  type ProgressFn,
  stepProgress,
  checkStepsFor,
  type WithDefaults,
} from './common.js';
import { diffusionModelOf, type Diffuser } from '../models/diffuser.js';
import { startNoise } from './sample.js';

export interface SDGEncoders {
  /** Time-conditioned image encoder (guidance on x_t). Required unless `on: 'x0'`. */
  noisy?: ImageEncoder;
  /** Plain CLIP image encoder (guidance on predicted x0 with `on: 'x0'`). */
  image?: ImageEncoder;
  /** Text encoder in the same space (for `text`). */
  text?: TextEncoder;
}

/** SDG's defaults: the one definition the API, the CLI (and its help), the demo, the notebooks and the playground use. */
export const SDG_DEFAULTS = {
  /** 'content' (embedding cosine) or 'style' (Gram matrices) for the image term. */
  imageMode: 'content',
  /** Weight of the text term. */
  textWeight: 1,
  /** Weight of the image term. */
  imageWeight: 1,
  /**
   * Guidance scale s multiplying the gradient (SDG's per-term weights folded into one knob), per `on`:
   * the reference uses large weights (~100s) on 256x256 models. Measured on `eval methods --only sdg`
   * (36 samples, 9 category prompts; success = judged the prompt's category, then FD over unguided):
   * - 'xt', scale 100 / 200 / 300 / 400 / 600 / 800 / 1200: 0.28 / 0.44 / 0.44 / 0.44 / 0.39 / 0.44 /
   *   0.36, FD ratio 1.17 / 1.03 / 1.09 / 1.11 / 1.18 / 1.21 / 1.46; normalizeGrad at 0.05 / 0.2 / 0.8:
   *   0.19 / 0.36 / 0.39; 200 steps: 0.39. With `--seed 100` (another draw), 200: 0.39.
   * - 'x0', scale 150 / 200 / 300 / 400: 0.64 / 0.56 / 0.50 / 0.61 (FD ratio 0.93 / 1.17 / 1.13 / 1.01);
   *   with `--seed 100`: 150: 0.61 (0.96), 200: 0.69 (0.95), 400: 0.61 (1.00). 150 and 200 average
   *   0.625 over both draws; 150 has the lower FD ratio in both. At n = 36 a rate moves by about 0.08.
   */
  scale: { xt: 200, x0: 150 },
  /** Multiplier on the Gram MSE (SDG's 1e10 normalisation is for 256x256 VGG-scale features). */
  gramScale: 1e4,
  /**
   * 'xt': SDG's time-conditioned (noisy) CLIP on x_t, no UNet backward; 'x0': plain CLIP on the
   * predicted x0, its gradient through the UNet (a UNet backward per step). On the category prompts
   * (see `scale`) 'x0' is judged the prompt's category more often: 0.61-0.64 against 0.39-0.44 on the
   * same draws (the experiment's ablation, 54 samples at 25 steps: 0.41 against 0.26). But on plain
   * prompts it drifts to other colours: "red heart" at 100 steps gave 1 red sample of 4 on 'x0' (the
   * rest purple) and 3 of 4 on 'xt'; at 20 steps 'x0' gave blue and purple blobs for "red heart",
   * "cat face" and the content reference. So the default stays SDG's.
   */
  on: 'xt' as 'xt' | 'x0',
  /** Number of samples (when no starting noise is given). */
  n: 4,
  /** Sampling steps, evenly respaced over the schedule. */
  steps: 100,
  /** 'ddpm' (as SDG: the gradient shifts the mean) or 'ddim' (eta 0: the gradient shifts eps). */
  sampler: 'ddpm',
  /** Rescale each sample's gradient to unit RMS before scaling. */
  normalizeGrad: false,
  /** Seed of the starting noise and of every draw (`DEFAULT_SEED`). */
  seed: DEFAULT_SEED,
} as const;

/** SDG's choices: the image term's mode, where the encoder looks, the sampler. */
export const SDG_IMAGE_MODES = ['content', 'style'] as const;
export const SDG_ON = ['xt', 'x0'] as const;
export const SDG_SAMPLERS = ['ddpm', 'ddim'] as const;

export interface SDGOptions {
  /** Text to guide toward (one for all samples). */
  text?: string;
  /** Reference image [1, H, W, 3] in [-1, 1] for image guidance. */
  image?: tf.Tensor4D;
  /** 'content' (embedding cosine) or 'style' (Gram matrices). Default `SDG_DEFAULTS.imageMode`. */
  imageMode?: 'content' | 'style';
  /** Weight of the text term. Default `SDG_DEFAULTS.textWeight`. */
  textWeight?: number;
  /** Weight of the image term. Default `SDG_DEFAULTS.imageWeight`. */
  imageWeight?: number;
  /** Guidance scale s multiplying the gradient. Default `SDG_DEFAULTS.scale[on]`. */
  scale?: number;
  /** Feature layers for style (indices into the encoder's features). Default: all. */
  styleLayers?: number[];
  /** Multiplier on the Gram MSE. Default `SDG_DEFAULTS.gramScale`. */
  gramScale?: number;
  /** 'xt': time-conditioned encoder on x_t (SDG); 'x0': plain CLIP on predicted x0. Default `SDG_DEFAULTS.on`. */
  on?: 'xt' | 'x0';
  /** Number of samples. Default `SDG_DEFAULTS.n`. */
  n?: number;
  /** Respaced steps. Default `SDG_DEFAULTS.steps`. */
  steps?: number;
  /** 'ddpm' (as SDG) or 'ddim' (eta 0). Default `SDG_DEFAULTS.sampler`. */
  sampler?: 'ddpm' | 'ddim';
  /** Rescale each sample's gradient to unit RMS before scaling. Default `SDG_DEFAULTS.normalizeGrad`. */
  normalizeGrad?: boolean;
  /** Starting noise (default from seed: the same x_T as `sample` with that seed). */
  noise?: tf.Tensor4D;
  seed?: number;
  onProgress?: ProgressFn;
  onNote?: (msg: string) => void;
}

/** `SDGOptions` with every default filled in and every value checked. */
export type ResolvedSDGOptions = WithDefaults<SDGOptions, keyof typeof SDG_DEFAULTS>;

/**
 * The options `sdg` runs with: defaults from `SDG_DEFAULTS`, every value range-checked (an
 * `OptionError` names the bad one). With the model `d`, steps are also checked against its schedule.
 */
export function resolveSDGOptions(opts: SDGOptions, d?: Diffuser): ResolvedSDGOptions {
  const D = SDG_DEFAULTS;
  const n = checkBatch(opts.n, opts.noise, D.n);
  const steps = checkStepsFor(d?.schedule, opts.steps ?? D.steps);
  const seed = checkSeed('seed', opts.seed ?? D.seed);
  const sampler = checkChoice('sampler', opts.sampler ?? D.sampler, SDG_SAMPLERS);
  const on = checkChoice('on', opts.on ?? D.on, SDG_ON);
  const scale = checkNumber('scale', opts.scale ?? D.scale[on]);
  return {
    ...opts,
    n,
    steps,
    seed,
    sampler,
    scale,
    on,
    imageMode: checkChoice('imageMode', opts.imageMode ?? D.imageMode, SDG_IMAGE_MODES),
    textWeight: checkNumber('textWeight', opts.textWeight ?? D.textWeight),
    imageWeight: checkNumber('imageWeight', opts.imageWeight ?? D.imageWeight),
    gramScale: checkNumber('gramScale', opts.gramScale ?? D.gramScale),
    normalizeGrad: opts.normalizeGrad ?? D.normalizeGrad,
  };
}

export interface SDGResult {
  images: tf.Tensor4D;
  settings: Record<string, string | number | boolean>;
}

/** The SDG objective F as a guidance function (sum of the weighted terms). Dispose the returned tensors with `dispose`. */
export function sdgGuidance(
  enc: SDGEncoders,
  opts: SDGOptions & { image?: tf.Tensor4D },
): { fn: GuidanceFn; dispose: () => void } {
  const o = resolveSDGOptions(opts);
  const onX0 = o.on === 'x0';
  const imgEnc = onX0 ? enc.image : enc.noisy;
  if (!imgEnc)
    throw new Error(
      onX0
        ? "SDG on: 'x0' needs a plain CLIP image encoder (encoders.image)"
        : 'SDG needs the time-conditioned CLIP image encoder (encoders.noisy; make it with: diffguide train noisy-clip), or use on: x0',
    );
  const terms: Array<[GuidanceFn, number]> = [];
  const owned: tf.Tensor[] = [];
  if (o.text !== undefined) {
    if (!enc.text) throw new Error('SDG text guidance needs a text encoder (encoders.text: CLIP)');
    const e = enc.text.encodeText([o.text]);
    owned.push(e);
    terms.push([clipText(imgEnc, e, { onX0 }), o.textWeight]);
  }
  if (o.image) {
    const g =
      o.imageMode === 'style'
        ? imageStyle(imgEnc, o.image, { onX0, layers: o.styleLayers, gramScale: o.gramScale })
        : imageContent(imgEnc, o.image, { onX0 });
    terms.push([g, o.imageWeight]);
  }
  if (terms.length === 0) throw new Error('SDG: give a text, an image, or both');
  return { fn: weighted(terms), dispose: () => tf.dispose(owned) };
}

/** Sample with semantic diffusion guidance. */
export async function sdg(d: Diffuser, enc: SDGEncoders, opts: SDGOptions): Promise<SDGResult> {
  const o = resolveSDGOptions(opts, d);
  const sched = fullChain(d.schedule, o.steps); // before anything is allocated
  const size = imageSizeOf(d);
  const ref = o.image ? fitFirst(o.image, size, 'reference image', o.onNote) : undefined;
  let g: ReturnType<typeof sdgGuidance>;
  try {
    g = sdgGuidance(enc, { ...o, image: ref });
  } catch (e) {
    ref?.dispose();
    throw e;
  }
  const model = diffusionModelOf(d);
  const x = o.noise ? tf.clone(o.noise) : startNoise(d, o.n, o.seed);
  const callback = stepProgress('sdg', o.onProgress);
  const samplerOpts = {
    seed: o.seed + 1,
    clipDenoised: true,
    callback,
    guidance: g.fn,
    guidanceScale: o.scale,
    normalizeGrad: o.normalizeGrad,
    refSeed: o.seed + 2,
    // On x0 the gradient goes through the net (as CLIP-guided diffusion does). With eps held fixed
    // ('linear') dx0/dx_t is 1/sqrt(abar), up to ~1e4 at the cosine schedule's t = T: on the shipped
    // UNet even scale 1 turned every sample into saturated noise. ('xt' needs no x0.)
    guidanceX0: (o.on === 'x0' ? 'model' : 'linear') as 'model' | 'linear',
  };
  let out: tf.Tensor4D;
  try {
    out =
      o.sampler === 'ddpm'
        ? await sampleDdpm(model, x, sched, { ...samplerOpts, guidanceMode: 'mean' })
        : await sampleDdim(model, x, sched, { ...samplerOpts, guidanceMode: 'eps' });
  } finally {
    x.dispose();
    ref?.dispose();
    g.dispose();
  }
  const images = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
  out.dispose();
  const settings: Record<string, string | number | boolean> = {
    n: o.n,
    steps: sched.length,
    sampler: o.sampler,
    scale: o.scale,
    on: o.on,
    seed: o.seed,
  };
  if (o.text !== undefined) Object.assign(settings, { text: o.text, textWeight: o.textWeight });
  if (o.image) Object.assign(settings, { imageMode: o.imageMode, imageWeight: o.imageWeight });
  return { images, settings };
}
