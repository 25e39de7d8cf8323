/**
 * Identity on wasm without a copy: the output shares the input's buffer (one more reference on
 * the same data id), as tfjs-backend-cpu's Identity and every backend's Reshape do. The stock wasm
 * Identity copies the whole tensor, and tfjs runs Identity for every `clone()` — among others for
 * each tensor that `tf.customGrad` saves for the backward pass.
 *
 * Sharing is safe because no tfjs kernel writes into an existing buffer: kernels write fresh
 * outputs, `Variable.assign` points the variable at the new value's buffer, and `dispose` only drops
 * a reference (the buffer is freed with the last one). Stock kernels that call the copying identity
 * internally import it directly, so they are unaffected by this registration.
 */
import type { Info, WasmBackend } from './wasm.js';

export function identityKernel({ inputs: { x }, backend }: { inputs: Record<string, Info>; backend: unknown }): Info {
  (backend as WasmBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}
