/**
 * Multi-threaded wasm (XNNPACK's thread pool) under Node, through a guarded shim.
 *
 * tfjs-backend-wasm 4.22 never uses its threaded build under Node (tfjs issue 3830): the feature
 * flag is hard-wired to false, and the loader hands Emscripten a Blob URL for the pthread worker,
 * which Node's worker_threads cannot load. This shim
 *  1. refuses any tfjs-backend-wasm other than the exact build it was written for (version 4.22.0
 *     and the SHA-256 of the three threaded-build files), so an upgrade falls back to the stock
 *     single-threaded backend instead of misbehaving;
 *  2. writes the package's embedded pthread worker script to a temporary file (Node's Worker needs
 *     a CommonJS file) and deletes it as soon as the module has started: Emscripten preloads its
 *     whole worker pool (8) before the module resolves, and pthreadpool creates its threads once,
 *     so the file is never read again;
 *  3. instantiates `tfjs-backend-wasm-threaded-simd` with file paths for the worker and the main
 *     script, with a start-up deadline; a worker that fails to load fails the start (instead of
 *     Emscripten's throwing error handler crashing the process) and every worker is terminated;
 *  4. works around the C++ side capping the pool at navigator.hardwareConcurrency / 2 (read once,
 *     from `os.cpus()`, while the module initialises) by reporting 2 x threads cpus during init;
 *  5. re-registers the 'wasm' backend with a factory returning that module, starts it and checks
 *     that it computes correctly (a conv and a matmul against float64 references computed here);
 *  6. lets the process exit normally: Emscripten `ref()`s a worker while it runs a pthread (and
 *     pthreadpool's threads run for the life of the module), which would keep Node alive forever
 *     after main returns (a mocha run would never end); the shim unrefs every worker and makes
 *     `ref()` a no-op on them. Kernels are synchronous, so nothing is lost.
 * Any failure restores the stock single-threaded backend and throws an Error saying why
 * (`lib/backend.ts` prints it as a one-line note and runs single-threaded).
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { xorshiftUniform } from '../random.js';
import { setWasmThreadsEnabled, wasmThreadsEnabled } from './threads-count.js';

const require = createRequire(import.meta.url);
// The very object Emscripten's require('worker_threads') returns (patched during start-up).
const workerThreads = require('node:worker_threads') as typeof import('node:worker_threads');

/** The tfjs-backend-wasm version the shim was written for. */
export const THREADS_SHIM_VERSION = '4.22.0';

/** SHA-256 of the files of that version's threaded build that the shim depends on. */
const BUILD_SHA256: Record<string, string> = {
  'tfjs-backend-wasm-threaded-simd.js': 'd79fba6f8a1648e9e068c73930d4898d99fcc24ca3163a8679464c96a644949f',
  'tfjs-backend-wasm-threaded-simd.worker.js': '2d56f7279a8515423f59e3a8a5793d27aee4fcf4c9f955c28c6d38a4462f9472',
  'tfjs-backend-wasm-threaded-simd.wasm': 'c052228d4bef185c27bbe59a9e029570c78bbb9f08b3cb46b597851650373de2',
};

/** Emscripten's worker pool size in that build; pthreadpool must not need more workers. */
export const MAX_WASM_THREADS = 8;

interface WasmPkg {
  BackendWasm: new (module: unknown) => tf.KernelBackend;
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
}

type EmModule = {
  cwrap: (name: string, ret: string | null, args: string[]) => (...a: unknown[]) => unknown;
  tfjs?: Record<string, unknown>;
};

export { wasmThreadsEnabled };

/** CPUs this process may use (`os.availableParallelism`, which respects affinity masks). */
export function availableCpus(): number {
  const o = os as { availableParallelism?: () => number };
  return typeof o.availableParallelism === 'function' ? o.availableParallelism() : os.cpus().length;
}

/**
 * Why a tfjs-backend-wasm package cannot take the shim, or null when it can. `pkgDir`: the
 * package's root (default: the one this module resolves).
 */
export function threadedBuildMismatch(pkgDir?: string): string | null {
  let version: string;
  let dir: string;
  try {
    const root = pkgDir ?? path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
    dir = path.join(root, 'wasm-out');
  } catch (e) {
    return `cannot read tfjs-backend-wasm's version (${e instanceof Error ? e.message.split('\n')[0] : e})`;
  }
  if (version !== THREADS_SHIM_VERSION) {
    return `tfjs-backend-wasm ${version} is installed; the thread shim is written for ${THREADS_SHIM_VERSION} exactly`;
  }
  for (const [file, want] of Object.entries(BUILD_SHA256)) {
    let got: string;
    try {
      got = createHash('sha256')
        .update(fs.readFileSync(path.join(dir, file)))
        .digest('hex');
    } catch {
      return `tfjs-backend-wasm ${version} lacks wasm-out/${file}`;
    }
    if (got !== want)
      return `wasm-out/${file} of tfjs-backend-wasm ${version} differs from the published build the shim was written for (modified install?)`;
  }
  return null;
}

function relErr(a: Float32Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= num)) num = d; // NaN -> NaN, caught below
    den = Math.max(den, Math.abs(b[i]));
  }
  return Number.isNaN(num) || a.length !== b.length ? Infinity : num / (den || 1);
}

/**
 * Check the current backend on work big enough to be split across threads: a 3x3 'same' conv
 * (NHWC) and a matmul against float64 references computed here, and that a second run gives the
 * same bits. Throws with what differed.
 */
export function selfCheckBackend(tol = 1e-4): void {
  const [n, h, w, ci, co] = [2, 9, 11, 20, 36];
  const xv = xorshiftUniform(n * h * w * ci, 11);
  const wv = xorshiftUniform(9 * ci * co, 12);
  const convRef = new Float64Array(n * h * w * co);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        const o = ((b * h + i) * w + j) * co;
        for (let a = 0; a < 3; a++)
          for (let c = 0; c < 3; c++) {
            const ii = i + a - 1;
            const jj = j + c - 1;
            if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
            const xo = ((b * h + ii) * w + jj) * ci;
            const wo = (a * 3 + c) * ci * co;
            for (let k = 0; k < ci; k++) {
              const xk = xv[xo + k];
              for (let m = 0; m < co; m++) convRef[o + m] += xk * wv[wo + k * co + m];
            }
          }
      }
  const [p, q, r] = [70, 90, 50];
  const av = xorshiftUniform(p * q, 13);
  const bv = xorshiftUniform(q * r, 14);
  const mmRef = new Float64Array(p * r);
  for (let i = 0; i < p; i++)
    for (let k = 0; k < q; k++) {
      const aik = av[i * q + k];
      for (let j = 0; j < r; j++) mmRef[i * r + j] += aik * bv[k * r + j];
    }
  const run = () =>
    tf.tidy(() => [
      tf.conv2d(tf.tensor4d(xv, [n, h, w, ci]), tf.tensor4d(wv, [3, 3, ci, co]), 1, 'same').dataSync() as Float32Array,
      tf.matMul(tf.tensor2d(av, [p, q]), tf.tensor2d(bv, [q, r])).dataSync() as Float32Array,
    ]);
  const [conv, mm] = run();
  const [conv2, mm2] = run();
  const ec = relErr(conv, convRef);
  const em = relErr(mm, mmRef);
  if (!(ec <= tol))
    throw new Error(`self-check: conv2d differs from the reference (relative error ${ec.toExponential(2)})`);
  if (!(em <= tol))
    throw new Error(`self-check: matMul differs from the reference (relative error ${em.toExponential(2)})`);
  if (conv.some((v, i) => v !== conv2[i]) || mm.some((v, i) => v !== mm2[i]))
    throw new Error('self-check: two runs of the same conv/matMul differ');
}

/** Start-up deadline of the threaded module (loading 8 workers; seconds normally). */
const START_TIMEOUT_MS = Number(process.env.DIFFGUIDE_WASM_THREADS_TIMEOUT_MS) || 60000;

/**
 * Replace the 'wasm' backend by the threaded build with `threads` threads (2..8). Must run before
 * the wasm backend is first initialised. Resolves to the thread count XNNPACK reports; on any
 * failure the stock single-threaded 'wasm' backend is registered again and the promise rejects
 * with one line saying why.
 */
export async function enableWasmThreads(threads: number): Promise<number> {
  if (wasmThreadsEnabled()) return wasmThreadsEnabled();
  if (!(threads > 1)) return 1;
  if (threads > MAX_WASM_THREADS)
    throw new Error(`at most ${MAX_WASM_THREADS} wasm threads (Emscripten's worker pool), got ${threads}`);
  if ((tf.engine() as unknown as { registry: Record<string, unknown> }).registry.wasm) {
    throw new Error(
      'the wasm backend had already started single-threaded before threads were requested (initBackend({threads}) or DIFFGUIDE_WASM_THREADS must come first)',
    );
  }
  if (typeof SharedArrayBuffer === 'undefined')
    throw new Error('wasm threads need SharedArrayBuffer, which this Node lacks');
  const mismatch = threadedBuildMismatch();
  if (mismatch) throw new Error(mismatch);
  // The threaded build is the SIMD one; the stock loader evaluates this flag, ours must too.
  if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')))
    throw new Error('the threaded wasm build needs wasm SIMD, which this Node lacks');
  const pkg = require('@tensorflow/tfjs-backend-wasm') as WasmPkg;
  const dir = path.dirname(
    require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'),
  );
  const mainScript = path.join(dir, 'tfjs-backend-wasm-threaded-simd.js');
  const factory = require(mainScript) as (cfg: Record<string, unknown>) => Promise<EmModule>;
  const { wasmWorkerContents } = require(path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js')) as {
    wasmWorkerContents: string;
  };

  const workers: WorkerLike[] = [];
  let phase: 'starting' | 'running' = 'starting';
  let failStart: (e: Error) => void = () => {};
  const startFailed = new Promise<never>((_, reject) => (failStart = reject));
  startFailed.catch(() => {});

  // Every Worker Emscripten creates goes through this subclass: we can terminate them all if the
  // start fails, and a worker error during start fails the start instead of throwing in an event
  // handler (Emscripten's onerror rethrows, which would crash the process).
  const NodeWorker = workerThreads.Worker;
  class TrackedWorker extends NodeWorker {
    private emOnError?: (e: unknown) => void;
    constructor(...args: ConstructorParameters<typeof NodeWorker>) {
      super(...args);
      workers.push(this as unknown as WorkerLike);
    }
    get onerror(): (e: unknown) => void {
      return (e: unknown) => {
        if (phase === 'starting')
          failStart(
            new Error(`a wasm worker failed to load: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`),
          );
        else this.emOnError?.(e);
      };
    }
    set onerror(f: (e: unknown) => void) {
      this.emOnError = f;
    }
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffguide-wasm-'));
  const removeTmp = () => fs.rmSync(tmp, { recursive: true, force: true });
  process.once('exit', removeTmp); // in case start-up is interrupted
  const workerFile = path.join(tmp, 'tfjs-backend-wasm-threaded-simd.worker.js');
  // The embedded script is a template literal whose "\n" escapes became newlines; tfjs re-escapes them too.
  fs.writeFileSync(workerFile, wasmWorkerContents.replace(/\n/g, '\\n'));

  const terminateAll = () => {
    for (const w of workers) void w.terminate().catch(() => {});
  };
  const stock = tf.findBackendFactory('wasm');
  let registered = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const osMod = os as { cpus: typeof os.cpus };
    const cpus = osMod.cpus;
    osMod.cpus = () => {
      const c = cpus();
      return Array.from({ length: Math.max(c.length, 2 * threads) }, (_, i) => c[i % c.length]);
    };
    (workerThreads as { Worker: unknown }).Worker = TrackedWorker;
    let mod: EmModule;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the threaded wasm module did not start within ${START_TIMEOUT_MS / 1000} s`)),
          START_TIMEOUT_MS,
        );
      });
      mod = await Promise.race([
        factory({
          locateFile: (p: string, prefix: string) =>
            p.endsWith('.worker.js')
              ? workerFile
              : p.endsWith('.wasm')
                ? path.join(dir, 'tfjs-backend-wasm-threaded-simd.wasm')
                : prefix + p,
          mainScriptUrlOrBlob: mainScript,
        }),
        startFailed,
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
      osMod.cpus = cpus;
      (workerThreads as { Worker: unknown }).Worker = NodeWorker;
    }
    // All pool workers have loaded the script (the module waits for them), so the file is done.
    removeTmp();
    process.removeListener('exit', removeTmp);
    mod.tfjs = {
      init: mod.cwrap('init', null, []),
      initWithThreadsCount: mod.cwrap('init_with_threads_count', null, ['number']),
      getThreadsCount: mod.cwrap('get_threads_count', 'number', []),
      registerTensor: mod.cwrap('register_tensor', null, ['number', 'number', 'number']),
      disposeData: mod.cwrap('dispose_data', null, ['number']),
      dispose: mod.cwrap('dispose', null, []),
    };
    pkg.setThreadsCount(threads);
    tf.removeBackend('wasm');
    registered = true;
    tf.registerBackend('wasm', () => new pkg.BackendWasm(mod), 2);
    // Creates pthreadpool's threads (the BackendWasm constructor), which ref() their workers.
    const ok = await Promise.race([tf.setBackend('wasm'), startFailed]);
    if (!ok) throw new Error('the threaded wasm backend did not start');
    phase = 'running';
    for (const w of workers) {
      w.unref();
      w.ref = () => undefined;
    }
    const got = pkg.getThreadsCount();
    if (got < 2) throw new Error(`the threaded wasm backend started with ${got} thread(s)`);
    selfCheckBackend();
    setWasmThreadsEnabled(got);
    return got;
  } catch (e) {
    if (registered) {
      tf.removeBackend('wasm'); // disposes the threaded backend if it started
      if (stock) tf.registerBackend('wasm', stock, 2);
    }
    pkg.setThreadsCount(1);
    terminateAll();
    removeTmp();
    process.removeListener('exit', removeTmp);
    throw e;
  }
}

interface WorkerLike {
  terminate(): Promise<number>;
  unref(): void;
  ref: () => void;
}
