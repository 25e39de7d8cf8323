/**
 * `DiffguideGroupNorm` (wasm): the forward GroupNorm (+ per-sample scale-shift, + SiLU) of
 * lib/ops/nn.ts as one call into our SIMD module (groupnorm-wat.ts) instead of ~17 tfjs kernels:
 * measured 0.5 -> 0.03-0.17 ms per norm at batch 1 (the UNet has ~25 per step: its batch-1 forward
 * ~25 -> ~21 ms). No gradient: used only when no tape is recording.
 */
import * as tf from '@tensorflow/tfjs';
import type { Info, WasmBackend } from './wasm.js';
import { addr, simdKernels } from './simd.js';

export const GROUP_NORM_KERNEL = 'DiffguideGroupNorm';

export interface GroupNormAttrs {
  groups: number;
  eps: number;
  silu: boolean;
}

/**
 * Largest input (elements, exclusive) for the fused kernel. It runs on one thread; from 2^18 on,
 * tfjs's kernels (XNNPACK's sigmoid, threaded) were as fast (measured with 2 threads: [4, 32, 32, 32]
 * 0.89 -> 0.57 ms, [16, 32, 32, 32] 2.24 vs 2.26 ms).
 */
export const FUSED_GROUP_NORM_MAX = 2 ** 18;

/** Whether the fused kernel serves x [N, ..., C] here (wasm, float32, C % 4 == 0, not too large, the module loaded). */
export function fusedGroupNormApplies(x: tf.Tensor): boolean {
  if (tf.getBackend() !== 'wasm' || x.dtype !== 'float32' || process.env.DIFFGUIDE_SIMD_GROUPNORM === '0') return false;
  if (x.shape[x.rank - 1] % 4 !== 0 || x.size === 0 || x.size >= FUSED_GROUP_NORM_MAX) return false;
  return simdKernels(tf.backend() as unknown as WasmBackend) !== null;
}

/** inputs: x [N, ..., C], gamma [C], beta [C], optional scale1 and shift [N, C]. */
export function groupNormKernel({
  inputs,
  backend,
  attrs,
}: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs: GroupNormAttrs;
}): Info {
  const be = backend as WasmBackend;
  const k = simdKernels(be);
  if (!k) throw new Error(`${GROUP_NORM_KERNEL}: our SIMD module is unavailable on this backend`);
  const { x, gamma, beta, scale1, shift } = inputs;
  const n = x.shape[0];
  const c = x.shape[x.shape.length - 1];
  const l = tf.util.sizeFromShape(x.shape) / (n * c);
  const out = be.makeOutput(x.shape, 'float32');
  const tmp = be.makeOutput([3 * c], 'float32');
  try {
    k.groupNorm(
      addr(be, x),
      addr(be, out),
      addr(be, gamma),
      addr(be, beta),
      scale1 ? addr(be, scale1) : 0,
      shift ? addr(be, shift) : 0,
      addr(be, tmp),
      n,
      l,
      c,
      attrs.groups,
      attrs.eps,
      attrs.silu ? 1 : 0,
    );
  } finally {
    be.disposeData(tmp.dataId);
  }
  return out;
}
