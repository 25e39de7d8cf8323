/**
 * Fast, complete gradients on tfjs's wasm backend, installed by `initBackend`.
 *
 * wasm kernels (replacing or adding to tfjs-backend-wasm 4.22):
 * - Conv2DBackpropInput / Conv2DBackpropFilter (conv.ts): forward XNNPACK convolutions and GEMMs;
 *   strided dx by phases; stride-1 dW as one GEMM over shifted windows, strided dW by the
 *   batch/channel swap; same/valid/explicit pads, dilation. conv2dTranspose
 *   uses Conv2DBackpropInput, so it is fast too.
 * - BatchMatMul (matmul.ts): explicit transposes + XNNPACK per batch on zero-copy views; weights
 *   (a shared right operand) keep their packed XNNPACK copy cached across calls.
 * - Slice / Unpack / SplitV (slice.ts): copy only the selected elements (the stock kernels copy the
 *   whole input per slice). Outputs are not views of the input (see slice.ts for why).
 * - UnsortedSegmentSum (segment.ts): gives tf.gather its gradient.
 * - Pow (pow.ts): vectorised kernels for exponents 2, 3, 1, ±0.5, -1.
 * - Identity (identity.ts): shares the input's buffer (the stock kernel copies it; tfjs clones
 *   every tensor it saves for a gradient).
 * - DepthwiseConv2dNativeBackpropInput / Filter (conv.ts; missing on wasm): depthwise forward
 *   convolutions (zero-dilated dy for strides; batch folded into channels for dW). Correct, not tuned.
 * Gradients (all backends): Conv2D (adds dilations and dimRoundingMode), BatchMatMul (reduces
 * broadcast batch axes), Rsqrt (no pow).
 * Threads (threads.ts): tfjs's threaded wasm build started under Node, guarded (exact build, deadline,
 *   self-check, clean exit); lib/backend.ts picks the count (idle CPUs, at most 4; env/option override).
 *
 * Two mechanisms, both safe for every other backend:
 * - wasm kernels (`tf.registerKernel({backendName: 'wasm'})`): missing or slow kernels re-expressed
 *   with XNNPACK forward kernels (conv backprop, batched matmul, slice, segment sum, ...). They only
 *   ever run on wasm.
 * - gradient overrides (`tf.registerGradient`, global in tfjs): each gradFunc is written with ops
 *   that are correct on every backend; where a formula is only faster on wasm, it checks
 *   `tf.getBackend()`.
 *
 * Heap guard (wasm.ts): the wasm module's malloc throws `WasmHeapError` (what was asked, the heap
 *   size, the fix) where tfjs-backend-wasm would register a tensor at address 0 and abort; an
 *   Emscripten abort with the heap past half its 4 GB limit is turned into the same error.
 * `installFastGradients` is idempotent. `fastGradientsInstalled()` lists what was installed.
 */
import * as tf from '@tensorflow/tfjs';
import { captureOriginal, guardWasmHeap } from './wasm.js';
import { powKernel, rsqrtGrad } from './pow.js';
import { unsortedSegmentSumKernel } from './segment.js';
import { identityKernel } from './identity.js';
import { sliceKernel, splitVKernel, unpackKernel } from './slice.js';
import { batchMatMulGrad, batchMatMulKernel } from './matmul.js';
import { conv2DKernel, fusedConv2DKernel } from './winograd.js';
import { transposeKernel } from './transpose.js';
import { conv2DBackpropFilterKernel, conv2DBackpropInputKernel, depthwiseBackpropFilterKernel, depthwiseBackpropInputKernel, conv2dBackpropFilterOps, conv2dBackpropInputOps, convGeometry } from './conv.js';

type GradFunc = tf.GradConfig['gradFunc'];

const installed: string[] = [];
let wasmDone = false;
let gradsDone = false;

/** Names of kernels and gradients that diffguide replaced or added (for `diffguide info`). */
export function fastGradientsInstalled(): readonly string[] {
  return installed;
}

function registerWasmKernel(kernelName: string, kernelFunc: (args: never) => tf.TensorInfo | tf.TensorInfo[]): void {
  captureOriginal(kernelName);
  if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  installed.push(`kernel wasm:${kernelName}`);
}

function registerGrad(kernelName: string, inputsToSave: string[], gradFunc: GradFunc, outputsToSave?: boolean[]): void {
  tf.registerGradient({ kernelName, inputsToSave, outputsToSave, gradFunc });
  installed.push(`gradient ${kernelName}`);
}

function allOne(v: number | number[] | undefined): boolean {
  return v == null || (Array.isArray(v) ? v.every((e) => e === 1) : v === 1);
}

function installWasmKernels(): void {
  if (wasmDone || !tf.getKernel('Conv2D', 'wasm')) return;
  wasmDone = true;
  registerWasmKernel('Conv2D', conv2DKernel as never);
  registerWasmKernel('FusedConv2D', fusedConv2DKernel as never);
  registerWasmKernel('Conv2DBackpropInput', conv2DBackpropInputKernel as never);
  registerWasmKernel('Conv2DBackpropFilter', conv2DBackpropFilterKernel as never);
  registerWasmKernel('DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInputKernel as never);
  registerWasmKernel('DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilterKernel as never);
  registerWasmKernel('BatchMatMul', batchMatMulKernel as never);
  registerWasmKernel('Slice', sliceKernel as never);
  registerWasmKernel('Unpack', unpackKernel as never);
  registerWasmKernel('SplitV', splitVKernel as never);
  registerWasmKernel('UnsortedSegmentSum', unsortedSegmentSumKernel as never);
  registerWasmKernel('Pow', powKernel as never);
  registerWasmKernel('Identity', identityKernel as never);
  registerWasmKernel('Transpose', transposeKernel as never);
}

function installGradients(): void {
  if (gradsDone) return;
  gradsDone = true;
  registerGrad('BatchMatMul', ['a', 'b'], batchMatMulGrad as GradFunc);
  registerGrad('Rsqrt', ['x'], rsqrtGrad as GradFunc);
  // Conv2D: tfjs's gradient rejects dilations > 1 and drops dimRoundingMode. Same kernels otherwise
  // (on wasm they are ours, built from forward convolutions).
  registerGrad('Conv2D', ['x', 'filter'], (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const d = dy as tf.Tensor4D;
    const { strides, pad, dataFormat, dimRoundingMode, dilations } = attrs as unknown as tf.Conv2DAttrs;
    if (allOne(dilations)) {
      return {
        x: () => tf.engine().runKernel('Conv2DBackpropInput', { dy: d, filter }, { strides, pad, dataFormat, dimRoundingMode, inputShape: x.shape } as never) as tf.Tensor,
        filter: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: d }, { strides, pad, dataFormat, dimRoundingMode, filterShape: filter.shape } as never) as tf.Tensor,
      };
    }
    const nchw = dataFormat === 'NCHW';
    const toNhwc = (t: tf.Tensor) => (nchw ? tf.transpose(t, [0, 2, 3, 1]) : t) as tf.Tensor4D;
    const g = () => convGeometry(toNhwc(x).shape, filter.shape, strides, dilations, pad, dimRoundingMode);
    return {
      x: () => {
        const dx = conv2dBackpropInputOps(toNhwc(d), filter, toNhwc(x).shape, g());
        return nchw ? tf.transpose(dx, [0, 3, 1, 2]) : dx;
      },
      filter: () => conv2dBackpropFilterOps(toNhwc(x), toNhwc(d), filter.shape, g()),
    };
  });
}

/**
 * Install diffguide's kernels and gradients. Called by `initBackend` after a backend starts;
 * the wasm kernels are registered whenever the wasm backend package is loaded (they only run on wasm).
 */
export function installFastGradients(_tfBackend: string): void {
  guardWasmHeap(); // wasm: a full heap throws WasmHeapError instead of Emscripten's bare Aborted()
  installWasmKernels();
  installGradients();
}
