/**
 * Neural-net building blocks shared by the UNet, the CLIP towers and training.
 * Tensors are channels-last. These are the single implementations nets call; lib/fastgrad makes
 * their gradients fast on wasm without changing these signatures.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * GroupNorm over channels-last input, as torch.nn.GroupNorm.
 * @param x [N, H, W, C] (or [N, L, C])
 * @param gamma [C], beta [C]
 *
 * Statistics are taken in a [N, C, L] layout (one transpose each way) so every reduction runs over
 * the innermost axis, and the gradient is the closed form
 *   dx = rstd · (ĝ − mean_group(ĝ) − x̂ · mean_group(ĝ · x̂)),  ĝ = dy · γ,
 *   dγ = Σ dy · x̂,  dβ = Σ dy
 * (tfjs's taped moments gradient transposes for every non-innermost reduction: ~10x slower on wasm).
 */
export function groupNorm<T extends tf.Tensor>(x: T, groups: number, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): T {
  const shape = x.shape;
  const c = shape[shape.length - 1];
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels not divisible by ${groups} groups`);
  const n = shape[0];
  const l = x.size / (n * c);
  const cg = c / groups;
  const f = tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const xt = xi.reshape([n, l, c]).transpose([0, 2, 1]).reshape([n, groups, cg * l]);
    const mean = xt.mean(2, true);
    const xc = xt.sub(mean);
    const rstd = tf.rsqrt(xc.square().mean(2, true).add(eps)); // [N, G, 1]
    const xhat = xc.mul(rstd).reshape([n, c, l]);
    const y = xhat.mul(g.reshape([1, c, 1])).add(b.reshape([1, c, 1])).transpose([0, 2, 1]).reshape(shape);
    save([xhat, rstd, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs, gg] = saved;
        const dyt = dy.reshape([n, l, c]).transpose([0, 2, 1]); // [N, C, L]
        const dgamma = dyt.mul(xh).sum(2).sum(0);
        const dbeta = dyt.sum(2).sum(0);
        const gh = dyt.mul(gg.reshape([1, c, 1])).reshape([n, groups, cg * l]);
        const xhg = xh.reshape([n, groups, cg * l]);
        const m1 = gh.mean(2, true);
        const m2 = gh.mul(xhg).mean(2, true);
        const dx = gh.sub(m1).sub(xhg.mul(m2)).mul(rs).reshape([n, c, l]).transpose([0, 2, 1]).reshape(shape);
        return [dx, dgamma, dbeta];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, gamma, beta) as T;
}

/**
 * LayerNorm over the last axis, as torch.nn.LayerNorm.
 * @param x [..., C]; gamma/beta [C]
 */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return x.sub(mean).mul(tf.rsqrt(variance.add(eps))).mul(gamma).add(beta) as T;
  });
}

/** SiLU / swish: x * sigmoid(x). Gradient in closed form: dy · (s + y − y·s), s = sigmoid(x), y = x·s. */
export function silu<T extends tf.Tensor>(x: T): T {
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

/** CLIP's QuickGELU: x * sigmoid(1.702 x). */
export function quickGelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => x.mul(tf.sigmoid(x.mul(1.702))) as T);
}

/** Exact (erf) GELU, as torch.nn.GELU(). */
export function geluErf<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5) as T);
}

/**
 * Linear layer with weights in our layout.
 * @param x [..., in]; w [in, out] (PyTorch's [out, in] transposed at the loader); b [out]
 */
export function linear<T extends tf.Tensor>(x: T, w: tf.Tensor2D, b?: tf.Tensor1D): T {
  return tf.tidy(() => {
    const inDim = x.shape[x.shape.length - 1];
    const lead = x.shape.slice(0, -1);
    let y = tf.matMul(x.reshape([-1, inDim]) as tf.Tensor2D, w);
    if (b) y = y.add(b);
    return y.reshape([...lead, w.shape[1]]) as T;
  });
}

/**
 * Scaled dot-product attention.
 * @param q [B, heads, Lq, d]; k, v [B, heads, Lk, d]
 * @param mask optional additive mask broadcastable to [B, heads, Lq, Lk] (e.g. -inf above the diagonal)
 * @returns [B, heads, Lq, d]
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask?: tf.Tensor, scale?: number): tf.Tensor4D {
  return tf.tidy(() => {
    const d = q.shape[3];
    let w = tf.matMul(q, k, false, true).mul(scale ?? 1 / Math.sqrt(d));
    if (mask) w = w.add(mask);
    return tf.matMul(tf.softmax(w as tf.Tensor4D, -1), v) as tf.Tensor4D;
  });
}
