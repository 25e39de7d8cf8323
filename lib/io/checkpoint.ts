/** Format detection and the lazy `openCheckpoint` every reader goes through. */
import { PositionalFile } from './file.js';
import { readSafetensorsHeader, safetensorsLazy } from './safetensors.js';
import { checkView, lazyView } from './tensor.js';
import { collectTensors, openTorchLegacy, openTorchZip } from './torch.js';
import {
  CheckpointError,
  type Checkpoint,
  type CheckpointFormat,
  type LazyTensor,
  type ReadOptions,
  type StateDict,
} from './types.js';
import { ZipArchive } from './zip.js';

/**
 * Detect the format from the first bytes (>= 16 recommended). A zip is reported as 'torch-zip'; whether it is a
 * TorchScript archive is known only after reading its directory (`openCheckpoint` reports 'torchscript').
 */
export function detectFormat(head: Uint8Array): CheckpointFormat | null {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)
    return 'torch-zip';
  // Legacy: pickle PROTO 2, LONG1 of 10 bytes holding the magic 0x1950a86a20f9469cfc6c.
  const magic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
  if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return 'torch-legacy';
  if (head.length >= 9) {
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n >= 2n && n < 1n << 48n && head[8] === 0x7b /* "{" */) return 'safetensors'; // size limits are checked when reading
  }
  return null;
}

/**
 * A file detection does not recognise but that is meant as safetensors: named `.safetensors`, or a JSON object
 * where a safetensors header begins (byte 8) with a header length detection rejected. Read as safetensors, its
 * header check then says what is wrong (too short, header length out of range, ...).
 */
function looksLikeSafetensors(path: string, head: Uint8Array): boolean {
  return /\.safetensors$/i.test(path) || (head.length >= 9 && head[8] === 0x7b); /* "{" */
}

/** An opened checkpoint whose tensors are read on demand. Call `close()` when done. */
export interface OpenedCheckpoint {
  path: string;
  format: CheckpointFormat;
  metadata: Record<string, string>;
  unwrapped?: string;
  /** Tensors in file order, after `stripPrefix` and `filter`. */
  tensors: LazyTensor[];
  close(): Promise<void>;
}

/** Open a checkpoint (any supported format) and describe its tensors without reading their bytes. */
export async function openCheckpoint(path: string, opts: ReadOptions = {}): Promise<OpenedCheckpoint> {
  const file = await PositionalFile.open(path);
  try {
    if (file.size === 0)
      throw new CheckpointError(`${path}: empty file (0 bytes), not a checkpoint; download or save it again`);
    const head = await file.read(0, Math.min(file.size, 64));
    const fmt = detectFormat(head);
    let format: CheckpointFormat;
    let metadata: Record<string, string>;
    let unwrapped: string | undefined;
    /** Tensors in file order: the name in the file, and the lazy tensor under a (possibly renamed) name. */
    let items: { name: string; lazy: (name: string) => LazyTensor }[];
    if (fmt === 'safetensors' || (fmt === null && looksLikeSafetensors(path, head))) {
      const h = await readSafetensorsHeader(file);
      format = 'safetensors';
      metadata = h.metadata;
      items = safetensorsLazy(file, h).map((t) => ({
        name: t.name,
        lazy: (name) => (name === t.name ? t : { ...t, name }),
      }));
    } else if (fmt === 'torch-zip' || fmt === 'torch-legacy') {
      const tf =
        fmt === 'torch-zip' ? await openTorchZip(file, await ZipArchive.open(file)) : await openTorchLegacy(file);
      const c = collectTensors(tf, path, opts.wrapper);
      format = tf.format;
      metadata = { ...tf.metadata, ...c.metadata };
      unwrapped = c.unwrapped;
      if (unwrapped) metadata.unwrapped = unwrapped;
      // Each described tensor is checked against its storage record here, before any byte is read (checkView).
      items = c.views.map((v) => ({
        name: v.name,
        lazy: (name) => (checkView(tf.source, v), lazyView(tf.source, name === v.name ? v : { ...v, name })),
      }));
    } else {
      const tarLike = file.size > 262 && new TextDecoder().decode(await file.read(257, 5)) === 'ustar';
      throw new CheckpointError(
        tarLike
          ? `${path}: a tar-based torch file (PyTorch < 0.4); load and re-save it with a newer PyTorch, then retry`
          : `${path}: unrecognised checkpoint format (${file.size < 64 ? `only ${file.size} bytes; ` : ''}first bytes ${[...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}); supported: torch.save zip (.pt/.pth/.ckpt), legacy torch.save, TorchScript, safetensors`,
      );
    }
    const seen = new Set<string>();
    const tensors: LazyTensor[] = [];
    for (const t of items) {
      let name = t.name;
      if (opts.stripPrefix && name.startsWith(opts.stripPrefix)) name = name.slice(opts.stripPrefix.length);
      if (opts.filter && !opts.filter(name)) continue;
      if (seen.has(name))
        throw new CheckpointError(
          `${path}: key '${name}' occurs twice${opts.stripPrefix ? ` after stripping '${opts.stripPrefix}'` : ''}`,
        );
      seen.add(name);
      tensors.push(t.lazy(name));
    }
    return { path, format, metadata, unwrapped, tensors, close: () => file.close() };
  } catch (e) {
    await file.close();
    throw e;
  }
}

/** Read a whole checkpoint into host memory (each tensor read straight into its own array). */
export async function readCheckpoint(path: string, opts: ReadOptions = {}): Promise<Checkpoint> {
  const ck = await openCheckpoint(path, opts);
  try {
    const tensors: StateDict = new Map();
    for (const t of ck.tensors) tensors.set(t.name, await t.load());
    const out: Checkpoint = { format: ck.format, tensors, metadata: ck.metadata };
    if (ck.unwrapped) out.unwrapped = ck.unwrapped;
    return out;
  } finally {
    await ck.close();
  }
}

/** Shorthand: the tensors of `readCheckpoint(path)`. */
export async function readStateDict(path: string, opts: ReadOptions = {}): Promise<StateDict> {
  return (await readCheckpoint(path, opts)).tensors;
}
