/** Step hooks: replacements applied to x after each denoising step (see `StepHook`). */
import * as tf from '@tensorflow/tfjs';
import type { StepHook } from './core.js';

/**
 * Keep a known region (SDEdit masked editing, RePaint inpainting): after each step,
 * x <- mask * reference_noised_to_the_new_level + (1 - mask) * x. The reference is noised with the
 * run's fixed noise (`refNoise`/`refSeed`), and at the end (level -1) it is the reference itself, so
 * the kept region equals the reference exactly.
 * @param reference [1 or N, H, W, C]
 * @param mask [1 or N, H, W, 1 or C] with 1 = keep the reference, 0 = generate
 */
export function maskHook(reference: tf.Tensor4D, mask: tf.Tensor4D): StepHook {
  return (x, info) =>
    tf.tidy(() => {
      const known = info.noised(reference);
      return known.mul(mask).add(x.mul(tf.scalar(1).sub(mask))) as tf.Tensor4D;
    });
}

/** Apply only while the new level's index is >= minIndex (e.g. ILVR's range). */
export function hookUntil(hook: StepHook, minIndex: number): StepHook {
  return (x, info) => (info.to >= minIndex ? hook(x, info) : x);
}
