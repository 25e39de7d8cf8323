/**
 * Image resizing on NHWC tensors, differentiable (separable matrix products): 'area' (box filter
 * with exact pixel-overlap weights, as OpenCV INTER_AREA / PIL BOX; exact mean of k x k blocks for
 * integer factors), 'bilinear' and 'bicubic' (PyTorch `interpolate(..., align_corners=False)`
 * semantics, bicubic a = -0.75, no antialiasing).
 */
import * as tf from '@tensorflow/tfjs';

export type ResizeMethod = 'area' | 'bilinear' | 'bicubic';

/** Row-interpolation matrix [out, in] for one axis. */
export function resizeMatrix(inSize: number, outSize: number, method: ResizeMethod): Float32Array {
  if (!(Number.isInteger(inSize) && inSize > 0 && Number.isInteger(outSize) && outSize > 0)) {
    throw new Error(`resize: sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  if (method === 'area') {
    for (let o = 0; o < outSize; o++) {
      const a = o * scale;
      const b = (o + 1) * scale;
      for (let i = Math.floor(a); i < Math.min(inSize, Math.ceil(b)); i++) {
        const overlap = Math.min(b, i + 1) - Math.max(a, i);
        if (overlap > 0) m[o * inSize + i] = overlap / scale;
      }
    }
    return m;
  }
  const clampIdx = (i: number) => Math.min(inSize - 1, Math.max(0, i));
  for (let o = 0; o < outSize; o++) {
    const src = (o + 0.5) * scale - 0.5;
    if (method === 'bilinear') {
      const s = Math.max(0, src);
      const i0 = Math.floor(s);
      const f = s - i0;
      m[o * inSize + clampIdx(i0)] += 1 - f;
      m[o * inSize + clampIdx(i0 + 1)] += f;
    } else if (method === 'bicubic') {
      const i0 = Math.floor(src);
      const f = src - i0;
      const A = -0.75;
      const cubic1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| <= 1
      const cubic2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2
      const w = [cubic2(f + 1), cubic1(f), cubic1(1 - f), cubic2(2 - f)];
      for (let k = 0; k < 4; k++) m[o * inSize + clampIdx(i0 - 1 + k)] += w[k];
    } else {
      throw new Error(`resize: unknown method '${method as string}'; use 'area', 'bilinear' or 'bicubic'`);
    }
  }
  return m;
}

/**
 * Resize images. Differentiable with respect to `x`.
 * @param x [N, H, W, C]
 * @param size [outH, outW] (or a single number for square)
 * @returns [N, outH, outW, C]
 */
export function resize(
  x: tf.Tensor4D,
  size: number | [number, number],
  method: ResizeMethod = 'bilinear',
): tf.Tensor4D {
  if (x.rank !== 4) throw new Error(`resize: expected [N, H, W, C], got shape [${x.shape}]`);
  const [oh, ow] = typeof size === 'number' ? [size, size] : size;
  const [n, h, w, c] = x.shape;
  if (oh === h && ow === w) return x.clone();
  return tf.tidy(() => {
    let y: tf.Tensor = x;
    if (oh !== h) {
      const mh = tf.tensor2d(resizeMatrix(h, oh, method), [oh, h]);
      // [H, N*W*C] -> [oh, N*W*C]
      const t = y.transpose([1, 0, 2, 3]).reshape([h, n * w * c]);
      y = tf
        .matMul(mh, t as tf.Tensor2D)
        .reshape([oh, n, w, c])
        .transpose([1, 0, 2, 3]);
    }
    if (ow !== w) {
      const mw = tf.tensor2d(resizeMatrix(w, ow, method), [ow, w]);
      const t = y.transpose([2, 0, 1, 3]).reshape([w, n * oh * c]);
      y = tf
        .matMul(mw, t as tf.Tensor2D)
        .reshape([ow, n, oh, c])
        .transpose([1, 2, 0, 3]);
    }
    return y as tf.Tensor4D;
  });
}

/**
 * Exact area downsampling by an integer factor (mean of factor x factor blocks), on tensors.
 * @param x [N, H, W, C] with H, W divisible by factor -> [N, H/f, W/f, C]
 */
export function areaDownsample(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  const [, h, w] = x.shape;
  if (!Number.isInteger(factor) || factor < 1 || h % factor !== 0 || w % factor !== 0) {
    throw new Error(`areaDownsample: factor ${factor} must be a positive integer dividing ${h}x${w}`);
  }
  if (factor === 1) return x.clone();
  return tf.tidy(() => tf.avgPool(x, factor, factor, 'valid') as tf.Tensor4D);
}

/**
 * Exact area downsampling of 8-bit interleaved pixels by an integer factor (mean rounded half up).
 * @param data H*W*C bytes -> (H/f)*(W/f)*C bytes
 */
export function areaDownsampleBytes(
  data: Uint8Array,
  height: number,
  width: number,
  channels: number,
  factor: number,
): Uint8Array {
  if (!Number.isInteger(factor) || factor < 1 || height % factor !== 0 || width % factor !== 0) {
    throw new Error(`areaDownsampleBytes: factor ${factor} must be a positive integer dividing ${height}x${width}`);
  }
  if (data.length !== height * width * channels)
    throw new Error(`areaDownsampleBytes: ${data.length} bytes is not ${height}x${width}x${channels}`);
  const oh = height / factor;
  const ow = width / factor;
  const out = new Uint8Array(oh * ow * channels);
  const area = factor * factor;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let ch = 0; ch < channels; ch++) {
        let s = 0;
        for (let dy = 0; dy < factor; dy++) {
          const row = ((y * factor + dy) * width + x * factor) * channels + ch;
          for (let dx = 0; dx < factor; dx++) s += data[row + dx * channels];
        }
        out[(y * ow + x) * channels + ch] = Math.floor(s / area + 0.5);
      }
    }
  }
  return out;
}
