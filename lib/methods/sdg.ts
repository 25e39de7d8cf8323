/**
 * SDG (Liu et al., "More Control for Free! Image Synthesis with Semantic Diffusion Guidance"):
 *
 *   x_T ~ N(0, I)
 *   for t = T..1 (respaced, 100 steps by default):
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
import { OptionError, checkCount, checkNumber, checkSeed } from '../options.js';
import { fitFirst, fullChain, imageSizeOf, type ProgressFn, stepProgress } from './common.js';
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

export interface SDGOptions {
  /** Text to guide toward (one for all samples). */
  text?: string;
  /** Reference image [1, H, W, 3] in [-1, 1] for image guidance. */
  image?: tf.Tensor4D;
  /** 'content' (embedding cosine) or 'style' (Gram matrices). Default 'content'. */
  imageMode?: 'content' | 'style';
  /** Weight of the text term. Default 1. */
  textWeight?: number;
  /** Weight of the image term. Default 1. */
  imageWeight?: number;
  /**
   * Guidance scale s multiplying the gradient (SDG's per-term weights folded into one knob; the
   * reference uses large weights, ~100s, on 256x256 models). Default 200 for our 32x32 models.
   */
  scale?: number;
  /** Feature layers for style (indices into the encoder's features). Default: all. */
  styleLayers?: number[];
  /** Multiplier on the Gram MSE (SDG's 1e10 normalisation is for 256x256 VGG-scale features). Default 1e4. */
  gramScale?: number;
  /** 'xt': time-conditioned encoder on x_t (SDG); 'x0': plain CLIP on predicted x0. Default 'xt'. */
  on?: 'xt' | 'x0';
  /** Number of samples. Default 4. */
  n?: number;
  /** Respaced steps. Default 100. */
  steps?: number;
  /** 'ddpm' (default, as SDG) or 'ddim' (eta 0). */
  sampler?: 'ddpm' | 'ddim';
  /** Rescale each sample's gradient to unit RMS before scaling. Default false. */
  normalizeGrad?: boolean;
  /** Starting noise (default from seed: the same x_T as `sample` with that seed). */
  noise?: tf.Tensor4D;
  seed?: number;
  onProgress?: ProgressFn;
  onNote?: (msg: string) => void;
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
  const onX0 = (opts.on ?? 'xt') === 'x0';
  const imgEnc = onX0 ? enc.image : enc.noisy;
  if (!imgEnc)
    throw new Error(
      onX0
        ? "SDG on: 'x0' needs a plain CLIP image encoder (encoders.image)"
        : 'SDG needs the time-conditioned CLIP image encoder (encoders.noisy; make it with: diffguide train noisy-clip), or use on: x0',
    );
  const terms: Array<[GuidanceFn, number]> = [];
  const owned: tf.Tensor[] = [];
  if (opts.text !== undefined) {
    if (!enc.text) throw new Error('SDG text guidance needs a text encoder (encoders.text: CLIP)');
    const e = enc.text.encodeText([opts.text]);
    owned.push(e);
    terms.push([clipText(imgEnc, e, { onX0 }), opts.textWeight ?? 1]);
  }
  if (opts.image) {
    const g =
      (opts.imageMode ?? 'content') === 'style'
        ? imageStyle(imgEnc, opts.image, { onX0, layers: opts.styleLayers, gramScale: opts.gramScale ?? 1e4 })
        : imageContent(imgEnc, opts.image, { onX0 });
    terms.push([g, opts.imageWeight ?? 1]);
  }
  if (terms.length === 0) throw new Error('SDG: give a text, an image, or both');
  return { fn: weighted(terms), dispose: () => tf.dispose(owned) };
}

/** Sample with semantic diffusion guidance. */
export async function sdg(d: Diffuser, enc: SDGEncoders, opts: SDGOptions): Promise<SDGResult> {
  const n = checkCount('n', opts.n ?? opts.noise?.shape[0] ?? 4);
  const steps = opts.steps ?? 100;
  const seed = checkSeed('seed', opts.seed ?? 0);
  const sampler = opts.sampler ?? 'ddpm';
  const scale = checkNumber('scale', opts.scale ?? 200);
  if (opts.noise && opts.noise.shape[0] !== n)
    throw new OptionError(
      'n',
      `n is ${n} but the given noise holds ${opts.noise.shape[0]} images; give one or make them agree`,
    );
  const sched = fullChain(d.schedule, steps); // checks steps before anything is allocated
  const size = imageSizeOf(d);
  const ref = opts.image ? fitFirst(opts.image, size, 'reference image', opts.onNote) : undefined;
  let g: ReturnType<typeof sdgGuidance>;
  try {
    g = sdgGuidance(enc, { ...opts, image: ref });
  } catch (e) {
    ref?.dispose();
    throw e;
  }
  const model = diffusionModelOf(d);
  const x = opts.noise ? tf.clone(opts.noise) : startNoise(d, n, seed);
  const callback = stepProgress('sdg', opts.onProgress);
  const so = {
    seed: seed + 1,
    clipDenoised: true,
    callback,
    guidance: g.fn,
    guidanceScale: scale,
    normalizeGrad: opts.normalizeGrad ?? false,
    refSeed: seed + 2,
  };
  let out: tf.Tensor4D;
  try {
    out =
      sampler === 'ddpm'
        ? await sampleDdpm(model, x, sched, { ...so, guidanceMode: 'mean' })
        : await sampleDdim(model, x, sched, { ...so, guidanceMode: 'eps' });
  } finally {
    x.dispose();
    ref?.dispose();
    g.dispose();
  }
  const images = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
  out.dispose();
  const settings: Record<string, string | number | boolean> = {
    n,
    steps: sched.length,
    sampler,
    scale,
    on: opts.on ?? 'xt',
    seed,
  };
  if (opts.text !== undefined) Object.assign(settings, { text: opts.text, textWeight: opts.textWeight ?? 1 });
  if (opts.image)
    Object.assign(settings, { imageMode: opts.imageMode ?? 'content', imageWeight: opts.imageWeight ?? 1 });
  return { images, settings };
}
