/**
 * Our SIMD wasm module (simd-module.ts) instantiated on a wasm backend's own memory, once per
 * backend. Pointers are byte offsets into that memory (a tensor's `memoryOffset`). The functions
 * run on the calling thread: helper threads sharing the memory measured no faster with 2 threads
 * (XNNPACK's pthreads spin between GEMMs and compete with them for the cores).
 */
import { SIMD_WASM_PLAIN, SIMD_WASM_SHARED } from './simd-wasm.js';
import type { Info, WasmBackend } from './wasm.js';

export interface SimdKernels {
  winoInput(
    src: number,
    dst: number,
    win: number,
    n: number,
    h: number,
    w: number,
    c: number,
    pt: number,
    pl: number,
    th: number,
    tw: number,
    t0: number,
    t1: number,
  ): void;
  winoFilter(src: number, dst: number, cin: number, cout: number, e0: number, e1: number): void;
  winoOutput(
    src: number,
    dst: number,
    bias: number,
    n: number,
    oh: number,
    ow: number,
    k: number,
    th: number,
    tw: number,
    relu: number,
    t0: number,
    t1: number,
  ): void;
  winoGradOutput(
    src: number,
    dst: number,
    n: number,
    oh: number,
    ow: number,
    k: number,
    th: number,
    tw: number,
    t0: number,
    t1: number,
  ): void;
  winoGradFilter(src: number, dst: number, cin: number, cout: number, e0: number, e1: number): void;
  transpose2d(src: number, dst: number, p: number, a: number, b: number): void;
  gemmTN(a: number, b: number, c: number, t: number, m: number, n: number): void;
  colSum(src: number, dst: number, p: number, r: number, c: number): void;
  adamStep(
    p: number,
    g: number,
    m: number,
    v: number,
    pOut: number,
    mOut: number,
    vOut: number,
    size: number,
    beta1: number,
    beta2: number,
    omb1: number,
    omb2: number,
    lrBc1: number,
    invBc2: number,
    eps: number,
    wdLr: number,
  ): void;
  groupNorm(
    src: number,
    dst: number,
    gamma: number,
    beta: number,
    scale1: number,
    shift: number,
    tmp: number,
    n: number,
    l: number,
    c: number,
    groups: number,
    eps: number,
    silu: number,
    stats: number,
  ): void;
  swish(src: number, dst: number, n: number, alpha: number): void;
  swishGrad(x: number, dy: number, dx: number, n: number, alpha: number): void;
  layerNorm(
    src: number,
    dst: number,
    gamma: number,
    beta: number,
    stats: number,
    r: number,
    c: number,
    eps: number,
  ): void;
  layerNormGrad(
    x: number,
    dy: number,
    stats: number,
    gamma: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    r: number,
    c: number,
  ): void;
  groupNormGrad(
    x: number,
    dy: number,
    stats: number,
    gamma: number,
    beta: number,
    scale1: number,
    shift: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    dscale1: number,
    dshift: number,
    tmp: number,
    n: number,
    l: number,
    c: number,
    groups: number,
    silu: number,
  ): void;
}

const instances = new WeakMap<object, SimdKernels | null>();

function wasmMemoryOf(backend: WasmBackend): WebAssembly.Memory | undefined {
  const w = backend.wasm as unknown as { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  return w.wasmMemory ?? w.asm?.memory;
}

function moduleBytes(memory: WebAssembly.Memory): Uint8Array<ArrayBuffer> {
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  return fromBase64(shared ? SIMD_WASM_SHARED : SIMD_WASM_PLAIN);
}

function unavailable(backend: WasmBackend, e: unknown): null {
  console.warn(`diffguide: SIMD kernels unavailable (${(e as Error).message}); using tfjs's kernels`);
  instances.set(backend, null);
  return null;
}

/**
 * Compile and instantiate the module for this backend ahead of use, asynchronously: browsers refuse
 * synchronous compilation of modules over 4 KB on the main thread. `initBackend` calls it.
 */
export async function loadSimdKernels(backend: WasmBackend): Promise<SimdKernels | null> {
  if (instances.has(backend)) return instances.get(backend)!;
  const memory = wasmMemoryOf(backend);
  if (!memory) return unavailable(backend, new Error('no wasm memory found on the backend'));
  try {
    const { instance } = await WebAssembly.instantiate(moduleBytes(memory), { env: { memory } });
    const k = instance.exports as unknown as SimdKernels;
    instances.set(backend, k);
    return k;
  } catch (e) {
    return unavailable(backend, e);
  }
}

/**
 * The kernels bound to the backend's memory (instantiated synchronously on first use when
 * `loadSimdKernels` has not run: fine under Node), or null where they cannot be (one warning).
 */
export function simdKernels(backend: WasmBackend): SimdKernels | null {
  if (instances.has(backend)) return instances.get(backend)!;
  const memory = wasmMemoryOf(backend);
  if (!memory) return unavailable(backend, new Error('no wasm memory found on the backend'));
  try {
    const k = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes(memory)), { env: { memory } })
      .exports as unknown as SimdKernels;
    instances.set(backend, k);
    return k;
  } catch (e) {
    return unavailable(backend, e);
  }
}

/** Base64 -> bytes with what both Node and browsers have (atob). */
function fromBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A tensor's address on the wasm heap. */
export const addr = (backend: WasmBackend, t: Info): number => backend.dataIdMap.get(t.dataId).memoryOffset;
