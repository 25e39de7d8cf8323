/**
 * Neural-net building blocks shared by the UNet, the CLIP towers and training.
 * Tensors are channels-last. These are the single implementations nets call; lib/fastgrad makes
 * their gradients fast on wasm without changing these signatures.
 */
import * as tf from '@tensorflow/tfjs';
import { recordingGradients } from './tape.js';
import {
  GROUP_NORM_KERNEL,
  fusedGroupNormApplies,
  fusedGroupNormTapedApplies,
  groupNormFused,
} from '../fastgrad/groupnorm.js';
import { fusedLayerNormApplies, layerNormFused } from '../fastgrad/layernorm.js';
import { fusedSwishApplies, swishFused } from '../fastgrad/swish.js';

export interface GroupNormOptions {
  /** Per-sample scale-shift after the norm, y = norm(x) · scale1 + shift (guided-diffusion's scale-shift norm, scale1 = 1 + scale): [N, C] each. */
  scale1?: tf.Tensor2D;
  shift?: tf.Tensor2D;
  /** SiLU after the norm (and the scale-shift). */
  silu?: boolean;
  /**
   * Forward-only path: a cache of block-diagonal group-averaging matrices [C, C] by channel count
   * (one product gives the group means already broadcast per channel). Matrices are kept (`tf.keep`) so
   * one cache can serve nested tidy scopes; its owner disposes them (the UNet keeps one per forward).
   * Without it the group means are reduced and tiled.
   */
  groupAverager?: Map<number, tf.Tensor2D>;
}

/**
 * GroupNorm over channels-last input, as torch.nn.GroupNorm (then optionally a per-sample
 * scale-shift and SiLU, `opts`).
 * @param x [N, H, W, C] (or [N, L, C])
 * @param gamma [C], beta [C]
 *
 * Everything stays channels-last: means over positions are a global average pool (XNNPACK's NHWC
 * pooling on wasm; a Mean over a non-innermost axis transposes first, ~10x slower for [1, 1024, 32])
 * and group sums reduce the innermost axis of [N, G, C/G], so no activation is transposed. The
 * forward is two-pass (mean, then centred squares) for torch-level precision; per (n, c) it is one
 * affine map y = xc · a + b, into which the scale-shift folds.
 * Under a gradient tape the norm has a closed-form gradient,
 *   dx = rstd · (ĝ − mean_group(ĝ) − x̂ · mean_group(ĝ · x̂)),  ĝ = dy · γ,
 * which with the position means of dy and dy · xc is again affine per (n, c): dy · a + xc · b + c0;
 * the scale-shift and SiLU are then separate ops. Without a tape, one folded forward (~17 kernels
 * instead of ~28 for the UNet's norm + scale-shift + SiLU), on wasm one call into our SIMD module.
 */
export function groupNorm<T extends tf.Tensor>(
  x: T,
  groups: number,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
  opts: GroupNormOptions = {},
): T {
  const shape = x.shape;
  const c = shape[shape.length - 1];
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels not divisible by ${groups} groups`);
  const g = new GroupGeometry(x, groups);
  const { scale1, shift } = opts;
  if (!recordingGradients()) {
    if (fusedGroupNormApplies(x)) {
      const inputs: tf.NamedTensorMap = { x, gamma, beta };
      if (scale1 && shift) Object.assign(inputs, { scale1, shift });
      return tf
        .engine()
        .runKernel(GROUP_NORM_KERNEL, inputs, { groups, eps, silu: !!opts.silu } as unknown as tf.NamedAttrMap) as T;
    }
    const x3 = x.reshape([g.n, g.l, c]);
    const xc = x3.sub(g.groupMean(x3, opts.groupAverager).reshape([g.n, 1, c]));
    let a: tf.Tensor = tf.rsqrt(g.groupMean(xc.square(), opts.groupAverager).add(eps)).mul(gamma); // [N, C]
    let b: tf.Tensor = beta;
    if (scale1 && shift) {
      a = a.mul(scale1);
      b = beta.mul(scale1).add(shift);
    }
    let y = xc.mul(a.reshape([g.n, 1, c])).add(b.rank === 1 ? b : b.reshape([g.n, 1, c]));
    if (opts.silu) y = y.mul(tf.sigmoid(y));
    return y.reshape(shape) as T;
  }
  // wasm: norm, scale-shift, SiLU and their gradient as one call each (lib/fastgrad/groupnorm.ts)
  if (fusedGroupNormTapedApplies(x)) return groupNormFused(x, groups, gamma, beta, eps, !!opts.silu, scale1, shift);
  let y: tf.Tensor = groupNormTaped(x, g, gamma, beta, eps);
  if (scale1 && shift)
    y = y
      .reshape([g.n, g.l, c])
      .mul(scale1.reshape([g.n, 1, c]))
      .add(shift.reshape([g.n, 1, c]))
      .reshape(shape);
  return (opts.silu ? silu(y) : y) as T;
}

/** The reductions GroupNorm needs on x [N, ..., C] viewed as [N, L, C]. */
class GroupGeometry {
  readonly n: number;
  readonly c: number;
  readonly l: number;
  readonly cg: number;
  constructor(
    x: tf.Tensor,
    readonly groups: number,
  ) {
    this.n = x.shape[0];
    this.c = x.shape[x.shape.length - 1];
    this.l = x.size / (this.n * this.c);
    this.cg = this.c / groups;
  }

  /** Mean over positions: [N, L, C] -> [N, C] (pooling pays off from ~32K elements; measured on wasm). */
  meanL(t: tf.Tensor): tf.Tensor {
    const { n, l, c } = this;
    if (n * l * c < 32768) return t.reshape([n, l, c]).mean(1);
    // the AvgPool kernel itself: the op wrapper adds a float32 Cast (a kernel) per call
    const pooled = tf
      .engine()
      .runKernel(
        'AvgPool',
        { x: t.reshape([n, l, 1, c]) },
        { filterSize: [l, 1], strides: [1, 1], pad: 'valid' },
      ) as tf.Tensor;
    return pooled.reshape([n, c]);
  }

  /** Mean over each group's channels: [N, C] -> [N, G]. */
  meanG(t: tf.Tensor): tf.Tensor {
    return t.reshape([this.n, this.groups, this.cg]).mean(2);
  }

  /** A per-group value [N, G] as per-channel [N, 1, C]. */
  toC(t: tf.Tensor): tf.Tensor {
    const { n, groups, cg, c } = this;
    return tf.broadcastTo(t.reshape([n, groups, 1]), [n, groups, cg]).reshape([n, 1, c]);
  }

  /** Mean over positions and group channels, per channel: [N, L, C] -> [N, C]. */
  groupMean(t: tf.Tensor, averagers?: Map<number, tf.Tensor2D>): tf.Tensor {
    const m = this.meanL(t);
    if (this.cg === 1) return m;
    if (!averagers) return this.toC(this.meanG(m)).reshape([this.n, this.c]);
    let p = averagers.get(this.c);
    if (!p) {
      const { c, cg } = this;
      const v = new Float32Array(c * c);
      for (let i = 0; i < c; i++)
        for (let j = 0; j < c; j++) if (Math.floor(i / cg) === Math.floor(j / cg)) v[i * c + j] = 1 / cg;
      p = tf.keep(tf.tensor2d(v, [c, c]));
      averagers.set(c, p);
    }
    return tf.matMul(m, p);
  }
}

/** GroupNorm with its closed-form gradient (see `groupNorm`). */
function groupNormTaped(
  x: tf.Tensor,
  geo: GroupGeometry,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): tf.Tensor {
  const shape = x.shape;
  const { n, l, c } = geo;
  const f = tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const x3 = xi.reshape([n, l, c]);
    const xc = x3.sub(geo.toC(geo.meanG(geo.meanL(x3))));
    const rstdG = tf.rsqrt(geo.meanG(geo.meanL(xc.square())).add(eps)); // [N, G]
    const rstdC = geo.toC(rstdG);
    const y = xc.mul(rstdC.mul(g)).add(b).reshape(shape);
    save([xc, rstdG, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xcs, rs, gg] = saved;
        const dy3 = dy.reshape([n, l, c]);
        const s1 = geo.meanL(dy3); // Σ_L dy / L        [N, C]
        const s2 = geo.meanL(dy3.mul(xcs)); // Σ_L dy · xc / L
        const rsC = geo.toC(rs); // [N, 1, C]
        const dgamma = s2
          .mul(rsC.reshape([n, c]))
          .sum(0)
          .mul(l);
        const dbeta = s1.sum(0).mul(l);
        const m1 = geo.meanG(s1.mul(gg)); // mean_group(ĝ)       [N, G]
        const m2 = geo.meanG(s2.mul(gg)).mul(rs); // mean_group(ĝ · x̂)  [N, G]
        const a = rsC.mul(gg); // [N, 1, C]
        const bC = geo.toC(rs.square().mul(m2).neg());
        const c0 = geo.toC(rs.mul(m1).neg());
        const dx = dy3.mul(a).add(xcs.mul(bC)).add(c0).reshape(shape);
        return [dx, dgamma, dbeta];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, gamma, beta);
}

/**
 * LayerNorm over the last axis, as torch.nn.LayerNorm.
 * @param x [..., C]; gamma/beta [C]
 *
 * Gradient in closed form (autodiff of the forward makes ~20 small kernels, each Mul gradient
 * copying its other operand through a float32 Cast):
 *   dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)),  ĝ = dy · γ (means over the last axis),
 *   dγ = Σ dy · x̂,  dβ = Σ dy (sums over the leading axes).
 */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): T {
  // wasm: forward and gradient as one call each (lib/fastgrad/layernorm.ts)
  if (fusedLayerNormApplies(x)) return layerNormFused(x, gamma, beta, eps, recordingGradients());
  const shape = x.shape;
  const c = shape[shape.length - 1];
  const f = tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const xc = xi.sub(xi.mean(-1, true));
    const rstd = tf.rsqrt(xc.square().mean(-1, true).add(eps));
    const xhat = xc.mul(rstd);
    save([xhat, rstd, g]);
    return {
      value: xhat.mul(g).add(b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs, gg] = saved;
        const gh = dy.mul(gg);
        const dx = gh
          .sub(gh.mean(-1, true))
          .sub(xh.mul(gh.mul(xh).mean(-1, true)))
          .mul(rs);
        const rows = dy.reshape([-1, c]);
        return [dx, rows.mul(xh.reshape([-1, c])).sum(0), rows.sum(0)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, gamma, beta) as T;
}

/** SiLU / swish: x * sigmoid(x). Gradient in closed form: dy · (s + y − y·s), s = sigmoid(x), y = x·s. */
export function silu<T extends tf.Tensor>(x: T): T {
  const taped = recordingGradients();
  if (fusedSwishApplies(x, taped)) return swishFused(x, 1, taped); // wasm: one call each way (lib/fastgrad/swish.ts)
  return siluGrad(x) as T;
}

const siluGrad = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const s = tf.sigmoid(x);
  const y = x.mul(s);
  save([s, y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [sg, yv]: tf.Tensor[]) => dy.mul(yv.sub(yv.mul(sg)).add(sg)),
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]);

/** CLIP's QuickGELU: x * sigmoid(1.702 x). Gradient in closed form: dy · (s + 1.702 (y − y·s)), s = sigmoid(1.702 x), y = x·s. */
export function quickGelu<T extends tf.Tensor>(x: T): T {
  const taped = recordingGradients();
  if (fusedSwishApplies(x, taped)) return swishFused(x, 1.702, taped);
  return quickGeluGrad(x) as T;
}

const quickGeluGrad = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const s = tf.sigmoid(x.mul(1.702));
  const y = x.mul(s);
  save([s, y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [sg, yv]: tf.Tensor[]) => dy.mul(yv.sub(yv.mul(sg)).mul(1.702).add(sg)),
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]);

/** Exact (erf) GELU, as torch.nn.GELU(). */
export function geluErf<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5) as T);
}

/**
 * Whether `b` can ride in a fused product: rank 1, and on wasm also stored as rank 1 (its kernel reads
 * the shape of the underlying buffer, so a bias reshaped from [1, 1, C] would be refused).
 */
export function fusableBias(b: tf.Tensor): boolean {
  if (b.rank !== 1) return false;
  const store = (tf.backend() as unknown as { dataIdMap?: { get(id: object): { shape?: number[] } | undefined } })
    .dataIdMap;
  const rec = store?.get(b.dataId);
  return !rec?.shape || rec.shape.length === 1;
}

/**
 * Whether, under a tape, a product or convolution with bias `b` runs as the fused kernel itself
 * (wasm: lib/fastgrad/index.ts gives FusedConv2D and _FusedMatMul their gradients): one kernel and one
 * tape node instead of the product, an Add and the Add's gradient. `DIFFGUIDE_TAPED_BIAS=0` turns it off.
 */
export function biasKernelUnderTape(b: tf.Tensor): boolean {
  return tf.getBackend() === 'wasm' && process.env.DIFFGUIDE_TAPED_BIAS !== '0' && fusableBias(b);
}

/** x [M, K] · w [K, N] + b [N] as tfjs's _FusedMatMul kernel (taped through its registered gradient). */
function fusedMatMulUnderTape(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  const [m, k] = x.shape;
  const n = w.shape[1];
  const y = tf.engine().runKernel('_FusedMatMul', { a: x.reshape([1, m, k]), b: w.reshape([1, k, n]), bias: b }, {
    transposeA: false,
    transposeB: false,
    activation: 'linear',
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
  return y.reshape([m, n]);
}

/**
 * Linear layer with weights in our layout: the leading axes fold into the rows of one 2D product.
 * @param x [..., in]; w [in, out] (PyTorch's [out, in] transposed at the loader); b [out]
 */
export function linear<T extends tf.Tensor>(x: T, w: tf.Tensor2D, b?: tf.Tensor1D): T {
  return tf.tidy(() => {
    const inDim = x.shape[x.shape.length - 1];
    const lead = x.shape.slice(0, -1);
    const x2 = x.reshape([-1, inDim]) as tf.Tensor2D;
    // Outside gradient recording the bias rides in the product (one XNNPACK fully-connected call on
    // wasm, its packed weights cached on the weight tensor's id, instead of a product plus an add).
    let y: tf.Tensor;
    if (!b) y = tf.matMul(x2, w);
    else if (!recordingGradients() && fusableBias(b)) y = tf.fused.matMul({ a: x2, b: w, bias: b });
    else if (biasKernelUnderTape(b)) y = fusedMatMulUnderTape(x2, w, b);
    else y = tf.matMul(x2, w).add(b);
    return y.reshape([...lead, w.shape[1]]) as T;
  });
}

/**
 * Scaled dot-product attention.
 * @param q [B, heads, Lq, d]; k, v [B, heads, Lk, d]
 * @param mask optional additive mask broadcastable to [B, heads, Lq, Lk] (e.g. -inf above the diagonal)
 * @returns [B, heads, Lq, d]
 */
export function attention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  mask?: tf.Tensor,
  scale?: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const d = q.shape[3];
    let w = tf.matMul(q, k, false, true).mul(scale ?? 1 / Math.sqrt(d));
    if (mask) w = w.add(mask);
    return tf.matMul(tf.softmax(w as tf.Tensor4D, -1), v) as tf.Tensor4D;
  });
}

/**
 * Scaled dot-product attention with the keys given transposed, as multi-head attention produces
 * them straight from the projections (one transpose per operand, no transposed product; the
 * reference scales q before the product, so do we).
 * @param q [B, heads, Lq, d]; kT [B, heads, d, Lk]; v [B, heads, Lk, d]
 * @param mask optional additive mask broadcastable to [B, heads, Lq, Lk]
 * @returns [B, heads, Lq, d]
 */
export function attentionKT(
  q: tf.Tensor4D,
  kT: tf.Tensor4D,
  v: tf.Tensor4D,
  mask?: tf.Tensor,
  scale?: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const d = q.shape[3];
    let w: tf.Tensor = tf.matMul(q.mul(scale ?? 1 / Math.sqrt(d)), kT);
    if (mask) w = w.add(mask);
    return tf.matMul(tf.softmax(w as tf.Tensor4D, -1), v) as tf.Tensor4D;
  });
}
