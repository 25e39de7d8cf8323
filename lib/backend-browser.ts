/**
 * Backend start-up in browsers and workers (the Node one is lib/backend.ts): wasm (XNNPACK + our SIMD
 * module and fast gradients, as under Node), webgpu or webgl where the browser has them, cpu.
 * `auto` tries wasm first (the kernels, and so the numbers, of Node's wasm backend), then webgl, then
 * cpu; webgpu and webgl on request, falling back to wasm and cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { installFastGradients } from './fastgrad/index.js';
import { loadSimdKernels } from './fastgrad/simd.js';
import type { WasmBackend } from './fastgrad/wasm.js';

export type BrowserBackendName = 'wasm' | 'webgl' | 'webgpu' | 'cpu';

export interface BrowserBackendInfo {
  name: BrowserBackendName;
  /** wasm: SIMD available; null elsewhere. */
  simd: boolean | null;
  /** wasm: threads tfjs runs (1 unless the page is cross-origin isolated). */
  threads: number;
  /** wasm: our SIMD module instantiated on tfjs's memory (Winograd convs, GroupNorm, ...). */
  ourSimdKernels: boolean;
  /** Backends tried first and why they did not start. */
  skipped: { name: BrowserBackendName; reason: string }[];
}

/**
 * Start a backend. `wasmPath`: the URL prefix of the folder holding tfjs-backend-wasm's `.wasm` files
 * (copied next to the bundle; default `./`).
 */
export async function initBrowserBackend(
  opts: { backend?: BrowserBackendName | 'auto'; wasmPath?: string } = {},
): Promise<BrowserBackendInfo> {
  const want = opts.backend ?? 'auto';
  const order: BrowserBackendName[] =
    want === 'auto'
      ? ['wasm', 'webgl', 'cpu']
      : [want, ...(['wasm', 'cpu'] as BrowserBackendName[]).filter((b) => b !== want)];
  const skipped: BrowserBackendInfo['skipped'] = [];
  for (const name of order) {
    try {
      if (name === 'wasm') setWasmPaths(opts.wasmPath ?? './');
      if (name === 'webgpu') {
        const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
        if (!gpu) throw new Error('this browser has no WebGPU (navigator.gpu)');
        // ask first: tfjs logs an error when it finds no adapter (headless Chromium, --disable-gpu)
        if (!(await gpu.requestAdapter())) throw new Error('WebGPU found no adapter');
        await import('@tensorflow/tfjs-backend-webgpu');
      }
      if (!(await tf.setBackend(name))) throw new Error(`tfjs's ${name} backend did not start`);
      await tf.ready();
      let simd: boolean | null = null;
      let threads = 1;
      let ours = false;
      if (name === 'wasm') {
        simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
        const wasm = await import('@tensorflow/tfjs-backend-wasm');
        threads = wasm.getThreadsCount();
        ours = (await loadSimdKernels(tf.backend() as unknown as WasmBackend)) !== null;
      }
      installFastGradients(name);
      return { name, simd, threads, ourSimdKernels: ours, skipped };
    } catch (e) {
      skipped.push({ name, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  throw new Error(`no tfjs backend could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}
