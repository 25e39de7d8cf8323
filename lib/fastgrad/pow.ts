/**
 * Pow on wasm for the exponents people actually write: tfjs-backend-wasm computes every pow with
 * scalar std::pow (~50 ns/element here). A float32 base with a one-element exponent of
 * 2, 3, 1, 0.5, -0.5 or -1 runs the equivalent vectorised kernel instead (bit-for-bit the same
 * function: x², x·x², x, √x, 1/√x, 1/x); anything else goes to the stock kernel.
 * `rsqrtGrad` (all backends) avoids pow as well: d rsqrt(x) = -½ dy · rsqrt(x)³.
 */
import * as tf from '@tensorflow/tfjs';
import { Scratch, captureOriginal, heapF32, heapI32, type Info, type WasmBackend } from './wasm.js';

export function powKernel(args: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}): Info {
  const {
    inputs: { a, b },
    backend: be,
  } = args;
  const backend = be as WasmBackend;
  const stock = () => captureOriginal('Pow')!(args as never) as Info;
  if (a.dtype !== 'float32' || tf.util.sizeFromShape(b.shape) !== 1 || (b.dtype !== 'float32' && b.dtype !== 'int32'))
    return stock();
  const e = b.dtype === 'float32' ? heapF32(backend, b)[0] : heapI32(backend, b)[0];
  const unary: Record<string, string> = { '2': 'Square', '0.5': 'Sqrt', '-0.5': 'Rsqrt', '-1': 'Reciprocal' };
  if (!(String(e) in unary) && e !== 1 && e !== 3) return stock();
  const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const s = new Scratch(backend);
  try {
    let y: Info;
    if (e === 1) y = s.run('Identity', { x: a });
    else if (e === 3) y = s.run('Multiply', { a, b: s.run('Square', { x: a }) });
    else y = s.run(unary[String(e)], { x: a });
    if (!tf.util.arraysEqual(y.shape, outShape)) y = s.reshape(y, outShape);
    return s.keep(y);
  } finally {
    s.dispose();
  }
}

/** Rsqrt gradient without pow: dx = -½ dy · rsqrt(x)³ (any backend). */
export function rsqrtGrad(dy: tf.Tensor, saved: tf.Tensor[]): Record<string, () => tf.Tensor> {
  const [x] = saved;
  return {
    x: () => {
      const y = tf.rsqrt(x);
      return dy.mul(y.square().mul(y)).mul(-0.5);
    },
  };
}
