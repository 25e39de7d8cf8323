/**
 * Slice / Unpack / SplitV on wasm without copying the input.
 *
 * The stock wasm Slice reads the whole input into JS (`readSync` copies it) for every slice, so
 * unstacking [32, 256, 64] copies 32 x 2 MB. These kernels copy only the requested elements,
 * straight on the wasm heap (contiguous runs with `copyWithin`).
 *
 * Outputs are fresh tensors, not views of the input: a view would have to survive
 * `engine.moveData` force-freeing its parent when tensors move between backends.
 */
import * as tf from '@tensorflow/tfjs';
import { captureOriginal, sliceHeap, type Info, type WasmBackend } from './wasm.js';

type Args<A> = { inputs: Record<string, Info>; backend: unknown; attrs: A };

export function sliceKernel(args: Args<{ begin: number | number[]; size: number | number[] }>): Info {
  const {
    inputs: { x },
    backend,
    attrs,
  } = args;
  if (x.dtype === 'string' || x.dtype === 'complex64') return captureOriginal('Slice')!(args as never) as Info;
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
  // The stock kernels check bounds; reading past the input on the heap would return garbage.
  tf.slice_util.assertParamsValid(x, begin, size);
  return sliceHeap(backend as WasmBackend, x, begin, size);
}

export function unpackKernel(args: Args<{ axis: number }>): Info[] {
  const {
    inputs: { value },
    backend,
    attrs,
  } = args;
  if (value.dtype === 'string' || value.dtype === 'complex64')
    return captureOriginal('Unpack')!(args as never) as Info[];
  const rank = value.shape.length;
  const axis = attrs.axis < 0 ? attrs.axis + rank : attrs.axis;
  const outShape = value.shape.filter((_, i) => i !== axis);
  const begin = new Array(rank).fill(0);
  const size = value.shape.slice();
  size[axis] = 1;
  const outs: Info[] = [];
  for (let i = 0; i < value.shape[axis]; i++) {
    begin[axis] = i;
    const o = sliceHeap(backend as WasmBackend, value, begin, size);
    outs.push({ dataId: o.dataId, dtype: o.dtype, shape: outShape });
  }
  return outs;
}

export function splitVKernel(args: Args<{ numOrSizeSplits: number | number[]; axis: number }>): Info[] {
  const {
    inputs: { x },
    backend,
    attrs,
  } = args;
  if (x.dtype === 'string' || x.dtype === 'complex64') return captureOriginal('SplitV')!(args as never) as Info[];
  const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
  const begin = new Array(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = x.shape.slice();
    size[axis] = s;
    const o = sliceHeap(backend as WasmBackend, x, begin, size);
    begin[axis] += s;
    return o;
  });
}
