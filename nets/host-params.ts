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
import { f16ToF32, f32ToF16 } from '../lib/io/f16.js';

export interface HostParam {
  /** Shape in our layout. */
  shape: number[];
  /** float32 elements, or IEEE binary16 bits (`dtype: 'float16'`). */
  data: Float32Array | Uint16Array;
  dtype: 'float32' | 'float16';
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
