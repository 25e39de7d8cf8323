/**
 * A few helpers to write WebAssembly text (SIMD) from TypeScript: kernels whose tiles unroll into
 * straight-line code are generated, not hand-written (winograd-wat.ts, transpose-wat.ts).
 */

export const get = (v: string) => `(local.get $${v})`;
export const set = (v: string, e: string) => `(local.set $${v} ${e})`;
export const add = (a: string, b: string) => `(i32.add ${a} ${b})`;
export const mul = (a: string, b: string) => `(i32.mul ${a} ${b})`;
export const i32 = (k: number) => `(i32.const ${k})`;
export const vadd = (a: string, b: string) => `(f32x4.add ${a} ${b})`;
export const vsub = (a: string, b: string) => `(f32x4.sub ${a} ${b})`;
export const vhalf = (a: string) => `(f32x4.mul ${a} (v128.const f32x4 0.5 0.5 0.5 0.5))`;
export const load = (addr: string) => `(v128.load align=4 ${addr})`;
export const store = (addr: string, v: string) => `(v128.store align=4 ${addr} ${v})`;

/** `for (v = from; v < limit; v += step) body` */
export function loop(v: string, limit: string, body: string[], step = 1, from = i32(0)): string[] {
  return [
    set(v, from),
    `(block $${v}_end (loop $${v}_top`,
    `(br_if $${v}_end (i32.ge_u ${get(v)} ${limit}))`,
    ...body,
    set(v, add(get(v), i32(step))),
    `(br $${v}_top)))`,
  ];
}

export function locals(names: string[], type: string): string {
  return names.map((n) => `(local $${n} ${type})`).join(' ');
}

export const range = (n: number) => Array.from({ length: n }, (_, i) => i);
