/** Source dtypes (PyTorch names), their sizes, and conversion of raw little-endian bytes to host arrays. */
import os from 'node:os';
import { f16Table } from './f16.js';
import { CheckpointError, type HostDtype } from './types.js';

export type SourceDtype =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool'
  | 'uint16'
  | 'uint32'
  | 'uint64';

export interface DtypeInfo {
  size: number;
  host: HostDtype;
}

export const DTYPES: Record<SourceDtype, DtypeInfo> = {
  float32: { size: 4, host: 'float32' },
  float16: { size: 2, host: 'float32' },
  bfloat16: { size: 2, host: 'float32' },
  float64: { size: 8, host: 'float32' },
  int64: { size: 8, host: 'int32' },
  int32: { size: 4, host: 'int32' },
  int16: { size: 2, host: 'int32' },
  int8: { size: 1, host: 'int32' },
  uint8: { size: 1, host: 'uint8' },
  bool: { size: 1, host: 'bool' },
  uint16: { size: 2, host: 'int32' },
  uint32: { size: 4, host: 'int32' },
  uint64: { size: 8, host: 'int32' },
};

export function isSourceDtype(s: string): s is SourceDtype {
  return Object.prototype.hasOwnProperty.call(DTYPES, s);
}

if (os.endianness() !== 'LE') throw new Error('diffguide checkpoint I/O needs a little-endian host');

/** A host array of `n` elements for the given host dtype. */
export function allocHost(dtype: HostDtype, n: number): Float32Array | Int32Array | Uint8Array {
  return dtype === 'float32' ? new Float32Array(n) : dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n);
}

/**
 * Convert `count` elements of raw little-endian bytes `src` (dtype `from`) into `dst[dstOffset ..]`.
 * Throws (naming `key`) when an integer does not fit int32.
 */
export function convertInto(
  from: SourceDtype,
  src: Uint8Array,
  dst: Float32Array | Int32Array | Uint8Array,
  dstOffset: number,
  count: number,
  key: string,
): void {
  const aligned = (size: number) => (src.byteOffset % size === 0 ? src : new Uint8Array(src)); // copy to an aligned buffer if needed
  switch (from) {
    case 'float32':
    case 'int32':
    case 'uint8':
    case 'bool': {
      const bytes = count * DTYPES[from].size;
      new Uint8Array(dst.buffer, dst.byteOffset + dstOffset * DTYPES[from].size, bytes).set(src.subarray(0, bytes));
      if (from === 'bool') for (let i = 0; i < count; i++) if (dst[dstOffset + i] > 1) dst[dstOffset + i] = 1;
      return;
    }
    case 'float16': {
      const t = f16Table();
      const a = aligned(2);
      const h = new Uint16Array(a.buffer, a.byteOffset, count);
      for (let i = 0; i < count; i++) dst[dstOffset + i] = t[h[i]];
      return;
    }
    case 'bfloat16': {
      const a = aligned(2);
      const h = new Uint16Array(a.buffer, a.byteOffset, count);
      const out = new Uint32Array(dst.buffer, dst.byteOffset + dstOffset * 4, count);
      for (let i = 0; i < count; i++) out[i] = h[i] << 16;
      return;
    }
    case 'float64': {
      const a = aligned(8);
      const d = new Float64Array(a.buffer, a.byteOffset, count);
      for (let i = 0; i < count; i++) dst[dstOffset + i] = d[i];
      return;
    }
    case 'int64':
    case 'uint64': {
      const a = aligned(4);
      const w = new Int32Array(a.buffer, a.byteOffset, count * 2);
      for (let i = 0; i < count; i++) {
        const lo = w[2 * i];
        const hi = w[2 * i + 1];
        if (hi !== lo >> 31 || (from === 'uint64' && hi !== 0)) {
          const v =
            from === 'int64' ? (BigInt(hi) << 32n) | BigInt(lo >>> 0) : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
          throw new CheckpointError(
            `tensor '${key}' (${from}) holds ${v} at element ${i}, which does not fit int32; diffguide keeps integer tensors as int32 (filter this key out with the 'filter' option if the net does not need it)`,
          );
        }
        dst[dstOffset + i] = lo;
      }
      return;
    }
    case 'uint32': {
      const a = aligned(4);
      const w = new Uint32Array(a.buffer, a.byteOffset, count);
      for (let i = 0; i < count; i++) {
        if (w[i] > 0x7fffffff)
          throw new CheckpointError(`tensor '${key}' (uint32) holds ${w[i]} at element ${i}, which does not fit int32`);
        dst[dstOffset + i] = w[i];
      }
      return;
    }
    case 'int16': {
      const a = aligned(2);
      const w = new Int16Array(a.buffer, a.byteOffset, count);
      for (let i = 0; i < count; i++) dst[dstOffset + i] = w[i];
      return;
    }
    case 'uint16': {
      const a = aligned(2);
      const w = new Uint16Array(a.buffer, a.byteOffset, count);
      for (let i = 0; i < count; i++) dst[dstOffset + i] = w[i];
      return;
    }
    case 'int8': {
      const w = new Int8Array(src.buffer, src.byteOffset, count);
      for (let i = 0; i < count; i++) dst[dstOffset + i] = w[i];
      return;
    }
  }
}

/** Whether bytes of `from` can be read straight into the host array (no conversion). */
export function isDirect(from: SourceDtype): boolean {
  return from === 'float32' || from === 'int32' || from === 'uint8' || from === 'bool';
}
