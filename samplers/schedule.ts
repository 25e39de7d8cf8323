/**
 * Noise schedules and respacing, computed in float64 JS arrays (tensors are made only where a
 * sampler needs them).
 *
 * Conventions (guided-diffusion's): a schedule has `length` steps with indices 0..length-1; the
 * sample at index i has noise level `alphasCumprod[i]`; index -1 is the clean image (alpha_bar 1).
 * A respaced schedule keeps a subset of an original schedule's steps, recomputes its betas from the
 * kept `alphasCumprod` (`beta_i = 1 - abar_i / abar_{i-1}`), and remembers which original timestep
 * each index stands for (`timestepMap`): the net always receives original timesteps (optionally
 * rescaled to a 0..1000 range, guided-diffusion's `rescale_timesteps`).
 */

/** Options of a schedule that are not its betas. */
export interface ScheduleOptions {
  /** Original timestep of each index (default: 0..length-1). */
  timestepMap?: ArrayLike<number>;
  /** Number of steps of the original schedule (default: length). */
  originalLength?: number;
  /** Feed the net `t * 1000 / originalLength` instead of t (guided-diffusion's rescale_timesteps). Default false. */
  rescaleTimesteps?: boolean;
}

/** A discrete diffusion schedule with every derived quantity guided-diffusion computes. All arrays have `length` entries. */
export class Schedule {
  readonly length: number;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** abar_{i-1}, with abar_{-1} = 1. */
  readonly alphasCumprodPrev: Float64Array;
  /** abar_{i+1}, with abar_{length} = 0. */
  readonly alphasCumprodNext: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  readonly logOneMinusAlphasCumprod: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  /** Variance of q(x_{i-1} | x_i, x_0): beta_i (1 - abar_{i-1}) / (1 - abar_i). */
  readonly posteriorVariance: Float64Array;
  /** log of posteriorVariance with entry 0 replaced by entry 1 (it is 0 there). */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** Mean of q(x_{i-1} | x_i, x_0) = coef1 * x_0 + coef2 * x_i. */
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
  /** Original timestep of each index. */
  readonly timestepMap: Int32Array;
  readonly originalLength: number;
  readonly rescaleTimesteps: boolean;

  constructor(betas: ArrayLike<number>, opts: ScheduleOptions = {}) {
    const n = betas.length;
    if (n < 1) throw new Error('Schedule: need at least one beta');
    for (let i = 0; i < n; i++) {
      const b = betas[i];
      if (!(b > 0 && b <= 1)) throw new Error(`Schedule: beta[${i}] = ${b} is outside (0, 1]; betas must be in (0, 1]`);
    }
    this.length = n;
    this.betas = Float64Array.from(betas);
    this.alphas = this.betas.map((b) => 1 - b);
    this.alphasCumprod = new Float64Array(n);
    let acc = 1;
    for (let i = 0; i < n; i++) {
      acc *= this.alphas[i];
      this.alphasCumprod[i] = acc;
    }
    const ac = this.alphasCumprod;
    this.alphasCumprodPrev = new Float64Array(n);
    this.alphasCumprodNext = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      this.alphasCumprodPrev[i] = i === 0 ? 1 : ac[i - 1];
      this.alphasCumprodNext[i] = i === n - 1 ? 0 : ac[i + 1];
    }
    this.sqrtAlphasCumprod = ac.map(Math.sqrt);
    this.sqrtOneMinusAlphasCumprod = ac.map((a) => Math.sqrt(1 - a));
    this.logOneMinusAlphasCumprod = ac.map((a) => Math.log(1 - a));
    this.sqrtRecipAlphasCumprod = ac.map((a) => Math.sqrt(1 / a));
    this.sqrtRecipm1AlphasCumprod = ac.map((a) => Math.sqrt(1 / a - 1));
    const prev = this.alphasCumprodPrev;
    this.posteriorVariance = this.betas.map((b, i) => (b * (1 - prev[i])) / (1 - ac[i]));
    const pv = this.posteriorVariance;
    this.posteriorLogVarianceClipped = pv.map((v, i) => Math.log(i === 0 ? (n > 1 ? pv[1] : v) : v));
    this.posteriorMeanCoef1 = this.betas.map((b, i) => (b * Math.sqrt(prev[i])) / (1 - ac[i]));
    this.posteriorMeanCoef2 = this.alphas.map((a, i) => ((1 - prev[i]) * Math.sqrt(a)) / (1 - ac[i]));
    const map = opts.timestepMap ?? Array.from({ length: n }, (_, i) => i);
    if (map.length !== n) throw new Error(`Schedule: timestepMap has ${map.length} entries for ${n} betas`);
    this.timestepMap = Int32Array.from(map);
    this.originalLength = opts.originalLength ?? n;
    this.rescaleTimesteps = opts.rescaleTimesteps ?? false;
  }

  /** alpha_bar at index i; index -1 (the clean image) gives 1. */
  alphaBar(i: number): number {
    if (i < 0) return 1;
    if (i >= this.length) throw new Error(`Schedule: index ${i} out of range 0..${this.length - 1}`);
    return this.alphasCumprod[i];
  }

  /** The timestep the net receives for index i (original timestep, rescaled to 0..1000 when `rescaleTimesteps`). */
  modelT(i: number): number {
    if (i < 0 || i >= this.length) throw new Error(`Schedule: index ${i} out of range 0..${this.length - 1}`);
    const t = this.timestepMap[i];
    return this.rescaleTimesteps ? (t * 1000) / this.originalLength : t;
  }

  /** Index whose original timestep is closest to `t` (original scale, e.g. SDEdit's t0 = 500 of 1000). */
  nearestIndex(t: number): number {
    let best = 0;
    for (let i = 1; i < this.length; i++)
      if (Math.abs(this.timestepMap[i] - t) < Math.abs(this.timestepMap[best] - t)) best = i;
    return best;
  }

  /** Index whose original timestep is `t` (exact match), or -1. */
  indexOfTimestep(t: number): number {
    return this.timestepMap.indexOf(t);
  }

  /** The same betas and map with another `rescaleTimesteps` setting. */
  withRescale(rescaleTimesteps: boolean): Schedule {
    return new Schedule(this.betas, {
      timestepMap: this.timestepMap,
      originalLength: this.originalLength,
      rescaleTimesteps,
    });
  }

  /** Summary for logs: `Schedule(100 of 1000 steps, t 0..990)`. */
  toString(): string {
    return `Schedule(${this.length} of ${this.originalLength} steps, t ${this.timestepMap[0]}..${this.timestepMap[this.length - 1]})`;
  }
}

/** numpy.linspace(start, stop, num) in float64, element for element. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  out[num - 1] = stop;
  return out;
}

/** DDPM's linear betas: linspace(start, end, T). Defaults 1e-4..0.02 (Ho et al., SDEdit, DiffusionCLIP configs). */
export function linearBetas(T: number, start = 1e-4, end = 0.02): Float64Array {
  return linspace(start, end, T);
}

/** guided-diffusion's "linear": DDPM's range scaled by 1000/T, so any T gives the same curve. */
export function scaledLinearBetas(T: number): Float64Array {
  const scale = 1000 / T;
  return linspace(scale * 0.0001, scale * 0.02, T);
}

/** Betas discretising a continuous alpha_bar(t), t in [0, 1] (guided-diffusion's betas_for_alpha_bar). */
export function betasForAlphaBar(T: number, alphaBar: (t: number) => number, maxBeta = 0.999): Float64Array {
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) out[i] = Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), maxBeta);
  return out;
}

/** guided-diffusion's cosine schedule (Nichol & Dhariwal), s = 0.008, betas capped at 0.999. */
export function cosineBetas(T: number, maxBeta = 0.999): Float64Array {
  return betasForAlphaBar(T, (t) => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2, maxBeta);
}

export type ScheduleName = 'linear' | 'scaled-linear' | 'cosine';

/**
 * A named schedule: 'linear' = DDPM 1e-4..0.02 over T (SDEdit/DiffusionCLIP/pytorch_diffusion),
 * 'scaled-linear' = guided-diffusion's "linear" (equal to 'linear' at T = 1000), 'cosine'.
 */
export function makeSchedule(
  name: ScheduleName,
  T = 1000,
  opts: Omit<ScheduleOptions, 'timestepMap' | 'originalLength'> = {},
): Schedule {
  let betas: Float64Array;
  switch (name) {
    case 'linear':
      betas = linearBetas(T);
      break;
    case 'scaled-linear':
      betas = scaledLinearBetas(T);
      break;
    case 'cosine':
      betas = cosineBetas(T);
      break;
    default:
      throw new Error(`unknown schedule '${name as string}'; use one of: linear, scaled-linear, cosine`);
  }
  return new Schedule(betas, opts);
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * guided-diffusion's space_timesteps: which of `numTimesteps` original steps to keep.
 * `sections`: "ddimN" (stride chosen so exactly N evenly strided steps from 0), a comma list of
 * per-section counts ("10,10,5": the range split in 3 equal sections, 10/10/5 steps each), or an
 * array of counts. Returns the kept timesteps, sorted ascending.
 */
export function spaceTimesteps(numTimesteps: number, sections: string | number | number[]): number[] {
  let counts: number[];
  if (typeof sections === 'string') {
    if (sections.startsWith('ddim')) {
      const want = Number.parseInt(sections.slice(4), 10);
      if (!Number.isFinite(want)) throw new Error(`spaceTimesteps: '${sections}' is not ddimN`);
      for (let stride = 1; stride < numTimesteps; stride++) {
        if (Math.ceil(numTimesteps / stride) === want) return Array.from({ length: want }, (_, k) => k * stride);
      }
      throw new Error(
        `spaceTimesteps: cannot create exactly ${want} steps with an integer stride from ${numTimesteps}; use a section count like '${want}' instead`,
      );
    }
    counts = sections.split(',').map((s) => {
      const v = Number.parseInt(s.trim(), 10);
      if (!Number.isFinite(v)) throw new Error(`spaceTimesteps: bad section count '${s}' in '${sections}'`);
      return v;
    });
  } else counts = typeof sections === 'number' ? [sections] : sections;
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  let startIdx = 0;
  const all = new Set<number>();
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) throw new Error(`spaceTimesteps: cannot divide a section of ${size} steps into ${count}`);
    const frac = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      all.add(startIdx + roundHalfEven(cur));
      cur += frac;
    }
    startIdx += size;
  });
  return [...all].sort((a, b) => a - b);
}

/**
 * DiffusionCLIP's uniform skip: `[int(s) for s in np.linspace(0, 1, n) * t0]` — n timesteps from 0
 * to t0 inclusive (duplicates, possible when n > t0 + 1, are dropped). Sorted ascending.
 */
export function uniformSkip(t0: number, n: number): number[] {
  if (n < 1) throw new Error('uniformSkip: need n >= 1');
  const u = linspace(0, 1, n);
  const seq = Array.from(u, (v) => Math.trunc(v * t0));
  return [...new Set(seq)].sort((a, b) => a - b);
}

/**
 * Keep only `useTimesteps` (indices of `base`) and recompute betas from the kept alpha_bars, as
 * guided-diffusion's SpacedDiffusion does. The new schedule's timestepMap points at `base`'s original
 * timesteps (respacing composes). `sections` may be given instead of a list: see `spaceTimesteps`.
 */
export function respace(base: Schedule, use: Iterable<number> | string): Schedule {
  const keep = typeof use === 'string' ? spaceTimesteps(base.length, use) : [...new Set(use)].sort((a, b) => a - b);
  if (keep.length === 0) throw new Error('respace: no timesteps to keep');
  if (keep[0] < 0 || keep[keep.length - 1] >= base.length) {
    throw new Error(`respace: timesteps must be in 0..${base.length - 1}, got ${keep[0]}..${keep[keep.length - 1]}`);
  }
  const betas: number[] = [];
  const map: number[] = [];
  let last = 1;
  for (const i of keep) {
    const a = base.alphasCumprod[i];
    betas.push(1 - a / last);
    last = a;
    map.push(base.timestepMap[i]);
  }
  return new Schedule(betas, {
    timestepMap: map,
    originalLength: base.originalLength,
    rescaleTimesteps: base.rescaleTimesteps,
  });
}

/** A base schedule respaced to `steps` evenly spaced steps (guided-diffusion section count). */
export function respaceEven(base: Schedule, steps: number): Schedule {
  return steps >= base.length ? base : respace(base, String(steps));
}
