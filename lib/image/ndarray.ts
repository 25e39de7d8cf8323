/** Interop with scijs `ndarray` (shape and strides kept; data copied to/from float32). */
import * as tf from '@tensorflow/tfjs';
import ndarray from 'ndarray';

/** A tensor -> a C-contiguous float32 ndarray of the same shape. */
export function toNdarray(t: tf.Tensor): ndarray.NdArray<Float32Array> {
  const data = t.dtype === 'float32' ? (t.dataSync() as Float32Array).slice() : Float32Array.from(t.dataSync());
  return ndarray(data, t.shape.slice());
}

/** Any ndarray (any strides, e.g. a transposed view) -> a float32 tensor of its shape. */
export function fromNdarray(a: ndarray.NdArray): tf.Tensor {
  const shape = a.shape.slice();
  const size = shape.reduce((x, y) => x * y, 1);
  const out = new Float32Array(size);
  const d = shape.length;
  const idx = new Array<number>(d).fill(0);
  for (let i = 0; i < size; i++) {
    out[i] = Number(a.get(...idx));
    for (let k = d - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return tf.tensor(out, shape, 'float32');
}
