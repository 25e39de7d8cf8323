/**
 * One interface over whatever the net predicts.
 *
 * A `NetFn` is the raw network: `(x [N,H,W,C], t [N] model-scale timesteps, cond?) => [N,H,W,C']`
 * (C' = C, or 2C when it also predicts a variance). `DiffusionModel` turns its output into
 * `{eps, x0, mean, variance, logVariance}` for a schedule index, whatever the parameterisation
 * ('eps' | 'x0' | 'v') and variance type ('fixedSmall' | 'fixedLarge' | 'learnedRange' | 'learned').
 * Formulas follow guided-diffusion's GaussianDiffusion (p_mean_variance).
 */
import * as tf from '@tensorflow/tfjs';
import type { Schedule } from './schedule.js';

/** Conditioning passed through to the net, batch-aligned with x. */
export interface Cond {
  /** [N] int32 class labels. */
  y?: tf.Tensor1D;
  /** [N, D] embedding (e.g. a CLIP image embedding for an unCLIP decoder). */
  emb?: tf.Tensor2D;
  /** [N, L, D] token sequence for cross-attention. */
  tokens?: tf.Tensor3D;
}

/** The raw network. x: [N, H, W, C]; t: [N] float32 timesteps as the net expects them (`Schedule.modelT`). */
export type NetFn = (x: tf.Tensor4D, t: tf.Tensor1D, cond?: Cond) => tf.Tensor4D;

export type Parameterization = 'eps' | 'x0' | 'v';
export type VarianceType = 'fixedSmall' | 'fixedLarge' | 'learnedRange' | 'learned';

export interface DiffusionModelOptions {
  /** What the first C output channels are. Default 'eps'. */
  prediction?: Parameterization;
  /**
   * Sampling variance. 'learnedRange' / 'learned' need a 2C-channel output (the second half is the
   * guided-diffusion frac in [-1, 1], resp. a log variance). Default 'fixedSmall'.
   */
  variance?: VarianceType;
  /** Conditioning used when a call gives none. */
  cond?: Cond;
}

/** Model outputs at one schedule index. All [N, H, W, C] except the fixed variances ([N, 1, 1, 1]). */
export type Prediction = {
  /** Predicted noise (re-derived from the clipped x0 when clipping). */
  eps: tf.Tensor4D;
  /** Predicted clean image (clipped to [-1, 1] when asked). */
  x0: tf.Tensor4D;
  /** Mean of p(x_{i-1} | x_i): the posterior mean at the predicted x0. */
  mean: tf.Tensor4D;
  /** Variance and log variance of p(x_{i-1} | x_i). */
  variance: tf.Tensor4D;
  logVariance: tf.Tensor4D;
};

export interface PredictOptions {
  /** Clip the predicted x0 to [-1, 1]. Default false. */
  clipDenoised?: boolean;
  /** Conditioning for this call (overrides the model's default). */
  cond?: Cond;
  /** Skip the mean/variance (DDIM and inversion need only eps and x0). Default false. */
  epsOnly?: boolean;
}

/** [N, 1, 1, 1] float32 tensor of per-sample coefficients (one value broadcast, or one per sample). */
export function coefTensor(values: number | ArrayLike<number>, n: number): tf.Tensor4D {
  if (typeof values === 'number') return tf.fill([n, 1, 1, 1], values) as tf.Tensor4D;
  if (values.length !== n) throw new Error(`coefTensor: ${values.length} values for batch ${n}`);
  return tf.tensor4d(Float32Array.from(values), [n, 1, 1, 1]);
}

function gatherCoef(arr: Float64Array, idx: number[]): number[] {
  return idx.map((i) => arr[i]);
}

/** Normalises `index` (one index for the batch, or one per sample) to an array of length n, checking range. */
export function indexArray(schedule: Schedule, index: number | ArrayLike<number>, n: number): number[] {
  const idx = typeof index === 'number' ? new Array<number>(n).fill(index) : Array.from(index);
  if (idx.length !== n) throw new Error(`index has ${idx.length} entries for batch ${n}`);
  for (const i of idx) {
    if (!Number.isInteger(i) || i < 0 || i >= schedule.length) {
      throw new Error(`schedule index ${i} out of range 0..${schedule.length - 1} (${schedule})`);
    }
  }
  return idx;
}

/** [N] float32 model-scale timesteps for the given indices. */
export function timestepTensor(schedule: Schedule, index: number | ArrayLike<number>, n: number): tf.Tensor1D {
  const idx = indexArray(schedule, index, n);
  return tf.tensor1d(
    idx.map((i) => schedule.modelT(i)),
    'float32',
  );
}

/** x0 from eps at noise level abar: (x - sqrt(1 - abar) eps) / sqrt(abar). Coefs: number or [N,1,1,1]. */
export function x0FromEps(x: tf.Tensor4D, eps: tf.Tensor4D, abar: number | tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    if (typeof abar === 'number') return x.sub(eps.mul(Math.sqrt(1 - abar))).div(Math.sqrt(abar)) as tf.Tensor4D;
    return x.sub(eps.mul(tf.sqrt(tf.scalar(1).sub(abar)))).div(tf.sqrt(abar)) as tf.Tensor4D;
  });
}

/** eps from x0 at noise level abar: (x - sqrt(abar) x0) / sqrt(1 - abar). */
export function epsFromX0(x: tf.Tensor4D, x0: tf.Tensor4D, abar: number | tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    if (typeof abar === 'number') return x.sub(x0.mul(Math.sqrt(abar))).div(Math.sqrt(1 - abar)) as tf.Tensor4D;
    return x.sub(x0.mul(tf.sqrt(abar))).div(tf.sqrt(tf.scalar(1).sub(abar))) as tf.Tensor4D;
  });
}

/**
 * A net plus its parameterisation. Stateless apart from options; safe to share between samplers.
 */
export class DiffusionModel {
  readonly prediction: Parameterization;
  readonly variance: VarianceType;
  readonly cond?: Cond;

  constructor(
    readonly net: NetFn,
    opts: DiffusionModelOptions = {},
  ) {
    this.prediction = opts.prediction ?? 'eps';
    this.variance = opts.variance ?? 'fixedSmall';
    this.cond = opts.cond;
    if (!['eps', 'x0', 'v'].includes(this.prediction))
      throw new Error(`prediction '${this.prediction}' unknown; use eps | x0 | v`);
    if (!['fixedSmall', 'fixedLarge', 'learnedRange', 'learned'].includes(this.variance)) {
      throw new Error(`variance '${this.variance}' unknown; use fixedSmall | fixedLarge | learnedRange | learned`);
    }
  }

  /** Whether the net must output 2C channels. */
  get learnsVariance(): boolean {
    return this.variance === 'learnedRange' || this.variance === 'learned';
  }

  /** Raw net call at schedule indices (one for the batch or one per sample). Returns [N, H, W, C'] . */
  raw(x: tf.Tensor4D, schedule: Schedule, index: number | ArrayLike<number>, cond?: Cond): tf.Tensor4D {
    return tf.tidy(() => {
      const t = timestepTensor(schedule, index, x.shape[0]);
      const out = this.net(x, t, cond ?? this.cond);
      const c = x.shape[3];
      const want = this.learnsVariance ? 2 * c : c;
      if (
        out.shape[3] !== want ||
        out.shape[0] !== x.shape[0] ||
        out.shape[1] !== x.shape[1] ||
        out.shape[2] !== x.shape[2]
      ) {
        throw new Error(
          `net output shape [${out.shape}] does not fit input [${x.shape}] with variance '${this.variance}': expected ${want} channels` +
            (out.shape[3] === 2 * c ? " (the net predicts a variance: use variance: 'learnedRange')" : '') +
            (out.shape[3] === c && this.learnsVariance
              ? " (the net has no variance channels: use variance: 'fixedSmall' or 'fixedLarge')"
              : ''),
        );
      }
      return out;
    });
  }

  /**
   * Predictions at schedule index `index` for x: [N, H, W, C] (x is x_t at that index).
   * With `epsOnly`, mean/variance/logVariance are omitted (undefined) to save work.
   */
  predict(
    x: tf.Tensor4D,
    schedule: Schedule,
    index: number | ArrayLike<number>,
    opts: PredictOptions = {},
  ): Prediction {
    return tf.tidy(() => {
      const out = this.raw(x, schedule, index, opts.cond);
      return this.fromOutput(x, out, schedule, index, opts);
    });
  }

  /** Interpret a raw net output (see `predict`). */
  fromOutput(
    x: tf.Tensor4D,
    out: tf.Tensor4D,
    schedule: Schedule,
    index: number | ArrayLike<number>,
    opts: PredictOptions = {},
  ): Prediction {
    return tf.tidy(() => {
      const n = x.shape[0];
      const c = x.shape[3];
      const idx = indexArray(schedule, index, n);
      const uniform = idx.every((i) => i === idx[0]);
      const coef = (arr: Float64Array): number | tf.Tensor4D =>
        uniform ? arr[idx[0]] : coefTensor(gatherCoef(arr, idx), n);
      const abar = coef(schedule.alphasCumprod);
      const main = (this.learnsVariance ? out.slice([0, 0, 0, 0], [-1, -1, -1, c]) : out) as tf.Tensor4D;
      let x0: tf.Tensor4D;
      let eps: tf.Tensor4D;
      switch (this.prediction) {
        case 'eps':
          eps = main;
          x0 = x0FromEps(x, eps, abar);
          break;
        case 'x0':
          x0 = main;
          eps = epsFromX0(x, x0, abar);
          break;
        case 'v': {
          // x0 = sqrt(abar) x - sqrt(1-abar) v ; eps = sqrt(1-abar) x + sqrt(abar) v
          const sa = typeof abar === 'number' ? Math.sqrt(abar) : tf.sqrt(abar);
          const s1 = typeof abar === 'number' ? Math.sqrt(1 - abar) : tf.sqrt(tf.scalar(1).sub(abar));
          x0 = x.mul(sa).sub(main.mul(s1)) as tf.Tensor4D;
          eps = x.mul(s1).add(main.mul(sa)) as tf.Tensor4D;
          break;
        }
      }
      if (opts.clipDenoised) {
        // `+ 0 * x0` keeps NaN/Inf visible: clipping alone would turn a diverged net into +-1 and hide it.
        x0 = tf.clipByValue(x0, -1, 1).add(x0.mul(0)) as tf.Tensor4D;
        eps = epsFromX0(x, x0, abar);
      }
      if (opts.epsOnly) return { eps, x0 } as Prediction;
      const mean = x0
        .mul(coef(schedule.posteriorMeanCoef1))
        .add(x.mul(coef(schedule.posteriorMeanCoef2))) as tf.Tensor4D;
      let logVariance: tf.Tensor4D;
      let variance: tf.Tensor4D | null = null;
      switch (this.variance) {
        case 'fixedSmall':
          // as guided-diffusion: variance unclipped (0 at index 0), log variance clipped
          variance = coefTensor(gatherCoef(schedule.posteriorVariance, idx), n);
          logVariance = coefTensor(gatherCoef(schedule.posteriorLogVarianceClipped, idx), n);
          break;
        case 'fixedLarge': {
          // guided-diffusion: variance = append(posterior_variance[1], betas[1:])
          const v = idx.map((i) =>
            Math.log(i === 0 ? schedule.posteriorVariance[Math.min(1, schedule.length - 1)] : schedule.betas[i]),
          );
          logVariance = coefTensor(v, n);
          break;
        }
        case 'learnedRange': {
          const frac = out.slice([0, 0, 0, c], [-1, -1, -1, c]).add(1).div(2);
          const minLog = coefTensor(gatherCoef(schedule.posteriorLogVarianceClipped, idx), n);
          const maxLog = coefTensor(
            idx.map((i) => Math.log(schedule.betas[i])),
            n,
          );
          logVariance = frac.mul(maxLog).add(tf.scalar(1).sub(frac).mul(minLog)) as tf.Tensor4D;
          break;
        }
        case 'learned':
          logVariance = out.slice([0, 0, 0, c], [-1, -1, -1, c]) as tf.Tensor4D;
          break;
      }
      return { eps, x0, mean, variance: variance ?? (tf.exp(logVariance) as tf.Tensor4D), logVariance };
    });
  }
}

/** Shorthand for `new DiffusionModel(net, opts)`. */
export function diffusionModel(net: NetFn, opts: DiffusionModelOptions = {}): DiffusionModel {
  return new DiffusionModel(net, opts);
}

/** Dispose every tensor of a prediction. */
export function disposePrediction(p: Partial<Prediction>): void {
  for (const v of Object.values(p)) if (v instanceof tf.Tensor) v.dispose();
}
