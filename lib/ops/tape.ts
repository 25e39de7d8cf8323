/**
 * Whether a gradient tape is recording (inside tf.grad / tf.variableGrads / optimizer.minimize).
 * Ops pick a forward-only formulation (fused kernels, folded affine maps) when it is not: the fused
 * kernels' gradients would compute more than a caller asks for (e.g. weight gradients during
 * guidance, which needs only the input's). Unknown engine state counts as recording.
 */
import * as tf from '@tensorflow/tfjs';

export function recordingGradients(): boolean {
  const depth = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state?.gradientDepth;
  return depth === undefined || depth > 0;
}

/**
 * x, as a constant to any gradient taken through it (tfjs has no stop_gradient / detach): the
 * gradient passed back is zero. Used where a loss term must train only part of a net's output.
 */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: x.clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as <T extends tf.Tensor>(x: T) => T;
