/**
 * A 2-D transpose of 4-byte elements, batched: `transpose2d(src, dst, p, a, b)` turns
 * [p, a, b] into [p, b, a]. 4x4 blocks go through registers (4 row loads, 8 lane shuffles,
 * 4 column stores); the edges (a or b not a multiple of 4) are scalar. Part of our SIMD module
 * (simd-module.ts); tfjs-backend-wasm's own Transpose walks the output element by element.
 */
import { add, get, i32, loop, locals, mul, set } from './wat.js';

/** i8x16.shuffle of two f32x4 by float lanes (0-3: first operand, 4-7: second). */
const shuffle = (a: string, b: string, lanes: number[]) =>
  `(i8x16.shuffle ${lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]).join(' ')} ${a} ${b})`;

function transposeFunc(): string {
  const r = ['r0', 'r1', 'r2', 'r3'];
  const t = ['u0', 'u1', 'u2', 'u3'];
  const block = [
    // Rows i..i+3, columns j..j+3 of this batch's [a, b] matrix.
    set('sp', add(get('s0'), mul(add(mul(get('i'), get('b')), get('j')), i32(4)))),
    ...r.map((v, k) => set(v, `(v128.load align=4 ${k === 0 ? get('sp') : add(get('sp'), mul(get('rowb'), i32(k)))})`)),
    set(t[0], shuffle(get('r0'), get('r1'), [0, 4, 1, 5])),
    set(t[1], shuffle(get('r0'), get('r1'), [2, 6, 3, 7])),
    set(t[2], shuffle(get('r2'), get('r3'), [0, 4, 1, 5])),
    set(t[3], shuffle(get('r2'), get('r3'), [2, 6, 3, 7])),
    set('dp', add(get('d0'), mul(add(mul(get('j'), get('a')), get('i')), i32(4)))),
    `(v128.store align=4 ${get('dp')} ${shuffle(get('u0'), get('u2'), [0, 1, 4, 5])})`,
    `(v128.store align=4 ${add(get('dp'), get('rowa'))} ${shuffle(get('u0'), get('u2'), [2, 3, 6, 7])})`,
    `(v128.store align=4 ${add(get('dp'), mul(get('rowa'), i32(2)))} ${shuffle(get('u1'), get('u3'), [0, 1, 4, 5])})`,
    `(v128.store align=4 ${add(get('dp'), mul(get('rowa'), i32(3)))} ${shuffle(get('u1'), get('u3'), [2, 3, 6, 7])})`,
  ];
  // dst[j, i] = src[i, j] for one element.
  const one = `(i32.store align=4 ${add(get('d0'), mul(add(mul(get('j'), get('a')), get('i')), i32(4)))} (i32.load align=4 ${add(get('s0'), mul(add(mul(get('i'), get('b')), get('j')), i32(4)))}))`;
  const batch = [
    set('s0', add(get('src'), mul(mul(get('q'), get('size')), i32(4)))),
    set('d0', add(get('dst'), mul(mul(get('q'), get('size')), i32(4)))),
    ...loop(
      'i',
      get('a4'),
      [
        ...loop('j', get('b4'), block, 4),
        ...loop(
          'j',
          get('b'),
          loop('i2', i32(4), [
            // Columns past b4 of rows i..i+3 (scalar).
            set('i', add(get('i'), get('i2'))),
            one,
            set('i', `(i32.sub ${get('i')} ${get('i2')})`),
          ]),
          1,
          get('b4'),
        ),
      ],
      4,
    ),
    ...loop('i', get('a'), loop('j', get('b'), [one]), 1, get('a4')),
  ];
  return [
    '(func (export "transpose2d") (param $src i32) (param $dst i32) (param $p i32) (param $a i32) (param $b i32)',
    locals(['q', 'i', 'j', 'i2', 'a4', 'b4', 'size', 'rowa', 'rowb', 's0', 'd0', 'sp', 'dp'], 'i32'),
    locals([...r, ...t], 'v128'),
    set('a4', `(i32.and ${get('a')} ${i32(-4)})`),
    set('b4', `(i32.and ${get('b')} ${i32(-4)})`),
    set('size', mul(get('a'), get('b'))),
    set('rowa', mul(get('a'), i32(4))),
    set('rowb', mul(get('b'), i32(4))),
    ...loop('q', get('p'), batch),
    ')',
  ].join('\n');
}

/** The transpose function's text. */
export function transposeFuncs(): string[] {
  return [transposeFunc()];
}
