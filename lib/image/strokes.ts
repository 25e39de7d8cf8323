/**
 * Simulated stroke paintings: the coarse, flat-coloured inputs SDEdit is meant to turn into realistic
 * images, made from real images so that experiments need no hand-drawn guides. Each `cell` x `cell`
 * block becomes its mean colour, quantised to `levels` values per channel (a few flat blobs, no detail).
 */
import * as tf from '@tensorflow/tfjs';

export interface StrokeOptions {
  /** Block size in pixels; H and W must be multiples of it (default 8: a 4x4 painting of a 32x32 image). */
  cell?: number;
  /** Colour levels per channel (default 4). */
  levels?: number;
}

/**
 * @param images [N, H, W, 3] in [-1, 1]
 * @returns [N, H, W, 3] in [-1, 1]: blocks of flat, quantised colour
 */
export function simulateStrokes(images: tf.Tensor4D, opts: StrokeOptions = {}): tf.Tensor4D {
  const cell = opts.cell ?? 8;
  const levels = opts.levels ?? 4;
  const [, h, w] = images.shape;
  if (!Number.isInteger(cell) || cell < 1 || h % cell !== 0 || w % cell !== 0) {
    throw new Error(`simulateStrokes: cell ${cell} must be a positive integer dividing the image size ${h}x${w}`);
  }
  if (!Number.isInteger(levels) || levels < 2)
    throw new Error(`simulateStrokes: levels must be an integer >= 2, got ${levels}`);
  return tf.tidy(() => {
    const mean = tf.avgPool(images, cell, cell, 'valid') as tf.Tensor4D;
    const step = (levels - 1) / 2; // [-1, 1] -> levels evenly spaced values including both ends
    const quantised = mean.add(1).mul(step).round().div(step).sub(1) as tf.Tensor4D;
    return tf.image.resizeNearestNeighbor(quantised, [h, w]);
  });
}
