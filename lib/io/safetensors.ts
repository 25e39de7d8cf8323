/**
 * safetensors: strict header validation, lazy positional reads, and an atomic writer whose byte layout matches
 * the reference implementation (tensors ordered by dtype then name, header padded with spaces to 8 bytes).
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DTYPES, type SourceDtype } from './dtypes.js';
import { f32ToF16 } from './f16.js';
import { PositionalFile } from './file.js';
import { lazyView, numel, type StorageSource } from './tensor.js';
import { CheckpointError, type HostTensor, type LazyTensor, type StateDict } from './types.js';

export const MAX_HEADER_BYTES = 100_000_000;

/** safetensors dtype tag -> PyTorch dtype name. */
export const ST_TO_TORCH: Record<string, SourceDtype> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U64: 'uint64',
  U32: 'uint32',
  U16: 'uint16',
  U8: 'uint8',
  BOOL: 'bool',
};
/** The reference's dtype order (its enum order); the writer sorts tensors by it, descending. */
const ST_RANK = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];

export interface SafetensorsHeader {
  /** Tensors in buffer order. */
  tensors: { name: string; dtype: SourceDtype; stDtype: string; shape: number[]; begin: number; end: number }[];
  metadata: Record<string, string>;
  /** Byte offset of the data buffer in the file (8 + header length). */
  dataStart: number;
}

/**
 * Validate a safetensors header against the file size (rules of the reference implementation):
 * header length <= 100 MB and inside the file, UTF-8 JSON object starting with '{', known dtypes, integral
 * shapes, offsets tiling the buffer exactly with byte counts matching dtype x shape.
 */
export function parseSafetensorsHeader(path: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const bad = (what: string): never => {
    throw new CheckpointError(`${path}: invalid safetensors file: ${what}`);
  };
  const n = headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return bad('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) bad(`header does not start with '{'`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) return bad('header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsHeader['tensors'] = [];
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!info || typeof info !== 'object' || Array.isArray(info)) bad('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') bad(`__metadata__.${k} must be a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (!info || typeof info !== 'object') return bad(`entry '${name}' is not an object`);
    const { dtype, shape, data_offsets: offs } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string') return bad(`tensor '${name}' has no dtype`);
    const torchDtype = ST_TO_TORCH[dtype];
    if (!torchDtype)
      return bad(`tensor '${name}' has unsupported dtype ${dtype} (supported: ${Object.keys(ST_TO_TORCH).join(', ')})`);
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
      return bad(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((d) => !Number.isSafeInteger(d) || d < 0))
      return bad(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`);
    if (offs[1] < offs[0])
      return bad(
        `tensor '${name}' has reversed data_offsets [${offs[0]}, ${offs[1]}]: the end lies before the begin (they are [begin, end) byte positions in the data buffer)`,
      );
    tensors.push({ name, dtype: torchDtype, stDtype: dtype, shape: shape as number[], begin: offs[0], end: offs[1] });
  }
  const bufferLen = fileSize - 8 - n;
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let start = 0;
  for (const t of sorted) {
    if (t.begin !== start)
      bad(
        t.begin < start
          ? `tensor '${t.name}' data_offsets [${t.begin}, ${t.end}] overlap the previous tensor (which ends at ${start})`
          : `gap in the data buffer before tensor '${t.name}' (offsets must tile the buffer: expected begin ${start}, got ${t.begin})`,
      );
    const need = numel(t.shape) * DTYPES[t.dtype].size;
    if (!Number.isSafeInteger(need) || need !== t.end - t.begin)
      bad(
        `tensor '${t.name}' ${t.stDtype}${JSON.stringify(t.shape)} needs ${need} bytes but data_offsets [${t.begin}, ${t.end}] span ${t.end - t.begin}`,
      );
    start = t.end;
  }
  if (start !== bufferLen)
    bad(
      start > bufferLen
        ? `tensor data ends at byte ${start} of the buffer but the file holds only ${bufferLen} bytes after the header (offsets past the end, or truncated file)`
        : `the data buffer has ${bufferLen} bytes but the tensors cover only ${start} (offsets must tile the buffer exactly)`,
    );
  return { tensors: sorted, metadata, dataStart: 8 + n };
}

/** Read and validate the header of an opened safetensors file. */
export async function readSafetensorsHeader(file: PositionalFile): Promise<SafetensorsHeader> {
  const bad = (what: string): never => {
    throw new CheckpointError(
      `${file.path}: invalid safetensors file: ${what}; download or convert it again (diffguide convert IN OUT.safetensors)`,
    );
  };
  if (file.size < 8)
    bad(
      `only ${file.size} byte${file.size === 1 ? '' : 's'}, fewer than the 8-byte header length a safetensors file starts with (truncated file?)`,
    );
  const n = new DataView((await file.read(0, 8)).buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    bad(
      `header length ${n} exceeds the 100 MB limit${n + 8n > BigInt(file.size) ? ` and the ${file.size}-byte file` : ''} (bytes 0..8, a little-endian u64, are corrupt, or this is not a safetensors file)`,
    );
  if (n < 2n)
    bad(
      `header length ${n} is too small for a JSON header (at least 2 bytes, '{}'; bytes 0..8 hold the length as a little-endian u64)`,
    );
  if (Number(n) + 8 > file.size) bad(`header length ${n} runs past the end of the ${file.size}-byte file (truncated?)`);
  return parseSafetensorsHeader(file.path, await file.read(8, Number(n)), file.size);
}

/** Lazy tensors of a safetensors file (buffer order). */
export function safetensorsLazy(file: PositionalFile, header: SafetensorsHeader): LazyTensor[] {
  const begins = new Map(header.tensors.map((t) => [t.name, t.begin]));
  const source: StorageSource = {
    read: (key, byteStart, target) => file.readInto(target, header.dataStart + begins.get(key)! + byteStart),
  };
  return header.tensors.map((t) =>
    lazyView(source, {
      name: t.name,
      storageKey: t.name,
      dtype: t.dtype,
      offset: 0,
      shape: t.shape,
      stride: rowMajor(t.shape),
      storageNumel: numel(t.shape),
    }),
  );
}

function rowMajor(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export interface WriteOptions {
  /** Store float tensors as 'float16' (halves the file) or 'float32' (default). */
  dtype?: 'float32' | 'float16';
}

/** What the writer needs to know about a tensor before its data is available. */
export interface TensorDescriptor {
  name: string;
  shape: number[];
  dtype: HostTensor['dtype'];
  sourceDtype: string;
}

function stDtypeFor(t: TensorDescriptor, opts: WriteOptions): string {
  switch (t.dtype) {
    case 'float32':
      return opts.dtype === 'float16' ? 'F16' : 'F32';
    case 'int32':
      return t.sourceDtype === 'int64' ? 'I64' : 'I32';
    case 'uint8':
      return 'U8';
    case 'bool':
      return 'BOOL';
  }
}

/** Serialized header + the tensors in the order the reference writes them (dtype rank descending, then name). */
export function planSafetensors(
  descriptors: TensorDescriptor[],
  metadata: Record<string, string> | undefined,
  opts: WriteOptions = {},
): { header: Uint8Array; items: { d: TensorDescriptor; st: string; nbytes: number }[] } {
  const names = new Set<string>();
  const items = descriptors.map((d) => {
    if (d.name === '__metadata__')
      throw new CheckpointError(`cannot write a tensor named '__metadata__' to safetensors`);
    if (names.has(d.name)) throw new CheckpointError(`tensor name '${d.name}' occurs twice`);
    names.add(d.name);
    if (d.shape.some((x) => !Number.isSafeInteger(x) || x < 0))
      throw new CheckpointError(`tensor '${d.name}' has an invalid shape ${JSON.stringify(d.shape)}`);
    const st = stDtypeFor(d, opts);
    return { d, st, nbytes: numel(d.shape) * DTYPES[ST_TO_TORCH[st]].size };
  });
  items.sort(
    (a, b) => ST_RANK.indexOf(b.st) - ST_RANK.indexOf(a.st) || (a.d.name < b.d.name ? -1 : a.d.name > b.d.name ? 1 : 0),
  );
  const head: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new CheckpointError(`safetensors metadata '${k}' must be a string`);
    head.__metadata__ = metadata;
  }
  let off = 0;
  for (const it of items) {
    head[it.d.name] = { dtype: it.st, shape: it.d.shape, data_offsets: [off, off + it.nbytes] };
    off += it.nbytes;
  }
  let json = JSON.stringify(head);
  const raw = new TextEncoder().encode(json);
  const padded = raw.length + ((8 - (raw.length % 8)) % 8);
  json += ' '.repeat(padded - raw.length);
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(new TextEncoder().encode(json), 8);
  return { header, items };
}

function checkData(name: string, t: HostTensor, d: TensorDescriptor): void {
  const n = numel(d.shape);
  if (t.data.length !== n)
    throw new CheckpointError(
      `tensor '${name}' has shape ${JSON.stringify(d.shape)} (${n} elements) but ${t.data.length} data elements`,
    );
  if (t.dtype !== d.dtype)
    throw new CheckpointError(`tensor '${name}' was announced as ${d.dtype} but its data is ${t.dtype}`);
}

const WRITE_CHUNK = 1 << 22; // elements per converted chunk

/** Encode elements [from, from+n) of a host tensor as dtype `st` bytes. */
function encode(t: HostTensor, st: string, from: number, n: number): Uint8Array {
  const d = t.data;
  switch (st) {
    case 'F32':
    case 'I32':
    case 'U8':
    case 'BOOL':
      return new Uint8Array(d.buffer, d.byteOffset + from * d.BYTES_PER_ELEMENT, n * d.BYTES_PER_ELEMENT);
    case 'F16':
      return new Uint8Array(f32ToF16((d as Float32Array).subarray(from, from + n)).buffer);
    case 'I64': {
      const out = new Int32Array(2 * n);
      for (let i = 0; i < n; i++) {
        out[2 * i] = d[from + i];
        out[2 * i + 1] = d[from + i] < 0 ? -1 : 0;
      }
      return new Uint8Array(out.buffer);
    }
  }
  throw new CheckpointError(`cannot encode dtype ${st}`);
}

/**
 * Write safetensors atomically (temp file in the same folder, fsync, rename), pulling each tensor's data from
 * `load` in write order, so a caller can stream a large checkpoint one tensor at a time.
 */
export async function writeSafetensorsStreaming(
  path: string,
  descriptors: TensorDescriptor[],
  load: (name: string) => Promise<HostTensor> | HostTensor,
  metadata?: Record<string, string>,
  opts: WriteOptions = {},
): Promise<void> {
  const { header, items } = planSafetensors(descriptors, metadata, opts);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await fsp.open(tmp, 'w');
  try {
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) {
        const { bytesWritten } = await fh.write(b, done, Math.min(b.length - done, 1 << 30), pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    };
    await write(header);
    for (const it of items) {
      const t = await load(it.d.name);
      checkData(it.d.name, t, it.d);
      const n = t.data.length;
      for (let from = 0; from < n; from += WRITE_CHUNK)
        await write(encode(t, it.st, from, Math.min(WRITE_CHUNK, n - from)));
    }
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fsp.unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** Write in-memory tensors as safetensors (atomic). */
export async function writeSafetensorsFile(
  path: string,
  tensors: StateDict | Record<string, HostTensor>,
  metadata?: Record<string, string>,
  opts: WriteOptions = {},
): Promise<void> {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const descriptors = [...map].map(([name, t]) => {
    checkData(name, t, { name, shape: t.shape, dtype: t.dtype, sourceDtype: t.sourceDtype });
    return { name, shape: t.shape, dtype: t.dtype, sourceDtype: t.sourceDtype };
  });
  await writeSafetensorsStreaming(path, descriptors, (name) => map.get(name)!, metadata, opts);
}
