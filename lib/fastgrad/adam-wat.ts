/**
 * One Adam(W) update of a parameter tensor in one pass (WebAssembly text, SIMD):
 * `adamStep(p, g, m, v, pOut, mOut, vOut, size, beta1, beta2, omb1, omb2, lrBc1, invBc2, eps, wdLr)`:
 *   m' = β1 m + omb1 g;  v' = β2 v + omb2 g²  (omb = 1 − β, rounded from float64 as torch and tfjs do);
 *   p' = p − lrBc1 · m' / (sqrt(v' · invBc2) + eps) − wdLr · p
 * (lrBc1 = lr / (1 − β1^t), invBc2 = 1 / (1 − β2^t), wdLr = lr · weight decay), written to fresh
 * buffers (tfjs tensors are immutable). Replaces ~15 tfjs kernels per parameter per step.
 * Part of our SIMD module (simd-module.ts).
 */
import { add, get, i32, locals, loop, mul, set } from './wat.js';

function adamFunc(): string {
  const splat = (v: string) => `(f32x4.splat ${get(v)})`;
  const at = (ptr: string, w: number) => add(get(ptr), mul(get('i'), i32(4 * w)));
  const step = (w: number, L: 'v128' | 'f32') => {
    const op = (o: string) => (L === 'v128' ? `f32x4.${o}` : `f32.${o}`);
    const c = (v: string) => (L === 'v128' ? splat(v) : get(v));
    const ld = (ptr: string) => `(${L}.load align=4 ${at(ptr, w)})`;
    const g = L === 'v128' ? 'gv' : 'gs';
    const m = L === 'v128' ? 'mv' : 'ms';
    const v = L === 'v128' ? 'vv' : 'vs';
    const p = L === 'v128' ? 'pv' : 'ps';
    return [
      set(g, ld('g')),
      set(p, ld('p')),
      set(m, `(${op('add')} (${op('mul')} ${c('beta1')} ${ld('m')}) (${op('mul')} ${c('omb1')} ${get(g)}))`),
      set(
        v,
        `(${op('add')} (${op('mul')} ${c('beta2')} ${ld('v')}) (${op('mul')} ${c('omb2')} (${op('mul')} ${get(g)} ${get(g)})))`,
      ),
      `(${L}.store align=4 ${at('mOut', w)} ${get(m)})`,
      `(${L}.store align=4 ${at('vOut', w)} ${get(v)})`,
      `(${L}.store align=4 ${at('pOut', w)} (${op('sub')} (${op('sub')} ${get(p)} (${op('div')} (${op('mul')} ${c('lrBc1')} ${get(m)}) (${op('add')} (${op('sqrt')} (${op('mul')} ${get(v)} ${c('invBc2')})) ${c('eps')}))) (${op('mul')} ${c('wdLr')} ${get(p)})))`,
    ];
  };
  return [
    '(func (export "adamStep") (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $pOut i32) (param $mOut i32) (param $vOut i32) (param $size i32)' +
      ' (param $beta1 f32) (param $beta2 f32) (param $omb1 f32) (param $omb2 f32) (param $lrBc1 f32) (param $invBc2 f32) (param $eps f32) (param $wdLr f32)',
    locals(['i', 'n4'], 'i32'),
    locals(['gs', 'ms', 'vs', 'ps'], 'f32'),
    locals(['gv', 'mv', 'vv', 'pv'], 'v128'),
    set('n4', `(i32.shr_u ${get('size')} (i32.const 2))`),
    ...loop('i', get('n4'), step(4, 'v128')),
    // the last size % 4 elements, one by one (i counts elements here)
    ...loop('i', get('size'), step(1, 'f32'), 1, mul(get('n4'), i32(4))),
    ')',
  ].join('\n');
}

/** The Adam function's text. */
export function adamFuncs(): string[] {
  return [adamFunc()];
}
