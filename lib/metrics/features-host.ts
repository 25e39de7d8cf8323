/** Feature sets as the metrics take them, and their float64 host copy. */
import * as tf from '@tensorflow/tfjs';

/** A feature set [N, D]: a tensor or rows of numbers (N rows of D features). */
export type FeatureSet = tf.Tensor2D | number[][] | ArrayLike<number>[];

/** Row-major float64 copy of a feature set. */
export interface HostRows {
  data: Float64Array;
  n: number;
  d: number;
}

/** Float64 copy of a feature set (a tensor is read, not disposed); `what` names it in errors. */
export function hostRows(f: FeatureSet, what = 'feature set'): HostRows {
  if (f instanceof tf.Tensor) {
    if (f.rank !== 2)
      throw new Error(`${what}: expected a [N, D] tensor, got shape [${f.shape}]; flatten or pool the features first`);
    return { data: Float64Array.from(f.dataSync() as Float32Array), n: f.shape[0], d: f.shape[1] };
  }
  if (!Array.isArray(f)) throw new Error(`${what}: expected a tf.Tensor2D or an array of rows, got ${typeof f}`);
  const n = f.length;
  const d = n ? f[0].length : 0;
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const row = f[i];
    if (row.length !== d)
      throw new Error(`${what}: row ${i} has ${row.length} values, row 0 has ${d}; every row needs the same width`);
    for (let j = 0; j < d; j++) data[i * d + j] = row[j];
  }
  return { data, n, d };
}

/** A feature set as a tf.Tensor2D: the tensor itself (owned = false) or a new one (owned = true: dispose it). */
export function asTensor2D(f: FeatureSet, what = 'feature set'): { t: tf.Tensor2D; owned: boolean } {
  if (f instanceof tf.Tensor) {
    if (f.rank !== 2) throw new Error(`${what}: expected a [N, D] tensor, got shape [${f.shape}]`);
    return { t: f, owned: false };
  }
  const h = hostRows(f, what);
  return { t: tf.tensor2d(Float32Array.from(h.data), [h.n, h.d]), owned: true };
}
