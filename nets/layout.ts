/**
 * The one PyTorch <-> diffguide weight-layout conversion. Tensors are NHWC inside diffguide; files keep the
 * reference PyTorch layout, so every net converts at its loader and saver through these functions.
 */
import * as tf from '@tensorflow/tfjs';

/** How a parameter is stored: PyTorch shape -> ours. */
export type TorchLayout =
  /** conv [O, I, kh, kw] -> HWIO [kh, kw, I, O] */
  | 'conv'
  /** 1x1 conv [O, I, 1, 1] -> [I, O] */
  | 'conv1x1'
  /** conv1d with kernel 1 [O, I, 1] -> [I, O] */
  | 'conv1d'
  /** linear [O, I] -> [I, O] */
  | 'linear'
  /** the same on both sides (biases, norm affines, embedding tables, matrices used as x @ W) */
  | 'plain';

/** Our shape of a parameter whose PyTorch shape is `torchShape`. */
export function ourShape(torchShape: readonly number[], layout: TorchLayout): number[] {
  const s = torchShape;
  switch (layout) {
    case 'conv':
      return [s[2], s[3], s[1], s[0]];
    case 'conv1x1':
    case 'conv1d':
    case 'linear':
      return [s[1], s[0]];
    case 'plain':
      return s.slice();
  }
}

/** A PyTorch-layout tensor in our layout. Returns a new tensor; disposes nothing. */
export function fromTorchLayout(t: tf.Tensor, layout: TorchLayout): tf.Tensor {
  return tf.tidy(() => {
    switch (layout) {
      case 'conv':
        return t.transpose([2, 3, 1, 0]);
      case 'conv1x1':
      case 'conv1d':
      case 'linear':
        return t.reshape([t.shape[0], t.shape[1] as number]).transpose([1, 0]);
      case 'plain':
        return t.clone();
    }
  });
}

/** Our tensor in PyTorch layout, shaped `torchShape`. Returns a new tensor; disposes nothing. */
export function toTorchLayout(t: tf.Tensor, layout: TorchLayout, torchShape: readonly number[]): tf.Tensor {
  return tf.tidy(() => {
    switch (layout) {
      case 'conv':
        return t.transpose([3, 2, 0, 1]);
      case 'conv1x1':
      case 'conv1d':
      case 'linear':
        return t.transpose([1, 0]).reshape(torchShape.slice());
      case 'plain':
        return t.clone();
    }
  });
}
