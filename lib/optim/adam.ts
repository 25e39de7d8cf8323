/**
 * Optimisation pieces for the training loops: Adam(W) with explicit, serialisable moments, a
 * warm-up + optional cosine learning-rate schedule, global-norm gradient clipping, and EMA weights.
 */
import * as tf from '@tensorflow/tfjs';
import { ADAM_KERNEL, fusedAdamApplies } from '../fastgrad/adam.js';

export interface AdamOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (AdamW), applied as p -= lr * wd * p. Default 0. */
  weightDecay?: number;
  /** Parameter names that get no weight decay (default: biases and norm parameters, i.e. rank < 2). */
  noDecay?: (name: string, p: tf.Variable) => boolean;
}

/** Adam with first/second moments kept per parameter name (so they can be checkpointed). */
export class Adam {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  /** Number of updates taken (bias correction). */
  t = 0;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private noDecay: (name: string, p: tf.Variable) => boolean;

  constructor(
    readonly params: Map<string, tf.Variable>,
    opts: AdamOptions = {},
  ) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.noDecay = opts.noDecay ?? ((_n, p) => p.rank < 2);
    for (const [k, p] of params) {
      this.m.set(
        k,
        tf.tidy(() => tf.variable(tf.zerosLike(p), false)),
      );
      this.v.set(
        k,
        tf.tidy(() => tf.variable(tf.zerosLike(p), false)),
      );
    }
  }

  /** One update with learning rate `lr`. `grads` by parameter name (missing names are skipped). */
  step(grads: Map<string, tf.Tensor> | Record<string, tf.Tensor>, lr: number): void {
    this.t++;
    const g = grads instanceof Map ? grads : new Map(Object.entries(grads));
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    for (const [k, p] of this.params) {
      const gk = g.get(k);
      if (!gk) continue;
      const m = this.m.get(k)!;
      const v = this.v.get(k)!;
      const wd = this.weightDecay > 0 && !this.noDecay(k, p) ? this.weightDecay : 0;
      if (fusedAdamApplies(p, gk)) {
        // the same update in one call (wasm): fresh p', m', v' assigned below
        const attrs = {
          beta1: this.beta1,
          beta2: this.beta2,
          lrBc1: lr / bc1,
          invBc2: 1 / bc2,
          eps: this.eps,
          wdLr: lr * wd,
        };
        const [np, nm, nv] = tf
          .engine()
          .runKernel(ADAM_KERNEL, { p, g: gk, m, v }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
        m.assign(nm);
        v.assign(nv);
        p.assign(np);
        tf.dispose([np, nm, nv]);
        continue;
      }
      tf.tidy(() => {
        const m1 = m.mul(this.beta1).add(gk.mul(1 - this.beta1));
        const v1 = v.mul(this.beta2).add(gk.square().mul(1 - this.beta2));
        m.assign(m1);
        v.assign(v1);
        // as torch.optim.Adam: p -= lr * m_hat / (sqrt(v_hat) + eps)
        const upd = m1.div(bc1).div(v1.div(bc2).sqrt().add(this.eps)).mul(lr);
        let np = p.sub(upd);
        if (wd > 0) np = np.sub(p.mul(lr * wd));
        p.assign(np);
      });
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

export interface LrSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Linear warm-up steps from 0 to lr (default 0). */
  warmup?: number;
  /** Total steps (needed for cosine). */
  total?: number;
  /** 'constant' after warm-up, or 'cosine' down to `minLr` at `total`. Default 'constant'. */
  decay?: 'constant' | 'cosine';
  minLr?: number;
  /**
   * With 'constant': decay linearly to `minLr` over the last `cooldown` steps before `total`
   * (warmup-stable-decay). A constant-rate run can then be forked and cooled down at any step,
   * which averages out the noise of the constant rate in a few thousand steps.
   */
  cooldown?: number;
}

/** Learning rate at (0-based) `step`. */
export function lrAt(step: number, s: LrSchedule): number {
  const warm = s.warmup ?? 0;
  if (warm > 0 && step < warm) return (s.lr * (step + 1)) / warm;
  if (s.decay === 'cosine') {
    const total = s.total ?? 0;
    if (!(total > warm)) throw new Error(`cosine decay needs total (${total}) > warmup (${warm})`);
    const p = Math.min(1, (step - warm) / (total - warm));
    const min = s.minLr ?? 0;
    return min + 0.5 * (s.lr - min) * (1 + Math.cos(Math.PI * p));
  }
  const cool = s.cooldown ?? 0;
  if (cool > 0) {
    const total = s.total ?? 0;
    if (!(total >= cool)) throw new Error(`a cooldown of ${cool} steps needs total (${total}) >= cooldown`);
    const start = total - cool;
    if (step >= start) {
      const min = s.minLr ?? 0;
      return min + (s.lr - min) * Math.max(0, (total - step) / cool);
    }
  }
  return s.lr;
}

/**
 * Scale gradients so their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_).
 * @returns the clipped gradients (new tensors; the inputs are disposed) and the norm before clipping.
 */
export function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): { grads: Map<string, tf.Tensor>; norm: number } {
  const sq = tf.tidy(() => tf.addN([...grads.values()].map((g) => g.square().sum())));
  const norm = Math.sqrt(sq.dataSync()[0]);
  sq.dispose();
  if (!(maxNorm > 0) || !Number.isFinite(norm) || norm <= maxNorm) return { grads, norm };
  const scale = maxNorm / (norm + 1e-6);
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) {
    out.set(k, g.mul(scale));
    g.dispose();
  }
  return { grads: out, norm };
}

/** Exponential moving average of parameters (kept as separate variables). */
export class Ema {
  readonly shadow = new Map<string, tf.Variable>();
  constructor(
    params: Map<string, tf.Variable>,
    readonly decay = 0.999,
  ) {
    for (const [k, p] of params)
      this.shadow.set(
        k,
        tf.tidy(() => tf.variable(p.clone(), false)),
      );
  }

  /**
   * shadow = d * shadow + (1 - d) * param, with d = min(decay, (1 + step) / (10 + step)) so early
   * averages are not dominated by the random init.
   */
  update(params: Map<string, tf.Variable>, step: number): void {
    const d = Math.min(this.decay, (1 + step) / (10 + step));
    tf.tidy(() => {
      for (const [k, p] of params) {
        const s = this.shadow.get(k)!;
        s.assign(s.mul(d).add(p.mul(1 - d)));
      }
    });
  }

  dispose(): void {
    for (const t of this.shadow.values()) t.dispose();
  }
}

/** Run `fn` with `params` temporarily holding `values` (e.g. EMA weights), then restore them. */
export function withWeights<T>(params: Map<string, tf.Variable>, values: Map<string, tf.Tensor>, fn: () => T): T {
  const saved = new Map<string, tf.Tensor>();
  for (const [k, p] of params) {
    const v = values.get(k);
    if (!v) continue;
    saved.set(k, p.clone());
    p.assign(v);
  }
  try {
    return fn();
  } finally {
    for (const [k, s] of saved) {
      params.get(k)!.assign(s);
      s.dispose();
    }
  }
}
