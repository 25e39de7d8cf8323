/**
 * Fréchet distance between Gaussians fitted to two feature sets (pytorch-fid's formula), in float64
 * JS: feature mean/covariance, the symmetric eigendecomposition (cyclic Jacobi), PSD square roots,
 * and the total-variation distance between two histograms. The one home of these metrics
 * (lib/train/index.ts re-exports them).
 */
import { hostRows, type FeatureSet } from './features-host.js';

/** Mean [D] and covariance [D*D] (row-major, ddof = 1 as numpy.cov) of N feature rows. */
export function meanCov(features: ArrayLike<number>, n: number, d: number): { mean: Float64Array; cov: Float64Array } {
  if (features.length !== n * d) throw new Error(`meanCov: ${features.length} values is not ${n} x ${d}`);
  if (n < 2) throw new Error(`meanCov: need at least 2 feature rows, got ${n}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += features[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = features[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] += ra * row[b];
    }
  }
  for (let a = 0; a < d; a++)
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  return { mean, cov };
}

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations (float64).
 * @param a [d*d] row-major symmetric (not modified)
 * @returns values [d] and vectors [d*d] (column k is the k-th eigenvector)
 */
export function symmetricEigen(
  a: ArrayLike<number>,
  d: number,
  opts: { tol?: number; maxSweeps?: number } = {},
): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(d * d);
  for (let i = 0; i < d; i++) V[i * d + i] = 1;
  const tol = opts.tol ?? 1e-14;
  const maxSweeps = opts.maxSweeps ?? 100;
  let total = 0;
  for (let i = 0; i < d * d; i++) total += A[i] * A[i];
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += A[p * d + q] * A[p * d + q];
    if (off <= tol * tol * total || off === 0) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = A[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const app = A[p * d + p];
        const aqq = A[q * d + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = A[k * d + p];
          const akq = A[k * d + q];
          A[k * d + p] = c * akp - s * akq;
          A[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = A[p * d + k];
          const aqk = A[q * d + k];
          A[p * d + k] = c * apk - s * aqk;
          A[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = V[k * d + p];
          const vkq = V[k * d + q];
          V[k * d + p] = c * vkp - s * vkq;
          V[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = A[i * d + i];
  return { values, vectors: V };
}

/** Symmetric PSD square root (negative eigenvalues from round-off clamp to 0). */
export function sqrtmPsd(a: ArrayLike<number>, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(0, values[k]));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vi = vectors[i * d + k] * s;
      if (vi === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += vi * vectors[j * d + k];
    }
  }
  return out;
}

function matmul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
    }
  return out;
}

/**
 * Frechet distance between N(mu1, S1) and N(mu2, S2):
 * |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), with Tr((S1 S2)^(1/2)) computed as
 * Tr((S1^(1/2) S2 S1^(1/2))^(1/2)) (the same eigenvalues, but symmetric, so no complex round-off).
 */
export function frechetDistanceOfGaussians(
  mu1: ArrayLike<number>,
  s1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  s2: ArrayLike<number>,
): number {
  const d = mu1.length;
  if (mu2.length !== d || s1.length !== d * d || s2.length !== d * d)
    throw new Error(
      `frechetDistance: shapes disagree (d = ${d}: means [${mu1.length}] and [${mu2.length}], covariances of ${s1.length} and ${s2.length} values)`,
    );
  let diff = 0;
  for (let i = 0; i < d; i++) diff += (mu1[i] - mu2[i]) ** 2;
  let tr1 = 0;
  let tr2 = 0;
  for (let i = 0; i < d; i++) {
    tr1 += s1[i * d + i];
    tr2 += s2[i * d + i];
  }
  const r1 = sqrtmPsd(s1, d);
  const m = matmul(matmul(r1, Float64Array.from(s2), d), r1, d);
  for (let i = 0; i < d; i++)
    for (let j = i + 1; j < d; j++) {
      const v = (m[i * d + j] + m[j * d + i]) / 2;
      m[i * d + j] = v;
      m[j * d + i] = v;
    }
  const { values } = symmetricEigen(m, d);
  let trSqrt = 0;
  for (const v of values) trSqrt += Math.sqrt(Math.max(0, v));
  return diff + tr1 + tr2 - 2 * trSqrt;
}

/** Fréchet distance between two feature sets given as flat row-major values (rows of length d). */
export function frechetDistanceOfFeatures(
  f1: ArrayLike<number>,
  n1: number,
  f2: ArrayLike<number>,
  n2: number,
  d: number,
): number {
  const a = meanCov(f1, n1, d);
  const b = meanCov(f2, n2, d);
  return frechetDistanceOfGaussians(a.mean, a.cov, b.mean, b.cov);
}

/**
 * Fréchet distance (FID's formula, as pytorch-fid computes it) between Gaussians fitted to two
 * feature sets a [N1, D] and b [N2, D] (covariance with ddof 1, as numpy.cov).
 *
 * The four-argument form takes the Gaussians themselves: means [D] and covariances [D*D] row-major.
 */
export function frechetDistance(a: FeatureSet, b: FeatureSet): number;
export function frechetDistance(
  mu1: ArrayLike<number>,
  s1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  s2: ArrayLike<number>,
): number;
export function frechetDistance(...args: unknown[]): number {
  if (args.length === 4)
    return frechetDistanceOfGaussians(
      ...(args as [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>, ArrayLike<number>]),
    );
  if (args.length !== 2)
    throw new Error(
      `frechetDistance: pass two feature sets [N, D] (or mean1, cov1, mean2, cov2), got ${args.length} arguments`,
    );
  const a = hostRows(args[0] as FeatureSet, 'frechetDistance: first feature set');
  const b = hostRows(args[1] as FeatureSet, 'frechetDistance: second feature set');
  if (a.d !== b.d)
    throw new Error(
      `frechetDistance: feature widths differ (${a.d} vs ${b.d}); both sets must come from the same extractor`,
    );
  return frechetDistanceOfFeatures(a.data, a.n, b.data, b.n, a.d);
}

/** Total-variation distance between two distributions given as counts or probabilities. */
export function totalVariation(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new Error(`totalVariation: ${p.length} vs ${q.length} bins`);
  let sp = 0;
  let sq = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i];
    sq += q[i];
  }
  if (!(sp > 0 && sq > 0)) throw new Error('totalVariation: empty distribution');
  let tv = 0;
  for (let i = 0; i < p.length; i++) tv += Math.abs(p[i] / sp - q[i] / sq);
  return tv / 2;
}
