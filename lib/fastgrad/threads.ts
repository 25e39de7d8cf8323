/**
 * Multi-threaded wasm (XNNPACK's thread pool) under Node — OPT-IN, through a shim.
 *
 * tfjs-backend-wasm 4.22 never uses its threaded build under Node (tfjs issue 3830): the feature
 * flag is hard-wired to false, and the loader hands Emscripten a Blob URL for the pthread worker,
 * which Node's worker_threads cannot load. This shim
 *  1. writes the package's embedded pthread worker script to a temporary file,
 *  2. instantiates `tfjs-backend-wasm-threaded-simd` itself with file paths for the worker and
 *     the main script (Emscripten then uses worker_threads; workers are unref'd, so the process
 *     still exits normally),
 *  3. works around the C++ side capping the pool at navigator.hardwareConcurrency / 2 (read once,
 *     from `os.cpus()`, while the module initialises) by reporting 2 x threads cpus during init,
 *  4. re-registers the 'wasm' backend with a factory returning that module.
 * It depends on internals of tfjs-backend-wasm 4.22.0 (pinned in package.json) and Emscripten's
 * pthread runtime, hence opt-in: `initBackend({ threads: 2 })` or `DIFFGUIDE_WASM_THREADS=2` (also
 * for the CLI). Measured here (2 cores): conv and matmul ~1.9x faster with 2 threads.
 * Any failure restores the stock single-threaded backend and reports why.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

interface WasmPkg {
  BackendWasm: new (module: unknown) => tf.KernelBackend;
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
}

type EmModule = {
  cwrap: (name: string, ret: string | null, args: string[]) => (...a: unknown[]) => unknown;
  tfjs?: Record<string, unknown>;
};

let enabled = 0;

/** Threads of the shimmed backend, or 0 when the shim is not in use. */
export function wasmThreadsEnabled(): number {
  return enabled;
}

/**
 * Replace the 'wasm' backend by the threaded build with `threads` threads. Must run before the
 * wasm backend is first initialised. Resolves to the thread count XNNPACK reports.
 */
export async function enableWasmThreads(threads: number): Promise<number> {
  if (enabled) return enabled;
  if (!(threads > 1)) return 1;
  if ((tf.engine() as unknown as { registry: Record<string, unknown> }).registry.wasm) {
    throw new Error('wasm threads must be requested before the wasm backend starts (initBackend({threads}) or DIFFGUIDE_WASM_THREADS)');
  }
  if (typeof SharedArrayBuffer === 'undefined') throw new Error('wasm threads need SharedArrayBuffer, which this Node lacks');
  // The threaded build is the SIMD one; the stock loader evaluates this flag, ours must too.
  if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))) throw new Error('the threaded wasm build needs wasm SIMD');
  const pkg = require('@tensorflow/tfjs-backend-wasm') as WasmPkg;
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'));
  const mainScript = path.join(dir, 'tfjs-backend-wasm-threaded-simd.js');
  const factory = require(mainScript) as (cfg: Record<string, unknown>) => Promise<EmModule>;
  const { wasmWorkerContents } = require(path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  // The embedded script is a template literal whose "\n" escapes became newlines; tfjs re-escapes them too.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffguide-wasm-'));
  const workerFile = path.join(tmp, 'tfjs-backend-wasm-threaded-simd.worker.js');
  fs.writeFileSync(workerFile, wasmWorkerContents.replace(/\n/g, '\\n'));
  process.once('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

  const osMod = os as { cpus: typeof os.cpus };
  const cpus = osMod.cpus;
  osMod.cpus = () => {
    const c = cpus();
    return Array.from({ length: Math.max(c.length, 2 * threads) }, (_, i) => c[i % c.length]);
  };
  let mod: EmModule;
  try {
    mod = await factory({
      locateFile: (p: string, prefix: string) =>
        p.endsWith('.worker.js') ? workerFile : p.endsWith('.wasm') ? path.join(dir, 'tfjs-backend-wasm-threaded-simd.wasm') : prefix + p,
      mainScriptUrlOrBlob: mainScript,
    });
  } finally {
    osMod.cpus = cpus;
  }
  mod.tfjs = {
    init: mod.cwrap('init', null, []),
    initWithThreadsCount: mod.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: mod.cwrap('get_threads_count', 'number', []),
    registerTensor: mod.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: mod.cwrap('dispose_data', null, ['number']),
    dispose: mod.cwrap('dispose', null, []),
  };
  const stock = tf.findBackendFactory('wasm');
  pkg.setThreadsCount(threads);
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', () => new pkg.BackendWasm(mod), 2);
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('threaded wasm backend did not start');
    const got = pkg.getThreadsCount();
    if (got < 2) throw new Error(`threaded wasm started with ${got} thread(s)`);
    enabled = got;
    return got;
  } catch (e) {
    tf.removeBackend('wasm');
    if (stock) tf.registerBackend('wasm', stock, 2);
    pkg.setThreadsCount(1);
    throw e;
  }
}
