/**
 * The Winograd F(2x2, 3x3) transform kernels (WebAssembly text, SIMD), part of our SIMD module
 * (simd-module.ts). Layouts (float32, channels innermost; all channel counts multiples of 4, pointers in bytes):
 * - `winoInput(src, dst, win, n, h, w, c, pt, pl, th, tw, t0, t1)`: input [n, h, w, c], implicitly zero-padded
 *   by pt rows on top and pl columns on the left (and as needed below and right) -> V [16, T, c],
 *   T = n·th·tw; V[4ξ+ν][tile] = (Bᵀ d B)[ξ][ν] of the tile's 4x4 window; `win`: scratch of 16·c floats.
 * - `winoFilter(src, dst, cin, cout, e0, e1)`: filter [3, 3, cin, cout] -> U [16, cin, cout], U = G g Gᵀ.
 * - `winoOutput(src, dst, bias, n, oh, ow, k, th, tw, relu, t0, t1)`: M [16, T, k] (M = V·U per plane) ->
 *   output [n, oh, ow, k] = Aᵀ M A per tile (+ bias[k] when bias != 0, then max(0, ·) when relu != 0).
 * Weight gradient (the adjoint of the above, summed over tiles): dW = Gᵀ [ Σ_tiles V ⊙ (A dy Aᵀ) ] G:
 * - `winoGradOutput(src, dst, n, oh, ow, k, th, tw, t0, t1)`: dy [n, oh, ow, k] -> Ŷ [16, T, k] = A dy Aᵀ
 *   per tile (outputs past the edge count as zero).
 * - `winoGradFilter(src, dst, cin, cout, e0, e1)`: W̃ [16, cin, cout] (W̃[p] = V[p]ᵀ · Ŷ[p]) -> dW [3, 3, cin, cout].
 * Every function does a range of the work: tiles [t0, t1), filter elements [e0, e1) (of cin·cout),
 * so that several threads can share one call.
 * Transforms (Lavin & Gray 2016, correlation form): Bᵀ rows d0-d2, d1+d2, d2-d1, d1-d3;
 * G rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2; Aᵀ rows m0+m1+m2, m1-m2-m3.
 */
import { get, set, add, mul, i32, vadd, vsub, vhalf, load, store, loop, locals, range } from './wat.js';

/** b, i, j of tile index `tile` (row-major over [n, th, tw]). */
const tileCoords = [
  set('b', `(i32.div_u ${get('tile')} ${get('tpi')})`),
  set('i', `(i32.div_u (i32.rem_u ${get('tile')} ${get('tpi')}) ${get('tw')})`),
  set('j', `(i32.rem_u ${get('tile')} ${get('tw')})`),
];


/** 1-D transforms of 4 values (names of v128 expressions) -> 4 expressions. */
const bT = (d: string[]) => [vsub(d[0], d[2]), vadd(d[1], d[2]), vsub(d[2], d[1]), vsub(d[1], d[3])];
const gT = (g: string[]) => [g[0], vhalf(vadd(vadd(g[0], g[1]), g[2])), vhalf(vadd(vsub(g[0], g[1]), g[2])), g[2]];
const aT = (m: string[]) => [vadd(vadd(m[0], m[1]), m[2]), vsub(vsub(m[1], m[2]), m[3])];

function inputFunc(): string {
  const d = range(16).map((k) => `d${k}`);
  const t = range(16).map((k) => `tv${k}`);
  const body: string[] = [];
  // d[r][s]: 4 rows of the window, pointer pr walks the rows (row stride rs: x's, or the scratch window's).
  body.push(set('pr', add(get('base'), get('cc'))));
  for (let r = 0; r < 4; r++) {
    for (let s = 0; s < 4; s++) body.push(set(d[4 * r + s], load(s === 0 ? get('pr') : add(get('pr'), get(s === 1 ? 'cs' : `cs${s}`)))));
    if (r < 3) body.push(set('pr', add(get('pr'), get('rs'))));
  }
  // Columns: t[ξ][s] = (Bᵀ d)[ξ][s].
  for (let s = 0; s < 4; s++) {
    const col = bT(range(4).map((r) => get(d[4 * r + s])));
    col.forEach((e, xi) => body.push(set(t[4 * xi + s], e)));
  }
  // Rows: V[ξ][ν] = (t B)[ξ][ν], stored plane by plane.
  body.push(set('q', add(get('qt'), get('cc'))));
  for (let xi = 0; xi < 4; xi++) {
    const row = bT(range(4).map((s) => get(t[4 * xi + s])));
    row.forEach((e, nu) => {
      body.push(store(get('q'), e));
      if (xi < 3 || nu < 3) body.push(set('q', add(get('q'), get('plane'))));
    });
  }
  // Window rows y0..y0+3 and columns x0..x0+3 of x (unpadded coordinates).
  const inside = (v: string, lim: string) => `(i32.and (i32.ge_s ${v} ${i32(0)}) (i32.lt_s ${v} ${lim}))`;
  const gather = [
    // A window that reaches into the padding is first gathered into the scratch window (4 x 4 x c,
    // zeros outside x); interior windows are read in place.
    ...loop('r', i32(4), loop('u', i32(4), [
      set('yy', add(get('y0'), get('r'))),
      set('xx', add(get('x0'), get('u'))),
      set('q', add(get('win'), mul(add(mul(get('r'), i32(4)), get('u')), get('cs')))),
      `(if (i32.and ${inside(get('yy'), get('h'))} ${inside(get('xx'), get('w'))})`,
      `(then (memory.copy ${get('q')} ${add(get('src'), mul(add(mul(add(mul(get('b'), get('h')), get('yy')), get('w')), get('xx')), get('cs')))} ${get('cs')}))`,
      `(else (memory.fill ${get('q')} ${i32(0)} ${get('cs')})))`,
    ])),
    set('base', get('win')),
    set('rs', get('wrs')),
  ];
  const tileBody = [
    ...tileCoords,
    set('y0', `(i32.sub ${mul(get('i'), i32(2))} ${get('pt')})`),
    set('x0', `(i32.sub ${mul(get('j'), i32(2))} ${get('pl')})`),
    `(if (i32.and (i32.and (i32.ge_s ${get('y0')} ${i32(0)}) (i32.le_s ${add(get('y0'), i32(4))} ${get('h')}))` +
      ` (i32.and (i32.ge_s ${get('x0')} ${i32(0)}) (i32.le_s ${add(get('x0'), i32(4))} ${get('w')})))`,
    `(then ${set('base', add(get('src'), mul(add(mul(add(mul(get('b'), get('h')), get('y0')), get('w')), get('x0')), get('cs'))))} ${set('rs', get('xrs'))})`,
    `(else ${gather.join('\n')}))`,
    set('qt', add(get('dst'), mul(get('tile'), get('cs')))),
    ...loop('cc', get('cs'), body, 16),
  ];
  return [
    '(func (export "winoInput") (param $src i32) (param $dst i32) (param $win i32) (param $n i32) (param $h i32) (param $w i32) (param $c i32) (param $pt i32) (param $pl i32) (param $th i32) (param $tw i32) (param $t0 i32) (param $t1 i32)',
    locals(['b', 'i', 'j', 'r', 'u', 'cc', 'cs', 'cs2', 'cs3', 'rs', 'xrs', 'wrs', 'plane', 'tpi', 'tile', 'base', 'pr', 'qt', 'q', 'y0', 'x0', 'yy', 'xx'], 'i32'),
    locals([...d, ...t], 'v128'),
    set('cs', mul(get('c'), i32(4))),
    set('cs2', mul(get('cs'), i32(2))),
    set('cs3', mul(get('cs'), i32(3))),
    set('xrs', mul(get('w'), get('cs'))),
    set('wrs', mul(get('cs'), i32(4))),
    set('tpi', mul(get('th'), get('tw'))),
    set('plane', mul(mul(get('n'), get('tpi')), get('cs'))),
    ...loop('tile', get('t1'), tileBody, 1, get('t0')),
    ')',
  ].join('\n');
}

function filterFunc(): string {
  const g = range(9).map((k) => `g${k}`);
  const a = range(12).map((k) => `a${k}`);
  const body: string[] = [];
  body.push(set('p', add(get('src'), get('e'))));
  for (let k = 0; k < 9; k++) {
    body.push(set(g[k], load(get('p'))));
    if (k < 8) body.push(set('p', add(get('p'), get('tap'))));
  }
  // Columns: a[ξ][s] = (G g)[ξ][s], ξ < 4, s < 3.
  for (let s = 0; s < 3; s++) {
    gT(range(3).map((r) => get(g[3 * r + s]))).forEach((e, xi) => body.push(set(a[3 * xi + s], e)));
  }
  body.push(set('q', add(get('dst'), get('e'))));
  for (let xi = 0; xi < 4; xi++) {
    gT(range(3).map((s) => get(a[3 * xi + s]))).forEach((e, nu) => {
      body.push(store(get('q'), e));
      if (xi < 3 || nu < 3) body.push(set('q', add(get('q'), get('tap'))));
    });
  }
  return [
    '(func (export "winoFilter") (param $src i32) (param $dst i32) (param $cin i32) (param $cout i32) (param $e0 i32) (param $e1 i32)',
    locals(['e', 'tap', 'p', 'q'], 'i32'),
    locals([...g, ...a], 'v128'),
    set('tap', mul(mul(get('cin'), get('cout')), i32(4))),
    ...loop('e', mul(get('e1'), i32(4)), body, 16, mul(get('e0'), i32(4))),
    ')',
  ].join('\n');
}

function outputFunc(): string {
  const m = range(16).map((k) => `m${k}`);
  const r = range(8).map((k) => `r${k}`);
  const y = range(4).map((k) => `y${k}`);
  const body: string[] = [];
  body.push(set('p', add(get('pt'), get('kk'))));
  for (let k = 0; k < 16; k++) {
    body.push(set(m[k], load(get('p'))));
    if (k < 15) body.push(set('p', add(get('p'), get('plane'))));
  }
  // Columns: r[a][ν] = (Aᵀ M)[a][ν]; rows: y[a][b] = (r A)[a][b].
  for (let nu = 0; nu < 4; nu++) aT(range(4).map((xi) => get(m[4 * xi + nu]))).forEach((e, ai) => body.push(set(r[4 * ai + nu], e)));
  for (let ai = 0; ai < 2; ai++) aT(range(4).map((nu) => get(r[4 * ai + nu]))).forEach((e, bi) => body.push(set(y[2 * ai + bi], e)));
  body.push(`(if ${get('bias')} (then (local.set $bv ${load(add(get('bias'), get('kk')))})`);
  for (const v of y) body.push(set(v, vadd(get(v), get('bv'))));
  body.push('))');
  body.push(`(if ${get('relu')} (then`);
  for (const v of y) body.push(set(v, `(f32x4.max ${get(v)} (v128.const f32x4 0 0 0 0))`));
  body.push('))');
  body.push(set('o', add(get('ot'), get('kk'))));
  body.push(store(get('o'), get('y0')));
  body.push(`(if ${get('w1')} (then ${store(add(get('o'), get('ks')), get('y1'))}))`);
  body.push(`(if ${get('h1')} (then ${store(add(get('o'), get('rowb')), get('y2'))}`);
  body.push(`(if ${get('w1')} (then ${store(add(add(get('o'), get('rowb')), get('ks')), get('y3'))}))))`);
  const tileBody = [
    ...tileCoords,
    // pt = src + tile·ks; ot = dst + ((b·oh + 2i)·ow + 2j)·ks; second row/column present?
    set('pt', add(get('src'), mul(get('tile'), get('ks')))),
    set('ot', add(get('dst'), mul(add(mul(add(mul(get('b'), get('oh')), mul(get('i'), i32(2))), get('ow')), mul(get('j'), i32(2))), get('ks')))),
    set('h1', `(i32.lt_u ${add(mul(get('i'), i32(2)), i32(1))} ${get('oh')})`),
    set('w1', `(i32.lt_u ${add(mul(get('j'), i32(2)), i32(1))} ${get('ow')})`),
    ...loop('kk', get('ks'), body, 16),
  ];
  return [
    '(func (export "winoOutput") (param $src i32) (param $dst i32) (param $bias i32) (param $n i32) (param $oh i32) (param $ow i32) (param $k i32) (param $th i32) (param $tw i32) (param $relu i32) (param $t0 i32) (param $t1 i32)',
    locals(['b', 'i', 'j', 'kk', 'ks', 'rowb', 'plane', 'tpi', 'tile', 'pt', 'ot', 'p', 'o', 'h1', 'w1'], 'i32'),
    locals([...m, ...r, ...y, 'bv'], 'v128'),
    set('ks', mul(get('k'), i32(4))),
    set('rowb', mul(get('ow'), get('ks'))),
    set('tpi', mul(get('th'), get('tw'))),
    set('plane', mul(mul(get('n'), get('tpi')), get('ks'))),
    ...loop('tile', get('t1'), tileBody, 1, get('t0')),
    ')',
  ].join('\n');
}

/** A (4x2) applied to 2 values: the adjoint of Aᵀ, for gradients. */
const aMat = (v: string[]) => [v[0], vadd(v[0], v[1]), vsub(v[0], v[1]), `(f32x4.neg ${v[1]})`];
/** Gᵀ (3x4) applied to 4 values: the adjoint of G. */
const gTMat = (w: string[]) => {
  const half = vhalf(vadd(w[1], w[2]));
  return [vadd(w[0], half), vhalf(vsub(w[1], w[2])), vadd(half, w[3])];
};

function gradOutputFunc(): string {
  const d = range(4).map((k) => `d${k}`);
  const p = range(8).map((k) => `p${k}`);
  const body: string[] = [];
  // dy of the tile's 2x2 outputs; outputs past the edge (odd sizes) count as zero.
  body.push(set('o', add(get('ot'), get('kk'))));
  body.push(set(d[0], load(get('o'))));
  body.push(set(d[1], `(if (result v128) ${get('w1')} (then ${load(add(get('o'), get('ks')))}) (else (v128.const i32x4 0 0 0 0)))`));
  body.push(set(d[2], `(if (result v128) ${get('h1')} (then ${load(add(get('o'), get('rowb')))}) (else (v128.const i32x4 0 0 0 0)))`));
  body.push(set(d[3], `(if (result v128) (i32.and ${get('h1')} ${get('w1')}) (then ${load(add(add(get('o'), get('rowb')), get('ks')))}) (else (v128.const i32x4 0 0 0 0)))`));
  // Columns: p[ξ][b] = (A dy)[ξ][b]; rows: Ŷ[ξ][ν] = (p Aᵀ)[ξ][ν], stored plane by plane.
  for (let b = 0; b < 2; b++) aMat([get(d[b]), get(d[2 + b])]).forEach((e, xi) => body.push(set(p[2 * xi + b], e)));
  body.push(set('q', add(get('qt'), get('kk'))));
  for (let xi = 0; xi < 4; xi++) {
    aMat([get(p[2 * xi]), get(p[2 * xi + 1])]).forEach((e, nu) => {
      body.push(store(get('q'), e));
      if (xi < 3 || nu < 3) body.push(set('q', add(get('q'), get('plane'))));
    });
  }
  const tileBody = [
    ...tileCoords,
    set('ot', add(get('src'), mul(add(mul(add(mul(get('b'), get('oh')), mul(get('i'), i32(2))), get('ow')), mul(get('j'), i32(2))), get('ks')))),
    set('qt', add(get('dst'), mul(get('tile'), get('ks')))),
    set('h1', `(i32.lt_u ${add(mul(get('i'), i32(2)), i32(1))} ${get('oh')})`),
    set('w1', `(i32.lt_u ${add(mul(get('j'), i32(2)), i32(1))} ${get('ow')})`),
    ...loop('kk', get('ks'), body, 16),
  ];
  return [
    '(func (export "winoGradOutput") (param $src i32) (param $dst i32) (param $n i32) (param $oh i32) (param $ow i32) (param $k i32) (param $th i32) (param $tw i32) (param $t0 i32) (param $t1 i32)',
    locals(['b', 'i', 'j', 'kk', 'ks', 'rowb', 'plane', 'tpi', 'tile', 'ot', 'qt', 'o', 'q', 'h1', 'w1'], 'i32'),
    locals([...d, ...p], 'v128'),
    set('ks', mul(get('k'), i32(4))),
    set('rowb', mul(get('ow'), get('ks'))),
    set('tpi', mul(get('th'), get('tw'))),
    set('plane', mul(mul(get('n'), get('tpi')), get('ks'))),
    ...loop('tile', get('t1'), tileBody, 1, get('t0')),
    ')',
  ].join('\n');
}

function gradFilterFunc(): string {
  const w = range(16).map((k) => `w${k}`);
  const r = range(12).map((k) => `r${k}`);
  const body: string[] = [];
  body.push(set('p', add(get('src'), get('e'))));
  for (let k = 0; k < 16; k++) {
    body.push(set(w[k], load(get('p'))));
    if (k < 15) body.push(set('p', add(get('p'), get('tap'))));
  }
  // Columns: r[a][ν] = (Gᵀ W̃)[a][ν]; rows: dW[a][b] = (r G)[a][b], stored tap by tap.
  for (let nu = 0; nu < 4; nu++) gTMat(range(4).map((xi) => get(w[4 * xi + nu]))).forEach((e, a) => body.push(set(r[4 * a + nu], e)));
  body.push(set('q', add(get('dst'), get('e'))));
  for (let a = 0; a < 3; a++) {
    gTMat(range(4).map((nu) => get(r[4 * a + nu]))).forEach((e, b) => {
      body.push(store(get('q'), e));
      if (a < 2 || b < 2) body.push(set('q', add(get('q'), get('tap'))));
    });
  }
  return [
    '(func (export "winoGradFilter") (param $src i32) (param $dst i32) (param $cin i32) (param $cout i32) (param $e0 i32) (param $e1 i32)',
    locals(['e', 'tap', 'p', 'q'], 'i32'),
    locals([...w, ...r], 'v128'),
    set('tap', mul(mul(get('cin'), get('cout')), i32(4))),
    ...loop('e', mul(get('e1'), i32(4)), body, 16, mul(get('e0'), i32(4))),
    ')',
  ].join('\n');
}

/** The Winograd functions' text. */
export function winogradFuncs(): string[] {
  return [inputFunc(), filterFunc(), outputFunc(), gradOutputFunc(), gradFilterFunc()];
}
