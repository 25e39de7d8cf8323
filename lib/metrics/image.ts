/**
 * Full-reference image metrics, per image: SSIM (Wang et al. 2004) and PSNR, as scikit-image
 * computes them, in float64 on the host. Images are NHWC float32 in [-1, 1] (data range 2).
 */
import * as tf from '@tensorflow/tfjs';

export interface SsimOptions {
  /** Value range of the images (default 2: [-1, 1]). */
  dataRange?: number;
  /** Gaussian window sigma (default 1.5) and truncation in sigmas (default 3.5: an 11x11 window). */
  sigma?: number;
  truncate?: number;
  /** Stabilisers (default 0.01 and 0.03). */
  k1?: number;
  k2?: number;
}

function checkPair(a: tf.Tensor4D, b: tf.Tensor4D, what: string): void {
  if (a.rank !== 4 || b.rank !== 4)
    throw new Error(`${what}: expected image batches [N, H, W, C], got shapes [${a.shape}] and [${b.shape}]`);
  if (a.shape.join(',') !== b.shape.join(','))
    throw new Error(
      `${what}: the two batches differ in shape ([${a.shape}] vs [${b.shape}]); compare images of the same size (resize them first)`,
    );
}

/** scipy.ndimage's normalised Gaussian taps for `sigma`, radius int(truncate * sigma + 0.5). */
export function gaussianTaps(sigma: number, truncate = 3.5): Float64Array {
  const r = Math.floor(truncate * sigma + 0.5);
  const w = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) {
    w[i + r] = Math.exp((-0.5 / (sigma * sigma)) * i * i);
    s += w[i + r];
  }
  for (let i = 0; i < w.length; i++) w[i] /= s;
  return w;
}

/** scipy's 'reflect' boundary (d c b a | a b c d | d c b a) for any index. */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const p = 2 * n;
  let j = ((i % p) + p) % p;
  if (j >= n) j = p - 1 - j;
  return j;
}

/** Separable Gaussian filter of one [H, W] plane (rows, then columns), reflect boundary. */
function gaussianFilter(
  x: Float64Array,
  h: number,
  w: number,
  taps: Float64Array,
  tmp: Float64Array,
  out: Float64Array,
): void {
  const r = (taps.length - 1) / 2;
  // along H (axis 0)
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      let s = 0;
      for (let k = -r; k <= r; k++) s += taps[k + r] * x[reflect(i + k, h) * w + j];
      tmp[i * w + j] = s;
    }
  }
  // along W (axis 1)
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      let s = 0;
      for (let k = -r; k <= r; k++) s += taps[k + r] * tmp[i * w + reflect(j + k, w)];
      out[i * w + j] = s;
    }
  }
}

/**
 * SSIM per image: Wang et al.'s index with a Gaussian window (sigma 1.5, 11x11), K1 0.01, K2 0.03,
 * population covariance, averaged over the valid interior (a border of (window - 1) / 2 pixels is
 * left out) and then over channels: the numbers of
 * `skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False, data_range=2, channel_axis=-1)`.
 * @param a [N, H, W, C] in [-1, 1]; b the same shape. H and W must be at least the window (11).
 * @returns [N] SSIM values (1 for identical images)
 */
export function ssim(a: tf.Tensor4D, b: tf.Tensor4D, opts: SsimOptions = {}): number[] {
  checkPair(a, b, 'ssim');
  const [n, h, w, c] = a.shape;
  const taps = gaussianTaps(opts.sigma ?? 1.5, opts.truncate ?? 3.5);
  const win = taps.length;
  if (h < win || w < win)
    throw new Error(
      `ssim: images are ${h}x${w}, smaller than the ${win}x${win} Gaussian window; upsample them or pass a smaller sigma`,
    );
  const range = opts.dataRange ?? 2;
  const c1 = ((opts.k1 ?? 0.01) * range) ** 2;
  const c2 = ((opts.k2 ?? 0.03) * range) ** 2;
  const pad = (win - 1) / 2;
  const da = a.dataSync();
  const db = b.dataSync();
  const hw = h * w;
  const planes = Array.from({ length: 5 }, () => new Float64Array(hw));
  const filtered = Array.from({ length: 5 }, () => new Float64Array(hw));
  const tmp = new Float64Array(hw);
  const out: number[] = [];
  for (let img = 0; img < n; img++) {
    let total = 0;
    for (let ch = 0; ch < c; ch++) {
      const [px, py, pxx, pyy, pxy] = planes;
      for (let p = 0; p < hw; p++) {
        const xv = da[(img * hw + p) * c + ch];
        const yv = db[(img * hw + p) * c + ch];
        px[p] = xv;
        py[p] = yv;
        pxx[p] = xv * xv;
        pyy[p] = yv * yv;
        pxy[p] = xv * yv;
      }
      for (let k = 0; k < 5; k++) gaussianFilter(planes[k], h, w, taps, tmp, filtered[k]);
      const [ux, uy, uxx, uyy, uxy] = filtered;
      let s = 0;
      for (let i = pad; i < h - pad; i++) {
        for (let j = pad; j < w - pad; j++) {
          const p = i * w + j;
          const vx = uxx[p] - ux[p] * ux[p];
          const vy = uyy[p] - uy[p] * uy[p];
          const vxy = uxy[p] - ux[p] * uy[p];
          s += ((2 * ux[p] * uy[p] + c1) * (2 * vxy + c2)) / ((ux[p] * ux[p] + uy[p] * uy[p] + c1) * (vx + vy + c2));
        }
      }
      total += s / ((h - 2 * pad) * (w - 2 * pad));
    }
    out.push(total / c);
  }
  return out;
}

/**
 * PSNR per image in dB: 10 log10(range² / MSE) with the MSE over all pixels and channels
 * (`skimage.metrics.peak_signal_noise_ratio(a, b, data_range=2)`); Infinity for identical images.
 * @param a [N, H, W, C] in [-1, 1]; b the same shape
 */
export function psnr(a: tf.Tensor4D, b: tf.Tensor4D, opts: { dataRange?: number } = {}): number[] {
  checkPair(a, b, 'psnr');
  const [n, h, w, c] = a.shape;
  const size = h * w * c;
  const range = opts.dataRange ?? 2;
  const da = a.dataSync();
  const db = b.dataSync();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = i * size; k < (i + 1) * size; k++) {
      const e = da[k] - db[k];
      s += e * e;
    }
    const mse = s / size;
    out.push(mse === 0 ? Infinity : 10 * Math.log10((range * range) / mse));
  }
  return out;
}
