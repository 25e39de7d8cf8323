/**
 * C = Aᵀ·B for a long reduction: `gemmTN(a, b, c, t, m, n)` with A [t, m], B [t, n], C [m, n]
 * (row-major, m a multiple of 4, n of 8; C is overwritten). Winograd's weight gradient needs
 * exactly this (W̃[p] = V[p]ᵀ·Ŷ[p], t = tiles): XNNPACK would have to repack a fresh [t, n] right
 * operand per plane, single-threaded, which costs as much as the product. Register blocks of
 * 4 x 8 outputs accumulate over chunks of `CHUNK` rows of A and B (both chunks stay in L1).
 * Part of our SIMD module (simd-module.ts).
 */
import { add, get, i32, locals, loop, mul, set } from './wat.js';

const CHUNK = 32;

function gemmFunc(): string {
  const acc = Array.from({ length: 8 }, (_, k) => `c${k}`); // row r, half h -> c[2r + h]
  const inner = [
    set('b0', `(v128.load align=4 ${get('pb')})`),
    set('b1', `(v128.load offset=16 align=4 ${get('pb')})`),
    ...[0, 1, 2, 3].flatMap((r) => [
      set('s', `(v128.load32_splat ${r ? `offset=${4 * r} ` : ''}align=4 ${get('pa')})`),
      set(acc[2 * r], `(f32x4.add ${get(acc[2 * r])} (f32x4.mul ${get('s')} ${get('b0')}))`),
      set(acc[2 * r + 1], `(f32x4.add ${get(acc[2 * r + 1])} (f32x4.mul ${get('s')} ${get('b1')}))`),
    ]),
    set('pa', add(get('pa'), get('rowa'))),
    set('pb', add(get('pb'), get('rowb'))),
  ];
  const cAt = (r: number, h: number) => add(get('pc'), add(mul(get('rowc'), i32(r)), i32(16 * h)));
  const block = [
    set('pc', add(get('c'), mul(add(mul(get('i'), get('n')), get('j')), i32(4)))),
    ...acc.map((v, k) => set(v, `(v128.load align=4 ${cAt(k >> 1, k & 1)})`)),
    set('pa', add(get('a'), mul(add(mul(get('t0'), get('m')), get('i')), i32(4)))),
    set('pb', add(get('b'), mul(add(mul(get('t0'), get('n')), get('j')), i32(4)))),
    ...loop('tt', get('t1'), inner, 1, get('t0')),
    ...acc.map((v, k) => `(v128.store align=4 ${cAt(k >> 1, k & 1)} ${get(v)})`),
  ];
  return [
    '(func (export "gemmTN") (param $a i32) (param $b i32) (param $c i32) (param $t i32) (param $m i32) (param $n i32)',
    locals(['t0', 't1', 'i', 'j', 'tt', 'pa', 'pb', 'pc', 'rowa', 'rowb', 'rowc'], 'i32'),
    locals([...acc, 'b0', 'b1', 's'], 'v128'),
    set('rowa', mul(get('m'), i32(4))),
    set('rowb', mul(get('n'), i32(4))),
    set('rowc', mul(get('n'), i32(4))),
    `(memory.fill ${get('c')} ${i32(0)} ${mul(mul(get('m'), get('n')), i32(4))})`,
    ...loop(
      't0',
      get('t'),
      [
        set(
          't1',
          `(select ${add(get('t0'), i32(CHUNK))} ${get('t')} (i32.lt_u ${add(get('t0'), i32(CHUNK))} ${get('t')}))`,
        ),
        ...loop('i', get('m'), loop('j', get('n'), block, 8), 4),
      ],
      CHUNK,
    ),
    ')',
  ].join('\n');
}

/** The GEMM function's text. */
export function gemmFuncs(): string[] {
  return [gemmFunc()];
}
