/**
 * Backend-level helpers for kernels that diffguide registers on tfjs's wasm backend.
 *
 * Our wasm kernels are compositions of the wasm backend's own (XNNPACK) kernels, called directly
 * as kernel functions on TensorInfos — below the engine, so nothing is taped or tracked and every
 * intermediate is released here. `Scratch` collects the intermediates of one kernel call.
 */
import * as tf from '@tensorflow/tfjs';
import { transposeWasm } from './transpose.js';
import { captureOriginal, type KernelFunc } from './originals.js';

export type Info = tf.TensorInfo;
export type Shape = number[];

/** The parts of tfjs-backend-wasm's BackendWasm that our kernels use. */
export interface WasmBackend {
  dataIdMap: {
    get(dataId: object): { id: number; memoryOffset: number; shape: number[]; dtype: tf.DataType; refCount: number };
    has(dataId: object): boolean;
  };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): Info;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
  readSync(dataId: object): tf.backend_util.BackendValues;
  wasm: { HEAPU8: Uint8Array; wasmMemory?: WebAssembly.Memory; _malloc(n: number): number; _free(p: number): void };
}

/**
 * The wasm heap as bytes, current after any growth. Emscripten refreshes `HEAPU8` on the thread
 * that grew the memory; with the threaded build (shared memory) a growth on another thread would
 * leave the main thread's view short, so compare with the memory's own buffer (Emscripten's
 * GROWABLE_HEAP check) and renew the module's views when they differ.
 */
export function heapU8(backend: WasmBackend): Uint8Array {
  const w = backend.wasm;
  const mem = w.wasmMemory;
  if (mem && w.HEAPU8.buffer !== mem.buffer) {
    const m = w as unknown as Record<string, unknown>;
    const buf = mem.buffer;
    m.HEAP8 = new Int8Array(buf);
    m.HEAP16 = new Int16Array(buf);
    m.HEAP32 = new Int32Array(buf);
    m.HEAPU8 = new Uint8Array(buf);
    m.HEAPU16 = new Uint16Array(buf);
    m.HEAPU32 = new Uint32Array(buf);
    m.HEAPF32 = new Float32Array(buf);
    m.HEAPF64 = new Float64Array(buf);
  }
  return w.HEAPU8;
}

/** Largest heap the wasm32 builds of tfjs-backend-wasm 4.22 can grow to (Emscripten `getHeapMax`, both builds). */
export const WASM_HEAP_MAX = 4294901760;

const MiB = 2 ** 20;
const fmtMB = (b: number) => `${Math.round(b / MiB)} MB`;

/**
 * The wasm backend could not allocate: its wasm32 heap (at most 4 GB) is full, or a single
 * tensor needs more than a wasm32 address space holds. `requestedBytes` is null when the failure
 * was an allocation inside a kernel (C++), seen as an Emscripten abort with a nearly full heap.
 */
export class WasmHeapError extends Error {
  constructor(
    readonly requestedBytes: number | null,
    readonly heapBytes: number,
    readonly maxBytes: number = WASM_HEAP_MAX,
  ) {
    const what =
      requestedBytes === null
        ? `an allocation inside a wasm kernel failed (Emscripten abort) with the heap grown to ${fmtMB(heapBytes)} of at most ${fmtMB(maxBytes)}; ` +
          'the wasm backend cannot be used again in this process'
        : requestedBytes >= maxBytes
          ? `one tensor needs ${fmtMB(requestedBytes)}, more than the wasm heap can ever hold (${fmtMB(maxBytes)})`
          : `could not allocate ${fmtMB(requestedBytes)}: the heap has grown to ${fmtMB(heapBytes)} of at most ${fmtMB(maxBytes)} and has no free block that large`;
    super(
      `out of wasm memory: ${what}. The wasm backend is a 32-bit build (4 GB address space); ` +
        'training keeps every activation of the step for the backward pass. Use a smaller batch (--batch; e.g. half), ' +
        'a smaller net (fewer channels: --model-channels, modelChannels), or a backend without the limit (--backend tensorflow, needs @tensorflow/tfjs-node).',
    );
    this.name = 'WasmHeapError';
  }
}

/**
 * Throw, before anything is allocated, when `bytes` more of weights cannot fit on the wasm heap next
 * to the tensors live now and `reserve` bytes for activations (default 512 MiB: a forward of the
 * 256 px guided-diffusion UNet at batch 1 needs about that). The message names the backends that can.
 * A no-op on other backends.
 */
export function assertFitsWasm(bytes: number, what: string, reserve = 512 * MiB): void {
  if (tf.getBackend() !== 'wasm') return;
  const live = tf.memory().numBytes;
  if (live + bytes + reserve <= WASM_HEAP_MAX) return;
  throw new Error(
    `${what} needs ${fmtMB(bytes)} of weights; with ${fmtMB(live)} of tensors already live and ${fmtMB(reserve)} kept for activations ` +
      `that exceeds the wasm backend's heap (a 32-bit build: at most ${fmtMB(WASM_HEAP_MAX)}). Backends without that limit: ` +
      '--backend tensorflow (@tensorflow/tfjs-node, CPU), --backend tensorflow-gpu (tfjs-node-gpu, CUDA) or --backend webgpu (a GPU); or free other models first.',
  );
}

type MallocModule = {
  _malloc(n: number): number;
  _free(p: number): void;
  HEAPU8: Uint8Array;
  wasmMemory?: WebAssembly.Memory;
  onAbort?: (what: unknown) => void;
};
const GUARDED = Symbol.for('diffguide.wasmHeapGuard');

/**
 * Make the wasm module's `_malloc` (what tfjs-backend-wasm allocates every tensor with) throw a
 * `WasmHeapError` instead of returning 0, or wrapping sizes of 4 GB and more modulo 2^32 (it is an
 * i32 argument). tfjs-backend-wasm 4.22 does not check the result: it registers the tensor at
 * address 0 and the C++ side then aborts (`Aborted()`), faults ("memory access out of bounds") or
 * overwrites the start of the heap. Allocations made inside the C++ kernels (XNNPACK operators,
 * the tensor registry) cannot be checked from here; when one of them aborts the module while the
 * heap is past half its maximum, Emscripten's `onAbort` hook throws a `WasmHeapError` in place of
 * the bare `Aborted()`. `maxBytes`: the heap limit (tests). Idempotent; returns the module.
 */
export function guardWasmMalloc<M extends MallocModule>(m: M, maxBytes = WASM_HEAP_MAX): M {
  const g = m as unknown as Record<symbol, boolean>;
  if (g[GUARDED]) return m;
  // Emscripten's export is a stub that replaces Module._malloc on its first call; call it once so
  // the wrapper below is not overwritten.
  m._free(m._malloc(8));
  const real = m._malloc.bind(m);
  m._malloc = (n: number): number => {
    if (n >= maxBytes) throw new WasmHeapError(n, heapBytes(m), maxBytes);
    const p = real(n);
    if (p === 0 && n > 0) throw new WasmHeapError(n, heapBytes(m), maxBytes);
    return p;
  };
  const prevAbort = m.onAbort;
  m.onAbort = (what: unknown) => {
    prevAbort?.(what);
    const heap = heapBytes(m);
    if (heap >= maxBytes / 2) throw new WasmHeapError(null, heap, maxBytes);
  };
  g[GUARDED] = true;
  return m;
}

function heapBytes(m: MallocModule): number {
  return m.wasmMemory ? m.wasmMemory.buffer.byteLength : m.HEAPU8.byteLength;
}

/** Guard the current tfjs backend's wasm heap (see `guardWasmMalloc`); a no-op on other backends. */
export function guardWasmHeap(): void {
  if (tf.getBackend() !== 'wasm') return;
  const m = (tf.backend() as unknown as Partial<WasmBackend>).wasm;
  if (m && typeof m._malloc === 'function') guardWasmMalloc(m as MallocModule);
}

// The stock kernels, captured before ours replace them (lib/fastgrad/originals.ts: transpose.ts uses it and wasm.ts uses transpose.ts).
export { captureOriginal } from './originals.js';

function kernel(name: string): KernelFunc {
  const k = captureOriginal(name);
  if (!k)
    throw new Error(
      `diffguide fastgrad: the wasm backend has no '${name}' kernel (tfjs-backend-wasm version mismatch? expected 4.22)`,
    );
  return k;
}

/** A float32 view of a tensor's data on the wasm heap (valid until the next allocation). */
export function heapF32(backend: WasmBackend, t: Info): Float32Array {
  const { memoryOffset } = backend.dataIdMap.get(t.dataId);
  return new Float32Array(heapU8(backend).buffer, memoryOffset, tf.util.sizeFromShape(t.shape));
}

/** An int32 view of a tensor's data on the wasm heap (valid until the next allocation). */
export function heapI32(backend: WasmBackend, t: Info): Int32Array {
  const { memoryOffset } = backend.dataIdMap.get(t.dataId);
  return new Int32Array(heapU8(backend).buffer, memoryOffset, tf.util.sizeFromShape(t.shape));
}

/**
 * A view of `count` float32 elements of `t` starting at element `offset`, registered with the
 * backend as its own tensor (no copy). Release with `releaseView`, never `disposeData`.
 */
export function view(backend: WasmBackend, t: Info, offset: number, shape: number[]): Info {
  const base = backend.dataIdMap.get(t.dataId).memoryOffset;
  return backend.makeOutput(shape, 'float32', base + offset * 4);
}

export function releaseView(backend: WasmBackend, v: Info): void {
  const d = backend.dataIdMap.get(v.dataId);
  (backend.wasm as unknown as { tfjs: { disposeData(id: number): void } }).tfjs.disposeData(d.id);
  (backend.dataIdMap as unknown as { delete(dataId: object): void }).delete(v.dataId);
}

/**
 * Buffers derived from a tensor's data (a transposed or transformed copy of weights), made once per
 * (data id, tag) and freed together with their source: the backend's `disposeData` is wrapped to
 * free them when the source's buffer goes (dispose, `Variable.assign` of new weights, a move to
 * another backend). tfjs never writes into an existing buffer, so a derived copy stays valid for
 * its source's lifetime. They live below the engine: `tf.memory()` does not count them.
 */
export interface Derived {
  infos: Info[];
  views: Info[];
}
const derivedBySource = new WeakMap<object, Map<string, Derived>>();
const disposalHooked = new WeakSet<object>();

function hookDerivedDisposal(backend: WasmBackend): void {
  if (disposalHooked.has(backend)) return;
  disposalHooked.add(backend);
  const orig = backend.disposeData;
  backend.disposeData = function (this: WasmBackend, dataId: object, force?: boolean): boolean {
    const r = orig.call(this, dataId, force);
    if (!this.dataIdMap.has(dataId)) releaseGrants(dataId);
    const entries = derivedBySource.get(dataId);
    if (entries !== undefined && !this.dataIdMap.has(dataId)) {
      derivedBySource.delete(dataId);
      for (const d of entries.values()) {
        for (const v of d.views) releaseView(this, v);
        for (const t of d.infos) orig.call(this, t.dataId, true);
      }
    }
    return r;
  };
}

// ---- the cache budget ----

/**
 * What we keep beside a weight buffer for speed — Winograd filter transforms, transposed copies,
 * and the packed copies XNNPACK keeps per right-operand or filter id (its operator caches) — can
 * outgrow the weights themselves (a cached Winograd transform with its packed planes is 3.6x its
 * 3x3 filter). On a 4 GB wasm32 heap that decides whether a large model fits at all (the 256 px
 * guided-diffusion UNet: 2.06 GiB of weights, CLIP ViT-B/32 0.56 GiB). So every such cache asks
 * `cacheAllowed` first, with the bytes it would keep; what does not fit runs uncached (derived per
 * call and freed, or packed under a fresh id that is dropped after the call: slower, same result).
 *
 * The limit: `setWasmCacheBudget(bytes)`, else env `DIFFGUIDE_WASM_CACHE_MB`, else what is left of
 * the heap's maximum after the live tensors (`tf.memory().numBytes`: weights and activations at
 * that moment), the caches already granted and `WASM_CACHE_RESERVE` bytes kept for activations and
 * per-call scratch (and the fragmentation it causes). A decision is made once per (buffer, tag) and kept until the buffer is freed.
 */
// 1.5 GiB: a 256 px UNet forward's activations (~0.7 GiB) plus the heap the per-call packing of
// uncached weights fragments (~0.6 GiB measured on that UNet).
export const WASM_CACHE_RESERVE = 1.5 * 2 ** 30;

interface Grant {
  bytes: number;
  granted: boolean;
}
const grants = new WeakMap<object, Map<string, Grant>>();
const cacheState = { limit: null as number | null, used: 0, granted: 0, refused: 0, refusedBytes: 0 };

/** Set the cache limit in bytes (null: the default rule above). Decisions already made stay. */
export function setWasmCacheBudget(bytes: number | null): void {
  if (bytes !== null && !(bytes >= 0))
    throw new Error(`wasm cache budget must be a byte count >= 0 or null, got ${bytes}`);
  cacheState.limit = bytes;
}

function configuredLimit(): number | null {
  if (cacheState.limit !== null) return cacheState.limit;
  const env = process.env.DIFFGUIDE_WASM_CACHE_MB;
  if (env !== undefined && env !== '') {
    const mb = Number(env);
    if (!(mb >= 0)) throw new Error(`DIFFGUIDE_WASM_CACHE_MB must be a number of MiB >= 0, got ${JSON.stringify(env)}`);
    return mb * MiB;
  }
  return null;
}

/** Bytes of cache that may still be granted now. */
export function wasmCacheRoom(): number {
  const limit = configuredLimit();
  if (limit !== null) return Math.max(0, limit - cacheState.used);
  return Math.max(0, WASM_HEAP_MAX - WASM_CACHE_RESERVE - tf.memory().numBytes - cacheState.used);
}

/** The caches granted and refused so far (bytes as asked for; granted bytes still held in `usedBytes`). */
export function wasmCacheStats(): {
  usedBytes: number;
  limitBytes: number | null;
  granted: number;
  refused: number;
  refusedBytes: number;
} {
  return {
    usedBytes: cacheState.used,
    limitBytes: configuredLimit(),
    granted: cacheState.granted,
    refused: cacheState.refused,
    refusedBytes: cacheState.refusedBytes,
  };
}

/**
 * Whether a cache of `bytes` may be kept beside `source`'s buffer under `tag` (decided on the first
 * ask, then the same answer until the buffer is freed, when granted bytes are returned).
 */
export function cacheAllowed(backend: WasmBackend, source: Info, tag: string, bytes: number): boolean {
  let byTag = grants.get(source.dataId);
  const known = byTag?.get(tag);
  if (known) return known.granted;
  hookDerivedDisposal(backend);
  const granted = bytes <= wasmCacheRoom();
  if (!byTag) grants.set(source.dataId, (byTag = new Map()));
  byTag.set(tag, { bytes, granted });
  if (granted) {
    cacheState.used += bytes;
    cacheState.granted++;
  } else {
    cacheState.refused++;
    cacheState.refusedBytes += bytes;
  }
  return granted;
}

function releaseGrants(dataId: object): void {
  const byTag = grants.get(dataId);
  if (!byTag) return;
  grants.delete(dataId);
  for (const g of byTag.values()) if (g.granted) cacheState.used -= g.bytes;
}

/**
 * The buffers derived from `source` under `tag`, made by `make` on first use. `make` returns the
 * buffers it allocated (`infos`, disposed with the source) and views into them (`views`, released).
 */
export function derived(backend: WasmBackend, source: Info, tag: string, make: () => Derived): Derived {
  let entries = derivedBySource.get(source.dataId);
  const hit = entries?.get(tag);
  if (hit) return hit;
  hookDerivedDisposal(backend);
  const d = make();
  if (!entries) derivedBySource.set(source.dataId, (entries = new Map()));
  entries.set(tag, d);
  return d;
}

/**
 * The intermediates of one kernel call. Every result of `run` and friends is disposed by
 * `dispose()` unless passed to `keep()`.
 */
export class Scratch {
  private temps: Info[] = [];
  constructor(readonly backend: WasmBackend) {
    guardWasmMalloc(backend.wasm); // (a flag check once guarded)
  }

  /** Run a stock wasm kernel; the result is a temporary. */
  run(name: string, inputs: Record<string, Info>, attrs: Record<string, unknown> = {}): Info {
    const out = kernel(name)({ inputs, backend: this.backend, attrs });
    if (Array.isArray(out)) throw new Error(`diffguide fastgrad: kernel ${name} returned several outputs`);
    this.temps.push(out);
    return out;
  }

  /** Track an output made elsewhere as a temporary. */
  track(t: Info): Info {
    this.temps.push(t);
    return t;
  }

  /** Take `t` out of the temporaries (it becomes the caller's output). */
  keep(t: Info): Info {
    const i = this.temps.lastIndexOf(t);
    if (i >= 0) this.temps.splice(i, 1);
    else this.backend.incRef(t.dataId); // an input returned as output: the output needs its own reference
    return t;
  }

  /** Dispose one temporary now. */
  free(t: Info): void {
    const i = this.temps.lastIndexOf(t);
    if (i >= 0) {
      this.temps.splice(i, 1);
      this.backend.disposeData(t.dataId);
    }
  }

  dispose(): void {
    for (const t of this.temps) this.backend.disposeData(t.dataId);
    this.temps = [];
  }

  // ---- shape ops (all free or one memory pass) ----

  reshape(x: Info, shape: Shape): Info {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: Info, perm: number[]): Info {
    if (perm.every((p, i) => p === i)) return x;
    return this.track(transposeWasm(this.backend, x, perm));
  }

  reverse(x: Info, dims: number[]): Info {
    return this.run('Reverse', { x }, { dims });
  }

  /** Pad (positive) and crop (negative) each axis: pads[i] = [before, after]. */
  padCrop(x: Info, pads: [number, number][]): Info {
    let t = x;
    if (pads.some(([a, b]) => a < 0 || b < 0)) {
      const begin = pads.map(([a]) => Math.max(0, -a));
      const size = pads.map(([a, b], i) => t.shape[i] - Math.max(0, -a) - Math.max(0, -b));
      if (size.some((s) => s <= 0))
        throw new Error(`diffguide fastgrad: crop of ${JSON.stringify(x.shape)} by ${JSON.stringify(pads)} is empty`);
      t = this.slice(t, begin, size);
    }
    if (pads.some(([a, b]) => a > 0 || b > 0)) {
      t = this.run(
        'PadV2',
        { x: t },
        { paddings: pads.map(([a, b]) => [Math.max(0, a), Math.max(0, b)]), constantValue: 0 },
      );
    }
    return t;
  }

  /** Strided-free slice that reads the input in place on the heap (no copy of the input). */
  slice(x: Info, begin: number[], size: number[]): Info {
    return this.track(sliceHeap(this.backend, x, begin, size));
  }

  conv2d(
    x: Info,
    filter: Info,
    strides: [number, number],
    dilations: [number, number],
    pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding = 'valid',
  ): Info {
    return this.run(
      'Conv2D',
      { x, filter },
      { strides, pad, dilations, dataFormat: 'NHWC', dimRoundingMode: undefined },
    );
  }

  matMul(a: Info, b: Info, transposeA = false, transposeB = false): Info {
    return this.run('BatchMatMul', { a, b }, { transposeA, transposeB });
  }
}

/**
 * Slice `x` reading straight from the wasm heap: contiguous runs are copied with one
 * `copyWithin` each; the stock wasm Slice first copies the whole input to JS.
 */
export function sliceHeap(backend: WasmBackend, x: Info, begin: number[], size: number[]): Info {
  const rank = x.shape.length;
  const out = backend.makeOutput(size.slice(), x.dtype);
  const n = tf.util.sizeFromShape(size);
  if (n === 0) return out;
  if (x.dtype === 'string') throw new Error('diffguide fastgrad: slice of string tensors is not supported on wasm');
  const bpe = x.dtype === 'bool' ? 1 : 4;
  const heap = heapU8(backend); // after makeOutput: the heap may have grown
  const src0 = backend.dataIdMap.get(x.dataId).memoryOffset;
  const dst0 = backend.dataIdMap.get(out.dataId).memoryOffset;
  if (rank === 0) {
    heap.copyWithin(dst0, src0, src0 + bpe);
    return out;
  }
  // Merge trailing axes that are taken whole into one contiguous run.
  let inner = rank - 1;
  let run = size[inner];
  while (inner > 0 && size[inner] === x.shape[inner] && begin[inner] === 0) {
    inner--;
    run *= size[inner];
  }
  // Axes [0, inner) are iterated; run elements are contiguous from axis `inner` on.
  const strides = tf.util.computeStrides(x.shape);
  strides.push(1);
  const runBytes = run * bpe;
  if (inner === 0) {
    let off = 0;
    for (let a = 0; a < rank; a++) off += begin[a] * (strides[a] ?? 1);
    heap.copyWithin(dst0, src0 + off * bpe, src0 + off * bpe + runBytes);
    return out;
  }
  const idx = new Array(inner).fill(0);
  let baseOff = 0;
  for (let a = 0; a < rank; a++) baseOff += begin[a] * (strides[a] ?? 1);
  const runs = n / run;
  // Short runs: element copies through a typed view beat one copyWithin call per run.
  const short = run < 48;
  const view = short ? (bpe === 4 ? new Int32Array(heap.buffer) : heap) : null;
  const shift = bpe === 4 ? 2 : 0;
  let dst = dst0;
  for (let r = 0; r < runs; r++) {
    let off = baseOff;
    for (let a = 0; a < inner; a++) off += idx[a] * strides[a];
    const s = src0 + off * bpe;
    if (view) {
      let si = s >>> shift;
      let di = dst >>> shift;
      for (let e = 0; e < run; e++) view[di++] = view[si++];
    } else {
      heap.copyWithin(dst, s, s + runBytes);
    }
    dst += runBytes;
    for (let a = inner - 1; a >= 0; a--) {
      if (++idx[a] < size[a]) break;
      idx[a] = 0;
    }
  }
  return out;
}
