/**
 * Convolution backprop from forward convolutions.
 *
 * dx = conv(dy dilated by the stride and padded by (k_eff - 1 - pad), filter rotated 180 degrees with
 *      in/out channels swapped)   — a plain stride-1 XNNPACK convolution.
 * dW = conv(x with batch and channel axes swapped, dy used as the filter [OH, OW, N, Cout],
 *      stride = forward dilation, dilation = forward stride)  — the "batch/channel swap";
 *      for stride 1 (the default path there) a GEMM over shifted windows of x instead
 *      (`convBackpropFilterShifted`): measured faster than the swap conv with 1 and 2 threads.
 *
 * `convBackpropInput` / `convBackpropFilter` work on backend TensorInfos (wasm kernels);
 * `conv2dBackpropInputOps` / `conv2dBackpropFilterOps` are the same algebra in tf ops, used for
 * dilated convolutions (which tfjs's own gradient rejects) on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { Scratch, heapF32, heapU8, releaseView, view, type Info, type WasmBackend } from './wasm.js';
import { idOf, product } from './matmul.js';
import {
  filterTransform,
  winogradApplies,
  winogradConv,
  winogradFilterGrad,
  winogradFilterGradApplies,
} from './winograd.js';

interface Geometry {
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  padTop: number;
  padLeft: number;
}

/** Explicit geometry of a conv from tfjs attributes (same/valid/explicit pads, rounding). */
export function convGeometry(
  xShape: [number, number, number, number], // NHWC
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  dilations: number | [number, number],
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): Geometry & { outH: number; outW: number } {
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  return {
    sh: info.strideHeight,
    sw: info.strideWidth,
    dh: info.dilationHeight,
    dw: info.dilationWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    outH: info.outHeight,
    outW: info.outWidth,
  };
}

/**
 * dx of a conv, NHWC. dy [N, OH, OW, Cout], filter [KH, KW, Cin, Cout] -> [N, H, W, Cin].
 */
export function convBackpropInput(s: Scratch, dy: Info, filter: Info, inH: number, inW: number, g: Geometry): Info {
  if ((g.sh > 1 || g.sw > 1) && g.dh === 1 && g.dw === 1) return convBackpropInputPhases(s, dy, filter, inH, inW, g);
  const [n, oh, ow, cout] = dy.shape;
  const [kh, kw] = filter.shape;
  const dkh = (kh - 1) * g.dh + 1;
  const dkw = (kw - 1) * g.dw + 1;
  let d = dy;
  let lh = oh;
  let lw = ow;
  if (g.sh > 1 || g.sw > 1) {
    // Insert (stride - 1) zeros after every row/column: [N, OH, 1, OW, 1, C] padded, then merged.
    const r = s.reshape(dy, [n, oh, 1, ow, 1, cout]);
    const p = s.padCrop(r, [
      [0, 0],
      [0, 0],
      [0, g.sh - 1],
      [0, 0],
      [0, g.sw - 1],
      [0, 0],
    ]);
    lh = oh * g.sh;
    lw = ow * g.sw;
    d = s.reshape(p, [n, lh, lw, cout]);
  }
  const pt = dkh - 1 - g.padTop;
  const pl = dkw - 1 - g.padLeft;
  if (lh === oh && lw === ow && gemmDxApplies(s.backend, dy.shape, filter.shape, inH, inW, g)) {
    // Few pixels, many channels: W itself as the left operand of one GEMM, no rotated copy.
    return convBackpropInputGemm(s, dy, filter, inH, inW, g);
  }
  if (
    lh === oh &&
    lw === ow &&
    winogradApplies(s.backend, dy.shape, [kh, kw, cout, filter.shape[2]], 1, 1, g.dh, g.dw, inH, inW)
  ) {
    // 3x3 stride 1: Winograd, with the rotated filter's transform kept per weight buffer (where the
    // cache budget has room; otherwise the rotated filter below, made and packed per call).
    const u = filterTransform(s, filter, true);
    if (u) return winogradConv(s, dy, u, inH, inW, pt, pl);
  }
  const pb = inH - lh - pt + dkh - 1;
  const pr = inW - lw - pl + dkw - 1;
  // Negative pads crop dy; positive ones go to the convolution itself (XNNPACK pads implicitly,
  // no padded copy of dy).
  const pads: [number, number][] = [
    [0, 0],
    [pt, pb],
    [pl, pr],
    [0, 0],
  ];
  const dc = s.padCrop(
    d,
    pads.map(([a, b]) => [Math.min(0, a), Math.min(0, b)] as [number, number]),
  );
  const explicit = pads.map(([a, b]) => [Math.max(0, a), Math.max(0, b)]) as tf.backend_util.ExplicitPadding;
  // Rotated filter with in/out swapped: [KH, KW, Cout, Cin].
  const wt = s.transpose(s.reverse(filter, [0, 1]), [0, 1, 3, 2]);
  return s.conv2d(dc, wt, [1, 1], [g.dh, g.dw], explicit);
}

/**
 * Whether dx goes through `convBackpropInputGemm`: a stride-1 conv whose filter outweighs its
 * activations (the rotated-filter path copies the whole filter twice and XNNPACK packs it again on
 * every call: for 3x3 1024->1024 at 8x8, batch 1, 37.7 MB three times against a 0.26 MB dy),
 * and no Winograd (which caches its transform per weight buffer and wins on many pixels).
 * `DIFFGUIDE_DX_GEMM=0` / `=1` forces it off / on wherever it can run (A/B, tests).
 */
export function gemmDxApplies(
  backend: WasmBackend,
  dyShape: number[],
  filterShape: number[],
  inH: number,
  inW: number,
  g: Geometry,
): boolean {
  if (g.sh !== 1 || g.sw !== 1) return false;
  const [n, oh, ow, cout] = dyShape;
  const [kh, kw, cin] = filterShape;
  const env = process.env.DIFFGUIDE_DX_GEMM;
  if (env === '0') return false;
  if (env === '1') return true;
  if (winogradApplies(backend, dyShape, [kh, kw, cout, cin], 1, 1, g.dh, g.dw, inH, inW)) return false;
  // Per call, the rotated-filter path moves the filter ~3 times (reverse, transpose, XNNPACK's
  // packing); this one moves dy, the taps x Cin x pixels columns (twice) and dx once.
  const pixels = n * oh * ow;
  const filterMoves = 3 * kh * kw * cin * cout;
  const ownMoves = pixels * cout + 2 * kh * kw * cin * pixels + n * inH * inW * cin;
  return ownMoves < filterMoves;
}

/**
 * dx of a stride-1 conv as one GEMM and a col2im, without touching the filter's layout:
 * colsᵀ [KH·KW·Cin, N·OH·OW] = W [KH·KW·Cin, Cout] · dyᵀ [Cout, N·OH·OW] (the HWIO filter is that
 * left operand as stored; XNNPACK packs only the small dyᵀ as its right operand, threaded over the
 * filter's rows), then dxᵀ[ci, n, h, w] = Σ over taps (a, b) of colsᵀ[(a, b, ci), (n, h + pt - a·dh, w + pl - b·dw)]
 * (pt, pl: the forward's pads), and dx = dxᵀ transposed. Same multiply-adds as the forward conv.
 */
export function convBackpropInputGemm(s: Scratch, dy: Info, filter: Info, inH: number, inW: number, g: Geometry): Info {
  const be = s.backend;
  const [n, oh, ow, cout] = dy.shape;
  const [kh, kw, cin] = filter.shape;
  const pixels = n * oh * ow;
  const rows = kh * kw * cin;
  const dyT = s.transpose(s.reshape(dy, [pixels, cout]), [1, 0]); // [Cout, pixels]: a fresh id, packed once, dropped with it
  const cols = s.track(be.makeOutput([rows, pixels], 'float32'));
  product(be, idOf(be, filter), rows, cout, idOf(be, dyT), pixels, idOf(be, cols));
  s.free(dyT);
  const dxT = s.track(be.makeOutput([cin, n, inH, inW], 'float32'));
  const src = heapF32(be, cols);
  const dst = heapF32(be, dxT);
  dst.fill(0);
  const plane = inH * inW;
  for (let a = 0; a < kh; a++) {
    // Output row i of tap row a lands on input row h = i - padTop + a·dh.
    const h0 = a * g.dh - g.padTop;
    const i0 = Math.max(0, -h0);
    const i1 = Math.min(oh, inH - h0);
    for (let b = 0; b < kw; b++) {
      const w0 = b * g.dw - g.padLeft;
      const j0 = Math.max(0, -w0);
      const j1 = Math.min(ow, inW - w0);
      if (i0 >= i1 || j0 >= j1) continue;
      const tap = a * kw + b;
      for (let ci = 0; ci < cin; ci++) {
        const rowBase = (tap * cin + ci) * pixels;
        for (let bn = 0; bn < n; bn++) {
          const sb = rowBase + bn * oh * ow;
          const db = (ci * n + bn) * plane;
          for (let i = i0; i < i1; i++) {
            let si = sb + i * ow + j0;
            let di = db + (i + h0) * inW + j0 + w0;
            for (let j = j0; j < j1; j++) dst[di++] += src[si++];
          }
        }
      }
    }
  }
  s.free(cols);
  const dx = s.transpose(s.reshape(dxT, [cin, n * inH * inW]), [1, 0]);
  return s.reshape(dx, [n, inH, inW, cin]);
}

/**
 * dx of a strided conv by phases: the rows h of dx with (h + padTop) % stride == a only see the
 * filter taps kh ≡ a (mod stride), so dx splits into stride² stride-1 convolutions of dy with
 * sub-filters (flipped, in/out swapped), together exactly as many multiply-adds as the forward
 * conv — instead of convolving a zero-dilated dy (stride² times more work).
 */
function convBackpropInputPhases(s: Scratch, dy: Info, filter: Info, inH: number, inW: number, g: Geometry): Info {
  const be = s.backend;
  const [n, oh, ow, cout] = dy.shape;
  const [kh, kw, cin] = filter.shape;
  const ip = Math.ceil((inH + g.padTop) / g.sh); // phase-grid rows covering dxpad[0, inH + padTop)
  const jp = Math.ceil((inW + g.padLeft) / g.sw);
  const out = be.makeOutput([n, inH, inW, cin], 'float32');
  let zeroFilled = false;
  const phases: { ah: number; aw: number; t: number; u: number; sub: Info }[] = [];
  for (let ah = 0; ah < g.sh; ah++) {
    for (let aw = 0; aw < g.sw; aw++) {
      const t = Math.max(0, Math.ceil((kh - ah) / g.sh));
      const u = Math.max(0, Math.ceil((kw - aw) / g.sw));
      if (t === 0 || u === 0) {
        if (!zeroFilled) {
          heapF32(be, out).fill(0);
          zeroFilled = true;
        }
        continue;
      }
      // Sub-filter, flipped, [T, U, Cout, Cin]: sub[t', u', co, ci] = W[ah + s(T-1-t'), aw + s(U-1-u'), ci, co].
      const sub = s.track(be.makeOutput([t, u, cout, cin], 'float32'));
      phases.push({ ah, aw, t, u, sub });
    }
  }
  {
    const w = heapF32(be, filter);
    for (const { ah, aw, t, u, sub } of phases) {
      const d = heapF32(be, sub);
      let o = 0;
      for (let a = 0; a < t; a++) {
        const r = ah + g.sh * (t - 1 - a);
        for (let b = 0; b < u; b++) {
          const c = aw + g.sw * (u - 1 - b);
          const base = (r * kw + c) * cin * cout;
          for (let co = 0; co < cout; co++) for (let ci = 0; ci < cin; ci++) d[o++] = w[base + ci * cout + co];
        }
      }
    }
  }
  for (const { ah, aw, t, u, sub } of phases) {
    // G[i, j] = sum dy[i - t, j - u] W[ah + s t, aw + s u], for i in [0, ip), j in [0, jp).
    const pads: [number, number][] = [
      [0, 0],
      [t - 1, ip - oh],
      [u - 1, jp - ow],
      [0, 0],
    ];
    const crop = pads.map(([a, b]) => [Math.min(0, a), Math.min(0, b)] as [number, number]);
    const dyc = crop.some(([a, b]) => a < 0 || b < 0) ? s.padCrop(dy, crop) : dy;
    const explicit = pads.map(([a, b]) => [Math.max(0, a), Math.max(0, b)]) as tf.backend_util.ExplicitPadding;
    const gph = s.conv2d(dyc, sub, [1, 1], [1, 1], explicit); // [N, ip, jp, Cin]
    // Scatter into dx: dx[n, s i + ah - padTop, s j + aw - padLeft, :] = G[n, i, j, :].
    const src = heapF32(be, gph);
    const dst = heapF32(be, out);
    for (let i = 0; i < ip; i++) {
      const h = g.sh * i + ah - g.padTop;
      if (h < 0 || h >= inH) continue;
      for (let j = 0; j < jp; j++) {
        const w = g.sw * j + aw - g.padLeft;
        if (w < 0 || w >= inW) continue;
        for (let b = 0; b < n; b++) {
          const so = ((b * ip + i) * jp + j) * cin;
          const dOff = ((b * inH + h) * inW + w) * cin;
          for (let c = 0; c < cin; c++) dst[dOff + c] = src[so + c];
        }
      }
    }
  }
  return s.track(out);
}

/**
 * dW of a stride-1 conv as XNNPACK GEMMs over shifted windows of x, without im2col.
 *
 * Lay x out as [Cin, N·Hp·Wp] (channels first, zero-padded to Hp = (KH-1)·dh + OH rows and
 * Wp = (KW-1)·dw + OW columns) and dy on the same grid, zero outside its OH x OW corner:
 * dyg [N·Hp·Wp, Cout]. Output pixel q = (n, i, j) of tap (a, b) reads x at flat q + a·dh·Wp + b·dw,
 * so tap (a, b)'s im2col matrix [Cin, N·Hp·Wp] is x's channel rows shifted by that offset: a view
 * of the same buffer, and dW[a, b] = view · dyg is one GEMM per tap (dyg packed once, XNNPACK
 * splits each GEMM across threads). Where a shifted row runs past its plane (into the next channel,
 * or the extra zero channel after the last) dyg is zero, so those columns add exactly 0; so does
 * the grid's margin ((Hp·Wp)/(OH·OW) - 1 extra work: 13% at 32x32, 3x3).
 * History (quiet machine, conv_stack, 2 threads): batch/channel swap conv dxdw/fwd 4.2; im2col by
 * memmove + one GEMM 4.15 (the copy ran on one thread); views 3.5-3.6. Returns null for strided convs.
 */
export function convBackpropFilterShifted(
  s: Scratch,
  x: Info,
  dy: Info,
  kh: number,
  kw: number,
  g: Geometry,
): Info | null {
  if (g.sh !== 1 || g.sw !== 1) return null;
  const be = s.backend;
  const [n, h, w, cin] = x.shape;
  const [, oh, ow, cout] = dy.shape;
  const hp = (kh - 1) * g.dh + oh;
  const wp = (kw - 1) * g.dw + ow;
  const plane = n * hp * wp;
  const taps = kh * kw;
  const xt = s.transpose(x, [3, 0, 1, 2]); // [Cin, N, H, W]
  // One extra zero channel: the shifted window of the last channel runs past its plane into it.
  const xp = s.padCrop(xt, [
    [0, 1],
    [0, 0],
    [g.padTop, hp - h - g.padTop],
    [g.padLeft, wp - w - g.padLeft],
  ]); // [Cin + 1, N, Hp, Wp]
  const dyp =
    oh === hp && ow === wp
      ? dy
      : s.padCrop(dy, [
          [0, 0],
          [0, hp - oh],
          [0, wp - ow],
          [0, 0],
        ]);
  // A view with its own id: XNNPACK packs the right operand once per id, then serves all taps.
  const dyg = view(be, dyp, 0, [1, plane, cout]);
  const out = s.track(be.makeOutput([taps * cin, cout], 'float32'));
  try {
    for (let t = 0; t < taps; t++) {
      // Tap (a, b) reads x at flat q + a·dh·Wp + b·dw: channel rows of xp starting `off` later, i.e.
      // a view; where the window runs into the next row, dyg is zero (its margin).
      const off = Math.floor(t / kw) * g.dh * wp + (t % kw) * g.dw;
      const xs = view(be, xp, off, [1, cin, plane]);
      try {
        const part = s.matMul(xs, dyg); // [1, Cin, Cout]
        const heap = heapU8(be);
        const from = be.dataIdMap.get(part.dataId).memoryOffset;
        const to = be.dataIdMap.get(out.dataId).memoryOffset + t * cin * cout * 4;
        heap.copyWithin(to, from, from + cin * cout * 4);
        s.free(part);
      } finally {
        releaseView(be, xs);
      }
    }
  } finally {
    releaseView(be, dyg);
  }
  return s.reshape(out, [kh, kw, cin, cout]);
}

/**
 * dW of a conv, NHWC. x [N, H, W, Cin], dy [N, OH, OW, Cout] -> [KH, KW, Cin, Cout].
 */
export function convBackpropFilter(s: Scratch, x: Info, dy: Info, kh: number, kw: number, g: Geometry): Info {
  // 3x3 stride 1: Winograd; other stride-1 convs: GEMMs on shifted views; strided convs (or
  // DIFFGUIDE_DW=swap, for A/B and tests): the batch/channel swap convolution.
  if (process.env.DIFFGUIDE_DW !== 'swap') {
    const [, , , cin] = x.shape;
    const [, oh, ow, cout] = dy.shape;
    // 3x3 stride 1: Winograd with our GEMM (conv_stack layer: 6.3 vs 15.3 ms on 1 thread, 5.9 vs
    // 11.7 on 2, against the shifted GEMMs).
    if (winogradFilterGradApplies(s.backend, x.shape, [kh, kw, cin, cout], g.sh, g.sw, g.dh, g.dw, oh, ow)) {
      return winogradFilterGrad(s, x, dy, g.padTop, g.padLeft);
    }
    const viaShift = convBackpropFilterShifted(s, x, dy, kh, kw, g);
    if (viaShift) return viaShift;
  }
  const [, h, w] = x.shape;
  const [, oh, ow] = dy.shape;
  const xt = s.transpose(x, [3, 1, 2, 0]); // [Cin, H, W, N]
  const dyt = s.transpose(dy, [1, 2, 0, 3]); // [OH, OW, N, Cout]: a filter
  const needH = (kh - 1) * g.dh + (oh - 1) * g.sh + 1;
  const needW = (kw - 1) * g.dw + (ow - 1) * g.sw + 1;
  const xp = s.padCrop(xt, [
    [0, 0],
    [g.padTop, needH - h - g.padTop],
    [g.padLeft, needW - w - g.padLeft],
    [0, 0],
  ]);
  const out = s.conv2d(xp, dyt, [g.dh, g.dw], [g.sh, g.sw]); // [Cin, KH, KW, Cout]
  return s.transpose(out, [1, 2, 0, 3]);
}

// ---- wasm kernels ----

interface BackpropInputAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
  /** diffguide extension: the forward convolution's dilations (tfjs's own kernel has none). */
  dilations?: number | [number, number];
}

interface BackpropFilterAttrs extends Omit<BackpropInputAttrs, 'inputShape'> {
  filterShape: [number, number, number, number];
}

type KArgs<A> = { inputs: Record<string, Info>; backend: unknown; attrs: A };

export function conv2DBackpropInputKernel({ inputs, backend, attrs }: KArgs<BackpropInputAttrs>): Info {
  const s = new Scratch(backend as WasmBackend);
  try {
    const nchw = attrs.dataFormat === 'NCHW';
    const dy = nchw ? s.transpose(inputs.dy, [0, 2, 3, 1]) : inputs.dy;
    const xs = attrs.inputShape;
    const xShape: [number, number, number, number] = nchw ? [xs[0], xs[2], xs[3], xs[1]] : xs;
    const g = convGeometry(
      xShape,
      inputs.filter.shape as [number, number, number, number],
      attrs.strides,
      attrs.dilations ?? 1,
      attrs.pad,
      attrs.dimRoundingMode,
    );
    let dx = convBackpropInput(s, dy, inputs.filter, xShape[1], xShape[2], g);
    if (nchw) dx = s.transpose(dx, [0, 3, 1, 2]);
    return s.keep(dx);
  } finally {
    s.dispose();
  }
}

export function conv2DBackpropFilterKernel({ inputs, backend, attrs }: KArgs<BackpropFilterAttrs>): Info {
  const s = new Scratch(backend as WasmBackend);
  try {
    const nchw = attrs.dataFormat === 'NCHW';
    const x = nchw ? s.transpose(inputs.x, [0, 2, 3, 1]) : inputs.x;
    const dy = nchw ? s.transpose(inputs.dy, [0, 2, 3, 1]) : inputs.dy;
    const fs = attrs.filterShape;
    const g = convGeometry(
      x.shape as [number, number, number, number],
      fs,
      attrs.strides,
      attrs.dilations ?? 1,
      attrs.pad,
      attrs.dimRoundingMode,
    );
    return s.keep(convBackpropFilter(s, x, dy, fs[0], fs[1], g));
  } finally {
    s.dispose();
  }
}

// ---- the same algebra in tf ops (any backend; used for dilated convs) ----

function padCropOps<T extends tf.Tensor>(x: T, pads: [number, number][]): T {
  let t: tf.Tensor = x;
  if (pads.some(([a, b]) => a < 0 || b < 0)) {
    const begin = pads.map(([a]) => Math.max(0, -a));
    const size = pads.map(([a, b], i) => t.shape[i] - Math.max(0, -a) - Math.max(0, -b));
    t = tf.slice(t, begin, size);
  }
  if (pads.some(([a, b]) => a > 0 || b > 0))
    t = tf.pad(
      t,
      pads.map(([a, b]) => [Math.max(0, a), Math.max(0, b)] as [number, number]),
    );
  return t as T;
}

/** dx of an NHWC conv in tf ops. */
export function conv2dBackpropInputOps(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  xShape: [number, number, number, number],
  g: Geometry,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, oh, ow, cout] = dy.shape;
    const [kh, kw] = filter.shape;
    const dkh = (kh - 1) * g.dh + 1;
    const dkw = (kw - 1) * g.dw + 1;
    const wt = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    let d: tf.Tensor4D = dy;
    let lh = oh;
    let lw = ow;
    if (g.sh > 1 || g.sw > 1) {
      const p = tf.pad(dy.reshape([n, oh, 1, ow, 1, cout]), [
        [0, 0],
        [0, 0],
        [0, g.sh - 1],
        [0, 0],
        [0, g.sw - 1],
        [0, 0],
      ]);
      lh = oh * g.sh;
      lw = ow * g.sw;
      d = p.reshape([n, lh, lw, cout]);
    }
    const pt = dkh - 1 - g.padTop;
    const pl = dkw - 1 - g.padLeft;
    const dp = padCropOps(d, [
      [0, 0],
      [pt, xShape[1] - lh - pt + dkh - 1],
      [pl, xShape[2] - lw - pl + dkw - 1],
      [0, 0],
    ]);
    return tf.conv2d(dp, wt, 1, 'valid', 'NHWC', [g.dh, g.dw]);
  });
}

/** dW of an NHWC conv in tf ops (stride or dilation must be 1, as tfjs's conv2d requires). */
export function conv2dBackpropFilterOps(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  g: Geometry,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = filterShape;
    const [, h, w] = x.shape;
    const [, oh, ow] = dy.shape;
    const xt = tf.transpose(x, [3, 1, 2, 0]);
    const dyt = tf.transpose(dy, [1, 2, 0, 3]);
    const needH = (kh - 1) * g.dh + (oh - 1) * g.sh + 1;
    const needW = (kw - 1) * g.dw + (ow - 1) * g.sw + 1;
    const xp = padCropOps(xt, [
      [0, 0],
      [g.padTop, needH - h - g.padTop],
      [g.padLeft, needW - w - g.padLeft],
      [0, 0],
    ]);
    const out = tf.conv2d(xp, dyt, [g.dh, g.dw], 'valid', 'NHWC', [g.sh, g.sw]);
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}

// ---- depthwise (missing on wasm) ----

interface DepthwiseAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function depthwiseGeometry(xShape: number[], filterShape: number[], a: DepthwiseAttrs): Geometry {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    true,
    'channelsLast',
  );
  return {
    sh: info.strideHeight,
    sw: info.strideWidth,
    dh: info.dilationHeight,
    dw: info.dilationWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

function depthwise(
  s: Scratch,
  x: Info,
  filter: Info,
  strides: [number, number],
  dilations: [number, number],
  pad: 'valid' | tf.backend_util.ExplicitPadding = 'valid',
): Info {
  return s.run(
    'DepthwiseConv2dNative',
    { x, filter },
    { strides, pad, dilations, dataFormat: 'NHWC', dimRoundingMode: undefined },
  );
}

/** dx of a depthwise conv: a depthwise conv of dy (zero-dilated by the stride) with the rotated filter. */
export function depthwiseBackpropInputKernel({
  inputs,
  backend,
  attrs,
}: KArgs<DepthwiseAttrs & { inputShape: number[] }>): Info {
  const s = new Scratch(backend as WasmBackend);
  try {
    const { dy, filter } = inputs;
    const [n, inH, inW, c] = attrs.inputShape;
    const [kh, kw, , m] = filter.shape;
    const g = depthwiseGeometry(attrs.inputShape, filter.shape, attrs);
    const [, oh, ow] = dy.shape;
    const dkh = (kh - 1) * g.dh + 1;
    const dkw = (kw - 1) * g.dw + 1;
    const wr = s.reshape(s.reverse(filter, [0, 1]), [kh, kw, c * m, 1]);
    let d = dy;
    let lh = oh;
    let lw = ow;
    if (g.sh > 1 || g.sw > 1) {
      const p = s.padCrop(s.reshape(dy, [n, oh, 1, ow, 1, c * m]), [
        [0, 0],
        [0, 0],
        [0, g.sh - 1],
        [0, 0],
        [0, g.sw - 1],
        [0, 0],
      ]);
      lh = oh * g.sh;
      lw = ow * g.sw;
      d = s.reshape(p, [n, lh, lw, c * m]);
    }
    const pt = dkh - 1 - g.padTop;
    const pl = dkw - 1 - g.padLeft;
    const dp = s.padCrop(d, [
      [0, 0],
      [pt, inH - lh - pt + dkh - 1],
      [pl, inW - lw - pl + dkw - 1],
      [0, 0],
    ]);
    let dx = depthwise(s, dp, wr, [1, 1], [g.dh, g.dw]); // [N, H, W, C*M]
    if (m > 1) dx = s.run('Sum', { x: s.reshape(dx, [n, inH, inW, c, m]) }, { axis: [4], keepDims: false });
    return s.keep(dx);
  } finally {
    s.dispose();
  }
}

/** dW of a depthwise conv: batch folded into channels, dy as a per-channel filter, then summed over the batch. */
export function depthwiseBackpropFilterKernel({
  inputs,
  backend,
  attrs,
}: KArgs<DepthwiseAttrs & { filterShape: number[] }>): Info {
  const s = new Scratch(backend as WasmBackend);
  try {
    const { x, dy } = inputs;
    const [n, h, w, c] = x.shape;
    const [kh, kw, , m] = attrs.filterShape;
    const g = depthwiseGeometry(x.shape, attrs.filterShape, attrs);
    const [, oh, ow] = dy.shape;
    const xt = s.reshape(s.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]); // [1, H, W, (n, c)]
    const f = s.reshape(s.transpose(s.reshape(dy, [n, oh, ow, c, m]), [1, 2, 0, 3, 4]), [oh, ow, n * c, m]);
    const needH = (kh - 1) * g.dh + (oh - 1) * g.sh + 1;
    const needW = (kw - 1) * g.dw + (ow - 1) * g.sw + 1;
    const xp = s.padCrop(xt, [
      [0, 0],
      [g.padTop, needH - h - g.padTop],
      [g.padLeft, needW - w - g.padLeft],
      [0, 0],
    ]);
    const out = depthwise(s, xp, f, [g.dh, g.dw], [g.sh, g.sw]); // [1, KH, KW, (n, c, m)]
    const dw = s.run(
      'Sum',
      { x: s.transpose(s.reshape(out, [kh, kw, n, c * m]), [0, 1, 3, 2]) },
      { axis: [3], keepDims: false },
    );
    return s.keep(s.reshape(dw, [kh, kw, c, m]));
  } finally {
    s.dispose();
  }
}
