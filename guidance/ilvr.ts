/**
 * ILVR (Choi et al.) low-pass replacement, as a sampler step hook (not a gradient):
 * x_{t-1} <- x_{t-1} - phi_N(x_{t-1}) + phi_N(y_{t-1}), y_{t-1} the reference noised to the new level,
 * phi_N = downsample by N (area average) then upsample (bilinear) back.
 */
import * as tf from '@tensorflow/tfjs';
import type { StepHook } from '../samplers/core.js';

/** phi_N: [N, H, W, C] -> [N, H, W, C] low-pass (H, W divisible by factor). */
export function lowPass(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    if (h % factor || w % factor) throw new Error(`ilvr: image ${h}x${w} not divisible by factor ${factor}`);
    const down = tf.avgPool(x, factor, factor, 'valid');
    return tf.image.resizeBilinear(down, [h, w], false, true);
  });
}

export interface IlvrOptions {
  /**
   * ILVR's range_t as a schedule index: apply on steps leaving an index > rangeIndex. Default 0:
   * every step except the final one to the clean image (as ILVR, which conditions while t > 0).
   */
  rangeIndex?: number;
}

/**
 * ILVR conditioning on a reference image by factor N.
 * @param reference [1 or N, H, W, C] in [-1, 1]
 */
export function ilvr(reference: tf.Tensor4D, factor: number, opts: IlvrOptions = {}): StepHook {
  const rangeIndex = opts.rangeIndex ?? 0;
  return (x, info) => {
    if (info.from <= rangeIndex) return x;
    return tf.tidy(() => x.sub(lowPass(x, factor)).add(lowPass(info.noised(reference), factor)) as tf.Tensor4D);
  };
}
