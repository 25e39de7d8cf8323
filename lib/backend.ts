/**
 * Run-time backend selection: fastest available first, overridable.
 *
 * Order in `auto`: tfjs-node-gpu ('tensorflow' with CUDA) > tfjs-node ('tensorflow') > webgpu on a
 * hardware adapter (Dawn via the `webgpu` package) > wasm (XNNPACK, with diffguide's fast gradients)
 * > cpu. tfjs-node(-gpu) and webgpu are optional installs; a backend that fails to start falls back
 * with a one-line warning. Override with `DIFFGUIDE_BACKEND`, `--backend`, or `initBackend({backend})`.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { installFastGradients } from './fastgrad/index.js';
import { MAX_WASM_THREADS, availableCpus, enableWasmThreads, wasmThreadsEnabled } from './fastgrad/threads.js';
import { loadSimdKernels } from './fastgrad/simd.js';
import type { WasmBackend } from './fastgrad/wasm.js';
import { SOFTWARE_VULKAN_HINT, startWebgpu } from './webgpu.js';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface BackendInfo {
  /** diffguide's name for the backend that was chosen. */
  name: BackendName;
  /** tfjs's own backend name (`tf.getBackend()`). */
  tfBackend: string;
  /** How it was chosen: 'auto', 'env' (DIFFGUIDE_BACKEND) or 'option'. */
  chosenBy: 'auto' | 'env' | 'option';
  /** Backends tried before this one and why they were skipped. */
  skipped: { name: BackendName; reason: string }[];
  threads: number;
  simd: boolean | null;
  /** Extra facts (GPU adapter, versions). */
  details: Record<string, string>;
}

export interface InitBackendOptions {
  /** A backend name or 'auto' (default: env DIFFGUIDE_BACKEND, else 'auto'). */
  backend?: BackendName | 'auto';
  /** Print the one-line choice to stderr (default true unless DIFFGUIDE_QUIET=1). */
  verbose?: boolean;
  /**
   * wasm threads, 1..8 (default: env DIFFGUIDE_WASM_THREADS, else the CPUs idle at start-up,
   * at most 4: 1 on a single-core or busy machine, see `defaultWasmThreads`). More than 1 loads
   * tfjs's threaded wasm build through lib/fastgrad/threads.ts, which checks the exact
   * tfjs-backend-wasm build and the results of a conv and a matmul; if anything fails, wasm runs
   * single-threaded with a one-line note saying why. 1 opts out. Takes effect when the wasm
   * backend first starts in the process.
   */
  threads?: number;
  /** Where `threads` came from, for messages (default `initBackend({threads: N})`; the CLI says `--threads N`). */
  threadsFrom?: string;
  /** In 'auto', accept a software (CPU-emulated) webgpu adapter. Default false. */
  allowSoftwareWebgpu?: boolean;
}

// The choice is process-wide, like tfjs's engine (a global): kept on globalThis so that a second copy of
// this module (CommonJS and ESM loads of one file, or two installed versions) sees the same choice.
const CHOICE = Symbol.for('diffguide.backend');
type WithChoice = typeof globalThis & { [CHOICE]?: BackendInfo };
const state = {
  get current(): BackendInfo | null {
    return (globalThis as WithChoice)[CHOICE] ?? null;
  },
  set current(b: BackendInfo) {
    (globalThis as WithChoice)[CHOICE] = b;
  },
};

/** The backend chosen by the last `initBackend`, or null. */
export function backendInfo(): BackendInfo | null {
  return state.current;
}

/** One line for logs and model cards: e.g. `wasm (SIMD), 2 threads`, or tfjs's name if initBackend was not called. */
export function describeBackend(): string {
  const b = state.current;
  if (!b || b.tfBackend !== tf.getBackend()) return tf.getBackend();
  return `${b.name}${b.simd ? ' (SIMD)' : ''}, ${b.threads} thread${b.threads === 1 ? '' : 's'}`;
}

function isBackendName(s: string): s is BackendName {
  return (BACKEND_ORDER as readonly string[]).includes(s);
}

async function tryTensorflow(gpu: boolean): Promise<Record<string, string>> {
  const pkg = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  // Optional dependency: a computed specifier keeps bundlers and tsc from requiring it.
  await import(/* webpackIgnore: true */ pkg as string);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the 'tensorflow' backend did not start`);
  return { package: pkg };
}

/** Directories the dynamic loader searches for libvulkan.so.1 (Linux). */
function vulkanLoaderFound(): boolean {
  if (process.platform !== 'linux') return true; // Dawn uses Metal / D3D12 there
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/lib64',
    '/usr/lib',
    '/lib',
    '/usr/local/lib',
  ];
  return dirs.some((d) => existsSync(`${d}/libvulkan.so.1`));
}

const NO_VULKAN = `no Vulkan loader (libvulkan.so.1); for webgpu install libvulkan1 and a Vulkan driver (a GPU's, or software: ${SOFTWARE_VULKAN_HINT})`;

async function tryWebgpu(allowSoftware: boolean): Promise<Record<string, string>> {
  // Without a Vulkan loader Dawn only prints "Couldn't load Vulkan" and finds no adapter.
  if (!vulkanLoaderFound()) throw new Error(NO_VULKAN);
  return startWebgpu(allowSoftware); // lib/webgpu.ts: SwiftShader where no hardware adapter, a readSync that works in Node
}

/** Most wasm threads chosen by default (XNNPACK gains little beyond 4 on our layer sizes). */
export const DEFAULT_MAX_WASM_THREADS = 4;

/**
 * The default wasm thread count for `cpus` CPUs at 1-minute load average `load`: the idle cores,
 * rounded, at most 4, at least 1. XNNPACK's thread pool splits every op into equal parts and
 * waits (spinning first) for the slowest, so a thread that has to share its core with another
 * busy process makes each op slower than one thread would: measured on 2 cores at load ~7
 * (bench ops), 2 threads were no faster to 2.4x SLOWER than 1. Results are bit-identical for any
 * thread count, so this only ever changes speed.
 */
export function defaultWasmThreads(cpus: number, load: number): { threads: number; why: string } {
  if (cpus < 2) return { threads: 1, why: 'one CPU core available' };
  const idle = Math.round(cpus - Math.max(0, load));
  const threads = Math.max(1, Math.min(DEFAULT_MAX_WASM_THREADS, cpus, idle));
  if (threads === 1) {
    return {
      threads,
      why: `machine busy: load ${load.toFixed(1)} on ${cpus} CPUs, threads would only contend; DIFFGUIDE_WASM_THREADS=2 forces them`,
    };
  }
  return {
    threads,
    why: `default: idle CPUs (${cpus} CPUs, load ${load.toFixed(1)}), at most ${DEFAULT_MAX_WASM_THREADS}`,
  };
}

/**
 * The wasm thread count to ask for and where it came from: the `threads` option, else env
 * DIFFGUIDE_WASM_THREADS, else `defaultWasmThreads` (the idle CPUs now, 1..4). Throws on a value
 * that is not a positive integer.
 */
export function wasmThreadsRequest(option?: number, from?: string): { threads: number; why: string } {
  const env = process.env.DIFFGUIDE_WASM_THREADS;
  let n: number;
  let why: string;
  if (option !== undefined) {
    n = option;
    why = from ?? `initBackend({threads: ${option}})`;
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`${from ? from.split(' ')[0] : 'threads'} must be a positive integer, got ${option}`);
  } else if (env !== undefined && env !== '') {
    n = Number(env);
    why = `DIFFGUIDE_WASM_THREADS=${env}`;
    if (!Number.isInteger(n) || n < 1)
      throw new Error(
        `DIFFGUIDE_WASM_THREADS=${env} is not a positive integer; use 1 for single-threaded wasm, 2..${MAX_WASM_THREADS} for threads`,
      );
  } else {
    ({ threads: n, why } = defaultWasmThreads(availableCpus(), os.loadavg()[0]));
  }
  if (n > MAX_WASM_THREADS) {
    why += `, capped at ${MAX_WASM_THREADS} (the threaded build's worker pool)`;
    n = MAX_WASM_THREADS;
  }
  return { threads: n, why };
}

let threadsDetail = '';

/**
 * Run `init` and remove the process-level error handlers it added. Emscripten's Node glue (both
 * wasm builds) installs an 'uncaughtException' handler that rethrows (Node then exits with code 7,
 * "internal exception handler failure", instead of printing the error and exiting with 1) and an
 * 'unhandledRejection' handler that turns every unhandled rejection into that. Our kernels never
 * call Emscripten's exit(), the only thing those handlers exist for.
 */
async function withoutEmscriptenHandlers<T>(init: () => Promise<T>): Promise<T> {
  const listeners = () =>
    [...process.listeners('uncaughtException'), ...process.listeners('unhandledRejection')] as ((
      ...a: unknown[]
    ) => void)[];
  const before = new Set(listeners());
  try {
    return await init();
  } finally {
    for (const l of listeners()) {
      if (before.has(l)) continue;
      process.removeListener('uncaughtException', l);
      process.removeListener('unhandledRejection', l);
    }
  }
}

async function tryWasm(threads: number | undefined, verbose: boolean, from?: string): Promise<Record<string, string>> {
  return withoutEmscriptenHandlers(() => startWasm(threads, verbose, from));
}

async function startWasm(
  threads: number | undefined,
  verbose: boolean,
  from?: string,
): Promise<Record<string, string>> {
  await import('@tensorflow/tfjs-backend-wasm');
  const req = wasmThreadsRequest(threads, from);
  const details: Record<string, string> = {};
  const optOut = 'DIFFGUIDE_WASM_THREADS=1 or --threads 1 for one';
  if (wasmThreadsEnabled()) {
    details.threads =
      req.threads > 1 && threadsDetail
        ? threadsDetail
        : `${wasmThreadsEnabled()}, threaded wasm build (started earlier in this process; ${req.why} cannot undo that)`;
  } else if (req.threads > 1) {
    try {
      const n = await enableWasmThreads(req.threads);
      details.threads = threadsDetail = `${n}, threaded wasm build via lib/fastgrad/threads.ts (${req.why}; ${optOut})`;
    } catch (e) {
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      if (verbose) process.stderr.write(`diffguide: wasm threads off (${why}); running single-threaded\n`);
      details.threads = `1, because the threaded build is unavailable: ${why}`;
    }
  } else {
    details.threads = `1 (${req.why})`;
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not start');
  await loadSimdKernels(tf.backend() as unknown as WasmBackend); // async: browsers refuse a sync compile over 4 KB
  return details;
}

async function start(name: BackendName, opts: InitBackendOptions): Promise<Record<string, string>> {
  switch (name) {
    case 'tensorflow-gpu':
      return tryTensorflow(true);
    case 'tensorflow':
      return tryTensorflow(false);
    case 'webgpu':
      return tryWebgpu(opts.allowSoftwareWebgpu ?? opts.backend === 'webgpu');
    case 'wasm':
      return tryWasm(opts.threads, opts.verbose ?? true, opts.threadsFrom);
    case 'cpu': {
      if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend did not start');
      return {};
    }
  }
}

/**
 * Choose and start a backend. Idempotent for the same request; call again with another
 * `backend` to switch. Returns what was chosen and why.
 */
export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const env = process.env.DIFFGUIDE_BACKEND;
  let requested: BackendName | 'auto' = 'auto';
  let chosenBy: BackendInfo['chosenBy'] = 'auto';
  if (opts.backend) {
    if (opts.backend !== 'auto' && !isBackendName(opts.backend)) {
      throw new Error(
        `backend '${opts.backend as string}' is not a backend; use one of: auto, ${BACKEND_ORDER.join(', ')}`,
      );
    }
    requested = opts.backend;
    chosenBy = opts.backend === 'auto' ? 'auto' : 'option';
  } else if (env) {
    if (env !== 'auto' && !isBackendName(env)) {
      throw new Error(`DIFFGUIDE_BACKEND=${env} is not a backend; use one of: auto, ${BACKEND_ORDER.join(', ')}`);
    }
    requested = env as BackendName | 'auto';
    chosenBy = env === 'auto' ? 'auto' : 'env';
  }
  // Nothing requested (no option, no env): whatever is running (e.g. the CLI's --backend choice).
  const current = state.current;
  if (current && !opts.backend && !env) return current;
  if (current && (requested === 'auto' ? chosenBy === current.chosenBy : requested === current.name)) return current;
  const candidates =
    requested === 'auto' ? BACKEND_ORDER : [requested, ...BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(requested) + 1)];
  const skipped: BackendInfo['skipped'] = [];
  const verbose = opts.verbose ?? process.env.DIFFGUIDE_QUIET !== '1';
  if (candidates.includes('wasm')) wasmThreadsRequest(opts.threads, opts.threadsFrom); // a bad threads value is an error, not a fallback
  for (const name of candidates) {
    try {
      const details = await start(name, { ...opts, backend: requested, verbose });
      await tf.ready();
      const tfBackend = tf.getBackend();
      installFastGradients(tfBackend);
      const simd = tfBackend === 'wasm' ? tf.env().getBool('WASM_HAS_SIMD_SUPPORT') : null;
      let threads = 1;
      if (tfBackend === 'wasm') {
        const wasm = await import('@tensorflow/tfjs-backend-wasm');
        threads = wasm.getThreadsCount();
      }
      const chosen: BackendInfo = { name, tfBackend, chosenBy, skipped, threads, simd, details };
      state.current = chosen;
      if (verbose) {
        const why =
          name !== requested && requested !== 'auto' ? ` (requested ${requested} failed: ${skipped[0]?.reason})` : '';
        const threadWhy =
          tfBackend === 'wasm' && threads === 1 && details.threads ? ` ${details.threads.replace(/^1,? ?/, '')}` : '';
        process.stderr.write(
          `diffguide: backend ${name}${simd ? ' (SIMD)' : ''}, ${threads} thread${threads === 1 ? '' : 's'}${threadWhy}${why}\n`,
        );
      }
      return chosen;
    } catch (e) {
      const reason = e instanceof Error ? e.message.split('\n')[0] : String(e);
      const quietSkip =
        requested === 'auto' &&
        (((name === 'tensorflow-gpu' || name === 'tensorflow') && /Cannot find (module|package)/.test(reason)) ||
          (name === 'webgpu' && reason === NO_VULKAN));
      skipped.push({ name, reason: quietSkip && name !== 'webgpu' ? 'not installed' : reason });
      if (verbose && !quietSkip)
        process.stderr.write(`diffguide: backend ${name} unavailable: ${reason}; falling back\n`);
    }
  }
  throw new Error(`no tfjs backend could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}
