/**
 * x · sigmoid(α x) and its gradient, elementwise (WebAssembly text, SIMD), part of our SIMD module
 * (simd-module.ts): SiLU is α = 1, CLIP's QuickGELU α = 1.702. On n floats (n % 4 == 0):
 * - `swish(src, dst, n, alpha)`: y = x · s, s = sigmoid(α x);
 * - `swishGrad(x, dy, dx, n, alpha)`: dx = dy · (s + α · y · (1 − s)), s and y recomputed from x.
 * One pass each instead of 2-3 tfjs kernels forward and 4 for the gradient (lib/ops/nn.ts `silu`,
 * `quickGelu`). The sigmoid is groupnorm-wat.ts's (relative error ~1e-7).
 */
import { add, get, i32, locals, loop, mul, set } from './wat.js';
import { sigmoidOf } from './groupnorm-wat.js';

const fmul = (a: string, b: string) => `(f32x4.mul ${a} ${b})`;
const fadd = (a: string, b: string) => `(f32x4.add ${a} ${b})`;
const at = (name: string) => add(get(name), mul(get('i'), i32(4)));

function swishFunc(): string {
  return [
    '(func (export "swish") (param $src i32) (param $dst i32) (param $n i32) (param $alpha f32)',
    locals(['i'], 'i32'),
    locals(['x', 'ax', 'a4', 'z', 'k', 'r', 'p'], 'v128'),
    set('a4', `(f32x4.splat ${get('alpha')})`),
    ...loop(
      'i',
      get('n'),
      [
        set('x', `(v128.load ${at('src')})`),
        set('ax', fmul(get('x'), get('a4'))),
        ...sigmoidOf('ax'),
        `(v128.store ${at('dst')} ${fmul(get('x'), get('p'))})`,
      ],
      4,
    ),
    ')',
  ].join('\n');
}

function swishGradFunc(): string {
  return [
    '(func (export "swishGrad") (param $x i32) (param $dy i32) (param $dx i32) (param $n i32) (param $alpha f32)',
    locals(['i'], 'i32'),
    locals(['xv', 'ax', 'a4', 'z', 'k', 'r', 'p'], 'v128'),
    set('a4', `(f32x4.splat ${get('alpha')})`),
    ...loop(
      'i',
      get('n'),
      [
        set('xv', `(v128.load ${at('x')})`),
        set('ax', fmul(get('xv'), get('a4'))),
        ...sigmoidOf('ax'),
        // s + α x s (1 − s) = s · (1 + α x (1 − s))
        `(v128.store ${at('dx')} ${fmul(
          `(v128.load ${at('dy')})`,
          fmul(
            get('p'),
            fadd('(v128.const f32x4 1 1 1 1)', fmul(get('ax'), `(f32x4.sub (v128.const f32x4 1 1 1 1) ${get('p')})`)),
          ),
        )})`,
      ],
      4,
    ),
    ')',
  ].join('\n');
}

/** The swish functions' text (forward; gradient). */
export function swishFuncs(): string[] {
  return [swishFunc(), swishGradFunc()];
}
