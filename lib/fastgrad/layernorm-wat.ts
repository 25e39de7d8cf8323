/**
 * LayerNorm over the innermost axis and its gradient (WebAssembly text, SIMD), part of our SIMD
 * module (simd-module.ts). On x [r, c] (c % 4 == 0):
 * - `layerNorm(src, dst, gamma, beta, stats, r, c, eps)`: y = (x − μ) · rstd · γ + β per row, two
 *   passes for the statistics (mean, then centred squares, as torch); `stats` [r, 2] receives μ and
 *   rstd (pointer 0: not kept).
 * - `layerNormGrad(x, dy, stats, gamma, dx, dgamma, dbeta, r, c)`: with x̂ = (x − μ) · rstd and
 *   ĝ = dy · γ, dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) per row, dγ = Σ dy · x̂, dβ = Σ dy.
 * Replace ~6 (forward) and ~12 (gradient) tfjs kernels per norm (lib/ops/nn.ts `layerNorm`).
 */
import { add, get, i32, locals, loop, mul, set } from './wat.js';

const fmul = (a: string, b: string) => `(f32x4.mul ${a} ${b})`;
const fadd = (a: string, b: string) => `(f32x4.add ${a} ${b})`;
const fsub = (a: string, b: string) => `(f32x4.sub ${a} ${b})`;
const splat = (e: string) => `(f32x4.splat ${e})`;
/** Sum of a v128 local's four lanes. */
const hsum = (v: string) =>
  `(f32.add (f32.add (f32x4.extract_lane 0 ${get(v)}) (f32x4.extract_lane 1 ${get(v)})) (f32.add (f32x4.extract_lane 2 ${get(v)}) (f32x4.extract_lane 3 ${get(v)})))`;
const F = (name: string, idx: string) => add(get(name), mul(idx, i32(4))); // float address
const V = (name: string) => `(v128.load ${F(name, get('j'))})`;
const vecCh = (body: string[]) => loop('j', get('c'), body, 4);

function layerNormFunc(): string {
  const perRow = [
    set('px', add(get('src'), mul(get('i'), get('rowb')))),
    set('py', add(get('dst'), mul(get('i'), get('rowb')))),
    set('acc', '(v128.const f32x4 0 0 0 0)'),
    ...vecCh([set('acc', fadd(get('acc'), V('px')))]),
    set('mu', `(f32.div ${hsum('acc')} ${get('cf')})`),
    set('m4', splat(get('mu'))),
    set('acc', '(v128.const f32x4 0 0 0 0)'),
    ...vecCh([set('d', fsub(V('px'), get('m4'))), set('acc', fadd(get('acc'), fmul(get('d'), get('d'))))]),
    set('rs', `(f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div ${hsum('acc')} ${get('cf')}) ${get('eps')})))`),
    set('r4', splat(get('rs'))),
    `(if ${get('stats')} (then (f32.store ${F('stats', mul(get('i'), i32(2)))} ${get('mu')}) (f32.store ${F('stats', add(mul(get('i'), i32(2)), i32(1)))} ${get('rs')})))`,
    ...vecCh([
      `(v128.store ${F('py', get('j'))} ${fadd(fmul(fmul(fsub(V('px'), get('m4')), get('r4')), V('gamma')), V('beta'))})`,
    ]),
  ];
  return [
    '(func (export "layerNorm") (param $src i32) (param $dst i32) (param $gamma i32) (param $beta i32) (param $stats i32)' +
      ' (param $r i32) (param $c i32) (param $eps f32)',
    locals(['i', 'j', 'rowb', 'px', 'py'], 'i32'),
    locals(['mu', 'rs', 'cf'], 'f32'),
    locals(['acc', 'd', 'm4', 'r4'], 'v128'),
    set('rowb', mul(get('c'), i32(4))),
    set('cf', `(f32.convert_i32_u ${get('c')})`),
    ...loop('i', get('r'), perRow),
    ')',
  ].join('\n');
}

function layerNormGradFunc(): string {
  const xhat = set('xh', fmul(fsub(V('px'), get('m4')), get('r4')));
  const perRow = [
    set('px', add(get('x'), mul(get('i'), get('rowb')))),
    set('pg', add(get('dy'), mul(get('i'), get('rowb')))),
    set('pd', add(get('dx'), mul(get('i'), get('rowb')))),
    set('m4', splat(`(f32.load ${F('stats', mul(get('i'), i32(2)))})`)),
    set('rs', `(f32.load ${F('stats', add(mul(get('i'), i32(2)), i32(1)))})`),
    set('r4', splat(get('rs'))),
    set('a1', '(v128.const f32x4 0 0 0 0)'),
    set('a2', '(v128.const f32x4 0 0 0 0)'),
    // Pass 1: ĝ sums, dγ and dβ.
    ...vecCh([
      xhat,
      set('dv', V('pg')),
      set('gh', fmul(get('dv'), V('gamma'))),
      set('a1', fadd(get('a1'), get('gh'))),
      set('a2', fadd(get('a2'), fmul(get('gh'), get('xh')))),
      `(v128.store ${F('dgamma', get('j'))} ${fadd(V('dgamma'), fmul(get('dv'), get('xh')))})`,
      `(v128.store ${F('dbeta', get('j'))} ${fadd(V('dbeta'), get('dv'))})`,
    ]),
    set('a1', splat(`(f32.div ${hsum('a1')} ${get('cf')})`)),
    set('a2', splat(`(f32.div ${hsum('a2')} ${get('cf')})`)),
    // Pass 2: dx.
    ...vecCh([
      xhat,
      `(v128.store ${F('pd', get('j'))} ${fmul(get('r4'), fsub(fsub(fmul(V('pg'), V('gamma')), get('a1')), fmul(get('xh'), get('a2'))))})`,
    ]),
  ];
  return [
    '(func (export "layerNormGrad") (param $x i32) (param $dy i32) (param $stats i32) (param $gamma i32)' +
      ' (param $dx i32) (param $dgamma i32) (param $dbeta i32) (param $r i32) (param $c i32)',
    locals(['i', 'j', 'rowb', 'px', 'pg', 'pd'], 'i32'),
    locals(['rs', 'cf'], 'f32'),
    locals(['xh', 'dv', 'gh', 'a1', 'a2', 'm4', 'r4'], 'v128'),
    set('rowb', mul(get('c'), i32(4))),
    set('cf', `(f32.convert_i32_u ${get('c')})`),
    `(memory.fill ${get('dgamma')} ${i32(0)} ${get('rowb')})`,
    `(memory.fill ${get('dbeta')} ${i32(0)} ${get('rowb')})`,
    ...loop('i', get('r'), perRow),
    ')',
  ].join('\n');
}

/** The LayerNorm functions' text (forward; gradient). */
export function layerNormFuncs(): string[] {
  return [layerNormFunc(), layerNormGradFunc()];
}
