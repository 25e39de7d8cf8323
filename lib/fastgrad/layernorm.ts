/**
 * LayerNorm over the innermost axis on wasm as one call into our SIMD module (layernorm-wat.ts):
 * `DiffguideLayerNorm` (forward; with `stats: true` it also returns the per-row mean and 1/std
 * [R, 2] that the gradient needs) and `DiffguideLayerNormGrad` (dx, dγ, dβ). `layerNormFused` wraps
 * them as an op with its gradient (lib/ops/nn.ts `layerNorm` uses it where `fusedLayerNormApplies`):
 * ~6 + ~12 tfjs kernels per norm become 1 + 1 (CLIP's towers have two per block).
 */
import * as tf from '@tensorflow/tfjs';
import type { Info, WasmBackend } from './wasm.js';
import { addr, simdKernels } from './simd.js';

export const LAYER_NORM_KERNEL = 'DiffguideLayerNorm';
export const LAYER_NORM_GRAD_KERNEL = 'DiffguideLayerNormGrad';

/** Whether the fused kernels serve x [..., C] here (wasm, float32, C % 4 == 0, the module loaded; `DIFFGUIDE_SIMD_LAYERNORM=0` turns them off). */
export function fusedLayerNormApplies(x: tf.Tensor): boolean {
  if (tf.getBackend() !== 'wasm' || x.dtype !== 'float32' || process.env.DIFFGUIDE_SIMD_LAYERNORM === '0') return false;
  if (x.rank < 1 || x.shape[x.rank - 1] % 4 !== 0 || x.size === 0) return false;
  return simdKernels(tf.backend() as unknown as WasmBackend) !== null;
}

type Args = { inputs: Record<string, Info>; backend: unknown; attrs: { eps: number; stats: boolean } };

/** inputs: x [..., C], gamma, beta [C]; outputs [y] or, with attrs.stats, [y, stats [R, 2]]. */
export function layerNormKernel({ inputs, backend, attrs }: Args): Info | Info[] {
  const be = backend as WasmBackend;
  const k = simdKernels(be);
  if (!k) throw new Error(`${LAYER_NORM_KERNEL}: our SIMD module is unavailable on this backend`);
  const { x, gamma, beta } = inputs;
  const c = x.shape[x.shape.length - 1];
  const r = tf.util.sizeFromShape(x.shape) / c;
  const y = be.makeOutput(x.shape, 'float32');
  const stats = attrs.stats ? be.makeOutput([r, 2], 'float32') : null;
  k.layerNorm(addr(be, x), addr(be, y), addr(be, gamma), addr(be, beta), stats ? addr(be, stats) : 0, r, c, attrs.eps);
  return stats ? [y, stats] : y;
}

/** inputs: dy, x [..., C], stats [R, 2], gamma [C]; outputs [dx, dgamma, dbeta]. */
export function layerNormGradKernel({ inputs, backend }: Args): Info[] {
  const be = backend as WasmBackend;
  const k = simdKernels(be);
  if (!k) throw new Error(`${LAYER_NORM_GRAD_KERNEL}: our SIMD module is unavailable on this backend`);
  const { dy, x, stats, gamma } = inputs;
  const c = x.shape[x.shape.length - 1];
  const r = tf.util.sizeFromShape(x.shape) / c;
  const dx = be.makeOutput(x.shape, 'float32');
  const dgamma = be.makeOutput([c], 'float32');
  const dbeta = be.makeOutput([c], 'float32');
  k.layerNormGrad(
    addr(be, x),
    addr(be, dy),
    addr(be, stats),
    addr(be, gamma),
    addr(be, dx),
    addr(be, dgamma),
    addr(be, dbeta),
    r,
    c,
  );
  return [dx, dgamma, dbeta];
}

/**
 * LayerNorm over the last axis with its gradient (check `fusedLayerNormApplies(x)` first); without a
 * tape the forward alone runs.
 * @param x [..., C]; gamma, beta [C]
 */
export function layerNormFused<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
  taped: boolean,
): T {
  if (!taped)
    return tf.engine().runKernel(LAYER_NORM_KERNEL, { x, gamma, beta }, {
      eps,
      stats: false,
    } as unknown as tf.NamedAttrMap) as T;
  const f = tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, stats] = tf.engine().runKernel(LAYER_NORM_KERNEL, { x: xi, gamma: g, beta: b }, {
      eps,
      stats: true,
    } as unknown as tf.NamedAttrMap) as tf.Tensor[];
    save([xi, stats, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, [xs, st, gs]: tf.Tensor[]) =>
        tf.engine().runKernel(LAYER_NORM_GRAD_KERNEL, { dy, x: xs, stats: st, gamma: gs }, {
          eps,
          stats: false,
        } as unknown as tf.NamedAttrMap) as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, gamma, beta) as T;
}
