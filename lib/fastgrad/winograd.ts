/**
 * 3x3 stride-1 convolutions on wasm by Winograd F(2x2, 3x3) (Lavin & Gray 2016): 2.25x fewer
 * multiply-adds than direct convolution, which is what XNNPACK runs for Conv2D.
 *
 * Each 2x2 output tile is Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A over the 4x4 input window d. Summed over
 * input channels, the 16 element-wise products become 16 independent GEMMs
 * M[p] = V[p] · U[p]  ([T, Cin] · [Cin, Cout], T = tiles), run by XNNPACK (threaded, packed weights
 * cached per plane); the transforms (input V, filter U, output with bias and ReLU) are SIMD loops
 * in our SIMD module (winograd-wat.ts, simd.ts) that works in place on tfjs's own wasm memory.
 * The filter transform of a weight buffer is kept until that buffer is disposed (`derived`), so
 * inference pays it once. Numerically, F(2x2, 3x3) adds a few float32 roundings per output
 * (relative error ~1e-6 against direct convolution; tested at 1e-5).
 *
 * Used for Conv2D and FusedConv2D (bias, linear or ReLU) in NHWC with 3x3 filters, stride 1,
 * dilation 1, channel counts that are multiples of 4 and enough tiles to pay for the transforms;
 * everything else goes to the stock kernels. `DIFFGUIDE_WINOGRAD=0` turns it off (A/B, debugging).
 */
import * as tf from '@tensorflow/tfjs';
import { Scratch, captureOriginal, derived, releaseView, view, type Derived, type Info, type WasmBackend } from './wasm.js';
import { idOf, product } from './matmul.js';
import { addr, simdKernels } from './simd.js';

/** Whether Winograd convolutions are available on this wasm backend (for `diffguide info` and tests). */
export function winogradEnabled(backend: WasmBackend): boolean {
  return process.env.DIFFGUIDE_WINOGRAD !== '0' && simdKernels(backend) !== null;
}

/**
 * Fewest 2x2 output tiles for which the transforms pay off. Measured per conv (1 thread): 16 tiles
 * of 64->64 channels 1.09x, 64 tiles 1.6x; 32->32 channels break even at 64 tiles.
 */
export const WINOGRAD_MIN_TILES = 64;

/** Whether a conv of this geometry goes through Winograd on this backend. */
export function winogradApplies(backend: WasmBackend, xShape: number[], filterShape: number[], sh: number, sw: number, dh: number, dw: number, outH: number, outW: number): boolean {
  const [kh, kw, cin, cout] = filterShape;
  if (kh !== 3 || kw !== 3 || sh !== 1 || sw !== 1 || dh !== 1 || dw !== 1) return false;
  if (cin % 4 !== 0 || cout % 4 !== 0) return false;
  if (cin < 8 || cout < 8) return false;
  if (xShape[0] * Math.ceil(outH / 2) * Math.ceil(outW / 2) < WINOGRAD_MIN_TILES) return false;
  return winogradEnabled(backend);
}

/**
 * U = G g Gᵀ of a [3, 3, Cin, Cout] filter as [16, Cin, Cout], with one view per plane (own ids:
 * XNNPACK keeps each plane packed), derived once per filter buffer and `tag`.
 * `flipForDx`: the filter of the input gradient instead (rotated 180 degrees, in/out swapped).
 */
export function filterTransform(s: Scratch, filter: Info, flipForDx = false): Derived {
  const be = s.backend;
  const k = simdKernels(be)!;
  return derived(be, filter, flipForDx ? 'winograd dx' : 'winograd', () => {
    const local = new Scratch(be);
    try {
      const g = flipForDx ? local.transpose(local.reverse(filter, [0, 1]), [0, 1, 3, 2]) : filter;
      const [, , cin, cout] = g.shape;
      const u = be.makeOutput([16, cin, cout], 'float32');
      k.winoFilter(addr(be, g), addr(be, u), cin, cout, 0, cin * cout);
      const planes = Array.from({ length: 16 }, (_, p) => view(be, u, p * cin * cout, [1, cin, cout]));
      return { infos: [u], views: planes };
    } finally {
      local.dispose();
    }
  });
}

/**
 * conv2d of x [N, H, W, Cin] with the 3x3 filter whose transform is `u` ([16, Cin, Cout] planes),
 * output [N, outH, outW, Cout] (+ bias [Cout], then ReLU when `relu`). Caller checks `winogradApplies`.
 */
export function winogradConv(s: Scratch, x: Info, u: Derived, outH: number, outW: number, padTop: number, padLeft: number, bias: Info | null = null, relu = false): Info {
  const be = s.backend;
  const k = simdKernels(be)!;
  const [n, h, w, cin] = x.shape;
  const cout = u.infos[0].shape[2];
  const th = Math.ceil(outH / 2);
  const tw = Math.ceil(outW / 2);
  const tiles = n * th * tw;
  const v = s.track(be.makeOutput([16, tiles, cin], 'float32'));
  const m = s.track(be.makeOutput([16, tiles, cout], 'float32'));
  const win = s.track(be.makeOutput([16, cin], 'float32'));
  const out = s.track(be.makeOutput([n, outH, outW, cout], 'float32'));
  // Padding is implicit: windows that reach into it are gathered with zeros by the kernel.
  k.winoInput(addr(be, x), addr(be, v), addr(be, win), n, h, w, cin, padTop, padLeft, th, tw, 0, tiles);
  for (let p = 0; p < 16; p++) {
    const vp = view(be, v, p * tiles * cin, [1, tiles, cin]);
    const mp = view(be, m, p * tiles * cout, [1, tiles, cout]);
    try {
      product(be, idOf(be, vp), tiles, cin, idOf(be, u.views[p]), cout, idOf(be, mp));
    } finally {
      releaseView(be, vp);
      releaseView(be, mp);
    }
  }
  k.winoOutput(addr(be, m), addr(be, out), bias ? addr(be, bias) : 0, n, outH, outW, cout, th, tw, relu ? 1 : 0, 0, tiles);
  s.free(v);
  s.free(m);
  s.free(win);
  return out;
}

/** Whether the weight gradient of this conv goes through Winograd (`winogradApplies`, and Cout % 8 == 0 for the GEMM). */
export function winogradFilterGradApplies(backend: WasmBackend, xShape: number[], filterShape: number[], sh: number, sw: number, dh: number, dw: number, outH: number, outW: number): boolean {
  return filterShape[3] % 8 === 0 && winogradApplies(backend, xShape, filterShape, sh, sw, dh, dw, outH, outW);
}

/**
 * dW of a 3x3 stride-1 conv by Winograd, the adjoint of the forward: x [N, H, W, Cin] and
 * dy [N, OH, OW, Cout] -> [3, 3, Cin, Cout]. With V = Bᵀ d B of x's windows (as forward) and
 * Ŷ = A dy Aᵀ of each output tile, W̃[p] = V[p]ᵀ · Ŷ[p] ([Cin, T]·[T, Cout], 16 GEMMs: 2.25x fewer
 * multiply-adds than the direct weight gradient; our `gemmTN`, single-threaded) and dW = Gᵀ W̃ G.
 * Caller checks `winogradFilterGradApplies`.
 */
export function winogradFilterGrad(s: Scratch, x: Info, dy: Info, padTop: number, padLeft: number): Info {
  const be = s.backend;
  const k = simdKernels(be)!;
  const [n, h, w, cin] = x.shape;
  const [, oh, ow, cout] = dy.shape;
  const th = Math.ceil(oh / 2);
  const tw = Math.ceil(ow / 2);
  const tiles = n * th * tw;
  const v = s.track(be.makeOutput([16, tiles, cin], 'float32'));
  const win = s.track(be.makeOutput([16, cin], 'float32'));
  k.winoInput(addr(be, x), addr(be, v), addr(be, win), n, h, w, cin, padTop, padLeft, th, tw, 0, tiles);
  const yh = s.track(be.makeOutput([16, tiles, cout], 'float32'));
  k.winoGradOutput(addr(be, dy), addr(be, yh), n, oh, ow, cout, th, tw, 0, tiles);
  const wt = s.track(be.makeOutput([16, cin, cout], 'float32'));
  // 16 products [Cin, T]·[T, Cout] with the reduction over tiles: our GEMM reads V and Ŷ as they are.
  const [va, ya, wa] = [addr(be, v), addr(be, yh), addr(be, wt)];
  for (let p = 0; p < 16; p++) k.gemmTN(va + 4 * p * tiles * cin, ya + 4 * p * tiles * cout, wa + 4 * p * cin * cout, tiles, cin, cout);
  s.free(v);
  s.free(yh);
  const out = s.track(be.makeOutput([3, 3, cin, cout], 'float32'));
  k.winoGradFilter(addr(be, wt), addr(be, out), cin, cout, 0, cin * cout);
  s.free(wt);
  return out;
}

// ---- kernels: Conv2D and FusedConv2D with a Winograd fast path ----

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

type KArgs = { inputs: Record<string, Info>; backend: unknown; attrs: ConvAttrs };

function tryWinograd(args: KArgs, bias: Info | null, relu: boolean): Info | null {
  const { x, filter } = args.inputs;
  const a = args.attrs;
  const be = args.backend as WasmBackend;
  if (a.dataFormat === 'NCHW' || x.dtype !== 'float32' || filter.dtype !== 'float32') return null;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
    a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (!winogradApplies(be, x.shape, filter.shape, info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth, info.outHeight, info.outWidth)) return null;
  if (bias && tf.util.sizeFromShape(bias.shape) !== filter.shape[3]) return null;
  const s = new Scratch(be);
  try {
    const out = winogradConv(s, x, filterTransform(s, filter), info.outHeight, info.outWidth, info.padInfo.top, info.padInfo.left, bias, relu);
    return s.keep(out);
  } finally {
    s.dispose();
  }
}

export function conv2DKernel(args: KArgs): Info {
  return tryWinograd(args, null, false) ?? (captureOriginal('Conv2D')!(args as never) as Info);
}

export function fusedConv2DKernel(args: KArgs): Info {
  const act = args.attrs.activation ?? 'linear';
  const fast = act === 'linear' || act === 'relu' ? tryWinograd(args, args.inputs.bias ?? null, act === 'relu') : null;
  return fast ?? (captureOriginal('FusedConv2D')!(args as never) as Info);
}
