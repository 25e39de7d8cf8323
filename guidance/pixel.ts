/** Pixel-space guidance: negative L1 / L2 distance to a reference (to maximise). */
import * as tf from '@tensorflow/tfjs';
import type { GuidanceFn } from './types.js';

export interface PixelOptions {
  /** Compare predicted x0 (default true) or x_t itself (false: the reference is noised to t with `ctx.noised`). */
  onX0?: boolean;
  /** Per-sample 'mean' over pixels (default) or 'sum'. */
  reduction?: 'mean' | 'sum';
}

function pixelDistance(kind: 'l1' | 'l2', reference: tf.Tensor4D, opts: PixelOptions): GuidanceFn {
  const onX0 = opts.onX0 ?? true;
  const red = opts.reduction ?? 'mean';
  return (x, _t, ctx) =>
    tf.tidy(() => {
      const a = onX0 ? ctx.x0 : x;
      const b = onX0 ? reference : ctx.noised(reference);
      const d = a.sub(b);
      const e = kind === 'l1' ? tf.abs(d) : tf.square(d);
      const perSample = red === 'mean' ? tf.mean(e, [1, 2, 3]) : tf.sum(e, [1, 2, 3]);
      return tf.sum(perSample).neg() as tf.Scalar;
    });
}

/** -|x0 - reference| (mean over pixels per sample, summed over the batch). reference [1 or N, H, W, C]. */
export function l1(reference: tf.Tensor4D, opts: PixelOptions = {}): GuidanceFn {
  return pixelDistance('l1', reference, opts);
}

/** -(x0 - reference)^2 (mean over pixels per sample, summed over the batch). reference [1 or N, H, W, C]. */
export function l2(reference: tf.Tensor4D, opts: PixelOptions = {}): GuidanceFn {
  return pixelDistance('l2', reference, opts);
}
