/**
 * Weights kept in host (JS) memory instead of on the backend, uploaded just before the ops that use
 * them and freed right after: the streamed mode a net takes when its resident weights would not fit
 * the wasm backend's 4 GB heap (the 256 px guided-diffusion UNet's 2.06 GiB of fp32 weights next to
 * its activations and caches). The heap then holds one block's weights at a time.
 *
 * Each entry is stored in our layout (conv HWIO, linears [in, out]), as float32, or as float16
 * bits (a file's fp16 weights stay fp16 in JS memory: half the bytes) widened to float32 per upload
 * (exact). ArrayBuffers live outside the wasm heap and outside V8's heap limit.
 */
import * as tf from '@tensorflow/tfjs';

export interface HostParam {
  /** Shape in our layout. */
  shape: number[];
  /** float32 elements, or IEEE binary16 bits (`dtype: 'float16'`). */
  data: Float32Array | Uint16Array;
  dtype: 'float32' | 'float16';
}

// binary16 -> float32 for every bit pattern (256 KiB, built on first use).
let F16_TABLE: Float32Array | null = null;
function f16Table(): Float32Array {
  if (F16_TABLE) return F16_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (F16_TABLE = t);
}

/** float16 bits -> float32 (exact). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const t = f16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> float16 bits, round to nearest even (exact for values that came from fp16). */
export function f32ToF16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    f32[0] = x[i];
    const b = u32[0];
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    let mant = b & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    let e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      // subnormal half (or zero)
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let h = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && h & 1)) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // may carry into the exponent: still correct
    e = h >>> 10;
    out[i] = sign | (e >= 31 ? 0x7c00 : h);
  }
  return out;
}

/** Weights in host memory by reference key; `upload` makes a backend tensor of one (the caller disposes it). */
export class HostParams {
  private readonly map = new Map<string, HostParam>();

  set(name: string, p: HostParam): void {
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (p.data.length !== n)
      throw new Error(`HostParams: ${name} has ${p.data.length} elements for shape [${p.shape.join(', ')}] (${n})`);
    this.map.set(name, p);
  }

  /**
   * Store a backend tensor's values (read back; the tensor is not disposed). `keepF16`: store as
   * float16 bits (for weights that came from an fp16 file, so the values are exactly representable).
   */
  setFromTensor(name: string, t: tf.Tensor, keepF16 = false): void {
    const data = new Float32Array(t.dataSync() as Float32Array);
    this.set(
      name,
      keepF16
        ? { shape: t.shape.slice(), data: f32ToF16(data), dtype: 'float16' }
        : { shape: t.shape.slice(), data, dtype: 'float32' },
    );
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  get(name: string): HostParam | undefined {
    return this.map.get(name);
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  get size(): number {
    return this.map.size;
  }

  /** Elements over all entries. */
  numel(): number {
    let n = 0;
    for (const p of this.map.values()) n += p.data.length;
    return n;
  }

  /** Host bytes held (2 per fp16 element, 4 per fp32). */
  hostBytes(): number {
    let n = 0;
    for (const p of this.map.values()) n += p.data.byteLength;
    return n;
  }

  /** A float32 backend tensor of `name` (fp16 widened); made in the current tf.tidy scope. */
  upload(name: string): tf.Tensor {
    const p = this.map.get(name);
    if (!p) throw new Error(`HostParams: no weight ${name}`);
    const data = p.dtype === 'float16' ? f16ToF32(p.data as Uint16Array) : (p.data as Float32Array);
    return tf.tensor(data, p.shape, 'float32');
  }

  clear(): void {
    this.map.clear();
  }
}
