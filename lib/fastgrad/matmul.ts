/**
 * Batched matmul on wasm that stays on XNNPACK's fast path.
 *
 * tfjs-backend-wasm runs a matmul through XNNPACK only when there is one batch and neither side
 * is transposed; everything else (attention's q·kᵀ, every matmul gradient) falls to a scalar loop.
 * This kernel transposes explicitly, folds a batch that multiplies shared weights into the rows,
 * and runs true batched products as one XNNPACK product per batch on zero-copy views of the
 * operands and of the output. A shared right operand (weights) is passed under its own tensor id,
 * so XNNPACK's packed copy of it, cached per id by the backend, is reused across calls; weights
 * used transposed (dy·Wᵀ) are transposed once per buffer. Each XNNPACK product still costs ~35 us
 * beyond its arithmetic when its right operand is new (packing ~16 us, call ~4 us, views ~7 us),
 * which is what an attention product per batch element and head pays.
 *
 * `batchMatMulGrad` is the matching gradient for every backend: the stock one returns gradients
 * of the broadcast shape when one side is broadcast over the batch; this one reduces them, and
 * folds the batch into one product for the weights of a linear layer.
 */
import * as tf from '@tensorflow/tfjs';
import {
  Scratch,
  cacheAllowed,
  captureOriginal,
  derived,
  heapU8,
  releaseView,
  view,
  type Info,
  type WasmBackend,
} from './wasm.js';
import { addr, simdKernels } from './simd.js';
import { transposeWasm } from './transpose.js';
import { wasmThreadsEnabled } from './threads-count.js';

type CMatMul = (
  aId: number,
  aShapePtr: number,
  aRank: number,
  bId: number,
  bShapePtr: number,
  bRank: number,
  transposeA: number,
  transposeB: number,
  outId: number,
) => void;

/**
 * The wasm backend's C++ BatchMatMul, called with its shapes in a buffer that lives as long as the
 * backend (cwrap's 'array' arguments copy them to the stack on every call, ~7 us of ~35 per call).
 */
interface CallState {
  fn: CMatMul;
  shapes: number;
  view: Int32Array | null;
}

const states = new WeakMap<object, CallState>();

/** One fully-connected product [1, rows, k]·[1, k, n] -> [1, rows, n] on tensor ids (XNNPACK). */
export function product(
  backend: WasmBackend,
  aId: number,
  rows: number,
  k: number,
  bId: number,
  n: number,
  outId: number,
): void {
  let st = states.get(backend);
  if (!st) {
    const w = backend.wasm as unknown as { cwrap: (n: string, r: null, a: string[]) => CMatMul };
    st = {
      fn: w.cwrap('BatchMatMul', null, new Array(9).fill('number')),
      shapes: backend.wasm._malloc(24) >>> 0,
      view: null,
    };
    states.set(backend, st);
  }
  const heap = heapU8(backend).buffer;
  if (!st.view || st.view.buffer !== heap) st.view = new Int32Array(heap, st.shapes, 6);
  const v = st.view;
  v[0] = 1;
  v[1] = rows;
  v[2] = k;
  v[3] = 1;
  v[4] = k;
  v[5] = n;
  st.fn(aId, st.shapes, 3, bId, st.shapes + 12, 3, 0, 0, outId);
}

export const idOf = (backend: WasmBackend, t: Info) => backend.dataIdMap.get(t.dataId).id;

/**
 * The inner size K each data buffer was multiplied with as a cached right operand.
 *
 * tfjs-backend-wasm's fully-connected path caches one XNNPACK operator (with its own packed copy
 * of the weights) per (right-operand tensor id, bias id, activation), deleted by the disposal
 * callback when that id is disposed. Tensor ids are never reused, and tfjs never writes into an
 * existing buffer (kernels write fresh outputs; `Variable.assign` takes the new value's buffer, with
 * a new id), so the packed copy stays valid for the id's lifetime. The key holds no shape, though:
 * one buffer reshaped ([k, n] vs [k', n']: Reshape shares the data id) would meet an operator
 * packed for the other shape. So an id is used as its own right operand only for the K it was
 * first used with; other shapes go through a view with a fresh id (packed, then dropped).
 */
const cachedK = new WeakMap<object, number>();

function cacheableRightOperand(b: Info, k: number): boolean {
  const prev = cachedK.get(b.dataId);
  if (prev === undefined) {
    cachedK.set(b.dataId, k);
    return true;
  }
  return prev === k;
}

/**
 * Transposed copies of right operands used with `transposeB` (a linear layer's input gradient
 * dy·Wᵀ), derived once per source buffer (`derived`: freed with it), so both the transpose and
 * XNNPACK's packing of it (cached on the copy's id) are paid once per weight buffer, not per call.
 */
function cachedTranspose(backend: WasmBackend, b: Info, k: number, n: number): Info | null {
  // The copy and XNNPACK's packed copy of it (its own id): twice the weights, within the cache budget.
  if (!cacheAllowed(backend, b, `transpose ${n}x${k}`, 2 * 4 * k * n)) return null;
  return derived(backend, b, `transpose ${n}x${k}`, () => ({
    infos: [transposeWasm(backend, { dataId: b.dataId, shape: [n, k], dtype: b.dtype }, [1, 0])],
    views: [],
  })).infos[0];
}

function swapLast2(rank: number): number[] {
  const p = Array.from({ length: rank }, (_, i) => i);
  [p[rank - 2], p[rank - 1]] = [p[rank - 1], p[rank - 2]];
  return p;
}

/** Fewest reduction rows for which our Aᵀ·B kernel beats transposing A and packing B for XNNPACK. */
const GEMM_TN_MIN_ROWS = 64;
/** Largest M for our single-threaded Aᵀ·B with 2 threads (scaled down for more). */
const GEMM_TN_MAX_M_2_THREADS = 128;

/**
 * Aᵀ·B for a: [..., K, M], b: [..., K, N] with the same batch (weight gradients xᵀ·dy, attention's
 * dKᵀ-style products): our SIMD `gemmTN` reads both as they are. XNNPACK would need A transposed
 * and B packed afresh (transposing) on every call, single-threaded: for a 1x1 conv's weight gradient
 * at [16384, 64] that costs more than the product. Null where it does not apply (M % 4, N % 8,
 * short reductions, broadcast batches, other dtypes).
 */
function productTN(backend: WasmBackend, a: Info, b: Info): Info | null {
  const [k, m] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  const batch = a.shape.slice(0, -2);
  if (k !== k2 || m % 4 !== 0 || n % 8 !== 0 || k < GEMM_TN_MIN_ROWS || m * n === 0) return null;
  // Ours runs on one thread; XNNPACK's threads win once they save more than its packing costs:
  // with 2 threads from about M = 128 (measured: CLIP block weight gradients, M = 256, 72 vs 93 ms).
  const threads = Math.max(1, wasmThreadsEnabled());
  if (threads > 1 && m * (threads - 1) > GEMM_TN_MAX_M_2_THREADS) return null;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || !tf.util.arraysEqual(batch, b.shape.slice(0, -2))) return null;
  const kernels = process.env.DIFFGUIDE_GEMM_TN === '0' ? null : simdKernels(backend);
  if (!kernels) return null;
  const out = backend.makeOutput([...batch, m, n], 'float32');
  const [pa, pb, po] = [addr(backend, a), addr(backend, b), addr(backend, out)];
  const count = tf.util.sizeFromShape(batch);
  for (let i = 0; i < count; i++) kernels.gemmTN(pa + 4 * i * k * m, pb + 4 * i * k * n, po + 4 * i * m * n, k, m, n);
  return out;
}

/**
 * Up to how many multiply-adds per batch element one pass of our single-threaded `gemmTN` over the
 * whole batch beats one XNNPACK product per element, whose fixed cost (packing the fresh right
 * operand, the views) dominates small products such as attention's per-head q·kᵀ and attn·v.
 * Measured with 2 threads (while a niced training run shared the cores): 64 x 32 x 64 per element,
 * batch 64: 0.8 ms against 9-11 ms; 256 x 32 x 256, batch 64: 10-11 ms against 11-36 ms; but
 * 256 x 256 x 32, batch 32: 6.3 ms against 4.8 ms, where XNNPACK's threads win over a long reduction.
 */
const SMALL_BATCHED_MAX_MACS = 1 << 19;
/** ... and up to this many for short reductions (K <= SMALL_BATCHED_SHORT_K). */
const SMALL_BATCHED_SHORT_K_MAX_MACS = 1 << 21;
const SMALL_BATCHED_SHORT_K = 64;

/**
 * A true batch (no broadcast) of small products in any transpose combination through `gemmTN`:
 * A brought to [..., K, M] and B to [..., K, N] by our SIMD transpose where needed. Null where it
 * does not apply (M % 4, N % 8, broadcast or single batches, large products, other dtypes).
 */
function productSmallBatched(
  backend: WasmBackend,
  s: Scratch,
  a: Info,
  b: Info,
  transposeA: boolean,
  transposeB: boolean,
): Info | null {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const batch = a.shape.slice(0, -2);
  const count = tf.util.sizeFromShape(batch);
  if (count < 2 || !tf.util.arraysEqual(batch, b.shape.slice(0, -2))) return null;
  const [m, k] = transposeA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
  const [k2, n] = transposeB ? [b.shape[rb - 1], b.shape[rb - 2]] : [b.shape[rb - 2], b.shape[rb - 1]];
  const macs = m * n * k;
  const limit = k <= SMALL_BATCHED_SHORT_K ? SMALL_BATCHED_SHORT_K_MAX_MACS : SMALL_BATCHED_MAX_MACS;
  if (k !== k2 || k === 0 || m % 4 !== 0 || n % 8 !== 0 || macs === 0 || macs > limit) return null;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const kernels = process.env.DIFFGUIDE_GEMM_TN === '0' ? null : simdKernels(backend);
  if (!kernels) return null;
  const A = transposeA ? a : s.transpose(a, swapLast2(ra)); // [..., K, M]
  const B = transposeB ? s.transpose(b, swapLast2(rb)) : b; // [..., K, N]
  const out = backend.makeOutput([...batch, m, n], 'float32');
  const [pa, pb, po] = [addr(backend, A), addr(backend, B), addr(backend, out)];
  for (let i = 0; i < count; i++) kernels.gemmTN(pa + 4 * i * k * m, pb + 4 * i * k * n, po + 4 * i * m * n, k, m, n);
  return out;
}

export function batchMatMulKernel({
  inputs,
  backend: be,
  attrs,
}: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs: { transposeA: boolean; transposeB: boolean };
}): Info {
  const backend = be as WasmBackend;
  const { a, b } = inputs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32')
    throw new Error(`BatchMatMul on wasm needs float32 inputs, got ${a.dtype} and ${b.dtype}`);
  const s = new Scratch(backend);
  try {
    const ra = a.shape.length;
    const rb = b.shape.length;
    const viaGemmTN = attrs.transposeA && !attrs.transposeB ? productTN(backend, a, b) : null;
    if (viaGemmTN) return viaGemmTN;
    const small = productSmallBatched(backend, s, a, b, attrs.transposeA, attrs.transposeB);
    if (small) return small;
    const A = attrs.transposeA ? s.transpose(a, swapLast2(ra)) : a; // [..., M, K]
    // Caching a right operand keeps a packed copy of it alive as long as it lives: worth it for
    // weights, a waste for the activations that weight gradients multiply (Aᵀ·dy: every such product
    // has transposeA, and no forward x·W or input gradient dy·Wᵀ has). So only without transposeA.
    const cache = !attrs.transposeA;
    // Shared right operand given transposed (a linear layer's dx = dy·Wᵀ): a cached copy.
    const bT =
      cache &&
      attrs.transposeB &&
      tf.util.sizeFromShape(b.shape.slice(0, -2)) === 1 &&
      tf.util.sizeFromShape(b.shape) > 0
        ? cachedTranspose(backend, b, b.shape[rb - 1], b.shape[rb - 2])
        : null;
    const B = bT ?? (attrs.transposeB ? s.transpose(b, swapLast2(rb)) : b); // [..., K, N]
    const [m, k] = A.shape.slice(-2);
    const [k2, n] = B.shape.slice(-2);
    if (k !== k2) {
      throw new Error(
        `Error in matMul: inner shapes (${k}) and (${k2}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${attrs.transposeA} and transposeB=${attrs.transposeB} must match.`,
      );
    }
    const batchA = A.shape.slice(0, -2);
    const batchB = B.shape.slice(0, -2);
    const outBatch = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
    const nA = tf.util.sizeFromShape(batchA);
    const nB = tf.util.sizeFromShape(batchB);
    const nOut = tf.util.sizeFromShape(outBatch);
    const outShape = [...outBatch, m, n];
    if (m * n * nOut === 0) return backend.makeOutput(outShape, 'float32');
    if (k === 0) {
      const z = backend.makeOutput(outShape, 'float32');
      const { memoryOffset } = backend.dataIdMap.get(z.dataId);
      heapU8(backend).fill(0, memoryOffset, memoryOffset + 4 * tf.util.sizeFromShape(outShape));
      return z;
    }
    if (nB === 1) {
      // Shared right operand (weights): one product with the batch folded into the rows. B's own
      // id when B is the input itself, so that XNNPACK's packed weights stay cached across calls
      // (see `cacheableRightOperand`); otherwise a view with a fresh id (packed, then dropped).
      const out = backend.makeOutput(outShape, 'float32');
      // (XNNPACK's packed copy under B's own id counts against the cache budget, wasm.ts.)
      const own =
        B === bT ||
        (cache && B === b && cacheableRightOperand(b, k) && cacheAllowed(backend, b, 'xnnpack fc', 4 * k * n));
      const bv = own ? B : view(backend, B, 0, [1, k, n]);
      try {
        // A and the output are read and written whole: their own ids (the cache is keyed by B's id only).
        product(backend, idOf(backend, A), nA * m, k, idOf(backend, bv), n, idOf(backend, out));
      } finally {
        if (!own) releaseView(backend, bv);
      }
      return out;
    }
    // True batch: one XNNPACK product per batch element on views.
    const out = backend.makeOutput(outShape, 'float32');
    const rank = outBatch.length;
    const padA = [...new Array(rank - batchA.length).fill(1), ...batchA];
    const padB = [...new Array(rank - batchB.length).fill(1), ...batchB];
    const stA = tf.util.computeStrides(padA);
    const stB = tf.util.computeStrides(padB);
    const idx = new Array(rank).fill(0);
    for (let i = 0; i < nOut; i++) {
      let ia = 0;
      let ib = 0;
      for (let d = 0; d < rank; d++) {
        if (padA[d] !== 1) ia += idx[d] * (d < rank - 1 ? stA[d] : 1);
        if (padB[d] !== 1) ib += idx[d] * (d < rank - 1 ? stB[d] : 1);
      }
      const av = view(backend, A, ia * m * k, [1, m, k]);
      const bv = view(backend, B, ib * k * n, [1, k, n]);
      const ov = view(backend, out, i * m * n, [1, m, n]);
      try {
        product(backend, idOf(backend, av), m, k, idOf(backend, bv), n, idOf(backend, ov));
      } finally {
        releaseView(backend, av);
        releaseView(backend, bv);
        releaseView(backend, ov);
      }
      for (let d = rank - 1; d >= 0; d--) {
        if (++idx[d] < outBatch[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  } finally {
    s.dispose();
  }
}

/** Sum `g` over the axes where it was broadcast to reach `shape`, then reshape to `shape`. */
function unbroadcast(g: tf.Tensor, shape: number[]): tf.Tensor {
  if (tf.util.arraysEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank - 2; i++) {
    if (i < lead || shape[i - lead] === 1) axes.push(i);
  }
  const r = axes.length ? tf.sum(g, axes, true) : g;
  return r.reshape(shape);
}

/** Gradient of BatchMatMul for every backend (reduces broadcast batch axes; folds shared weights). */
export function batchMatMulGrad(
  dy: tf.Tensor,
  saved: tf.Tensor[],
  attrs: tf.NamedAttrMap,
): Record<string, () => tf.Tensor> {
  const [a, b] = saved;
  const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
  const nA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const nB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  return {
    a: () => {
      const g = transposeA ? tf.matMul(b, dy, transposeB, true) : tf.matMul(dy, b, false, !transposeB);
      return unbroadcast(g, a.shape);
    },
    b: () => {
      if (nB === 1 && nA > 1 && !transposeA) {
        // Shared weights: fold the batch into one product [K, rows]·[rows, N].
        const k = a.shape[a.rank - 1];
        const n = dy.shape[dy.rank - 1];
        const af = a.reshape([-1, k]);
        const dyf = dy.reshape([-1, n]);
        const g = transposeB ? tf.matMul(dyf, af, true, false) : tf.matMul(af, dyf, true, false);
        return g.reshape(b.shape);
      }
      const g = transposeB
        ? transposeA
          ? tf.matMul(dy, a, true, true)
          : tf.matMul(dy, a, true, false)
        : transposeA
          ? tf.matMul(a, dy, false, false)
          : tf.matMul(a, dy, true, false);
      return unbroadcast(g, b.shape);
    },
  };
}

/**
 * tfjs-backend-wasm's _FusedMatMul (tf.fused.matMul: a linear layer with its bias) keeps XNNPACK's
 * packed copy of the right operand under its id, as BatchMatMul does: outside the cache budget
 * (wasm.ts `cacheAllowed`) the right operand goes in under a view with a fresh id, released after
 * the call (its operator and packed copy with it). Measured on the 256 px guided-diffusion UNet:
 * 194 MiB of packed embedding projections otherwise.
 */
export function fusedMatMulKernel(args: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs: Record<string, unknown>;
}): Info {
  const backend = args.backend as WasmBackend;
  const { b } = args.inputs;
  const orig = captureOriginal('_FusedMatMul')!;
  if (b.dtype !== 'float32' || cacheAllowed(backend, b, 'xnnpack fc', 4 * tf.util.sizeFromShape(b.shape)))
    return orig(args as never) as Info;
  const bv = view(backend, b, 0, b.shape);
  try {
    return orig({ ...args, inputs: { ...args.inputs, b: bv } } as never) as Info;
  } finally {
    releaseView(backend, bv);
  }
}
