/**
 * Batched matmul on wasm that stays on XNNPACK's fast path.
 *
 * tfjs-backend-wasm runs a matmul through XNNPACK only when there is one batch and neither side
 * is transposed; everything else (attention's q·kᵀ, every matmul gradient) falls to a scalar loop.
 * This kernel transposes explicitly, folds a batch that multiplies shared weights into the rows,
 * and runs true batched products as one XNNPACK product per batch on zero-copy views of the
 * operands and of the output.
 *
 * `batchMatMulGrad` is the matching gradient for every backend: the stock one returns gradients
 * of the broadcast shape when one side is broadcast over the batch; this one reduces them, and
 * folds the batch into one product for the weights of a linear layer.
 */
import * as tf from '@tensorflow/tfjs';
import { Scratch, heapU8, releaseView, view, type Info, type WasmBackend } from './wasm.js';

type CMatMul = (aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, outId: number) => void;

const cFns = new WeakMap<object, CMatMul>();

function cMatMul(backend: WasmBackend): CMatMul {
  let f = cFns.get(backend);
  if (!f) {
    const w = backend.wasm as unknown as { cwrap: (n: string, r: null, a: string[]) => CMatMul };
    f = w.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
    cFns.set(backend, f);
  }
  return f;
}

const shapeBytes = (s: number[]) => new Uint8Array(new Int32Array(s).buffer);

function swapLast2(rank: number): number[] {
  const p = Array.from({ length: rank }, (_, i) => i);
  [p[rank - 2], p[rank - 1]] = [p[rank - 1], p[rank - 2]];
  return p;
}

export function batchMatMulKernel({ inputs, backend: be, attrs }: { inputs: Record<string, Info>; backend: unknown; attrs: { transposeA: boolean; transposeB: boolean } }): Info {
  const backend = be as WasmBackend;
  const { a, b } = inputs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`BatchMatMul on wasm needs float32 inputs, got ${a.dtype} and ${b.dtype}`);
  const s = new Scratch(backend);
  try {
    const ra = a.shape.length;
    const rb = b.shape.length;
    const A = attrs.transposeA ? s.transpose(a, swapLast2(ra)) : a; // [..., M, K]
    const B = attrs.transposeB ? s.transpose(b, swapLast2(rb)) : b; // [..., K, N]
    const [m, k] = A.shape.slice(-2);
    const [k2, n] = B.shape.slice(-2);
    if (k !== k2) {
      throw new Error(`Error in matMul: inner shapes (${k}) and (${k2}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${attrs.transposeA} and transposeB=${attrs.transposeB} must match.`);
    }
    const batchA = A.shape.slice(0, -2);
    const batchB = B.shape.slice(0, -2);
    const outBatch = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
    const nA = tf.util.sizeFromShape(batchA);
    const nB = tf.util.sizeFromShape(batchB);
    const nOut = tf.util.sizeFromShape(outBatch);
    const outShape = [...outBatch, m, n];
    const call = cMatMul(backend);
    if (m * n * nOut === 0) return backend.makeOutput(outShape, 'float32');
    if (k === 0) {
      const z = backend.makeOutput(outShape, 'float32');
      const { memoryOffset } = backend.dataIdMap.get(z.dataId);
      heapU8(backend).fill(0, memoryOffset, memoryOffset + 4 * tf.util.sizeFromShape(outShape));
      return z;
    }
    if (nB === 1) {
      // Shared right operand (weights): one product with the batch folded into the rows.
      const out = backend.makeOutput(outShape, 'float32');
      const a3 = view(backend, A, 0, [1, nA * m, k]);
      const b3 = view(backend, B, 0, [1, k, n]);
      const o3 = view(backend, out, 0, [1, nA * m, n]);
      try {
        call(backend.dataIdMap.get(a3.dataId).id, shapeBytes(a3.shape), 3, backend.dataIdMap.get(b3.dataId).id, shapeBytes(b3.shape), 3, false, false, backend.dataIdMap.get(o3.dataId).id);
      } finally {
        releaseView(backend, a3);
        releaseView(backend, b3);
        releaseView(backend, o3);
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
    const aShape = shapeBytes([1, m, k]);
    const bShape = shapeBytes([1, k, n]);
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
        call(backend.dataIdMap.get(av.dataId).id, aShape, 3, backend.dataIdMap.get(bv.dataId).id, bShape, 3, false, false, backend.dataIdMap.get(ov.dataId).id);
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
export function batchMatMulGrad(dy: tf.Tensor, saved: tf.Tensor[], attrs: tf.NamedAttrMap): Record<string, () => tf.Tensor> {
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
        ? (transposeA ? tf.matMul(dy, a, true, true) : tf.matMul(dy, a, true, false))
        : (transposeA ? tf.matMul(a, dy, false, false) : tf.matMul(a, dy, true, false));
      return unbroadcast(g, b.shape);
    },
  };
}
