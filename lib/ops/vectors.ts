/**
 * Row-vector maths on embeddings [N, D], defined once (guidance, the methods and the metrics all use it).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * The epsilon added to a row's norm before dividing: 1e-8 keeps an all-zero row (e.g. a "null"
 * embedding) at zero instead of NaN. For float32 rows of norm above ~0.2 it is below half an ulp of
 * the norm, so such rows come out bit-identical to dividing by the bare norm.
 */
export const L2_EPS = 1e-8;

/** Rows scaled to unit L2 norm: x / (|x| + eps), x: [N, D]. */
export function l2normalize(x: tf.Tensor2D, eps = L2_EPS): tf.Tensor2D {
  return tf.tidy(() => x.div(tf.norm(x, 2, 1, true).add(eps)) as tf.Tensor2D);
}

/** Row-wise cosine similarity [N] of a [N, D] and b [N or 1, D] (each row normalised with `l2normalize`). */
export function cosine(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sum(l2normalize(a).mul(l2normalize(b)), 1) as tf.Tensor1D);
}
