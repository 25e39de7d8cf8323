/**
 * The webgpu backend under Node: Dawn (the `webgpu` package) + tfjs-backend-webgpu, on a hardware
 * Vulkan/Metal/D3D12 adapter or, on Linux without one, on SwiftShader's software Vulkan driver.
 *
 * Two things tfjs-backend-webgpu 4.22 cannot do in Node by itself, done here:
 *
 * - **Finding a driver.** Dawn reads the system's Vulkan drivers. Where none gives an adapter (no GPU;
 *   Debian's lavapipe is rejected by Dawn: "shaderUniform*ArrayDynamicIndexing required") and a
 *   software adapter is acceptable, we point the Vulkan loader at SwiftShader's driver
 *   (`VK_ICD_FILENAMES`, only where the user set neither it nor `VK_DRIVER_FILES` and the file
 *   exists; Debian's `chromium-common` ships it) and ask a fresh Dawn instance again. Which driver
 *   ran is reported (`diffguide info`).
 *
 * - **Synchronous reads.** tfjs-backend-webgpu's `readSync` (behind `dataSync`, `arraySync`,
 *   `bufferSync`) draws the buffer through an OffscreenCanvas, which Node lacks. WebGPU itself has
 *   no synchronous map, and the `webgpu` package exposes neither `wgpuInstanceWaitAny` nor
 *   `ProcessEvents` to JS. But Dawn's Node binding drives every pending promise (mapAsync
 *   included) from a callback it hands to the global `setImmediate` (AsyncRunner:
 *   `setImmediate(() => wgpuInstanceProcessEvents(...))`, re-queued while work is pending). We wrap
 *   `setImmediate` before Dawn first runs and remember Dawn's pending callback; our `readSync` copies
 *   the tensor into a staging buffer, calls `mapAsync`, and runs that callback itself (it is the
 *   event loop's turn that Dawn is waiting for, nothing more) until the buffer is mapped, sleeping
 *   0.1 ms between polls. Callbacks it runs early are not run again by the event loop. This keeps
 *   every synchronous read on the library's paths working (samplers' finite checks, guidance
 *   scalars, checkpoint writes) instead of making the whole library async.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { installWebgpuMath } from './webgpu-math.js';

/** Where Linux distributions install SwiftShader's Vulkan driver manifest (Debian/Ubuntu chromium-common first). */
export const SWIFTSHADER_ICDS: readonly string[] = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib64/chromium-browser/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
];

/** The first SwiftShader driver manifest present on this machine, or null. */
export function findSwiftShaderIcd(): string | null {
  if (process.platform !== 'linux') return null;
  return SWIFTSHADER_ICDS.find((p) => existsSync(p)) ?? null;
}

/** Install line for a software Vulkan driver Dawn accepts (Debian/Ubuntu). */
export const SOFTWARE_VULKAN_HINT = 'apt-get install --no-install-recommends libvulkan1 chromium-common (SwiftShader)';

// ---------------------------------------------------------------------------------------------
// Dawn's event callbacks.

type Callback = () => void;
const HOOK = Symbol.for('diffguide.dawnSetImmediate');
type Hooked = typeof globalThis & { [HOOK]?: Set<Callback> };

/**
 * Wrap the global `setImmediate` so that the callbacks Dawn queues (native functions, no
 * arguments) are remembered until they run. Idempotent; must run before Dawn's first async call.
 */
function hookDawnCallbacks(): Set<Callback> {
  const g = globalThis as Hooked;
  if (g[HOOK]) return g[HOOK];
  const pending = new Set<Callback>();
  const real = globalThis.setImmediate;
  const wrapped = function setImmediate(fn: unknown, ...args: unknown[]) {
    if (
      typeof fn === 'function' &&
      args.length === 0 &&
      fn.name === '' &&
      Function.prototype.toString.call(fn).includes('[native code]')
    ) {
      const cb = fn as Callback;
      pending.add(cb);
      return real(() => {
        if (pending.delete(cb)) cb();
      });
    }
    return (real as (...a: unknown[]) => NodeJS.Immediate)(fn, ...args);
  };
  Object.assign(wrapped, real); // keeps setImmediate[util.promisify.custom]
  globalThis.setImmediate = wrapped as typeof globalThis.setImmediate;
  g[HOOK] = pending;
  return pending;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Block until `buffer` (after `mapAsync`) is mapped, running Dawn's queued event callbacks.
 * @throws if Dawn's callbacks were not hooked, or the map failed (device lost, validation)
 */
function waitMappedSync(buffer: GPUBuffer, done: () => boolean): void {
  const pending = (globalThis as Hooked)[HOOK];
  while (!done()) {
    if (!pending || pending.size === 0) {
      throw new Error(
        "webgpu synchronous read: Dawn has no event callback queued through diffguide's hook (the `webgpu` package was started before initBackend); use `await tensor.data()` or start webgpu through initBackend",
      );
    }
    const now = [...pending];
    pending.clear();
    for (const cb of now) cb();
    if (!done()) Atomics.wait(sleeper, 0, 0, 0.1);
  }
  if (buffer.mapState !== 'mapped')
    throw new Error(
      `webgpu synchronous read: mapping the staging buffer failed (mapState ${buffer.mapState}; device lost?)`,
    );
}

// ---------------------------------------------------------------------------------------------
// tfjs-backend-webgpu's readSync.

/** The parts of tfjs-backend-webgpu's WebGPUBackend that the synchronous read uses. */
interface WebGPUBackendLike {
  device: GPUDevice;
  tensorMap: {
    get(dataId: object):
      | {
          values: tf.backend_util.BackendValues | null;
          dtype: tf.DataType;
          resource: GPUBuffer;
          complexTensorInfos?: unknown;
        }
      | undefined;
  };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer; releaseBuffer(b: GPUBuffer): void };
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  convertAndCacheOnCPU(dataId: object, data: tf.backend_util.BackendValues): tf.backend_util.BackendValues;
  readSync(dataId: object): tf.backend_util.BackendValues;
  [PATCHED]?: true;
}
const PATCHED = Symbol.for('diffguide.webgpuReadSync');

/** The bytes of a GPU buffer, read synchronously (copy to a staging buffer, map, wait). */
function readBufferSync(b: WebGPUBackendLike, buffer: GPUBuffer): ArrayBuffer {
  const size = buffer.size;
  const staging = b.bufferManager.acquireBuffer(size, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  b.commandEncoder!.copyBufferToBuffer(buffer, 0, staging, 0, size);
  b.submitQueue();
  let settled = false;
  staging.mapAsync(GPUMapMode.READ).then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  waitMappedSync(staging, () => settled || staging.mapState !== 'pending');
  const values = staging.getMappedRange().slice(0);
  staging.unmap();
  b.bufferManager.releaseBuffer(staging);
  return values;
}

/**
 * Give a started tfjs-backend-webgpu backend a `readSync` that works in Node (see the file
 * comment). Idempotent. Strings and CPU-resident values go the stock way; complex64 reads its parts.
 */
export function patchWebgpuReadSync(backend: unknown): void {
  const b = backend as WebGPUBackendLike;
  if (b[PATCHED]) return;
  const stock = b.readSync.bind(b);
  b.readSync = function readSync(dataId: object) {
    const d = b.tensorMap.get(dataId);
    if (!d || d.values != null || d.dtype === 'string' || d.dtype === 'complex64') return stock(dataId);
    const vals = tf.util.convertBackendValuesAndArrayBuffer(readBufferSync(b, d.resource), d.dtype);
    b.convertAndCacheOnCPU(dataId, vals);
    return vals;
  };
  b[PATCHED] = true;
}

// ---------------------------------------------------------------------------------------------
// Starting the backend.

interface WebgpuModule {
  create: (flags: string[]) => GPU;
  globals: Record<string, unknown>;
}

function describeAdapter(adapter: GPUAdapter): { desc: string; software: boolean } {
  const info = (adapter as unknown as { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info;
  const desc = info
    ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ').trim() || 'unknown'
    : 'unknown';
  const fallback =
    info?.isFallbackAdapter === true ||
    (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return { desc, software: fallback || /llvmpipe|lavapipe|swiftshader|\bcpu\b/i.test(desc) };
}

/**
 * Start tfjs-backend-webgpu on Dawn. `allowSoftware`: accept a software adapter, and look for
 * SwiftShader where the system drivers give none (see the file comment). Returns the facts for
 * `BackendInfo.details` (adapter, driver).
 * @throws naming what is missing and the install line
 */
export async function startWebgpu(allowSoftware: boolean): Promise<Record<string, string>> {
  const g = globalThis as Record<string, unknown>;
  // tfjs-backend-webgpu reads navigator.gpu; Node has no navigator before v21.
  if (!g.navigator) g.navigator = {};
  hookDawnCallbacks(); // before Dawn's first async call
  const webgpu = (await import('webgpu' as string)) as WebgpuModule;
  Object.assign(globalThis, webgpu.globals);
  const userDrivers = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES;
  let driver = userDrivers
    ? `Vulkan drivers from ${process.env.VK_ICD_FILENAMES ? 'VK_ICD_FILENAMES' : 'VK_DRIVER_FILES'}=${userDrivers} (set by the user)`
    : "the system's drivers";
  let gpu = webgpu.create([]);
  let adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  const icd = findSwiftShaderIcd();
  if (!adapter && !userDrivers && icd) {
    if (!allowSoftware)
      throw new Error(
        `no hardware WebGPU adapter (SwiftShader's software Vulkan at ${icd} would run: --backend webgpu; wasm is faster on CPU)`,
      );
    process.env.VK_ICD_FILENAMES = icd; // read by the Vulkan loader when the next Dawn instance starts
    gpu = webgpu.create([]);
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      delete process.env.VK_ICD_FILENAMES;
      throw new Error(`no WebGPU adapter, neither from the system's Vulkan drivers nor from SwiftShader (${icd})`);
    }
    driver = `SwiftShader (software Vulkan, ${icd}; VK_ICD_FILENAMES set by diffguide: no hardware adapter)`;
  }
  if (!adapter) {
    throw new Error(
      `no WebGPU adapter (the system's Vulkan drivers give none Dawn accepts; for a GPU install its vendor's Vulkan driver, for software Vulkan: ${SOFTWARE_VULKAN_HINT})`,
    );
  }
  const { desc, software } = describeAdapter(adapter);
  if (software && !allowSoftware) throw new Error(`only a software adapter (${desc}); wasm is faster on CPU`);
  Object.defineProperty(g.navigator as object, 'gpu', { value: gpu, configurable: true });
  await import('@tensorflow/tfjs-backend-webgpu' as string);
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs-backend-webgpu did not start');
  patchWebgpuReadSync(tf.backend());
  const kernels = installWebgpuMath();
  return {
    adapter: `${desc}${software ? ' (software)' : ''}`,
    driver,
    kernels: `${kernels.join(', ')} by diffguide (lib/webgpu-math.ts: accurate where the drivers' builtins are not); readSync via Dawn's event callback`,
  };
}
