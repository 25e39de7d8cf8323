/**
 * IEEE binary16 <-> float32, exact and browser-safe (no imports): checkpoint readers/writers
 * (`dtypes.ts`, `safetensors.ts`) and the nets' host-memory weights (`nets/host-params.ts`) share it.
 */

let F16: Float32Array | null = null;
/** fp16 bit pattern -> float32 value, for all 65536 patterns (256 KiB, built on first use). */
export function f16Table(): Float32Array {
  if (F16) return F16;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (F16 = t);
}

/** fp16 bits -> float32 (exact). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const t = f16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

const f32buf = new Float32Array(1);
const i32buf = new Int32Array(f32buf.buffer);

/** float32 bit pattern (as int32 or uint32) -> fp16 bits, round to nearest even (overflow -> inf, NaN kept). */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // a carry rounds up into the exponent (or to inf)
  return sign | half;
}

/** float32 -> fp16 bits, round to nearest even (overflow -> inf, NaN kept). */
export function f32ToF16Bits(v: number): number {
  f32buf[0] = v;
  return f32BitsToF16Bits(i32buf[0]);
}

/** float32 array -> fp16 bits, round to nearest even (exact for values that came from fp16). */
export function f32ToF16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const bits = new Int32Array(src.buffer, src.byteOffset, src.length); // signed: stays a small integer in V8
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}
