/**
 * `DiffguideGroupNorm` (wasm): the forward GroupNorm (+ per-sample scale-shift, + SiLU) of
 * lib/ops/nn.ts as one call into our SIMD module (groupnorm-wat.ts) instead of ~17 tfjs kernels:
 * measured 0.5 -> 0.03-0.17 ms per norm at batch 1 (the UNet has ~25 per step: its batch-1 forward
 * ~25 -> ~21 ms). No gradient: used only when no tape is recording.
 *
 * Under a tape, `groupNormFused` (the UNet's norm + scale-shift + SiLU) is two calls instead of ~45
 * tfjs kernels: `DiffguideGroupNormTaped` (the same forward, also returning the per-channel group
 * mean and 1/std [N, 2, C]) and, in its custom gradient, `DiffguideGroupNormGrad` (dx, dγ, dβ,
 * d scale1, d shift in two passes per sample).
 */
import * as tf from '@tensorflow/tfjs';
import type { Info, WasmBackend } from './wasm.js';
import { addr, simdKernels } from './simd.js';

export const GROUP_NORM_KERNEL = 'DiffguideGroupNorm';
export const GROUP_NORM_TAPED_KERNEL = 'DiffguideGroupNormTaped';
export const GROUP_NORM_GRAD_KERNEL = 'DiffguideGroupNormGrad';

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
  return x.size < FUSED_GROUP_NORM_MAX && fusedGroupNormTapedApplies(x);
}

/** Whether the taped pair serves x [N, ..., C] here (as `fusedGroupNormApplies`, at any size: the tfjs ops it replaces make ~45 passes). */
export function fusedGroupNormTapedApplies(x: tf.Tensor): boolean {
  if (tf.getBackend() !== 'wasm' || x.dtype !== 'float32' || process.env.DIFFGUIDE_SIMD_GROUPNORM === '0') return false;
  if (x.shape[x.rank - 1] % 4 !== 0 || x.size === 0) return false;
  return simdKernels(tf.backend() as unknown as WasmBackend) !== null;
}

/** inputs: x [N, ..., C], gamma [C], beta [C], optional scale1 and shift [N, C]. */
export function groupNormKernel(args: { inputs: Record<string, Info>; backend: unknown; attrs: GroupNormAttrs }): Info {
  return runGroupNorm(args, false)[0];
}

/** As `groupNormKernel`, also returning the per-channel group mean and 1/std [N, 2, C] for the gradient. */
export function groupNormTapedKernel(args: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs: GroupNormAttrs;
}): Info[] {
  return runGroupNorm(args, true);
}

/**
 * Our SIMD kernels on `backend` (an error naming `kernel` where the module is unavailable) and the
 * geometry of x [N, ..., C] as [N, L, C].
 */
function simdGeometry(backend: unknown, kernel: string, x: Info) {
  const be = backend as WasmBackend;
  const k = simdKernels(be);
  if (!k) throw new Error(`${kernel}: our SIMD module is unavailable on this backend`);
  const n = x.shape[0];
  const c = x.shape[x.shape.length - 1];
  return { be, k, n, l: tf.util.sizeFromShape(x.shape) / (n * c), c };
}

/** Runs `f` with the address of a scratch buffer of `floats` float32 values, freed afterwards. */
function withScratch(be: WasmBackend, floats: number, f: (tmp: number) => void): void {
  const tmp = be.makeOutput([floats], 'float32');
  try {
    f(addr(be, tmp));
  } finally {
    be.disposeData(tmp.dataId);
  }
}

function runGroupNorm(
  {
    inputs,
    backend,
    attrs,
  }: {
    inputs: Record<string, Info>;
    backend: unknown;
    attrs: GroupNormAttrs;
  },
  withStats: boolean,
): Info[] {
  const { be, k, n, l, c } = simdGeometry(backend, GROUP_NORM_KERNEL, inputs.x);
  const { x, gamma, beta, scale1, shift } = inputs;
  const out = be.makeOutput(x.shape, 'float32');
  const stats = withStats ? be.makeOutput([n, 2, c], 'float32') : null;
  withScratch(be, 3 * c, (tmp) =>
    k.groupNorm(
      addr(be, x),
      addr(be, out),
      addr(be, gamma),
      addr(be, beta),
      scale1 ? addr(be, scale1) : 0,
      shift ? addr(be, shift) : 0,
      tmp,
      n,
      l,
      c,
      attrs.groups,
      attrs.eps,
      attrs.silu ? 1 : 0,
      stats ? addr(be, stats) : 0,
    ),
  );
  return stats ? [out, stats] : [out];
}

/**
 * inputs: dy and x [N, ..., C], stats [N, 2, C] (from the taped kernel), gamma, beta [C], optional
 * scale1 and shift [N, C]; outputs [dx, dgamma, dbeta] (+ [dscale1, dshift] with a scale-shift).
 */
export function groupNormGradKernel({
  inputs,
  backend,
  attrs,
}: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs: GroupNormAttrs;
}): Info[] {
  const { be, k, n, l, c } = simdGeometry(backend, GROUP_NORM_GRAD_KERNEL, inputs.x);
  const { dy, x, stats, gamma, beta, scale1, shift } = inputs;
  const ss = !!(scale1 && shift);
  const dx = be.makeOutput(x.shape, 'float32');
  const dgamma = be.makeOutput([c], 'float32');
  const dbeta = be.makeOutput([c], 'float32');
  const ds1 = ss ? be.makeOutput([n, c], 'float32') : null;
  const dsh = ss ? be.makeOutput([n, c], 'float32') : null;
  withScratch(be, 2 * c, (tmp) =>
    k.groupNormGrad(
      addr(be, x),
      addr(be, dy),
      addr(be, stats),
      addr(be, gamma),
      addr(be, beta),
      ss ? addr(be, scale1) : 0,
      ss ? addr(be, shift) : 0,
      addr(be, dx),
      addr(be, dgamma),
      addr(be, dbeta),
      ds1 ? addr(be, ds1) : 0,
      dsh ? addr(be, dsh) : 0,
      tmp,
      n,
      l,
      c,
      attrs.groups,
      attrs.silu ? 1 : 0,
    ),
  );
  return ds1 && dsh ? [dx, dgamma, dbeta, ds1, dsh] : [dx, dgamma, dbeta];
}

/**
 * GroupNorm (+ scale-shift y · scale1 + shift, + SiLU) with its gradient, on wasm as two calls into
 * our SIMD module (see the file comment). Check `fusedGroupNormTapedApplies(x)` first.
 * @param x [N, ..., C]; gamma, beta [C]; scale1, shift [N, C] (both or neither)
 */
export function groupNormFused<T extends tf.Tensor>(
  x: T,
  groups: number,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
  silu: boolean,
  scale1?: tf.Tensor2D,
  shift?: tf.Tensor2D,
): T {
  const attrs = { groups, eps, silu } as unknown as tf.NamedAttrMap;
  const ss = !!(scale1 && shift);
  const grad = (dy: tf.Tensor, saved: tf.Tensor[]) => {
    const [xs, stats, g, b, s1, sh] = saved;
    const inputs: tf.NamedTensorMap = { dy, x: xs, stats, gamma: g, beta: b };
    if (ss) Object.assign(inputs, { scale1: s1, shift: sh });
    return tf.engine().runKernel(GROUP_NORM_GRAD_KERNEL, inputs, attrs) as tf.Tensor[];
  };
  const forward = (
    xi: tf.Tensor,
    g: tf.Tensor,
    b: tf.Tensor,
    s1: tf.Tensor | null,
    sh: tf.Tensor | null,
    save: tf.GradSaveFunc,
  ) => {
    const inputs: tf.NamedTensorMap = { x: xi, gamma: g, beta: b };
    if (s1 && sh) Object.assign(inputs, { scale1: s1, shift: sh });
    const [y, stats] = tf.engine().runKernel(GROUP_NORM_TAPED_KERNEL, inputs, attrs) as tf.Tensor[];
    save(s1 && sh ? [xi, stats, g, b, s1, sh] : [xi, stats, g, b]);
    return { value: y, gradFunc: grad };
  };
  const f = ss
    ? tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, s1: tf.Tensor, sh: tf.Tensor, save: tf.GradSaveFunc) =>
        forward(xi, g, b, s1, sh, save)) as unknown as Parameters<typeof tf.customGrad>[0])
    : tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) =>
        forward(xi, g, b, null, null, save)) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (ss ? f(x, gamma, beta, scale1!, shift!) : f(x, gamma, beta)) as T;
}
