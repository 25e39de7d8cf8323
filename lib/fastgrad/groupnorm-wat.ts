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

/** sigmoid(y) into local p for the v128 local named y (uses locals z, k, r, p); shared with swish-wat.ts. */
export function sigmoidOf(y: string): string[] {
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

/**
 * Per group g (channels g·cg .. g·cg + cg - 1): sum the per-channel values at `at` into local acc,
 * set acc to `stat` (an expression of acc) and write it to every channel of the group.
 */
function perGroup(at: (j: string) => string, stat: string): string[] {
  return loop('g', get('groups'), [
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
}

/** acc / (l · cg): the group mean of a sum over a sample's l rows and the group's cg channels. */
const groupMean = `(f32.div ${get('acc')} (f32.convert_i32_u ${mul(get('l'), get('cg'))}))`;

function groupNormFunc(): string {
  const F = (name: string, idx: string) => add(get(name), mul(idx, i32(4))); // float address
  const S = (j: string) => F('tmp', j); // channel sums, then per-channel mean
  const Q = (j: string) => F('tmp', add(j, get('c'))); // squared deviations, then a
  const B = (j: string) => F('tmp', add(j, mul(get('c'), i32(2)))); // b
  const row = (body: string[]) => loop('i', get('l'), [set('px', add(get('xb'), mul(get('i'), get('rowb')))), ...body]);
  const vecCh = (body: string[]) => loop('j', get('c'), body, 4);
  const perSample = [
    set('xb', add(get('src'), mul(mul(get('b'), get('l')), get('rowb')))),
    set('yb', add(get('dst'), mul(mul(get('b'), get('l')), get('rowb')))),
    `(memory.fill ${get('tmp')} ${i32(0)} ${mul(get('rowb'), i32(2))})`,
    // Pass 1: channel sums -> group means (per channel).
    ...row(
      vecCh([`(v128.store ${S(get('j'))} ${fadd(`(v128.load ${S(get('j'))})`, `(v128.load ${F('px', get('j'))})`)})`]),
    ),
    ...perGroup(S, groupMean),
    // Pass 2: channel sums of squared deviations -> group 1/sqrt(var + eps).
    ...row(
      vecCh([
        set('d', `(f32x4.sub (v128.load ${F('px', get('j'))}) (v128.load ${S(get('j'))}))`),
        `(v128.store ${Q(get('j'))} ${fadd(`(v128.load ${Q(get('j'))})`, fmul(get('d'), get('d')))})`,
      ]),
    ),
    ...perGroup(Q, `(f32.div (f32.const 1) (f32.sqrt (f32.add ${groupMean} ${get('eps')})))`),
    // Under a tape: keep the per-channel group mean and 1/std ([n, 2, c]) for the gradient.
    `(if ${get('stats')} (then (memory.copy ${add(get('stats'), mul(get('b'), mul(get('rowb'), i32(2))))} ${get('tmp')} ${mul(get('rowb'), i32(2))})))`,
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
      ' (param $n i32) (param $l i32) (param $c i32) (param $groups i32) (param $eps f32) (param $silu i32) (param $stats i32)',
    locals(['b', 'i', 'j', 'g', 'cg', 'rowb', 'xb', 'yb', 'px', 'py'], 'i32'),
    locals(['acc', 's1', 'sh'], 'f32'),
    locals(['d', 'y', 'z', 'k', 'r', 'p'], 'v128'),
    set('cg', `(i32.div_u ${get('c')} ${get('groups')})`),
    set('rowb', mul(get('c'), i32(4))),
    ...loop('b', get('n'), perSample),
    ')',
  ].join('\n');
}

/**
 * The gradient of `groupNorm` (with its optional scale-shift and SiLU) as one function:
 * `groupNormGrad(x, dy, stats, gamma, beta, scale1, shift, dx, dgamma, dbeta, dscale1, dshift, tmp,
 * n, l, c, groups, silu)`, with `stats` [n, 2, c] the forward's per-channel group mean and 1/std,
 * tmp 2·c floats, scale1/shift (and dscale1/dshift) [n, c] or 0. Recomputes x̂ = (x − μ)·r,
 * u = x̂·γ + β, v = u·s1 + sh from the stats; then dv = dy · σ(v)(1 + v(1 − σ(v))) (SiLU),
 * du = dv · s1, dscale1 = Σ_L dv·u, dshift = Σ_L dv, dγ = Σ du·x̂, dβ = Σ du, and
 *   dx = r · (du·γ − mean_group(du·γ) − x̂ · mean_group(du·γ·x̂))
 * in two passes per sample (du goes through dx). Part of our SIMD module (simd-module.ts).
 */
function groupNormGradFunc(): string {
  const F = (name: string, idx: string) => add(get(name), mul(idx, i32(4))); // float address
  const V = (name: string) => `(v128.load ${F(name, get('j'))})`;
  const acc4 = (name: string, e: string) => `(v128.store ${F(name, get('j'))} ${fadd(V(name), e)})`;
  const D1 = (j: string) => F('tmp', j); // Σ du, then mean_group(du·γ)
  const D2 = (j: string) => F('tmp', add(j, get('c'))); // Σ du·x̂, then mean_group(du·γ·x̂)
  const rows = (body: string[]) =>
    loop('i', get('l'), [
      set('off', mul(get('i'), get('rowb'))),
      set('px', add(get('xb'), get('off'))),
      set('pd', add(get('db'), get('off'))),
      ...body,
    ]);
  const vecCh = (body: string[]) => loop('j', get('c'), body, 4);
  const xhat = set('xh', fmul(`(f32x4.sub ${V('px')} ${V('mu')})`, V('rs')));
  const perSample = [
    set('xb', add(get('x'), mul(mul(get('b'), get('l')), get('rowb')))),
    set('gb', add(get('dy'), mul(mul(get('b'), get('l')), get('rowb')))),
    set('db', add(get('dx'), mul(mul(get('b'), get('l')), get('rowb')))),
    set('mu', add(get('stats'), mul(get('b'), mul(get('rowb'), i32(2))))),
    set('rs', add(get('mu'), get('rowb'))),
    set('s1p', add(get('scale1'), mul(get('b'), get('rowb')))),
    set('shp', add(get('shift'), mul(get('b'), get('rowb')))),
    set('ds1p', add(get('dscale1'), mul(get('b'), get('rowb')))),
    set('dshp', add(get('dshift'), mul(get('b'), get('rowb')))),
    `(memory.fill ${get('tmp')} ${i32(0)} ${mul(get('rowb'), i32(2))})`,
    `(if ${get('scale1')} (then (memory.fill ${get('ds1p')} ${i32(0)} ${get('rowb')}) (memory.fill ${get('dshp')} ${i32(0)} ${get('rowb')})))`,
    // Pass 1: du (into dx) and its per-channel sums.
    ...rows([
      set('pg', add(get('gb'), get('off'))),
      ...vecCh([
        xhat,
        set('u', fadd(fmul(get('xh'), V('gamma')), V('beta'))),
        `(if ${get('scale1')} (then ${set('v', fadd(fmul(get('u'), V('s1p')), V('shp')))}) (else ${set('v', get('u'))}))`,
        set('dv', V('pg')),
        `(if ${get('silu')} (then ${[
          ...sigmoidOf('v'),
          set('dv', fmul(fmul(get('dv'), get('p')), fadd(f4(1), fmul(get('v'), `(f32x4.sub ${f4(1)} ${get('p')})`)))),
        ].join(' ')}))`,
        `(if ${get('scale1')} (then ${[acc4('ds1p', fmul(get('dv'), get('u'))), acc4('dshp', get('dv')), set('dv', fmul(get('dv'), V('s1p')))].join(' ')}))`,
        `(v128.store ${F('pd', get('j'))} ${get('dv')})`,
        `(v128.store ${D1(get('j'))} ${fadd(`(v128.load ${D1(get('j'))})`, get('dv'))})`,
        `(v128.store ${D2(get('j'))} ${fadd(`(v128.load ${D2(get('j'))})`, fmul(get('dv'), get('xh')))})`,
      ]),
    ]),
    // Per channel: dγ, dβ; then the group means of du·γ and du·γ·x̂.
    ...loop('j', get('c'), [
      set('acc', `(f32.load ${F('gamma', get('j'))})`),
      `(f32.store ${F('dgamma', get('j'))} (f32.add (f32.load ${F('dgamma', get('j'))}) (f32.load ${D2(get('j'))})))`,
      `(f32.store ${F('dbeta', get('j'))} (f32.add (f32.load ${F('dbeta', get('j'))}) (f32.load ${D1(get('j'))})))`,
      `(f32.store ${D1(get('j'))} (f32.mul (f32.load ${D1(get('j'))}) ${get('acc')}))`,
      `(f32.store ${D2(get('j'))} (f32.mul (f32.load ${D2(get('j'))}) ${get('acc')}))`,
    ]),
    ...perGroup(D1, groupMean),
    ...perGroup(D2, groupMean),
    // Pass 2: dx = r · (du·γ − m1 − x̂·m2).
    ...rows(
      vecCh([
        xhat,
        `(v128.store ${F('pd', get('j'))} ${fmul(
          V('rs'),
          `(f32x4.sub (f32x4.sub ${fmul(V('pd'), V('gamma'))} (v128.load ${D1(get('j'))})) ${fmul(get('xh'), `(v128.load ${D2(get('j'))})`)})`,
        )})`,
      ]),
    ),
  ];
  return [
    '(func (export "groupNormGrad") (param $x i32) (param $dy i32) (param $stats i32) (param $gamma i32) (param $beta i32) (param $scale1 i32) (param $shift i32)' +
      ' (param $dx i32) (param $dgamma i32) (param $dbeta i32) (param $dscale1 i32) (param $dshift i32) (param $tmp i32)' +
      ' (param $n i32) (param $l i32) (param $c i32) (param $groups i32) (param $silu i32)',
    locals(
      [
        'b',
        'i',
        'j',
        'g',
        'cg',
        'rowb',
        'off',
        'xb',
        'gb',
        'db',
        'px',
        'pg',
        'pd',
        'mu',
        'rs',
        's1p',
        'shp',
        'ds1p',
        'dshp',
      ],
      'i32',
    ),
    locals(['acc'], 'f32'),
    locals(['xh', 'u', 'v', 'dv', 'z', 'k', 'r', 'p'], 'v128'),
    set('cg', `(i32.div_u ${get('c')} ${get('groups')})`),
    set('rowb', mul(get('c'), i32(4))),
    `(memory.fill ${get('dgamma')} ${i32(0)} ${get('rowb')})`,
    `(memory.fill ${get('dbeta')} ${i32(0)} ${get('rowb')})`,
    ...loop('b', get('n'), perSample),
    ')',
  ].join('\n');
}

/** The GroupNorm functions' text (forward; gradient). */
export function groupNormFuncs(): string[] {
  return [groupNormFunc(), groupNormGradFunc()];
}
