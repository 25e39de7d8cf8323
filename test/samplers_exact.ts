/**
 * Test helpers (not a test file): exact float64 moments of discretised sampler chains for data with a
 * closed-form denoiser, written independently of the tensor code in samplers/.
 */
import * as tf from '@tensorflow/tfjs';
import type { Schedule } from '../samplers/schedule.js';

export interface Comp {
  mean: number;
  std: number;
  weight: number;
}

export type Kind = 'ddpm-small' | 'ddpm-large' | 'ddpm-lr' | 'ddim' | 'ddim-eta1' | 'em-vp' | 'em-ve';

export interface ExactGuide {
  lambda: number;
  p: number;
  scale: number;
  mode: 'mean' | 'eps';
  /** what the pull acts on */
  target: 'xt' | 'x0-linear' | 'x0-model';
}

/** E[eps | x_t] for 1-D mixture data at noise level a, and its derivative d/dx. */
export function mixtureEps(comps: Comp[], a: number, x: number): { eps: number; deps: number } {
  const tw = comps.reduce((s, c) => s + c.weight, 0);
  const lp = comps.map((c) => {
    const s2 = a * c.std * c.std + 1 - a;
    const d = x - Math.sqrt(a) * c.mean;
    return Math.log(c.weight / tw) - 0.5 * Math.log(s2) - (d * d) / (2 * s2);
  });
  const mx = Math.max(...lp);
  const w = lp.map((l) => Math.exp(l - mx));
  const z = w.reduce((s, v) => s + v, 0);
  const r = w.map((v) => v / z);
  // score = -sum r_k (x - sqrt(a) m_k)/s2_k ; eps = -sqrt(1-a) score
  let f = 0;
  const fk: number[] = [];
  comps.forEach((c, k) => {
    const s2 = a * c.std * c.std + 1 - a;
    fk.push((x - Math.sqrt(a) * c.mean) / s2);
    f += r[k] * fk[k];
  });
  // d/dx of sum r_k f_k = sum r_k / s2_k - sum r_k f_k^2 + f^2  (dr_k/dx = -r_k (f_k - f))
  let df = 0;
  comps.forEach((c, k) => {
    const s2 = a * c.std * c.std + 1 - a;
    df += r[k] / s2 - r[k] * fk[k] * (fk[k] - f);
  });
  const s1 = Math.sqrt(1 - a);
  return { eps: s1 * f, deps: s1 * df };
}

/** One move of a chain: x' = mean(x) + std * z. */
export interface ExactStep {
  mean: (x: number) => number;
  std: number;
}

/** The exact step of a sampler kind at index i -> i-1 for 1-D mixture data. */
export function exactStep(kind: Kind, s: Schedule, i: number, comps: Comp[], guide?: ExactGuide): ExactStep {
  const a = s.alphasCumprod[i];
  const ap = s.alphaBar(i - 1);
  const sa = Math.sqrt(a);
  const s1 = Math.sqrt(1 - a);
  const beta = s.betas[i];
  const c1 = s.posteriorMeanCoef1[i];
  const c2 = s.posteriorMeanCoef2[i];
  const grad = (x: number, eps: number, deps: number): number => {
    if (!guide) return 0;
    const x0 = (x - s1 * eps) / sa;
    const { lambda, p, scale } = guide;
    if (guide.target === 'xt') return -scale * lambda * (x - p);
    if (guide.target === 'x0-linear') return (-scale * lambda * (x0 - p)) / sa;
    return -scale * lambda * (x0 - p) * ((1 - s1 * deps) / sa);
  };
  // sampling variance for DDPM kinds
  let sigma2 = 0;
  let shiftVar = 0;
  if (kind === 'ddpm-small') {
    sigma2 = Math.exp(s.posteriorLogVarianceClipped[i]);
    shiftVar = s.posteriorVariance[i];
  } else if (kind === 'ddpm-large') {
    sigma2 = i === 0 ? s.posteriorVariance[1] : beta;
    shiftVar = sigma2;
  } else if (kind === 'ddpm-lr') {
    if (comps.length !== 1) throw new Error('ddpm-lr exact only for one component');
    const v = comps[0].std ** 2;
    sigma2 = s.posteriorVariance[i] + c1 * c1 * ((v * (1 - a)) / (a * v + 1 - a));
    shiftVar = sigma2;
  }
  if (kind.startsWith('ddpm')) {
    return {
      mean: (x) => {
        const { eps, deps } = mixtureEps(comps, a, x);
        const g = grad(x, eps, deps);
        if (guide && guide.mode === 'eps') {
          const e2 = eps - s1 * g;
          return c1 * ((x - s1 * e2) / sa) + c2 * x;
        }
        return c1 * ((x - s1 * eps) / sa) + c2 * x + shiftVar * g;
      },
      std: i > 0 ? Math.sqrt(sigma2) : 0,
    };
  }
  if (kind === 'ddim' || kind === 'ddim-eta1') {
    const eta = kind === 'ddim' ? 0 : 1;
    const sig = eta * Math.sqrt((1 - ap) / (1 - a)) * Math.sqrt(1 - a / ap);
    return {
      mean: (x) => {
        const { eps, deps } = mixtureEps(comps, a, x);
        const e2 = eps - s1 * grad(x, eps, deps);
        const x0 = (x - s1 * e2) / sa;
        return Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - sig * sig) * e2;
      },
      std: i > 0 ? sig : 0,
    };
  }
  if (kind === 'em-vp') {
    return {
      mean: (x) => {
        const { eps, deps } = mixtureEps(comps, a, x);
        const score = -eps / s1 + grad(x, eps, deps);
        return (2 - Math.sqrt(1 - beta)) * x + beta * score;
      },
      std: i > 0 ? Math.sqrt(beta) : 0,
    };
  }
  // em-ve
  const s2 = (1 - a) / a;
  const s2To = i > 0 ? (1 - ap) / ap : 0;
  const d = s2 - s2To;
  return {
    mean: (x) => {
      const { eps, deps } = mixtureEps(comps, a, x);
      const score = -eps / s1 + grad(x, eps, deps);
      return Math.sqrt(ap) * (x / sa + d * sa * score);
    },
    std: i > 0 ? Math.sqrt(ap * d) : 0,
  };
}

/** Exact mean/variance after running the chain from N(m0, v0) at startIndex down to -1, for single-Gaussian data (affine steps). */
export function gaussianChain(
  kind: Kind,
  s: Schedule,
  comp: Comp,
  start: number,
  m0: number,
  v0: number,
  guide?: ExactGuide,
): { mean: number; variance: number } {
  let m = m0;
  let P = v0;
  for (let i = start; i >= 0; i--) {
    const st = exactStep(kind, s, i, [comp], guide);
    const B = st.mean(0);
    const A = st.mean(1) - B;
    m = A * m + B;
    P = A * A * P + st.std * st.std;
  }
  return { mean: m, variance: P };
}

/**
 * Exact mean/variance of a nonlinear 1-D chain, by propagating the density on a grid (mass deposited
 * by linear interpolation, then convolved with the step's Gaussian). Starts from N(0, 1).
 */
export function gridChain(
  kind: Kind,
  s: Schedule,
  comps: Comp[],
  start: number,
  lo = -6,
  hi = 6,
  n = 3001,
): { mean: number; variance: number } {
  const dx = (hi - lo) / (n - 1);
  const xs = Float64Array.from({ length: n }, (_, k) => lo + k * dx);
  let p = xs.map((x) => Math.exp(-0.5 * x * x));
  const norm = p.reduce((a, b) => a + b, 0);
  p = p.map((v) => v / norm);
  for (let i = start; i >= 0; i--) {
    const st = exactStep(kind, s, i, comps);
    const q = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      if (p[k] === 0) continue;
      const y = Math.min(Math.max((st.mean(xs[k]) - lo) / dx, 0), n - 1.000001);
      const j = Math.floor(y);
      const f = y - j;
      if ((j === 0 || j === n - 2) && p[k] > 1e-9) throw new Error(`gridChain: mass ${p[k]} left the grid`);
      q[j] += p[k] * (1 - f);
      q[j + 1] += p[k] * f;
    }
    if (st.std > dx / 4) {
      const r = Math.ceil((6 * st.std) / dx);
      const ker = Float64Array.from({ length: 2 * r + 1 }, (_, u) => Math.exp(-0.5 * (((u - r) * dx) / st.std) ** 2));
      const ks = ker.reduce((a, b) => a + b, 0);
      const out = new Float64Array(n);
      for (let k = 0; k < n; k++) {
        if (q[k] === 0) continue;
        for (let u = -r; u <= r; u++) {
          const j = k + u;
          if (j >= 0 && j < n) out[j] += (q[k] * ker[u + r]) / ks;
        }
      }
      p = out;
    } else p = q;
  }
  let m = 0;
  let m2 = 0;
  for (let k = 0; k < n; k++) {
    m += p[k] * xs[k];
    m2 += p[k] * xs[k] * xs[k];
  }
  return { mean: m, variance: m2 - m * m };
}

/** Per-channel sample mean and variance (float64) of x [N, H, W, C]. */
export function channelStats(x: tf.Tensor4D): { mean: number[]; variance: number[]; count: number } {
  const c = x.shape[3];
  const d = x.dataSync();
  const cnt = d.length / c;
  const mean = new Array<number>(c).fill(0);
  const variance = new Array<number>(c).fill(0);
  for (let k = 0; k < d.length; k++) mean[k % c] += d[k];
  for (let j = 0; j < c; j++) mean[j] /= cnt;
  for (let k = 0; k < d.length; k++) variance[k % c] += (d[k] - mean[k % c]) ** 2;
  for (let j = 0; j < c; j++) variance[j] /= cnt - 1;
  return { mean, variance, count: cnt };
}
