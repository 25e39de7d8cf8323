/**
 * Image/text-encoder guidance (SDG, DiffusionCLIP). Each comes as a per-sample function usable in any
 * loss (`...Score`, returning [N]) and as a GuidanceFn (sum over the batch, to maximise).
 * Encoders follow nets/clip/types.ts: images [N, H, W, 3] in [-1, 1], resized/normalised inside.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageEncoder, TextEncoder } from '../nets/clip/types.js';
import type { GuidanceContext, GuidanceFn } from './types.js';
import { cosine, l2normalize } from '../lib/ops/vectors.js';

// One home for the embedding maths (one epsilon): lib/ops/vectors.ts; re-exported for guidance's users.
export { cosine, l2normalize } from '../lib/ops/vectors.js';

function asRow(e: tf.Tensor): tf.Tensor2D {
  return (e.rank === 1 ? e.expandDims(0) : e) as tf.Tensor2D;
}

/** Where an encoder-based guidance looks. */
export interface EncoderGuidanceOptions {
  /**
   * true: encode the predicted x0 with a plain encoder (no t) — DiffusionCLIP / CLIP-guided style.
   * false: encode x_t itself, passing t to a time-conditioned (noisy) encoder — SDG.
   */
  onX0?: boolean;
}

function encodeInput(
  encoder: ImageEncoder,
  x: tf.Tensor4D,
  t: tf.Tensor1D,
  ctx: GuidanceContext,
  onX0: boolean,
  features = false,
) {
  return onX0 ? encoder.encodeImage(ctx.x0, { features }) : encoder.encodeImage(x, { t, features });
}

/**
 * cos(E_I(image), text) per sample: [N]. `text`: [D] or [1 or N, D] (not necessarily normalised).
 */
export function clipTextScore(
  encoder: ImageEncoder,
  image: tf.Tensor4D,
  text: tf.Tensor,
  t?: tf.Tensor1D,
): tf.Tensor1D {
  return tf.tidy(() => cosine(encoder.encodeImage(image, t ? { t } : {}).embedding, asRow(text)));
}

/**
 * Text guidance: cosine between the image embedding and a text embedding (SDG's text_loss).
 * Default on x_t with the time-conditioned encoder; `onX0: true` for plain CLIP on predicted x0.
 * @param textEmbedding [D] or [1 or N, D]
 */
export function clipText(
  encoder: ImageEncoder,
  textEmbedding: tf.Tensor,
  opts: EncoderGuidanceOptions = {},
): GuidanceFn {
  const onX0 = opts.onX0 ?? false;
  return (x, t, ctx) =>
    tf.tidy(() => tf.sum(cosine(encodeInput(encoder, x, t, ctx, onX0).embedding, asRow(textEmbedding))) as tf.Scalar);
}

/**
 * Image content guidance (SDG "semantic"): cosine between the embedding of x_t and of the reference
 * noised to the same level (fixed noise, `ctx.noised`), both through the time-conditioned encoder at
 * t. With `onX0`, cosine between E(x0) and E(reference).
 * @param reference [1 or N, H, W, 3] in [-1, 1]
 */
export function imageContent(
  encoder: ImageEncoder,
  reference: tf.Tensor4D,
  opts: EncoderGuidanceOptions = {},
): GuidanceFn {
  const onX0 = opts.onX0 ?? false;
  return (x, t, ctx) =>
    tf.tidy(() => {
      const target = onX0
        ? encoder.encodeImage(reference).embedding
        : encoder.encodeImage(ctx.noised(reference), { t: t.slice(0, reference.shape[0]) }).embedding;
      return tf.sum(cosine(encodeInput(encoder, x, t, ctx, onX0).embedding, target)) as tf.Scalar;
    });
}

/**
 * Per-sample Gram matrices of a feature map, SDG's normalisation: F F^T / (C * M) for F = [C, M]
 * (M = H*W positions or L tokens). feature [N, H, W, C] or [N, L, C] -> [N, C, C].
 * (SDG stacks the batch into one (N*C)x(N*C) Gram; per sample this equals it at N = 1.)
 */
export function gramMatrix(feature: tf.Tensor): tf.Tensor3D {
  return tf.tidy(() => {
    const n = feature.shape[0];
    const c = feature.shape[feature.rank - 1];
    const f = feature.reshape([n, -1, c]) as tf.Tensor3D; // [N, M, C]
    const m = f.shape[1];
    return tf.matMul(f, f, true, false).div(c * m) as tf.Tensor3D;
  });
}

export interface StyleOptions extends EncoderGuidanceOptions {
  /** Which feature maps (indices into `features`). Default: all. SDG uses the 5 stages before the embedding. */
  layers?: number[];
  /** SDG's multiplier on the Gram MSE. Default 1e10. */
  gramScale?: number;
}

/** -gramScale * mean over layers of MSE(Gram(a), Gram(b)) per sample: [N] (b may have batch 1). */
export function styleScore(featsA: tf.Tensor[], featsB: tf.Tensor[], layers?: number[], gramScale = 1e10): tf.Tensor1D {
  return tf.tidy(() => {
    const use = layers ?? featsA.map((_, i) => i);
    if (use.length === 0)
      throw new Error('imageStyle: the encoder returned no features; it must support encodeImage(x, {features: true})');
    const per = use.map((l) => {
      if (!featsA[l] || !featsB[l])
        throw new Error(`imageStyle: feature layer ${l} missing (encoder gave ${featsA.length})`);
      const ga = gramMatrix(featsA[l]);
      const gb = gramMatrix(featsB[l]);
      return tf.mean(tf.square(ga.sub(gb)), [1, 2]);
    });
    return (tf.addN(per) as tf.Tensor1D).mul(-gramScale / use.length) as tf.Tensor1D;
  });
}

/**
 * Image style guidance (SDG "style"): negative Gram-matrix distance between intermediate features of
 * x_t and of the reference noised to the same t (time-conditioned encoder), or of x0 and the clean
 * reference with `onX0`.
 * @param reference [1, H, W, 3]
 */
export function imageStyle(encoder: ImageEncoder, reference: tf.Tensor4D, opts: StyleOptions = {}): GuidanceFn {
  const onX0 = opts.onX0 ?? false;
  return (x, t, ctx) =>
    tf.tidy(() => {
      const ref = onX0
        ? encoder.encodeImage(reference, { features: true })
        : encoder.encodeImage(ctx.noised(reference), { t: t.slice(0, reference.shape[0]), features: true });
      const mine = encodeInput(encoder, x, t, ctx, onX0, true);
      return tf.sum(styleScore(mine.features, ref.features, opts.layers, opts.gramScale)) as tf.Scalar;
    });
}

/** Prompt templates for averaging text directions ("{}" = the text). Written for diffguide in the spirit of CLIP's ImageNet prompts. */
export const PROMPT_TEMPLATES: readonly string[] = [
  '{}',
  'a photo of a {}.',
  'a picture of a {}.',
  'an image of a {}.',
  'a close-up photo of a {}.',
  'a blurry photo of a {}.',
  'a bright photo of a {}.',
  'a dark photo of a {}.',
  'a cropped photo of a {}.',
  'a low resolution photo of a {}.',
  'a good photo of a {}.',
  'a rendering of a {}.',
  'a drawing of a {}.',
  'a painting of a {}.',
  'a sketch of a {}.',
  'a pixelated photo of a {}.',
];

/**
 * DiffusionCLIP's text direction: mean over templates of (normalised E_T(target) - normalised
 * E_T(source)), normalised. Returns [1, D].
 */
export function textDirection(
  textEncoder: TextEncoder,
  source: string,
  target: string,
  templates: readonly string[] = PROMPT_TEMPLATES,
): tf.Tensor2D {
  return tf.tidy(() => {
    const fill = (s: string) => templates.map((tp) => tp.replace('{}', s));
    const es = l2normalize(textEncoder.encodeText(fill(source)));
    const et = l2normalize(textEncoder.encodeText(fill(target)));
    return l2normalize(tf.mean(et.sub(es), 0, true) as tf.Tensor2D);
  });
}

/**
 * DiffusionCLIP's directional score per sample: cos(E_I(x) - E_I(src), direction) - 1 = -(directional
 * loss), with image embeddings normalised before the difference and the difference normalised with
 * +1e-7, as in DiffusionCLIP. x: [N, H, W, 3]; src: [1 or N, H, W, 3]; direction [1, D]. Returns [N].
 */
export function directionalScore(
  encoder: ImageEncoder,
  x: tf.Tensor4D,
  src: tf.Tensor4D,
  direction: tf.Tensor2D,
): tf.Tensor1D {
  return tf.tidy(() => {
    const ex = l2normalize(encoder.encodeImage(x).embedding);
    const es = l2normalize(encoder.encodeImage(src).embedding); // constant: no path to x
    const edit = l2normalize(ex.sub(es) as tf.Tensor2D, 1e-7);
    return tf.sum(edit.mul(l2normalize(direction)), 1).sub(1) as tf.Tensor1D;
  });
}

export interface DirectionalOptions {
  /** Precomputed direction [1, D] (from `textDirection`), or texts to compute it from. */
  direction?: tf.Tensor2D;
  textEncoder?: TextEncoder;
  source?: string;
  target?: string;
  templates?: readonly string[];
  /** Default true: on predicted x0 (DiffusionCLIP). false: on x_t. */
  onX0?: boolean;
}

/**
 * Directional CLIP guidance: maximise cos(E_I(x0) - E_I(src), E_T(target) - E_T(source)).
 * The direction is computed once (when texts are given) and owned by the returned function
 * (`.dispose()` frees it).
 */
export function directionalClip(
  encoder: ImageEncoder,
  srcImage: tf.Tensor4D,
  opts: DirectionalOptions,
): GuidanceFn & { dispose(): void } {
  let dir = opts.direction;
  let owned = false;
  if (!dir) {
    if (!opts.textEncoder || opts.source === undefined || opts.target === undefined) {
      throw new Error('directionalClip: give direction, or textEncoder with source and target texts');
    }
    dir = textDirection(opts.textEncoder, opts.source, opts.target, opts.templates);
    owned = true;
  }
  const d = dir;
  const onX0 = opts.onX0 ?? true;
  const fn = ((x: tf.Tensor4D, _t: tf.Tensor1D, ctx: GuidanceContext) =>
    tf.tidy(() => tf.sum(directionalScore(encoder, onX0 ? ctx.x0 : x, srcImage, d)) as tf.Scalar)) as GuidanceFn & {
    dispose(): void;
  };
  fn.dispose = () => {
    if (owned) d.dispose();
  };
  return fn;
}

/**
 * Identity / feature similarity with any encoder (e.g. a face-recognition net wrapped as an
 * ImageEncoder): cosine between embeddings of x0 (or x_t) and of the reference.
 */
export function identity(encoder: ImageEncoder, reference: tf.Tensor4D, opts: EncoderGuidanceOptions = {}): GuidanceFn {
  const onX0 = opts.onX0 ?? true;
  return (x, _t, ctx) =>
    tf.tidy(() => {
      const target = encoder.encodeImage(reference).embedding;
      return tf.sum(cosine(encoder.encodeImage(onX0 ? ctx.x0 : x).embedding, target)) as tf.Scalar;
    });
}
