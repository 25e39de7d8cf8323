/**
 * Sums over a block of middle axes: `colSum(src, dst, p, r, c)` turns [p, r, c] into [p, c]
 * (dst[q][j] = Σ_i src[q][i][j]), streaming the rows once and adding 4 columns per instruction
 * (scalar for the last c % 4). Bias and broadcast gradients are this shape (sums over N, H, W of
 * [N, H, W, C]); tfjs-backend-wasm's Sum transposes the reduced axes innermost first.
 * Part of our SIMD module (simd-module.ts).
 */
import { add, get, i32, locals, loop, mul, set } from './wat.js';

function colSumFunc(): string {
  const vecBody = [
    set('d', add(get('dq'), get('jj'))),
    `(v128.store align=4 ${get('d')} (f32x4.add (v128.load align=4 ${get('d')}) (v128.load align=4 ${add(get('s'), get('jj'))})))`,
  ];
  const tailBody = [
    set('d', add(get('dq'), get('jj'))),
    `(f32.store align=4 ${get('d')} (f32.add (f32.load align=4 ${get('d')}) (f32.load align=4 ${add(get('s'), get('jj'))})))`,
  ];
  const row = [
    set('s', add(get('sq'), mul(get('i'), get('rowb')))),
    ...loop('jj', get('vecb'), vecBody, 16),
    ...loop('jj', get('rowb'), tailBody, 4, get('vecb')),
  ];
  return [
    '(func (export "colSum") (param $src i32) (param $dst i32) (param $p i32) (param $r i32) (param $c i32)',
    locals(['q', 'i', 'jj', 'rowb', 'vecb', 'sq', 'dq', 's', 'd'], 'i32'),
    set('rowb', mul(get('c'), i32(4))),
    set('vecb', mul(`(i32.and ${get('c')} ${i32(-4)})`, i32(4))),
    `(memory.fill ${get('dst')} ${i32(0)} ${mul(mul(get('p'), get('c')), i32(4))})`,
    ...loop('q', get('p'), [
      set('sq', add(get('src'), mul(mul(get('q'), get('r')), get('rowb')))),
      set('dq', add(get('dst'), mul(get('q'), get('rowb')))),
      ...loop('i', get('r'), row),
    ]),
    ')',
  ].join('\n');
}

/** The reduction functions' text. */
export function reduceFuncs(): string[] {
  return [colSumFunc()];
}
