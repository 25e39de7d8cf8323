/**
 * What every sampler shares: options, the step loop (tidy per step, hooks, NaN/Inf checks, progress
 * callback, disposal), seeds, noised references, and the guidance gradient. Samplers are short
 * functions on top of `SamplingRun`.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../lib/random.js';
import type { GuidanceContext, GuidanceFn } from '../guidance/types.js';
import {
  DiffusionModel,
  timestepTensor,
  x0FromEps,
  type Cond,
  type Parameterization,
  type Prediction,
} from './model.js';
import type { Schedule } from './schedule.js';

/** What a per-step callback sees. Tensors are disposed after the callback returns: clone to keep. */
export interface StepInfo {
  /** 0-based step number and total steps of this run. */
  step: number;
  total: number;
  /** Schedule index the net was evaluated at. */
  index: number;
  /** Schedule index of `x` after the step (-1 = clean image). */
  to: number;
  /** Model-scale timestep of `index`. */
  t: number;
  /** x after the step [N, H, W, C]. */
  x: tf.Tensor4D;
  /** Predicted x0 at this step [N, H, W, C] (absent for pure noising steps). */
  x0?: tf.Tensor4D;
}
export type StepCallback = (info: StepInfo) => void | Promise<void>;

/** What a step hook sees. */
export interface HookInfo {
  step: number;
  total: number;
  schedule: Schedule;
  /** Index x came from and index x is at now (-1 = clean). */
  from: number;
  to: number;
  /** alpha_bar at `to` (1 for the clean image). */
  alphaBar: number;
  /** Predicted x0 of the step. */
  x0: tf.Tensor4D;
  /** A reference noised to level `to` with the run's fixed per-reference noise (the reference itself at `to` = -1). */
  noised(ref: tf.Tensor4D): tf.Tensor4D;
}

/**
 * A replacement applied to x after each denoising step (inside the step's tidy): masks (keep a known
 * region), ILVR low-pass replacement, projections. Returns the new x [N, H, W, C].
 */
export type StepHook = (x: tf.Tensor4D, info: HookInfo) => tf.Tensor4D;

/** Options shared by all samplers. */
export interface SamplerOptions {
  /** Seed for the sampler's noise (ignored when `rng` is given). Default: a random seed. */
  seed?: number;
  rng?: Rng;
  /**
   * Index x is at on entry (default: last, schedule.length - 1). Start SDEdit-style from a noised guide
   * (`qSample(guide, schedule, i, noise)`) by choosing it; `schedule.nearestIndex(t0)` maps a timestep.
   */
  startIndex?: number;
  /** Stop when x reaches this index (default -1: the clean image). */
  endIndex?: number;
  /** Conditioning passed to the net. */
  cond?: Cond;
  /** Clip predicted x0 to [-1, 1] (guided-diffusion's clip_denoised). Default false. */
  clipDenoised?: boolean;
  /** Per-step callback (progress bars, previews). May be async; awaited. */
  callback?: StepCallback;
  /** Guidance signal (to maximise); see guidance/. */
  guidance?: GuidanceFn;
  /** Multiplies the guidance gradient. Default 1. */
  guidanceScale?: number;
  /**
   * How the gradient g = scale * dG/dx_t enters: 'mean' (mean + Sigma g, classifier / SDG style) or
   * 'eps' (eps - sqrt(1 - abar) g, then x0 (not re-clipped) and the mean from the shifted eps, as
   * guided-diffusion's condition_score). Default 'mean' for DDPM, 'eps' for DDIM (which has no
   * variance to scale by at eta 0). Euler-Maruyama adds g to the score in either mode.
   */
  guidanceMode?: 'mean' | 'eps';
  /** How ctx.x0 depends on x_t: 'linear' (eps held fixed, cheap) or 'model' (through the net). Default 'linear'. */
  guidanceX0?: 'linear' | 'model';
  /** Rescale each sample's guidance gradient to unit RMS before scaling. Default false. */
  normalizeGrad?: boolean;
  /** Clip each sample's guidance gradient to this L2 norm (after scaling). */
  clipGradNorm?: number;
  /** Hooks run after every denoising step, in order. */
  stepHook?: StepHook | StepHook[];
  /** Fixed noise for noising references (guidance `ctx.noised`, hooks); default: drawn once per reference from `refSeed`. */
  refNoise?: tf.Tensor4D;
  /** Seed for reference noise. Default: derived from the sampler's seed. */
  refSeed?: number;
  /** Throw when x becomes NaN/Inf, naming the step. Default true. */
  checkFinite?: boolean;
}

/** One move of the chain: evaluate at `index`, move x from level `from` to level `to`. */
export interface Move {
  index: number;
  from: number;
  to: number;
  /** Apply step hooks after this move (denoising moves). */
  hooks: boolean;
}

/** Result of a move body: the new x and (optionally) the predicted x0. */
export interface MoveResult {
  x: tf.Tensor4D;
  x0?: tf.Tensor4D;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 0x7fffffff);
}

/**
 * The regression target of a diffusion model's output for x0 noised with `noise` at `index`
 * (per sample): eps -> noise; x0 -> x0; v -> sqrt(abar) noise - sqrt(1 - abar) x0 (Salimans & Ho
 * 2022; well conditioned at every noise level, where eps-prediction's x0 estimate is not at the top).
 */
export function diffusionTarget(
  prediction: Parameterization,
  x0: tf.Tensor4D,
  schedule: Schedule,
  index: ArrayLike<number>,
  noise: tf.Tensor4D,
): tf.Tensor4D {
  if (prediction === 'eps') return noise;
  if (prediction === 'x0') return x0;
  return tf.tidy(() => {
    const a = Array.from(index, (i) => schedule.alphaBar(i));
    const n = a.length;
    const sa = tf.tensor4d(a.map(Math.sqrt), [n, 1, 1, 1]);
    const s1 = tf.tensor4d(
      a.map((v) => Math.sqrt(1 - v)),
      [n, 1, 1, 1],
    );
    return noise.mul(sa).sub(x0.mul(s1)) as tf.Tensor4D;
  });
}

/** x0 noised to level `index` with given noise: sqrt(abar) x0 + sqrt(1 - abar) noise (index -1: x0). */
export function qSample(
  x0: tf.Tensor4D,
  schedule: Schedule,
  index: number | ArrayLike<number>,
  noise: tf.Tensor4D,
): tf.Tensor4D {
  return tf.tidy(() => {
    if (typeof index === 'number') {
      const a = schedule.alphaBar(index);
      return x0.mul(Math.sqrt(a)).add(noise.mul(Math.sqrt(1 - a))) as tf.Tensor4D;
    }
    const n = Math.max(x0.shape[0], noise.shape[0]);
    const a = Array.from(index, (i) => schedule.alphaBar(i));
    if (a.length !== n) throw new Error(`qSample: ${a.length} indices for batch ${n}`);
    const sa = tf.tensor4d(a.map(Math.sqrt), [n, 1, 1, 1]);
    const s1 = tf.tensor4d(
      a.map((v) => Math.sqrt(1 - v)),
      [n, 1, 1, 1],
    );
    return x0.mul(sa).add(noise.mul(s1)) as tf.Tensor4D;
  });
}

/** Noise x from level `from` up to level `to` > from: q(x_to | x_from) with fresh noise from rng. */
export function qForward(x: tf.Tensor4D, schedule: Schedule, from: number, to: number, rng: Rng): tf.Tensor4D {
  return tf.tidy(() => {
    const a = schedule.alphaBar(to) / schedule.alphaBar(from);
    const z = rng.normal<tf.Rank.R4>(x.shape);
    return x.mul(Math.sqrt(a)).add(z.mul(Math.sqrt(1 - a))) as tf.Tensor4D;
  });
}

/** Throws when x has NaN or Inf. */
export function assertFinite(x: tf.Tensor, what: string): void {
  const bad = tf.tidy(() => tf.any(tf.logicalNot(tf.isFinite(x))));
  const v = bad.dataSync()[0];
  bad.dispose();
  if (v) {
    throw new Error(
      `${what}: NaN or Inf in x; the model diverged (try clipDenoised: true, a smaller guidanceScale, clipGradNorm, or check the weights and schedule)`,
    );
  }
}

/** Per-sample L2 norm [N, 1, 1, 1]. */
function sampleNorm(g: tf.Tensor4D): tf.Tensor4D {
  return tf.sqrt(tf.sum(tf.square(g), [1, 2, 3], true)) as tf.Tensor4D;
}

/** State of one sampling run. Samplers construct it, call `run`, and `dispose` in finally. */
export class SamplingRun {
  readonly rng: Rng;
  readonly opts: SamplerOptions;
  readonly hooks: StepHook[];
  private readonly refRng: Rng;
  private readonly noiseBank = new Map<tf.Tensor, tf.Tensor4D>();

  constructor(
    readonly model: DiffusionModel,
    readonly schedule: Schedule,
    opts: SamplerOptions,
  ) {
    this.opts = opts;
    this.rng = opts.rng ?? new Rng(opts.seed ?? randomSeed());
    this.refRng = new Rng(opts.refSeed ?? this.rng.nextSeed());
    this.hooks = opts.stepHook ? (Array.isArray(opts.stepHook) ? opts.stepHook : [opts.stepHook]) : [];
  }

  /** Start and end indices, validated. */
  range(): { start: number; end: number } {
    const start = this.opts.startIndex ?? this.schedule.length - 1;
    const end = this.opts.endIndex ?? -1;
    if (!Number.isInteger(start) || start < 0 || start >= this.schedule.length) {
      throw new Error(`startIndex ${start} out of range 0..${this.schedule.length - 1} for ${this.schedule}`);
    }
    if (!Number.isInteger(end) || end < -1 || end >= start)
      throw new Error(`endIndex ${end} must be in -1..${start - 1} (below startIndex ${start})`);
    return { start, end };
  }

  /** The denoising moves start -> start-1 -> ... -> end. */
  downMoves(): Move[] {
    const { start, end } = this.range();
    const moves: Move[] = [];
    for (let i = start; i > end; i--) moves.push({ index: i, from: i, to: i - 1, hooks: true });
    return moves;
  }

  /** Fixed noise for a reference (kept until dispose). */
  private noiseFor(ref: tf.Tensor4D): tf.Tensor4D {
    if (this.opts.refNoise) return this.opts.refNoise;
    let z = this.noiseBank.get(ref);
    if (!z) {
      z = tf.keep(this.refRng.normal<tf.Rank.R4>(ref.shape));
      this.noiseBank.set(ref, z);
    }
    return z;
  }

  /** `ref` noised to level `index` with its fixed noise. */
  noised(ref: tf.Tensor4D, index: number): tf.Tensor4D {
    if (index < 0) return tf.clone(ref);
    return qSample(ref, this.schedule, index, this.noiseFor(ref));
  }

  /**
   * The prediction at `index` and, with guidance, the scaled guidance gradient g [N, H, W, C]
   * (already multiplied by guidanceScale, normalised/clipped as asked). Call inside a tidy.
   */
  predict(
    x: tf.Tensor4D,
    index: number,
    step: number,
    total: number,
    epsOnly = false,
  ): { pred: Prediction; grad: tf.Tensor4D | null } {
    const { guidance } = this.opts;
    const popts = { clipDenoised: this.opts.clipDenoised, cond: this.opts.cond, epsOnly };
    if (!guidance || this.opts.guidanceScale === 0)
      return { pred: this.model.predict(x, this.schedule, index, popts), grad: null };
    const abar = this.schedule.alphaBar(index);
    const t = timestepTensor(this.schedule, index, x.shape[0]);
    const mode = this.opts.guidanceX0 ?? 'linear';
    let pred: Prediction | null = mode === 'linear' ? this.model.predict(x, this.schedule, index, popts) : null;
    const ctxBase = {
      schedule: this.schedule,
      index,
      step,
      total,
      alphaBar: abar,
      noised: (ref: tf.Tensor4D) => this.noised(ref, index),
    };
    const f = (xv: tf.Tensor): tf.Scalar => {
      const xt = xv as tf.Tensor4D;
      let ctx: GuidanceContext;
      if (mode === 'model') {
        const out = this.model.raw(xt, this.schedule, index, this.opts.cond);
        const raw = this.model.fromOutput(xt, out, this.schedule, index, { epsOnly: true });
        ctx = { ...ctxBase, x0: raw.x0, eps: raw.eps };
        // the sampler's own prediction reuses this forward pass (kept past the tape's tidy; cloned below)
        pred = this.model.fromOutput(xt, out, this.schedule, index, popts);
        for (const v of Object.values(pred)) if (v instanceof tf.Tensor) tf.keep(v);
      } else {
        const eps = (pred as Prediction).eps;
        ctx = { ...ctxBase, x0: x0FromEps(xt, eps, abar), eps };
      }
      const val = guidance(xt, t, ctx);
      if (val.rank !== 0)
        throw new Error(`guidance must return a scalar (sum over the batch), got shape [${val.shape}]`);
      return val;
    };
    let g = tf.grad(f)(x) as tf.Tensor4D;
    if (mode === 'model') {
      // move the kept tensors back under the caller's tidy
      const kept = pred as unknown as Prediction;
      const cloned: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(kept)) if (v instanceof tf.Tensor) cloned[k] = tf.clone(v);
      for (const v of Object.values(kept)) if (v instanceof tf.Tensor) v.dispose();
      pred = cloned as unknown as Prediction;
    }
    if (this.opts.normalizeGrad) {
      const numel = g.shape[1] * g.shape[2] * g.shape[3];
      g = g.div(sampleNorm(g).div(Math.sqrt(numel)).add(1e-12));
    }
    g = g.mul(this.opts.guidanceScale ?? 1);
    if (this.opts.clipGradNorm !== undefined) {
      const nrm = sampleNorm(g);
      g = g.mul(tf.minimum(tf.onesLike(nrm), tf.scalar(this.opts.clipGradNorm).div(nrm.add(1e-12))));
    }
    return { pred: pred as unknown as Prediction, grad: g };
  }

  /**
   * Run the moves. `body(x, move, k)` runs inside a tidy and returns the new x (and x0). Step hooks,
   * NaN/Inf checks and the callback follow; intermediate x are disposed. Returns the final x
   * (a new tensor; the input x is not disposed).
   */
  async run(
    xIn: tf.Tensor4D,
    moves: Move[],
    body: (x: tf.Tensor4D, move: Move, k: number) => MoveResult,
  ): Promise<tf.Tensor4D> {
    if (xIn.rank !== 4)
      throw new Error(`samplers take x as [N, H, W, C] (got shape [${xIn.shape}]); reshape vectors to [N, 1, 1, D]`);
    const total = moves.length;
    const check = this.opts.checkFinite ?? true;
    let x = xIn;
    for (let k = 0; k < total; k++) {
      const move = moves[k];
      const res = tf.tidy(() => {
        const r = body(x, move, k);
        let xn = r.x;
        if (move.hooks && this.hooks.length && r.x0) {
          const info: HookInfo = {
            step: k,
            total,
            schedule: this.schedule,
            from: move.from,
            to: move.to,
            alphaBar: this.schedule.alphaBar(move.to),
            x0: r.x0,
            noised: (ref) => this.noised(ref, move.to),
          };
          for (const h of this.hooks) xn = h(xn, info);
        }
        return r.x0 ? { x: xn, x0: r.x0 } : { x: xn };
      }) as MoveResult;
      if (check) {
        try {
          assertFinite(res.x, `step ${k + 1}/${total} (index ${move.index}, t=${this.schedule.modelT(move.index)})`);
        } catch (e) {
          res.x.dispose();
          res.x0?.dispose();
          if (x !== xIn) x.dispose();
          throw e;
        }
      }
      if (x !== xIn) x.dispose();
      x = res.x;
      try {
        if (this.opts.callback) {
          await this.opts.callback({
            step: k,
            total,
            index: move.index,
            to: move.to,
            t: this.schedule.modelT(move.index),
            x,
            x0: res.x0,
          });
        }
      } finally {
        res.x0?.dispose();
      }
    }
    return x === xIn ? tf.clone(xIn) : x;
  }

  dispose(): void {
    for (const z of this.noiseBank.values()) z.dispose();
    this.noiseBank.clear();
  }
}

/** Standard-normal starting noise x_T of a shape, from a seed or Rng. */
export function randomStart(shape: [number, number, number, number], seedOrRng: number | Rng): tf.Tensor4D {
  const rng = typeof seedOrRng === 'number' ? new Rng(seedOrRng) : seedOrRng;
  return rng.normal<tf.Rank.R4>(shape);
}
