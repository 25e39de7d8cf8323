/**
 * torch.save files: the zip format (PyTorch >= 1.6), TorchScript archives, and the legacy (< 1.6) stream format.
 * Pickles are read with the safe VM in pickle.ts; tensor bytes are read lazily with positional reads.
 */
import { PositionalFile } from './file.js';
import {
  PickleTruncated,
  PyGlobal,
  PyObject,
  STORAGE_DTYPES,
  TensorRef,
  isTuple,
  keyString,
  unpickle,
  type StorageRef,
} from './pickle.js';
import { DTYPES, isSourceDtype } from './dtypes.js';
import type { StorageSource, TensorView } from './tensor.js';
import { CheckpointError, type CheckpointFormat } from './types.js';
import { ZipArchive } from './zip.js';

/** A parsed torch file: the unpickled object plus where storages live. */
export interface TorchFile {
  format: CheckpointFormat;
  root: unknown;
  source: StorageSource;
  /** Elements in each storage (for bounds checks). */
  storageNumel: Map<string, number>;
  metadata: Record<string, string>;
  /** TorchScript: parameter and buffer names of a `__torch__` class (from code/), or null if unknown. */
  classInfo?: (className: string) => { params: string[]; buffers: string[] } | null;
}

function makePersistentLoad(path: string, storages: Map<string, StorageRef>, legacy: boolean) {
  return (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5)
      throw new CheckpointError(
        `${path}: unsupported persistent id in pickle (expected ('storage', ...), got ${JSON.stringify(Array.isArray(pid) ? pid[0] : typeof pid)})`,
      );
    const cls = pid[1];
    if (!(cls instanceof PyGlobal) || STORAGE_DTYPES[cls.name] === undefined)
      throw new CheckpointError(
        `${path}: persistent id names an unsupported storage type ${cls instanceof PyGlobal ? cls.qualname : typeof cls}`,
      );
    const dtype = STORAGE_DTYPES[cls.name];
    const key = keyString(pid[2]);
    const location = String(pid[3]);
    const n = Number(pid[4]);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new CheckpointError(`${path}: storage ${key} has invalid size ${String(pid[4])}`);
    let root = storages.get(key);
    if (!root) {
      root = { kind: 'storage', dtype, key, location, numel: n, elementOffset: 0 };
      storages.set(key, root);
    }
    const view = legacy ? pid[5] : null;
    if (view !== null && view !== undefined) {
      // Legacy view storage: (view_key, element offset, view size) into the root storage.
      if (!Array.isArray(view) || view.length < 3)
        throw new CheckpointError(`${path}: malformed storage view metadata for ${key}`);
      return { kind: 'storage', dtype, key, location, numel: Number(view[2]), elementOffset: Number(view[1]) };
    }
    return root;
  };
}

// ---------------------------------------------------------------------------------------------- zip / TorchScript

/** Parse a torch.save zip or a TorchScript archive (the zip is already open). */
export async function openTorchZip(file: PositionalFile, zip: ZipArchive): Promise<TorchFile> {
  const names = [...zip.entries.keys()];
  const pkl = names.filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl')).sort((a, b) => a.length - b.length)[0];
  if (!pkl && names.some((n) => n === 'model.json' || n.endsWith('/model.json')))
    throw new CheckpointError(
      `${file.path}: a TorchScript archive from PyTorch < 1.4 (model.json layout); load it with torch.jit.load and re-save it with a newer PyTorch (or save its state_dict)`,
    );
  if (!pkl)
    throw new CheckpointError(
      `${file.path}: zip archive without data.pkl: not a PyTorch checkpoint (expected a torch.save file, a TorchScript archive, or safetensors)`,
    );
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const isScript = zip.get(`${prefix}constants.pkl`) !== undefined || names.some((n) => n.startsWith(`${prefix}code/`));
  const metadata: Record<string, string> = {
    source_format: isScript ? 'torchscript' : 'torch-zip',
    archive_name: prefix.replace(/\/$/, ''),
  };
  const bo = zip.get(`${prefix}byteorder`);
  if (bo) {
    const order = new TextDecoder().decode(await zip.readEntry(bo)).trim();
    metadata.byteorder = order;
    if (order !== 'little')
      throw new CheckpointError(
        `${file.path}: tensors are stored ${order}-endian; only little-endian files are supported`,
      );
  }
  const ver = zip.get(`${prefix}version`) ?? zip.get(`${prefix}.data/version`);
  if (ver) metadata.archive_version = new TextDecoder().decode(await zip.readEntry(ver)).trim();

  const storages = new Map<string, StorageRef>();
  const data = await zip.readEntry(zip.get(pkl)!);
  const { value } = unpickle(data, {
    persistentLoad: makePersistentLoad(file.path, storages, false),
    source: `${file.path}:${pkl}`,
  });

  const storageNumel = new Map<string, number>();
  for (const [k, s] of storages) storageNumel.set(k, s.numel);
  const source: StorageSource = {
    path: file.path,
    record(key) {
      const name = `${prefix}data/${key}`;
      return { bytes: zip.get(name)?.size ?? null, where: `its record ${name} in the archive` };
    },
    async read(key, byteStart, target) {
      const entry = zip.get(`${prefix}data/${key}`);
      if (!entry)
        throw new CheckpointError(
          `${file.path}: storage ${key} is referenced by data.pkl but ${prefix}data/${key} is missing from the archive`,
        );
      await zip.readRange(entry, byteStart, target);
    },
  };
  const out: TorchFile = {
    format: isScript ? 'torchscript' : 'torch-zip',
    root: value,
    source,
    storageNumel,
    metadata,
  };
  if (isScript) out.classInfo = await scriptClassInfo(zip, prefix);
  return out;
}

/** Reads `__parameters__` / `__buffers__` of TorchScript classes from the archive's code/ folder. */
async function scriptClassInfo(zip: ZipArchive, prefix: string) {
  const cache = new Map<string, Map<string, { params: string[]; buffers: string[] }> | null>();
  const dec = new TextDecoder();
  const parsed = new Map<string, { params: string[]; buffers: string[] } | null>();
  // Pre-read all code files (small) so lookups are synchronous.
  for (const [name, entry] of zip.entries) {
    if (!name.startsWith(`${prefix}code/`) || !name.endsWith('.py')) continue;
    const text = dec.decode(await zip.readEntry(entry));
    const classes = new Map<string, { params: string[]; buffers: string[] }>();
    const parts = text.split(/^class (\w+)\(/m);
    for (let i = 1; i + 1 < parts.length; i += 2) {
      const body = parts[i + 1];
      const list = (field: string) => {
        const m = new RegExp(`${field}\\s*=\\s*\\[([^\\]]*)\\]`).exec(body);
        return m ? [...m[1].matchAll(/"([^"]*)"|'([^']*)'/g)].map((x) => x[1] ?? x[2]) : null;
      };
      const params = list('__parameters__');
      const buffers = list('__buffers__');
      if (params || buffers) classes.set(parts[i], { params: params ?? [], buffers: buffers ?? [] });
    }
    cache.set(name.slice(`${prefix}code/`.length, -'.py'.length), classes);
  }
  return (className: string) => {
    if (parsed.has(className)) return parsed.get(className)!;
    const dot = className.lastIndexOf('.');
    const module = className.slice(0, dot);
    const cls = className.slice(dot + 1);
    const info = cache.get(module.split('.').join('/'))?.get(cls) ?? null;
    parsed.set(className, info);
    return info;
  };
}

// ---------------------------------------------------------------------------------------------- legacy

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** Parse a legacy (pre-1.6) torch.save stream. */
export async function openTorchLegacy(file: PositionalFile): Promise<TorchFile> {
  const src = file.path;
  let len = Math.min(file.size, 1 << 20);
  for (;;) {
    const head = await file.read(0, len);
    try {
      return await parseLegacy(file, head);
    } catch (e) {
      if (e instanceof PickleTruncated && len < file.size) {
        len = Math.min(file.size, len * 4);
        continue;
      }
      if (e instanceof PickleTruncated)
        throw new CheckpointError(`${src}: legacy torch file ends inside its pickles (truncated file?)`);
      throw e;
    }
  }
}

async function parseLegacy(file: PositionalFile, head: Uint8Array): Promise<TorchFile> {
  const src = file.path;
  const magic = unpickle(head, { source: src });
  if (magic.value !== LEGACY_MAGIC && magic.value !== Number(LEGACY_MAGIC))
    throw new CheckpointError(`${src}: not a legacy torch file (bad magic number)`);
  const proto = unpickle(head, { source: src }, magic.end);
  if (proto.value !== 1001)
    throw new CheckpointError(`${src}: unsupported legacy torch protocol ${String(proto.value)} (expected 1001)`);
  const sys = unpickle(head, { source: src }, proto.end);
  if (sys.value instanceof Map && sys.value.get('little_endian') === false)
    throw new CheckpointError(`${src}: saved on a big-endian machine; only little-endian files are supported`);
  const storages = new Map<string, StorageRef>();
  const obj = unpickle(head, { source: src, persistentLoad: makePersistentLoad(src, storages, true) }, sys.end);
  const keys = unpickle(head, { source: src }, obj.end);
  if (!Array.isArray(keys.value)) throw new CheckpointError(`${src}: legacy storage key list is missing`);
  // Storage data: per key an int64 element count, then the raw bytes.
  const offsets = new Map<string, number>();
  const storageNumel = new Map<string, number>();
  let pos = keys.end;
  for (const k of keys.value) {
    const key = keyString(k);
    const st = storages.get(key);
    if (!st) throw new CheckpointError(`${src}: storage ${key} listed but not referenced by the object pickle`);
    if (pos + 8 > file.size)
      throw new CheckpointError(`${src}: legacy file ends before storage ${key} (truncated file?)`);
    const cnt = new DataView((await file.read(pos, 8)).buffer).getBigInt64(0, true);
    const n = Number(cnt);
    const size = isSourceDtype(st.dtype) ? DTYPES[st.dtype].size : 1;
    if (cnt < 0n || n !== st.numel)
      throw new CheckpointError(
        `${src}: storage ${key} has ${cnt} elements on disk but ${st.numel} in its pickle (corrupt file)`,
      );
    offsets.set(key, pos + 8);
    storageNumel.set(key, n);
    pos += 8 + n * size;
    if (pos > file.size)
      throw new CheckpointError(`${src}: storage ${key} runs past the end of the file (truncated file?)`);
  }
  const source: StorageSource = {
    path: src,
    record(key) {
      const n = storageNumel.get(key);
      const st = storages.get(key);
      const size = st && isSourceDtype(st.dtype) ? DTYPES[st.dtype].size : 1;
      return {
        bytes: n === undefined ? null : n * size,
        where:
          n === undefined
            ? 'its data (the storage key list after the pickles does not name it)'
            : 'its data in the file',
      };
    },
    async read(key, byteStart, target) {
      const off = offsets.get(key);
      if (off === undefined) throw new CheckpointError(`${src}: storage ${key} has no data in the file`);
      await file.readInto(target, off + byteStart);
    },
  };
  return { format: 'torch-legacy', root: obj.value, source, storageNumel, metadata: { source_format: 'torch-legacy' } };
}

// ---------------------------------------------------------------------------------------------- tensors out of the object

/** Wrapper keys tried in order when a checkpoint is a dict around the weights. */
export const WRAPPER_KEYS = [
  'state_dict',
  'model_state_dict',
  'ema',
  'model_ema',
  'ema_model',
  'ema_state_dict',
  'model',
  'net',
  'network',
  'module',
  'params',
  'weights',
];

function hasTensors(x: unknown, depth = 0): boolean {
  if (x instanceof TensorRef) return true;
  if (depth > 6) return false;
  if (x instanceof Map) for (const v of x.values()) if (hasTensors(v, depth + 1)) return true;
  return false;
}

function scalarString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return null;
}

export interface Collected {
  views: TensorView[];
  unwrapped?: string;
  metadata: Record<string, string>;
}

/** Turn an unpickled object into tensor views: unwrap wrapper dicts, flatten nested dicts, walk TorchScript modules. */
export function collectTensors(tf: TorchFile, path: string, wrapper?: string): Collected {
  const metadata: Record<string, string> = {};
  const views: TensorView[] = [];
  const push = (name: string, t: TensorRef) => {
    let storageNumel = tf.storageNumel.get(t.storage.key) ?? -1;
    // An untyped storage counts bytes; the view counts elements of the tensor's dtype.
    if (storageNumel >= 0 && t.storage.dtype === 'untyped' && isSourceDtype(t.dtype))
      storageNumel = Math.floor(storageNumel / DTYPES[t.dtype].size);
    views.push({
      name,
      storageKey: t.storage.key,
      dtype: t.dtype,
      offset: t.storage.elementOffset + t.offset,
      shape: t.shape,
      stride: t.stride,
      storageNumel,
    });
  };
  let root = tf.root;
  if (root instanceof PyObject && root.className.startsWith('__torch__')) {
    walkModule(root, '', tf, push);
    if (!views.length) throw new CheckpointError(`${path}: TorchScript archive holds no parameters or buffers`);
    return { views, metadata };
  }
  if (root instanceof PyObject)
    throw new CheckpointError(`${path}: the pickled object is a ${root.className}, not a state_dict`);
  if (root instanceof TensorRef) {
    push('tensor', root);
    return { views, metadata };
  }
  if (!(root instanceof Map))
    throw new CheckpointError(
      `${path}: the pickled object is a ${Array.isArray(root) ? (isTuple(root) ? 'tuple' : 'list') : root === null ? 'None' : typeof root}, not a state_dict (a dict of tensors)`,
    );
  const path_: string[] = [];
  for (let depth = 0; depth < 4; depth++) {
    const m = root as Map<unknown, unknown>;
    let next: string | undefined;
    if (wrapper && depth === 0) {
      if (!m.has(wrapper))
        throw new CheckpointError(
          `${path}: has no top-level entry '${wrapper}'; its entries are: ${[...m.keys()].map(keyString).join(', ')}`,
        );
      next = wrapper;
    } else {
      // Only a dict whose direct values are mostly not tensors is a wrapper.
      const direct = [...m.values()].filter((v) => v instanceof TensorRef).length;
      if (direct === 0) next = WRAPPER_KEYS.find((k) => m.get(k) instanceof Map && hasTensors(m.get(k)));
    }
    if (!next) break;
    const others = [...m.keys()].map(keyString).filter((k) => k !== next);
    for (const k of others) {
      const s = scalarString(m.get(k));
      if (s !== null) metadata[path_.length ? `${path_.join('.')}.${k}` : k] = s;
    }
    const alts = others.filter((k) => m.get(k) instanceof Map && hasTensors(m.get(k)));
    if (alts.length) metadata.other_weight_sets = alts.join(',');
    path_.push(next);
    root = m.get(next);
    if (!(root instanceof Map))
      throw new CheckpointError(`${path}: entry '${path_.join('.')}' is not a dict of tensors`);
  }
  const flatten = (m: Map<unknown, unknown>, prefix: string, depth: number) => {
    for (const [k, v] of m) {
      const name = prefix + keyString(k);
      if (v instanceof TensorRef) push(name, v);
      else if (v instanceof Map && depth < 6 && hasTensors(v)) flatten(v, `${name}.`, depth + 1);
    }
  };
  flatten(root as Map<unknown, unknown>, '', 0);
  if (!views.length)
    throw new CheckpointError(
      `${path}: holds no tensors (top-level entries: ${[...(tf.root as Map<unknown, unknown>).keys()].map(keyString).join(', ') || 'none'})`,
    );
  return { views, metadata, unwrapped: path_.length ? path_.join('.') : undefined };
}

/** TorchScript module tree -> state_dict order: each module's parameters, then buffers, then submodules. */
function walkModule(
  obj: PyObject,
  prefix: string,
  tf: TorchFile,
  push: (name: string, t: TensorRef) => void,
  depth = 0,
): void {
  if (depth > 200) throw new CheckpointError('TorchScript module tree is too deep');
  const state = obj.state;
  if (!(state instanceof Map)) return;
  const info = tf.classInfo?.(obj.className) ?? null;
  if (info) {
    for (const n of [...info.params, ...info.buffers]) {
      const v = state.get(n);
      if (v instanceof TensorRef) push(prefix + n, v);
    }
  } else {
    for (const [k, v] of state) if (v instanceof TensorRef) push(prefix + keyString(k), v);
  }
  for (const [k, v] of state) {
    if (v instanceof PyObject && v.className.startsWith('__torch__'))
      walkModule(v, `${prefix}${keyString(k)}.`, tf, push, depth + 1);
  }
}
