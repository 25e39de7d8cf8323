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
import {
  Scratch,
  cacheAllowed,
  captureOriginal,
  derived,
  heapF32,
  releaseView,
  view,
  type Derived,
  type Info,
  type WasmBackend,
} from './wasm.js';
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
export function winogradApplies(
  backend: WasmBackend,
  xShape: number[],
  filterShape: number[],
  sh: number,
  sw: number,
  dh: number,
  dw: number,
  outH: number,
  outW: number,
): boolean {
  const [kh, kw, cin, cout] = filterShape;
  if (kh !== 3 || kw !== 3 || sh !== 1 || sw !== 1 || dh !== 1 || dw !== 1) return false;
  if (cin % 4 !== 0 || cout % 4 !== 0) return false;
  if (cin < 8 || cout < 8) return false;
  if (xShape[0] * Math.ceil(outH / 2) * Math.ceil(outW / 2) < WINOGRAD_MIN_TILES) return false;
  return winogradEnabled(backend);
}

/** Bytes a cached filter transform keeps: U [16, Cin, Cout] and XNNPACK's packed copy of each plane. */
export function filterTransformBytes(filterShape: number[]): number {
  return 2 * 16 * filterShape[2] * filterShape[3] * 4;
}

/**
 * U = G g Gᵀ of a [3, 3, Cin, Cout] filter as [16, Cin, Cout], with one view per plane (own ids:
 * XNNPACK keeps each plane packed), derived once per filter buffer and `tag`; null when the cache
 * budget (`cacheAllowed`, wasm.ts) has no room for it: the caller then takes its uncached path.
 * `flipForDx`: the filter of the input gradient instead (rotated 180 degrees, in/out swapped).
 */
export function filterTransform(s: Scratch, filter: Info, flipForDx = false): Derived | null {
  const be = s.backend;
  const k = simdKernels(be)!;
  const tag = flipForDx ? 'winograd dx' : 'winograd';
  if (!cacheAllowed(be, filter, tag, filterTransformBytes(filter.shape))) return null;
  return derived(be, filter, tag, () => {
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
export function winogradConv(
  s: Scratch,
  x: Info,
  u: Derived,
  outH: number,
  outW: number,
  padTop: number,
  padLeft: number,
  bias: Info | null = null,
  relu = false,
): Info {
  const be = s.backend;
  const k = simdKernels(be)!;
  const [n, h, w, cin] = x.shape;
  const cout = u.infos[0].shape[2];
  const th = Math.ceil(outH / 2);
  const tw = Math.ceil(outW / 2);
  const tiles = n * th * tw;
  const out = s.track(be.makeOutput([n, outH, outW, cout], 'float32'));
  const win = s.track(be.makeOutput([16, cin], 'float32'));
  // V and M hold 16 floats per tile and channel: 4x the input and output. On large images (a 256 px
  // UNet's first level: 512 MiB for 512 -> 256 channels) they go band by band of tile rows, each
  // band one image of `rows` tile rows (the kernels' implicit zero padding covers the band's edges).
  const perTileRow = 16 * tw * (cin + cout) * 4;
  const rows =
    n * th * tw * 16 * (cin + cout) * 4 <= WINOGRAD_SCRATCH_BYTES
      ? th
      : Math.max(1, Math.floor(WINOGRAD_SCRATCH_BYTES / perTileRow));
  const bands =
    rows >= th
      ? [{ b: -1, r0: 0, r1: th }]
      : Array.from({ length: n * Math.ceil(th / rows) }, (_, q) => {
          const b = Math.floor(q / Math.ceil(th / rows));
          const r0 = (q % Math.ceil(th / rows)) * rows;
          return { b, r0, r1: Math.min(th, r0 + rows) };
        });
  const maxTiles = bands[0].b < 0 ? tiles : rows * tw;
  const v = s.track(be.makeOutput([16, maxTiles, cin], 'float32'));
  const m = s.track(be.makeOutput([16, maxTiles, cout], 'float32'));
  const [xa, oa, va, ma, wa] = [addr(be, x), addr(be, out), addr(be, v), addr(be, m), addr(be, win)];
  const ba = bias ? addr(be, bias) : 0;
  for (const { b, r0, r1 } of bands) {
    // The band's first input row, and the image it is cut from (b < 0: all images at once).
    const top = Math.max(0, 2 * r0 - padTop);
    const bn = b < 0 ? n : 1;
    const src = xa + 4 * (b < 0 ? 0 : (b * h + top) * w * cin);
    const bh = b < 0 ? h : h - top;
    const bpt = padTop + top - 2 * r0;
    const bt = bn * (r1 - r0) * tw;
    const boh = b < 0 ? outH : Math.min(outH - 2 * r0, 2 * (r1 - r0));
    const dst = oa + 4 * (b < 0 ? 0 : (b * outH + 2 * r0) * outW * cout);
    // Padding is implicit: windows that reach into it are gathered with zeros by the kernel.
    k.winoInput(src, va, wa, bn, bh, w, cin, bpt, padLeft, r1 - r0, tw, 0, bt);
    for (let p = 0; p < 16; p++) {
      const vp = view(be, v, p * bt * cin, [1, bt, cin]);
      const mp = view(be, m, p * bt * cout, [1, bt, cout]);
      try {
        product(be, idOf(be, vp), bt, cin, idOf(be, u.views[p]), cout, idOf(be, mp));
      } finally {
        releaseView(be, vp);
        releaseView(be, mp);
      }
    }
    k.winoOutput(ma, dst, ba, bn, boh, outW, cout, r1 - r0, tw, relu ? 1 : 0, 0, bt);
  }
  s.free(v);
  s.free(m);
  s.free(win);
  return out;
}

/** Most bytes of V and M scratch one Winograd convolution allocates at once (larger ones go in bands). */
export let WINOGRAD_SCRATCH_BYTES = 64 * 2 ** 20;

/** Set the band size limit (tests: small bands on small images). Returns the previous value. */
export function setWinogradScratchBytes(bytes: number): number {
  const prev = WINOGRAD_SCRATCH_BYTES;
  WINOGRAD_SCRATCH_BYTES = bytes;
  return prev;
}

/** Whether the weight gradient of this conv goes through Winograd (`winogradApplies`, and Cout % 8 == 0 for the GEMM). */
export function winogradFilterGradApplies(
  backend: WasmBackend,
  xShape: number[],
  filterShape: number[],
  sh: number,
  sw: number,
  dh: number,
  dw: number,
  outH: number,
  outW: number,
): boolean {
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
  for (let p = 0; p < 16; p++)
    k.gemmTN(va + 4 * p * tiles * cin, ya + 4 * p * tiles * cout, wa + 4 * p * cin * cout, tiles, cin, cout);
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
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    a.strides,
    a.dilations,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
  if (
    !winogradApplies(
      be,
      x.shape,
      filter.shape,
      info.strideHeight,
      info.strideWidth,
      info.dilationHeight,
      info.dilationWidth,
      info.outHeight,
      info.outWidth,
    )
  )
    return null;
  if (bias && tf.util.sizeFromShape(bias.shape) !== filter.shape[3]) return null;
  const s = new Scratch(be);
  try {
    const u = filterTransform(s, filter);
    if (!u) return null; // no cache room: the stock convolution (packing the filter per call) costs less than transforming it per call
    const out = winogradConv(s, x, u, info.outHeight, info.outWidth, info.padInfo.top, info.padInfo.left, bias, relu);
    return s.keep(out);
  } finally {
    s.dispose();
  }
}

/**
 * The stock (XNNPACK) convolution. XNNPACK keeps a packed copy of the filter per filter id until the
 * filter is freed; where the cache budget has no room for it, the filter goes in under a view with
 * a fresh id, released after the call (its operator and packed copy with it).
 */
function stockConv(name: 'Conv2D' | 'FusedConv2D', args: KArgs, bias: Info | null = null, relu = false): Info {
  const be = args.backend as WasmBackend;
  const { filter } = args.inputs;
  const orig = captureOriginal(name)!;
  if (filter.dtype !== 'float32' || cacheAllowed(be, filter, 'xnnpack conv', 4 * tf.util.sizeFromShape(filter.shape)))
    return orig(args as never) as Info;
  const act = args.attrs.activation ?? 'linear';
  const viaGemm = name === 'Conv2D' || act === 'linear' || act === 'relu' ? unpackedConv(args, bias, relu) : null;
  if (viaGemm) return viaGemm;
  const fv = view(be, filter, 0, filter.shape);
  try {
    return orig({ ...args, inputs: { ...args.inputs, filter: fv } } as never) as Info;
  } finally {
    releaseView(be, fv);
  }
}

/** Most output pixels for which an uncached convolution runs as `unpackedConv`. */
const UNPACKED_CONV_MAX_PIXELS = 1024;

/**
 * An uncached stride-1 convolution on few pixels without packing the filter: outᵀ [Cout, P] =
 * Wᵀ · colsᵀ by our `gemmTN`, which reads the HWIO filter [KH·KW·Cin, Cout] as it is stored and
 * colsᵀ [KH·KW·Cin, P] (the input's shifted windows, channels first; P padded to a multiple of 8
 * with zeros); then transposed, with bias and ReLU. XNNPACK would pack (and tfjs first transpose)
 * the whole filter on every call: 2 x 75 MiB of short-lived buffers per 2048 -> 1024 channel conv,
 * which fragments a nearly full heap (the 256 px UNet's 8x8 and 16x16 levels). Single-threaded.
 * Null where it does not apply (strides, dilations, Cout % 4, more than `UNPACKED_CONV_MAX_PIXELS`).
 */
function unpackedConv(args: KArgs, bias: Info | null, relu: boolean): Info | null {
  const { x, filter } = args.inputs;
  const a = args.attrs;
  const be = args.backend as WasmBackend;
  if (a.dataFormat === 'NCHW' || x.dtype !== 'float32' || process.env.DIFFGUIDE_UNPACKED_CONV === '0') return null;
  const k = simdKernels(be);
  if (!k) return null;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    a.strides,
    a.dilations,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
  const [n, h, w, cin] = x.shape;
  const [kh, kw, , cout] = filter.shape;
  const oh = info.outHeight;
  const ow = info.outWidth;
  const pixels = n * oh * ow;
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1)
    return null;
  if (cout % 4 !== 0 || pixels > UNPACKED_CONV_MAX_PIXELS || pixels === 0) return null;
  if (bias && tf.util.sizeFromShape(bias.shape) !== cout) return null;
  const np = Math.ceil(pixels / 8) * 8;
  const rows = kh * kw * cin;
  const s = new Scratch(be);
  try {
    const xt = s.transpose(s.reshape(x, [n * h * w, cin]), [1, 0]); // [Cin, N·H·W]
    const cols = s.track(be.makeOutput([rows, np], 'float32'));
    const outT = s.track(be.makeOutput([cout, np], 'float32'));
    {
      const src = heapF32(be, xt);
      const dst = heapF32(be, cols);
      dst.fill(0);
      const pt = info.padInfo.top;
      const pl = info.padInfo.left;
      for (let ta = 0; ta < kh; ta++) {
        const h0 = ta - pt; // output row i reads input row i + h0
        const i0 = Math.max(0, -h0);
        const i1 = Math.min(oh, h - h0);
        for (let tb = 0; tb < kw; tb++) {
          const w0 = tb - pl;
          const j0 = Math.max(0, -w0);
          const j1 = Math.min(ow, w - w0);
          if (i0 >= i1 || j0 >= j1) continue;
          for (let ci = 0; ci < cin; ci++) {
            const row = ((ta * kw + tb) * cin + ci) * np;
            for (let bn = 0; bn < n; bn++) {
              const sp = (ci * n + bn) * h * w;
              for (let i = i0; i < i1; i++) {
                let si = sp + (i + h0) * w + j0 + w0;
                let di = row + (bn * oh + i) * ow + j0;
                for (let j = j0; j < j1; j++) dst[di++] = src[si++];
              }
            }
          }
        }
      }
    }
    s.free(xt);
    k.gemmTN(addr(be, filter), addr(be, cols), addr(be, outT), rows, cout, np);
    s.free(cols);
    const outP = s.transpose(outT, [1, 0]); // [np, Cout]
    const out = s.track(be.makeOutput([n, oh, ow, cout], 'float32'));
    const o = heapF32(be, out);
    o.set(heapF32(be, outP).subarray(0, pixels * cout));
    if (bias || relu) {
      const bv = bias ? heapF32(be, bias) : null;
      for (let p = 0; p < pixels; p++) {
        const base = p * cout;
        for (let c = 0; c < cout; c++) {
          let v = o[base + c] + (bv ? bv[c] : 0);
          if (relu && v < 0) v = 0;
          o[base + c] = v;
        }
      }
    }
    return s.keep(out);
  } finally {
    s.dispose();
  }
}

export function conv2DKernel(args: KArgs): Info {
  return tryWinograd(args, null, false) ?? stockConv('Conv2D', args);
}

export function fusedConv2DKernel(args: KArgs): Info {
  const act = args.attrs.activation ?? 'linear';
  const fast = act === 'linear' || act === 'relu' ? tryWinograd(args, args.inputs.bias ?? null, act === 'relu') : null;
  return fast ?? stockConv('FusedConv2D', args, args.inputs.bias ?? null, act === 'relu');
}
