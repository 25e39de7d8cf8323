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
import { installFastGradients } from './fastgrad/index.js';
import { enableWasmThreads } from './fastgrad/threads.js';

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
   * wasm threads (default: env DIFFGUIDE_WASM_THREADS, else 1). More than 1 loads tfjs's threaded
   * wasm build through an opt-in shim (lib/fastgrad/threads.ts); if it fails, wasm runs
   * single-threaded with a one-line warning. Must be set before the wasm backend first starts.
   */
  threads?: number;
  /** In 'auto', accept a software (CPU-emulated) webgpu adapter. Default false. */
  allowSoftwareWebgpu?: boolean;
}

let current: BackendInfo | null = null;

/** The backend chosen by the last `initBackend`, or null. */
export function backendInfo(): BackendInfo | null {
  return current;
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
    '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu',
    '/usr/lib64', '/lib64', '/usr/lib', '/lib', '/usr/local/lib',
  ];
  return dirs.some((d) => existsSync(`${d}/libvulkan.so.1`));
}

const NO_VULKAN = 'no Vulkan loader (libvulkan.so.1); install libvulkan1 and a Vulkan driver (e.g. mesa-vulkan-drivers) for webgpu';

async function tryWebgpu(allowSoftware: boolean): Promise<Record<string, string>> {
  // Without a Vulkan loader Dawn only prints "Couldn't load Vulkan" and finds no adapter.
  if (!vulkanLoaderFound()) throw new Error(NO_VULKAN);
  const g = globalThis as Record<string, unknown>;
  // tfjs-backend-webgpu reads navigator.gpu; Node has no navigator before v21.
  if (!g.navigator) g.navigator = {};
  const webgpu = (await import('webgpu' as string)) as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter (is a Vulkan driver installed? libvulkan1 + mesa-vulkan-drivers)');
  const info = (adapter as unknown as { info?: GPUAdapterInfo }).info;
  const desc = info ? `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.trim() : 'unknown';
  const software = /llvmpipe|lavapipe|swiftshader|cpu/i.test(desc) || (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  if (software && !allowSoftware) throw new Error(`only a software adapter (${desc}); wasm is faster on CPU`);
  Object.defineProperty(g.navigator as object, 'gpu', { value: gpu, configurable: true });
  await import('@tensorflow/tfjs-backend-webgpu' as string);
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs-backend-webgpu did not start');
  return { adapter: desc };
}

async function tryWasm(threads?: number): Promise<Record<string, string>> {
  await import('@tensorflow/tfjs-backend-wasm');
  const envThreads = Number(process.env.DIFFGUIDE_WASM_THREADS ?? '');
  const want = threads ?? (Number.isFinite(envThreads) && envThreads > 0 ? envThreads : 1);
  const details: Record<string, string> = {};
  if (want > 1) {
    try {
      await enableWasmThreads(Math.floor(want));
      details.threads = 'threaded wasm build (opt-in shim, lib/fastgrad/threads.ts)';
    } catch (e) {
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      process.stderr.write(`diffguide: wasm threads unavailable (${why}); running single-threaded\n`);
      details.threads = `requested ${want}, unavailable: ${why}`;
    }
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not start');
  return details;
}

async function start(name: BackendName, opts: InitBackendOptions): Promise<Record<string, string>> {
  switch (name) {
    case 'tensorflow-gpu': return tryTensorflow(true);
    case 'tensorflow': return tryTensorflow(false);
    case 'webgpu': return tryWebgpu(opts.allowSoftwareWebgpu ?? opts.backend === 'webgpu');
    case 'wasm': return tryWasm(opts.threads);
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
    requested = opts.backend;
    chosenBy = opts.backend === 'auto' ? 'auto' : 'option';
  } else if (env) {
    if (env !== 'auto' && !isBackendName(env)) {
      throw new Error(`DIFFGUIDE_BACKEND=${env} is not a backend; use one of: auto, ${BACKEND_ORDER.join(', ')}`);
    }
    requested = env as BackendName | 'auto';
    chosenBy = env === 'auto' ? 'auto' : 'env';
  }
  if (current && (requested === 'auto' ? chosenBy === current.chosenBy : requested === current.name)) return current;
  const candidates = requested === 'auto' ? BACKEND_ORDER : [requested, ...BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(requested) + 1)];
  const skipped: BackendInfo['skipped'] = [];
  const verbose = opts.verbose ?? process.env.DIFFGUIDE_QUIET !== '1';
  for (const name of candidates) {
    try {
      const details = await start(name, { ...opts, backend: requested });
      await tf.ready();
      const tfBackend = tf.getBackend();
      installFastGradients(tfBackend);
      const simd = tfBackend === 'wasm' ? tf.env().getBool('WASM_HAS_SIMD_SUPPORT') : null;
      let threads = 1;
      if (tfBackend === 'wasm') {
        const wasm = await import('@tensorflow/tfjs-backend-wasm');
        threads = wasm.getThreadsCount();
      }
      current = { name, tfBackend, chosenBy, skipped, threads, simd, details };
      if (verbose) {
        const why = name !== requested && requested !== 'auto' ? ` (requested ${requested} failed: ${skipped[0]?.reason})` : '';
        process.stderr.write(`diffguide: backend ${name}${simd ? ' (SIMD)' : ''}, ${threads} thread${threads === 1 ? '' : 's'}${why}\n`);
      }
      return current;
    } catch (e) {
      const reason = e instanceof Error ? e.message.split('\n')[0] : String(e);
      const quietSkip = requested === 'auto' && (
        ((name === 'tensorflow-gpu' || name === 'tensorflow') && /Cannot find (module|package)/.test(reason)) ||
        (name === 'webgpu' && reason === NO_VULKAN));
      skipped.push({ name, reason: quietSkip && name !== 'webgpu' ? 'not installed' : reason });
      if (verbose && !quietSkip) process.stderr.write(`diffguide: backend ${name} unavailable: ${reason}; falling back\n`);
    }
  }
  throw new Error(`no tfjs backend could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}
