/**
 * CLIP's image preprocessing as differentiable tf ops: `Resize(R, BICUBIC)` of the shorter side,
 * `CenterCrop(R)`, `ToTensor`, `Normalize(mean, std)` — from [-1, 1] NHWC images, so gradients of
 * a CLIP loss flow back to the pixels.
 *
 * The resize is PIL's resampling (the reference preprocesses PIL images): separable filters with
 * support scaled by the downscale factor (antialiasing), bicubic a = -0.5, weights normalised per
 * output pixel, written as two matrix products. PIL rounds to 8 bits in between; we stay in float.
 */
import * as tf from '@tensorflow/tfjs';

export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export type ResampleFilter = 'bicubic' | 'bilinear';

function filterFn(kind: ResampleFilter): { support: number; f: (x: number) => number } {
  if (kind === 'bilinear') return { support: 1, f: (x) => Math.max(0, 1 - Math.abs(x)) };
  const a = -0.5;
  return {
    support: 2,
    f: (x) => {
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  };
}

/**
 * PIL's resampling weights from `inSize` to `outSize` samples.
 * @returns row-major [outSize, inSize]
 */
export function resampleMatrix(inSize: number, outSize: number, kind: ResampleFilter = 'bicubic'): Float32Array {
  const { support: base, f } = filterFn(kind);
  const scale = inSize / outSize;
  const fscale = Math.max(scale, 1);
  const support = base * fscale;
  const m = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    let sum = 0;
    const w: number[] = [];
    for (let x = xmin; x < xmax; x++) {
      const v = f((x - center + 0.5) / fscale);
      w.push(v);
      sum += v;
    }
    for (let x = xmin; x < xmax; x++) m[o * inSize + x] = sum !== 0 ? w[x - xmin] / sum : w[x - xmin];
  }
  return m;
}

/** Python's round() (half to even), as torchvision's CenterCrop uses it. */
function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Size after torchvision `Resize(size)` with an int size: the shorter side becomes `size`. */
export function resizeShorterSide(h: number, w: number, size: number): [number, number] {
  if (h <= w) return [size, Math.floor((size * w) / h)];
  return [Math.floor((size * h) / w), size];
}

/**
 * Resize the shorter side to `size` and center-crop to `size` x `size`, differentiably.
 * @param x [N, H, W, C] -> [N, size, size, C]
 * @param range clip to [lo, hi] after each pass as PIL does for 8-bit images (null: no clipping)
 */
export function resizeShorterAndCenterCrop(
  x: tf.Tensor4D,
  size: number,
  kind: ResampleFilter = 'bicubic',
  range: [number, number] | null = null,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (h === size && w === size) return x.clone();
  return tf.tidy(() => {
    const [rh, rw] = resizeShorterSide(h, w, size);
    const top = pyRound((rh - size) / 2);
    const left = pyRound((rw - size) / 2);
    const mh = tf.tensor2d(resampleMatrix(h, rh, kind), [rh, h]).slice([top, 0], [size, h]);
    const mw = tf.tensor2d(resampleMatrix(w, rw, kind), [rw, w]).slice([left, 0], [size, w]);
    // PIL order: horizontal pass, clip to the pixel range, vertical pass, clip. (PIL also rounds to
    // 8 bits after each pass; we keep floats so gradients flow.)
    const clip = (t: tf.Tensor) => (range ? tf.clipByValue(t, range[0], range[1]) : t);
    let y: tf.Tensor = x;
    // columns: [W, N*H*C] -> [size, N*H*C]
    if (!(w === size && rw === size)) {
      y = clip(
        tf
          .matMul(mw, y.transpose([2, 0, 1, 3]).reshape([w, n * h * c]))
          .reshape([size, n, h, c])
          .transpose([1, 2, 0, 3]),
      );
    }
    // rows: [H, N*size*C] -> [size, N*size*C]
    if (!(h === size && rh === size)) {
      y = clip(
        tf
          .matMul(mh, y.transpose([1, 0, 2, 3]).reshape([h, n * size * c]))
          .reshape([size, n, size, c])
          .transpose([1, 0, 2, 3]),
      );
    }
    return y as tf.Tensor4D;
  });
}

export interface PreprocessOptions {
  /** Resampling filter (default 'bicubic', as CLIP). */
  resample?: ResampleFilter;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
  /**
   * Clip to [0, 1] after each resampling pass as PIL does (default true; matches the reference's
   * preprocessing within 1/255 on 8-bit images). Clipped pixels pass no gradient; set false to keep
   * bicubic overshoot and its gradient.
   */
  clip?: boolean;
}

/**
 * CLIP preprocessing of [-1, 1] images.
 * @param x [N, H, W, 3] in [-1, 1], any size
 * @param resolution the model's input size R
 * @returns [N, R, R, 3] normalised pixels (the reference's `preprocess(image)` in NHWC)
 */
export function clipPreprocess(x: tf.Tensor4D, resolution: number, opts: PreprocessOptions = {}): tf.Tensor4D {
  if (x.rank !== 4 || x.shape[3] !== 3)
    throw new Error(`clipPreprocess: expected [N, H, W, 3] images in [-1, 1], got [${x.shape}]`);
  const mean = opts.mean ?? CLIP_MEAN;
  const std = opts.std ?? CLIP_STD;
  return tf.tidy(() => {
    const unit = x.add(1).mul(0.5) as tf.Tensor4D;
    const resized = resizeShorterAndCenterCrop(
      unit,
      resolution,
      opts.resample ?? 'bicubic',
      opts.clip === false ? null : [0, 1],
    );
    return resized.sub(tf.tensor1d([...mean])).div(tf.tensor1d([...std])) as tf.Tensor4D;
  });
}
