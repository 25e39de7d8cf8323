/**
 * Kernel Inception Distance (Bińkowski et al. 2018) on any feature set: the unbiased estimate of
 * MMD² with the polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over random subsets drawn
 * without replacement, as torch-fidelity (`metric_kid.py`) and clean-fid (`kernel_distance`)
 * compute it: mean and population standard deviation (numpy's np.std) over the subsets.
 *
 * Computed in float64 on the host: MMD² is a small difference of large kernel sums, which float32
 * does not hold. When the kernel matrices of the whole sets fit (`maxCacheEntries`), they are
 * computed once and every subset only sums entries; otherwise each subset computes its own kernels.
 */
import { Rng } from '../random.js';
import { hostRows, type FeatureSet, type HostRows } from './features-host.js';

export interface KidOptions {
  /** Number of random subsets (default 100, torch-fidelity's and clean-fid's). */
  subsets?: number;
  /**
   * Rows per subset, drawn from each set without replacement (default min(1000, N1, N2); an
   * explicit size larger than a set is an error).
   */
  subsetSize?: number;
  /** Seed (or an Rng) of the subset draws (default 0). */
  seed?: number | Rng;
  /** Largest number of cached kernel entries (N1² + N2² + N1·N2) before subsets compute their own (default 2^23). */
  maxCacheEntries?: number;
}

export interface KidResult {
  /** Mean of MMD² over the subsets. */
  mean: number;
  /** Population standard deviation (ddof 0) of MMD² over the subsets. */
  std: number;
  /** MMD² of each subset. */
  values: number[];
  subsets: number;
  subsetSize: number;
}

/** k(x_i, y_j) = (x_i·y_j / d + 1)³ for rows i of a and j of b. */
function kernelValue(a: Float64Array, i: number, b: Float64Array, j: number, d: number): number {
  let s = 0;
  const oi = i * d;
  const oj = j * d;
  for (let k = 0; k < d; k++) s += a[oi + k] * b[oj + k];
  const v = s / d + 1;
  return v * v * v;
}

/** Kernel matrix [ia.length, ib.length] of the chosen rows (symmetric when a === b and ia === ib). */
function kernelMatrix(
  a: Float64Array,
  ia: ArrayLike<number>,
  b: Float64Array,
  ib: ArrayLike<number>,
  d: number,
  symmetric: boolean,
): Float64Array {
  const m = ia.length;
  const n = ib.length;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = symmetric ? i : 0; j < n; j++) {
      const v = kernelValue(a, ia[i], b, ib[j], d);
      out[i * n + j] = v;
      if (symmetric) out[j * n + i] = v;
    }
  }
  return out;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Sum of a square matrix's entries off the diagonal, of the rows/columns `idx` ([size, size] matrix). */
function offDiagonalSum(k: Float64Array, size: number, idx: ArrayLike<number>): number {
  let s = 0;
  for (let p = 0; p < idx.length; p++) {
    const row = idx[p] * size;
    for (let q = 0; q < idx.length; q++) if (q !== p) s += k[row + idx[q]];
  }
  return s;
}

function blockSum(k: Float64Array, cols: number, ia: ArrayLike<number>, ib: ArrayLike<number>): number {
  let s = 0;
  for (let p = 0; p < ia.length; p++) {
    const row = ia[p] * cols;
    for (let q = 0; q < ib.length; q++) s += k[row + ib[q]];
  }
  return s;
}

/** The unbiased MMD² of rows `ia` of x and `ib` of y, from kernels (cached or computed here). */
function mmd2Rows(
  x: HostRows,
  y: HostRows,
  ia: ArrayLike<number>,
  ib: ArrayLike<number>,
  cache?: { xx: Float64Array; yy: Float64Array; xy: Float64Array },
): number {
  const m = ia.length;
  const n = ib.length;
  if (m < 2 || n < 2) throw new Error(`kid: the unbiased MMD² needs at least 2 rows per set, got ${m} and ${n}`);
  let sxx: number;
  let syy: number;
  let sxy: number;
  if (cache) {
    sxx = offDiagonalSum(cache.xx, x.n, ia);
    syy = offDiagonalSum(cache.yy, y.n, ib);
    sxy = blockSum(cache.xy, y.n, ia, ib);
  } else {
    const r = (len: number) => range(len);
    const kxx = kernelMatrix(x.data, ia, x.data, ia, x.d, true);
    const kyy = kernelMatrix(y.data, ib, y.data, ib, y.d, true);
    const kxy = kernelMatrix(x.data, ia, y.data, ib, x.d, false);
    sxx = offDiagonalSum(kxx, m, r(m));
    syy = offDiagonalSum(kyy, n, r(n));
    sxy = blockSum(kxy, n, r(m), r(n));
  }
  return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - (2 * sxy) / (m * n);
}

/**
 * The unbiased MMD² between two whole feature sets a [M, D] and b [N, D] with the cubic polynomial
 * kernel: Σ_{i≠j} k(a_i, a_j) / (M(M-1)) + Σ_{i≠j} k(b_i, b_j) / (N(N-1)) - 2 Σ k(a_i, b_j) / (MN).
 * For M = N it is torch-fidelity's `mmd2(..., mmd_est='unbiased')`.
 */
export function mmd2Unbiased(a: FeatureSet, b: FeatureSet): number {
  const x = hostRows(a, 'mmd2Unbiased: first feature set');
  const y = hostRows(b, 'mmd2Unbiased: second feature set');
  if (x.d !== y.d)
    throw new Error(
      `mmd2Unbiased: feature widths differ (${x.d} vs ${y.d}); both sets must come from the same extractor`,
    );
  return mmd2Rows(x, y, range(x.n), range(y.n));
}

/** `m` distinct indices of [0, n) in random order (partial Fisher-Yates on `rng`). */
export function sampleWithoutReplacement(n: number, m: number, rng: Rng): number[] {
  if (!(Number.isInteger(m) && m >= 0 && m <= n))
    throw new Error(`sampleWithoutReplacement: cannot draw ${m} of ${n} items without replacement`);
  const p = range(n);
  for (let i = 0; i < m; i++) {
    const j = i + rng.int(n - i);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p.slice(0, m);
}

/**
 * KID between feature sets a [N1, D] and b [N2, D] (same extractor): mean and std of the unbiased
 * MMD² over `subsets` random subsets of `subsetSize` rows of each set, drawn without replacement.
 * With `subsets: 1` and `subsetSize` = N1 = N2 the subsets are the whole sets and the result is the
 * deterministic `mmd2Unbiased(a, b)` (std 0).
 */
export function kid(a: FeatureSet, b: FeatureSet, opts: KidOptions = {}): KidResult {
  const x = hostRows(a, 'kid: first feature set');
  const y = hostRows(b, 'kid: second feature set');
  if (x.d !== y.d)
    throw new Error(`kid: feature widths differ (${x.d} vs ${y.d}); both sets must come from the same extractor`);
  const subsets = opts.subsets ?? 100;
  if (!(Number.isInteger(subsets) && subsets >= 1))
    throw new Error(`kid: subsets must be a positive integer, got ${subsets}`);
  const m = opts.subsetSize ?? Math.min(1000, x.n, y.n);
  if (!(Number.isInteger(m) && m >= 2)) throw new Error(`kid: subsetSize must be an integer >= 2, got ${m}`);
  if (m > x.n || m > y.n)
    throw new Error(
      `kid: subsetSize ${m} is larger than a feature set (${x.n} and ${y.n} rows); pass subsetSize <= ${Math.min(x.n, y.n)}`,
    );
  const rng = opts.seed instanceof Rng ? opts.seed : new Rng(opts.seed ?? 0);
  const entries = x.n * x.n + y.n * y.n + x.n * y.n;
  const useCache = entries <= (opts.maxCacheEntries ?? 2 ** 23) && subsets > 1;
  const cache = useCache
    ? {
        xx: kernelMatrix(x.data, range(x.n), x.data, range(x.n), x.d, true),
        yy: kernelMatrix(y.data, range(y.n), y.data, range(y.n), y.d, true),
        xy: kernelMatrix(x.data, range(x.n), y.data, range(y.n), x.d, false),
      }
    : undefined;
  const values: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const ia = sampleWithoutReplacement(x.n, m, rng);
    const ib = sampleWithoutReplacement(y.n, m, rng);
    values.push(mmd2Rows(x, y, ia, ib, cache));
  }
  const mean = values.reduce((p, v) => p + v, 0) / subsets;
  const std = Math.sqrt(values.reduce((p, v) => p + (v - mean) ** 2, 0) / subsets);
  return { mean, std, values, subsets, subsetSize: m };
}

/** MMD² of given subsets (row indices of each set): replays draws made elsewhere, e.g. numpy's. */
export function mmd2OfSubsets(
  a: FeatureSet,
  b: FeatureSet,
  subsets: [ArrayLike<number>, ArrayLike<number>][],
): number[] {
  const x = hostRows(a, 'mmd2OfSubsets: first feature set');
  const y = hostRows(b, 'mmd2OfSubsets: second feature set');
  if (x.d !== y.d) throw new Error(`mmd2OfSubsets: feature widths differ (${x.d} vs ${y.d})`);
  return subsets.map(([ia, ib]) => {
    for (const [idx, n, w] of [
      [ia, x.n, 'first'],
      [ib, y.n, 'second'],
    ] as const) {
      if (new Set(Array.from(idx)).size !== idx.length)
        throw new Error(`mmd2OfSubsets: a ${w}-set subset repeats a row; subsets are drawn without replacement`);
      for (let k = 0; k < idx.length; k++)
        if (!(idx[k] >= 0 && idx[k] < n))
          throw new Error(`mmd2OfSubsets: row ${idx[k]} is outside the ${w} set (${n} rows)`);
    }
    return mmd2Rows(x, y, ia, ib);
  });
}
