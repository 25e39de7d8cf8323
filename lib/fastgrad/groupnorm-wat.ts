/**
 * Forward GroupNorm with the affine map, an optional per-sample scale-shift and an optional SiLU,
 * as one function (WebAssembly text, SIMD): `groupNorm(src, dst, gamma, beta, scale1, shift, tmp,
 * n, l, c, groups, eps, silu)` on x [n, l, c] (c % 4 == 0) -> y [n, l, c] with
 *   y = norm(x) · γ · s1 + β · s1 + shift, then y · sigmoid(y) when silu != 0,
 * where scale1/shift are [n, c] (pointer 0: none) and tmp holds 4·c floats. Per sample: channel sums,
 * then channel sums of squared deviations (two passes, as torch), group statistics in scalar code,
 * then one pass of y = x · a + b per (sample, channel). The sigmoid uses exp by range reduction
 * (k = round(z / ln 2), 2^k from the exponent bits) and a degree-6 polynomial: relative error
 * ~1e-7. Replaces ~17 tfjs kernels per norm on the forward-only path (lib/ops/nn.ts `groupNorm`).
 * Part of our SIMD module (simd-module.ts).
 */
import { add, get, i32, locals, loop, mul, set } from './wat.js';

const f4 = (v: number) => `(v128.const f32x4 ${v} ${v} ${v} ${v})`;
const fmul = (a: string, b: string) => `(f32x4.mul ${a} ${b})`;
const fadd = (a: string, b: string) => `(f32x4.add ${a} ${b})`;

/** sigmoid(y) for a v128 expression y (a local's name is passed; uses locals z, k, p). */
function sigmoidOf(y: string): string[] {
  // exp(z), z = -y clamped to the float range: z = k ln2 + r, |r| <= ln2 / 2; exp(r) by Horner.
  const poly = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];
  let horner = f4(poly[0]);
  for (const c of poly.slice(1)) horner = fadd(fmul(horner, get('r')), f4(c));
  return [
    set('z', `(f32x4.max (f32x4.min (f32x4.neg ${get(y)}) ${f4(88.3)}) ${f4(-87.3)})`),
    set('k', `(f32x4.nearest ${fmul(get('z'), f4(1.4426950408889634))})`),
    set(
      'r',
      `(f32x4.sub (f32x4.sub ${get('z')} ${fmul(get('k'), f4(0.693145751953125))}) ${fmul(get('k'), f4(1.428606765330187e-6))})`,
    ),
    // 2^k: (k + 127) << 23 as float bits.
    set(
      'p',
      fmul(
        horner,
        `(i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s ${get('k')}) (v128.const i32x4 127 127 127 127)) (i32.const 23))`,
      ),
    ),
    set('p', `(f32x4.div ${f4(1)} ${fadd(f4(1), get('p'))})`),
  ];
}

function groupNormFunc(): string {
  const F = (name: string, idx: string) => add(get(name), mul(idx, i32(4))); // float address
  const S = (j: string) => F('tmp', j); // channel sums, then per-channel mean
  const Q = (j: string) => F('tmp', add(j, get('c'))); // squared deviations, then a
  const B = (j: string) => F('tmp', add(j, mul(get('c'), i32(2)))); // b
  const row = (body: string[]) => loop('i', get('l'), [set('px', add(get('xb'), mul(get('i'), get('rowb')))), ...body]);
  const vecCh = (body: string[]) => loop('j', get('c'), body, 4);
  // Per group g (channels g·cg .. g·cg + cg - 1): reduce the per-channel values at `at` and write
  // the group statistic to every channel of the group.
  const perGroup = (at: (j: string) => string, stat: string) =>
    loop('g', get('groups'), [
      set('acc', '(f32.const 0)'),
      ...loop(
        'j',
        add(mul(get('g'), get('cg')), get('cg')),
        [set('acc', `(f32.add ${get('acc')} (f32.load ${at(get('j'))}))`)],
        1,
        mul(get('g'), get('cg')),
      ),
      set('acc', stat),
      ...loop(
        'j',
        add(mul(get('g'), get('cg')), get('cg')),
        [`(f32.store ${at(get('j'))} ${get('acc')})`],
        1,
        mul(get('g'), get('cg')),
      ),
    ]);
  const cnt = `(f32.convert_i32_u ${mul(get('l'), get('cg'))})`;
  const perSample = [
    set('xb', add(get('src'), mul(mul(get('b'), get('l')), get('rowb')))),
    set('yb', add(get('dst'), mul(mul(get('b'), get('l')), get('rowb')))),
    `(memory.fill ${get('tmp')} ${i32(0)} ${mul(get('rowb'), i32(2))})`,
    // Pass 1: channel sums -> group means (per channel).
    ...row(
      vecCh([`(v128.store ${S(get('j'))} ${fadd(`(v128.load ${S(get('j'))})`, `(v128.load ${F('px', get('j'))})`)})`]),
    ),
    ...perGroup(S, `(f32.div ${get('acc')} ${cnt})`),
    // Pass 2: channel sums of squared deviations -> group 1/sqrt(var + eps).
    ...row(
      vecCh([
        set('d', `(f32x4.sub (v128.load ${F('px', get('j'))}) (v128.load ${S(get('j'))}))`),
        `(v128.store ${Q(get('j'))} ${fadd(`(v128.load ${Q(get('j'))})`, fmul(get('d'), get('d')))})`,
      ]),
    ),
    ...perGroup(Q, `(f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div ${get('acc')} ${cnt}) ${get('eps')})))`),
    // Per channel: a = rstd · γ · s1, b = β · s1 + shift − mean · a.
    ...loop('j', get('c'), [
      set(
        's1',
        `(if (result f32) ${get('scale1')} (then (f32.load ${F('scale1', add(mul(get('b'), get('c')), get('j')))})) (else (f32.const 1)))`,
      ),
      set(
        'sh',
        `(if (result f32) ${get('shift')} (then (f32.load ${F('shift', add(mul(get('b'), get('c')), get('j')))})) (else (f32.const 0)))`,
      ),
      set('acc', `(f32.mul (f32.mul (f32.load ${Q(get('j'))}) (f32.load ${F('gamma', get('j'))})) ${get('s1')})`),
      `(f32.store ${B(get('j'))} (f32.sub (f32.add (f32.mul (f32.load ${F('beta', get('j'))}) ${get('s1')}) ${get('sh')}) (f32.mul (f32.load ${S(get('j'))}) ${get('acc')})))`,
      `(f32.store ${Q(get('j'))} ${get('acc')})`,
    ]),
    // Pass 3: y = x · a + b (then SiLU).
    ...row([
      set('py', add(get('yb'), mul(get('i'), get('rowb')))),
      ...vecCh([
        set(
          'y',
          fadd(fmul(`(v128.load ${F('px', get('j'))})`, `(v128.load ${Q(get('j'))})`), `(v128.load ${B(get('j'))})`),
        ),
        `(if ${get('silu')} (then ${[...sigmoidOf('y'), set('y', fmul(get('y'), get('p')))].join(' ')}))`,
        `(v128.store ${F('py', get('j'))} ${get('y')})`,
      ]),
    ]),
  ];
  return [
    '(func (export "groupNorm") (param $src i32) (param $dst i32) (param $gamma i32) (param $beta i32) (param $scale1 i32) (param $shift i32) (param $tmp i32)' +
      ' (param $n i32) (param $l i32) (param $c i32) (param $groups i32) (param $eps f32) (param $silu i32)',
    locals(['b', 'i', 'j', 'g', 'cg', 'rowb', 'xb', 'yb', 'px', 'py'], 'i32'),
    locals(['acc', 's1', 'sh'], 'f32'),
    locals(['d', 'y', 'z', 'k', 'r', 'p'], 'v128'),
    set('cg', `(i32.div_u ${get('c')} ${get('groups')})`),
    set('rowb', mul(get('c'), i32(4))),
    ...loop('b', get('n'), perSample),
    ')',
  ].join('\n');
}

/** The GroupNorm function's text. */
export function groupNormFuncs(): string[] {
  return [groupNormFunc()];
}
