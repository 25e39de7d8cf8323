/** Reading a strided tensor view of a storage into a host array, converting dtype chunk by chunk. */
import { DTYPES, allocHost, convertInto, isDirect, isSourceDtype, type SourceDtype } from './dtypes.js';
import { CheckpointError, type HostTensor, type LazyTensor } from './types.js';

/** Where a storage's bytes come from. `byteStart` counts from the beginning of the storage. */
export interface StorageSource {
  read(storageKey: string, byteStart: number, target: Uint8Array): Promise<void>;
  /**
   * The record holding a storage's bytes: where it is (for messages) and how many bytes it has, null when the file
   * lacks it. Absent where the format's header validation already guarantees the bytes (safetensors).
   */
  record?(storageKey: string): { bytes: number | null; where: string };
  /** The file, for messages. */
  path?: string;
}

/** A strided view of a storage (PyTorch semantics, offsets and strides in elements). */
export interface TensorView {
  name: string;
  storageKey: string;
  dtype: string;
  /** Element offset of the view into the storage. */
  offset: number;
  shape: number[];
  stride: number[];
  /** Elements the storage holds, for bounds checks (-1: unknown). */
  storageNumel: number;
}

/** Elements read per conversion chunk (keeps the temporary buffer small). */
const CHUNK_ELEMS = 1 << 22;

export function numel(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

async function readConverted(
  src: StorageSource,
  v: TensorView,
  dtype: SourceDtype,
  elemStart: number,
  count: number,
  out: Float32Array | Int32Array | Uint8Array,
): Promise<void> {
  const size = DTYPES[dtype].size;
  if (isDirect(dtype)) {
    await src.read(v.storageKey, elemStart * size, new Uint8Array(out.buffer, out.byteOffset, count * size));
    if (dtype === 'bool') for (let i = 0; i < count; i++) if (out[i] > 1) out[i] = 1;
    return;
  }
  const chunk = Math.min(CHUNK_ELEMS, count);
  const tmp = new Uint8Array(chunk * size);
  for (let done = 0; done < count; done += chunk) {
    const n = Math.min(chunk, count - done);
    const part = tmp.subarray(0, n * size);
    await src.read(v.storageKey, (elemStart + done) * size, part);
    convertInto(dtype, part, out, done, n, v.name);
  }
}

/**
 * Validate a view against its storage without reading any byte: finite non-negative shape, stride and offset, the
 * elements it spans inside the storage's declared size, and the storage's record present in the file and holding
 * those elements. The one check every reader goes through: `openCheckpoint` runs it on each tensor it describes
 * (so `inspect` reports what `convert` and `readCheckpoint` can read) and `materialize` runs it again before reading.
 * @returns the number of elements the view spans in its storage
 * @throws CheckpointError naming the file, tensor, storage, the problem and the fix
 */
export function checkView(src: StorageSource, v: TensorView): number {
  const file = src.path ? `${src.path}: ` : '';
  const corrupt = 'the file is truncated or corrupt: save it again with torch.save, or download it again';
  if (!isSourceDtype(v.dtype)) throw new CheckpointError(`${file}tensor '${v.name}' has unsupported dtype ${v.dtype}`);
  if (
    v.shape.some((d) => !Number.isSafeInteger(d) || d < 0) ||
    v.stride.some((s) => !Number.isSafeInteger(s) || s < 0) ||
    !Number.isSafeInteger(v.offset) ||
    v.offset < 0
  )
    throw new CheckpointError(
      `${file}tensor '${v.name}' has an invalid shape ${JSON.stringify(v.shape)} / stride ${JSON.stringify(v.stride)} / offset ${v.offset}; ${corrupt}`,
    );
  if (numel(v.shape) === 0) return 0;
  let span = 1;
  for (let i = 0; i < v.shape.length; i++) span += (v.shape[i] - 1) * v.stride[i];
  if (v.storageNumel >= 0 && v.offset + span > v.storageNumel)
    throw new CheckpointError(
      `${file}tensor '${v.name}' needs elements ${v.offset}..${v.offset + span} of storage ${v.storageKey}, which holds ${v.storageNumel}; ${corrupt}`,
    );
  const rec = src.record?.(v.storageKey);
  if (rec && rec.bytes === null)
    throw new CheckpointError(
      `${file}tensor '${v.name}' uses storage ${v.storageKey}, but ${rec.where} is missing; ${corrupt}`,
    );
  if (rec && rec.bytes !== null) {
    const size = DTYPES[v.dtype].size;
    const need = (v.storageNumel >= 0 ? v.storageNumel : v.offset + span) * size;
    if (rec.bytes < need)
      throw new CheckpointError(
        `${file}tensor '${v.name}' uses storage ${v.storageKey}: ${rec.where} has ${rec.bytes} bytes, but the storage holds ${need / size} ${v.dtype} elements (${need} bytes); ${corrupt}`,
      );
  }
  return span;
}

/** Read a tensor view into a new host tensor (contiguous views read straight into the result). */
export async function materialize(src: StorageSource, v: TensorView): Promise<HostTensor> {
  const span = checkView(src, v);
  const dtype = v.dtype as SourceDtype;
  const info = DTYPES[dtype];
  const n = numel(v.shape);
  const out = allocHost(info.host, n);
  const result: HostTensor = { shape: [...v.shape], dtype: info.host, data: out, sourceDtype: dtype };
  if (n === 0) return result;
  // Row-major contiguous? (strides of size-1 dims do not matter)
  let contiguous = true;
  let expect = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    if (v.shape[i] !== 1 && v.stride[i] !== expect) contiguous = false;
    expect *= v.shape[i];
  }
  if (contiguous) {
    await readConverted(src, v, dtype, v.offset, n, out);
    return result;
  }
  // Strided view: read the spanned elements, then gather.
  const tmp = allocHost(info.host, span);
  await readConverted(src, v, dtype, v.offset, span, tmp);
  const rank = v.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = 0;
  for (let i = 0; i < n; i++) {
    out[i] = tmp[off];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      off += v.stride[d];
      if (idx[d] < v.shape[d]) break;
      off -= v.stride[d] * v.shape[d];
      idx[d] = 0;
    }
  }
  return result;
}

/** A LazyTensor for a view. */
export function lazyView(src: StorageSource, v: TensorView): LazyTensor {
  const size = isSourceDtype(v.dtype) ? DTYPES[v.dtype].size : 0;
  return {
    name: v.name,
    shape: [...v.shape],
    sourceDtype: v.dtype,
    dtype: isSourceDtype(v.dtype) ? DTYPES[v.dtype].host : 'float32',
    nbytes: numel(v.shape) * size,
    load: () => materialize(src, v),
  };
}
