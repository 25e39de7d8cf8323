/**
 * x · sigmoid(α x) on wasm (SiLU α = 1, QuickGELU α = 1.702) as one call into our SIMD module
 * (swish-wat.ts): `DiffguideSwish` forward, `DiffguideSwishGrad` its gradient (from x). `swishFused`
 * wraps them as an op with its gradient; lib/ops/nn.ts `silu` / `quickGelu` use it where
 * `fusedSwishApplies`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Info, WasmBackend } from './wasm.js';
import { addr, simdKernels } from './simd.js';

export const SWISH_KERNEL = 'DiffguideSwish';
export const SWISH_GRAD_KERNEL = 'DiffguideSwishGrad';

/**
 * Largest input (elements, exclusive) for the forward without a tape: it runs on one thread, and
 * tfjs's threaded Sigmoid + Multiply keep up from there (as FUSED_GROUP_NORM_MAX). Under a tape
 * there is no limit (the gradient it replaces is 4 kernels).
 */
export const FUSED_SWISH_FORWARD_MAX = 2 ** 18;

/** Whether the fused kernels serve x here (wasm, float32, size % 4 == 0, the module loaded; `DIFFGUIDE_SIMD_SWISH=0` turns them off). */
export function fusedSwishApplies(x: tf.Tensor, taped: boolean): boolean {
  if (tf.getBackend() !== 'wasm' || x.dtype !== 'float32' || process.env.DIFFGUIDE_SIMD_SWISH === '0') return false;
  if (x.size === 0 || x.size % 4 !== 0 || (!taped && x.size >= FUSED_SWISH_FORWARD_MAX)) return false;
  return simdKernels(tf.backend() as unknown as WasmBackend) !== null;
}

type Args = { inputs: Record<string, Info>; backend: unknown; attrs: { alpha: number } };

export function swishKernel({ inputs: { x }, backend, attrs }: Args): Info {
  const be = backend as WasmBackend;
  const k = simdKernels(be);
  if (!k) throw new Error(`${SWISH_KERNEL}: our SIMD module is unavailable on this backend`);
  const y = be.makeOutput(x.shape, 'float32');
  k.swish(addr(be, x), addr(be, y), tf.util.sizeFromShape(x.shape), attrs.alpha);
  return y;
}

export function swishGradKernel({ inputs: { x, dy }, backend, attrs }: Args): Info {
  const be = backend as WasmBackend;
  const k = simdKernels(be);
  if (!k) throw new Error(`${SWISH_GRAD_KERNEL}: our SIMD module is unavailable on this backend`);
  const dx = be.makeOutput(x.shape, 'float32');
  k.swishGrad(addr(be, x), addr(be, dy), addr(be, dx), tf.util.sizeFromShape(x.shape), attrs.alpha);
  return dx;
}

/** x · sigmoid(α x) with its gradient (check `fusedSwishApplies` first). */
export function swishFused<T extends tf.Tensor>(x: T, alpha: number, taped: boolean): T {
  const attrs = { alpha } as unknown as tf.NamedAttrMap;
  if (!taped) return tf.engine().runKernel(SWISH_KERNEL, { x }, attrs) as T;
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi]);
    return {
      value: tf.engine().runKernel(SWISH_KERNEL, { x: xi }, attrs) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) =>
        tf.engine().runKernel(SWISH_GRAD_KERNEL, { x: xs, dy }, attrs) as tf.Tensor,
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}
