/** Reading a strided tensor view of a storage into a host array, converting dtype chunk by chunk. */
import { DTYPES, allocHost, convertInto, isDirect, isSourceDtype, type SourceDtype } from './dtypes.js';
import { CheckpointError, type HostTensor, type LazyTensor } from './types.js';

/** Where a storage's bytes come from. `byteStart` counts from the beginning of the storage. */
export interface StorageSource {
  read(storageKey: string, byteStart: number, target: Uint8Array): Promise<void>;
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

/** Read a tensor view into a new host tensor (contiguous views read straight into the result). */
export async function materialize(src: StorageSource, v: TensorView): Promise<HostTensor> {
  if (!isSourceDtype(v.dtype)) throw new CheckpointError(`tensor '${v.name}' has unsupported dtype ${v.dtype}`);
  const dtype = v.dtype;
  const info = DTYPES[dtype];
  const n = numel(v.shape);
  if (v.shape.some((d) => !Number.isSafeInteger(d) || d < 0) || v.stride.some((s) => !Number.isSafeInteger(s) || s < 0) || v.offset < 0)
    throw new CheckpointError(`tensor '${v.name}' has an invalid shape ${JSON.stringify(v.shape)} / stride ${JSON.stringify(v.stride)} / offset ${v.offset}`);
  const out = allocHost(info.host, n);
  const result: HostTensor = { shape: [...v.shape], dtype: info.host, data: out, sourceDtype: dtype };
  if (n === 0) return result;
  let span = 1;
  for (let i = 0; i < v.shape.length; i++) span += (v.shape[i] - 1) * v.stride[i];
  if (v.storageNumel >= 0 && v.offset + span > v.storageNumel)
    throw new CheckpointError(`tensor '${v.name}' needs elements ${v.offset}..${v.offset + span} of a storage holding ${v.storageNumel} (corrupt file)`);
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
