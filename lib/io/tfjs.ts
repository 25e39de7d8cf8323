/**
 * The TF.js weights-manifest format (`model.json` + binary shards, as `tf.io` and tfjs-converter write
 * them) for diffguide's weights, and loading it back through `tf.io` handlers: `tf.io.http` /
 * `browserHTTPRequest` (any `http(s)://` or relative URL), `indexeddb://` (a browser's cache), or any
 * `tf.io.IOHandler` (`tfjsFileHandler` in `tfjs-file.ts` reads and writes folders in Node).
 *
 * The artifacts are weights-only: `modelTopology` is our own record `{ format: 'diffguide-weights',
 * model, config }` (the `config.json` shipped beside the safetensors), and the weights keep the
 * reference PyTorch layout and key names, exactly as in the safetensors file, which stays the source
 * of truth (`diffguide convert --to tfjs` makes the rest). Runs anywhere: no Node imports.
 */
import * as tf from '@tensorflow/tfjs';
import { CheckpointError, type HostTensor, type StateDict } from './types.js';

/** `modelTopology.format` of diffguide's weights-only artifacts. */
export const TFJS_WEIGHTS_FORMAT = 'diffguide-weights';
/** Shard size tfjs-converter uses (4 MiB). */
export const TFJS_SHARD_BYTES = 4 * 1024 * 1024;

/** Our `modelTopology`. */
export interface DiffguideTopology {
  format: typeof TFJS_WEIGHTS_FORMAT;
  /** Model name (`unet`, `clip`, ...: the weights/ folder). */
  model: string;
  /** The config JSON shipped beside the safetensors (null when there was none). */
  config: Record<string, unknown> | null;
}

/** What `loadTfjsWeights` returns. */
export interface TfjsWeights {
  model: string;
  config: Record<string, unknown> | null;
  /** Tensors by reference key name, PyTorch layout, in manifest order. */
  stateDict: StateDict;
  /** `userDefinedMetadata` of the model.json (`sourceSha256`, `source` ...). */
  metadata: Record<string, unknown>;
  /** The artifacts as loaded (for caching them elsewhere, e.g. `indexeddb://`). */
  artifacts: tf.io.ModelArtifacts;
}

const SPEC_DTYPE: Record<HostTensor['dtype'], 'float32' | 'int32' | 'bool'> = {
  float32: 'float32',
  int32: 'int32',
  bool: 'bool',
  uint8: 'int32',
};

/**
 * Encode a state_dict as weights-only tfjs artifacts: one weight group, its bytes split into shards of
 * `shardBytes` (default 4 MiB; a tensor may span two shards, as with tfjs-converter). float32 and int32
 * tensors keep their bytes, bool is one byte each; uint8 tensors are widened to int32 (tfjs has no uint8).
 * @returns the model.json object (shard paths `group1-shard{i}of{n}.bin`) and the shards' bytes
 */
export function encodeTfjsWeights(
  sd: StateDict,
  meta: {
    model: string;
    config: Record<string, unknown> | null;
    metadata?: Record<string, string>;
    shardBytes?: number;
    generatedBy?: string;
  },
): { modelJSON: tf.io.ModelJSON; shards: { path: string; data: Uint8Array }[] } {
  const shardBytes = meta.shardBytes ?? TFJS_SHARD_BYTES;
  if (!Number.isInteger(shardBytes) || shardBytes < 1)
    throw new Error(`encodeTfjsWeights: shardBytes must be a positive integer, got ${shardBytes}`);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const [name, t] of sd) {
    const spec: tf.io.WeightsManifestEntry = { name, shape: [...t.shape], dtype: SPEC_DTYPE[t.dtype] };
    let bytes: Uint8Array;
    if (t.dtype === 'uint8') {
      bytes = new Uint8Array(Int32Array.from(t.data).buffer);
    } else {
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    }
    specs.push(spec);
    parts.push(bytes);
    total += bytes.byteLength;
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  const shards = splitShards(all, shardBytes);
  const topology: DiffguideTopology = { format: TFJS_WEIGHTS_FORMAT, model: meta.model, config: meta.config };
  const modelJSON: tf.io.ModelJSON = {
    format: TFJS_WEIGHTS_FORMAT,
    generatedBy: meta.generatedBy ?? 'diffguide',
    convertedBy: 'diffguide convert --to tfjs',
    modelTopology: topology,
    weightsManifest: [{ paths: shards.map((s) => s.path), weights: specs }],
    userDefinedMetadata: { ...(meta.metadata ?? {}) },
  };
  return { modelJSON, shards };
}

/** Bytes split into tfjs-converter's shard files `group1-shard{i}of{n}.bin` of at most `shardBytes` each. */
export function splitShards(bytes: Uint8Array, shardBytes = TFJS_SHARD_BYTES): { path: string; data: Uint8Array }[] {
  const n = Math.max(1, Math.ceil(bytes.byteLength / shardBytes));
  return Array.from({ length: n }, (_, i) => ({
    path: `group1-shard${i + 1}of${n}.bin`,
    data: bytes.subarray(i * shardBytes, Math.min(bytes.byteLength, (i + 1) * shardBytes)),
  }));
}

/** True when the artifacts are diffguide weights (`modelTopology.format`). */
export function isDiffguideArtifacts(a: tf.io.ModelArtifacts): boolean {
  const t = a.modelTopology as Partial<DiffguideTopology> | undefined;
  return !!t && !(t instanceof ArrayBuffer) && t.format === TFJS_WEIGHTS_FORMAT;
}

/**
 * Decode loaded artifacts into host tensors with `tf.io.decodeWeights` (a quantized manifest is
 * dequantised to float32). `where` names the source in errors.
 */
export function stateDictFromArtifacts(a: tf.io.ModelArtifacts, where: string): Omit<TfjsWeights, 'artifacts'> {
  if (!isDiffguideArtifacts(a)) {
    const fmt = (a.modelTopology as { format?: string } | undefined)?.format ?? a.format ?? 'unknown';
    throw new CheckpointError(
      `${where}: not diffguide weights (modelTopology.format is '${fmt}', expected '${TFJS_WEIGHTS_FORMAT}'); make them with: diffguide convert --to tfjs weights/<model> OUT`,
    );
  }
  if (!a.weightSpecs || a.weightData == null)
    throw new CheckpointError(
      `${where}: the model.json has no weights (weightsManifest) or its shards were not loaded; convert again with: diffguide convert --to tfjs`,
    );
  const topo = a.modelTopology as DiffguideTopology;
  const tensors = tf.io.decodeWeights(a.weightData, a.weightSpecs);
  const sd: StateDict = new Map();
  try {
    for (const spec of a.weightSpecs) {
      const t = tensors[spec.name];
      const dtype = t.dtype === 'bool' ? 'bool' : t.dtype === 'int32' ? 'int32' : 'float32';
      const raw = t.dataSync();
      const data =
        dtype === 'bool'
          ? Uint8Array.from(raw as Uint8Array)
          : dtype === 'int32'
            ? Int32Array.from(raw as Int32Array)
            : Float32Array.from(raw as Float32Array);
      sd.set(spec.name, {
        shape: [...t.shape],
        dtype,
        data,
        sourceDtype: spec.quantization?.dtype === 'float16' ? 'float16' : dtype,
      });
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
  return {
    model: topo.model,
    config: topo.config ?? null,
    stateDict: sd,
    metadata: (a.userDefinedMetadata ?? {}) as Record<string, unknown>,
  };
}

/** Options for `loadTfjsWeights`. */
export interface LoadTfjsOptions {
  /** `tf.io` load options (`onProgress` over the shard downloads, `fetchFunc`, `requestInit`, ...). */
  load?: tf.io.LoadOptions;
  /**
   * A `tf.io` URL to cache the artifacts under, e.g. `indexeddb://diffguide/unet/<sha>`: loaded from
   * there when present, else loaded from `source` and saved there (a browser then works offline).
   */
  cache?: string;
  /** Told where the weights came from ('cache' or 'source'). */
  onLoaded?: (from: 'cache' | 'source') => void;
}

function handlerFor(url: string, opts?: tf.io.LoadOptions): tf.io.IOHandler {
  const hs = tf.io.getLoadHandlers(url, opts);
  if (hs.length === 0) {
    // a relative URL in a page or worker: tf.io.http takes any URL fetch takes
    if (typeof fetch === 'function' && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return tf.io.http(url, opts);
    throw new CheckpointError(
      `no tf.io handler for '${url}': use an http(s):// URL, indexeddb://NAME in a browser, or in Node a folder through tfjsFileHandler (lib/io/tfjs-file.ts)`,
    );
  }
  return hs[0];
}

/**
 * Load diffguide weights in the TF.js format through a `tf.io` handler or URL (`http(s)://...model.json`,
 * a relative URL in a browser, `indexeddb://NAME`), optionally through a cache URL (see `cache`).
 */
export async function loadTfjsWeights(
  source: string | tf.io.IOHandler,
  opts: LoadTfjsOptions = {},
): Promise<TfjsWeights> {
  const where = typeof source === 'string' ? source : 'the given tf.io handler';
  if (opts.cache) {
    let cached: tf.io.ModelArtifacts | null = null;
    try {
      cached = await handlerFor(opts.cache).load!();
    } catch {
      cached = null; // not cached yet
    }
    if (cached && isDiffguideArtifacts(cached)) {
      opts.onLoaded?.('cache');
      return { ...stateDictFromArtifacts(cached, opts.cache), artifacts: cached };
    }
  }
  const h = typeof source === 'string' ? handlerFor(source, opts.load) : source;
  if (!h.load) throw new CheckpointError(`${where}: this tf.io handler cannot load`);
  let a: tf.io.ModelArtifacts;
  try {
    a = await h.load();
  } catch (e) {
    throw new CheckpointError(
      `${where}: cannot load TF.js weights (${(e as Error).message}); make them with: diffguide convert --to tfjs weights/<model> OUT`,
    );
  }
  const out = { ...stateDictFromArtifacts(a, where), artifacts: a };
  opts.onLoaded?.('source');
  if (opts.cache) {
    const saver = tf.io.getSaveHandlers(opts.cache)[0];
    if (saver?.save) await saver.save(a);
  }
  return out;
}
