/**
 * UnsortedSegmentSum on wasm (missing from tfjs-backend-wasm 4.22), which gives `tf.gather`
 * (embedding lookup) its gradient: rows of `x` are added into `out[segmentIds[i]]` on the heap.
 */
import * as tf from '@tensorflow/tfjs';
import { heapF32, heapI32, type Info, type WasmBackend } from './wasm.js';

export function unsortedSegmentSumKernel({
  inputs,
  backend: be,
  attrs,
}: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs: { numSegments: number };
}): Info {
  const backend = be as WasmBackend;
  const { x, segmentIds } = inputs;
  const { numSegments } = attrs;
  if (x.dtype !== 'float32' && x.dtype !== 'int32')
    throw new Error(`UnsortedSegmentSum on wasm supports float32 and int32, got ${x.dtype}`);
  const idsRank = segmentIds.shape.length;
  for (let i = 0; i < idsRank; i++) {
    if (segmentIds.shape[i] !== x.shape[i]) {
      throw new Error(
        `UnsortedSegmentSum: segmentIds shape ${JSON.stringify(segmentIds.shape)} must be a prefix of x shape ${JSON.stringify(x.shape)}`,
      );
    }
  }
  const innerShape = x.shape.slice(idsRank);
  const inner = tf.util.sizeFromShape(innerShape);
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype);
  // Views after the allocation (the heap may have grown).
  const o = x.dtype === 'float32' ? heapF32(backend, out) : heapI32(backend, out);
  const xv = x.dtype === 'float32' ? heapF32(backend, x) : heapI32(backend, x);
  o.fill(0);
  const idsInfo = segmentIds.dtype === 'int32' ? heapI32(backend, segmentIds) : heapF32(backend, segmentIds);
  const n = idsInfo.length;
  for (let i = 0; i < n; i++) {
    const s = idsInfo[i];
    if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const ob = s * inner;
    const xb = i * inner;
    for (let j = 0; j < inner; j++) o[ob + j] += xv[xb + j];
  }
  return out;
}
