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
 * Every function does a range of the work: tiles [t0, t1), filter elements [e0, e1) (of cin·cout).
 * The callers pass the whole range (helper threads splitting it measured no faster; see simd.ts).
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
/** A (4x2) applied to 2 values: the adjoint of Aᵀ, for gradients. */
const aMat = (v: string[]) => [v[0], vadd(v[0], v[1]), vsub(v[0], v[1]), `(f32x4.neg ${v[1]})`];
/** Gᵀ (3x4) applied to 4 values: the adjoint of G. */
const gTMat = (w: string[]) => {
  const half = vhalf(vadd(w[1], w[2]));
  return [vadd(w[0], half), vhalf(vsub(w[1], w[2])), vadd(half, w[3])];
};

/**
 * The separable 2-D transform T x Tᵀ of a rows x cols block of v128 locals `x` (row-major):
 * columns into locals `tmp`, then rows; returns [lines, the output expressions row-major].
 */
function separable(
  x: string[],
  rows: number,
  cols: number,
  t: (v: string[]) => string[],
  tmp: string,
): [string[], string[]] {
  const lines: string[] = [];
  let outRows = 0;
  for (let c = 0; c < cols; c++) {
    const col = t(range(rows).map((r) => get(x[cols * r + c])));
    outRows = col.length;
    col.forEach((e, r) => lines.push(set(`${tmp}${cols * r + c}`, e)));
  }
  const out = range(outRows).flatMap((r) => t(range(cols).map((c) => get(`${tmp}${cols * r + c}`))));
  return [lines, out];
}

/** Lines loading `names` from `ptr` (an i32 local, advanced by `stride` between loads). */
function loadPlanes(names: string[], ptr: string, stride: string): string[] {
  return names.flatMap((v, k) => [
    set(v, load(get(ptr))),
    ...(k < names.length - 1 ? [set(ptr, add(get(ptr), get(stride)))] : []),
  ]);
}

/** Lines storing `exprs` at `ptr` (advanced by `stride` between stores). */
function storePlanes(exprs: string[], ptr: string, stride: string): string[] {
  return exprs.flatMap((e, k) => [
    store(get(ptr), e),
    ...(k < exprs.length - 1 ? [set(ptr, add(get(ptr), get(stride)))] : []),
  ]);
}

const names = (prefix: string, n: number) => range(n).map((k) => `${prefix}${k}`);

/**
 * A function over tiles [t0, t1) of an [n, th, tw] grid: `setup` once, then per tile the tile's
 * b, i, j, `perTile`, and `body` for each 4-channel group kk < `chanBytes` (a local, bytes).
 * Declares the shared locals (b, i, j, kk, tpi, tile) besides `i32s` and `v128s`.
 */
function tileFunc(
  header: string,
  i32s: string[],
  v128s: string[],
  setup: string[],
  perTile: string[],
  chanBytes: string,
  body: string[],
): string {
  return [
    header,
    locals(['b', 'i', 'j', 'kk', 'tpi', 'tile', ...i32s], 'i32'),
    locals(v128s, 'v128'),
    set('tpi', mul(get('th'), get('tw'))),
    ...setup,
    ...loop('tile', get('t1'), [...tileCoords, ...perTile, ...loop('kk', get(chanBytes), body, 16)], 1, get('t0')),
    ')',
  ].join('\n');
}

/** The second output row / column of tile (i, j) exists (odd output sizes end in half tiles). */
const secondRowCol = [
  set('h1', `(i32.lt_u ${add(mul(get('i'), i32(2)), i32(1))} ${get('oh')})`),
  set('w1', `(i32.lt_u ${add(mul(get('j'), i32(2)), i32(1))} ${get('ow')})`),
];
/** Address of output (b, 2i, 2j) in an [n, oh, ow, k] tensor at `base`, channel stride ks bytes. */
const outputTileAddr = (base: string) =>
  add(
    get(base),
    mul(add(mul(add(mul(get('b'), get('oh')), mul(get('i'), i32(2))), get('ow')), mul(get('j'), i32(2))), get('ks')),
  );

function inputFunc(): string {
  const d = names('d', 16);
  const body: string[] = [];
  // d[r][s]: 4 rows of the window, pointer pr walks the rows (row stride rs: x's, or the scratch window's).
  body.push(set('pr', add(get('base'), get('kk'))));
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++)
      body.push(set(d[4 * r + c], load(c === 0 ? get('pr') : add(get('pr'), get(c === 1 ? 'cs' : `cs${c}`)))));
    if (r < 3) body.push(set('pr', add(get('pr'), get('rs'))));
  }
  // V[ξ][ν] = (Bᵀ d B)[ξ][ν], stored plane by plane.
  const [lines, v] = separable(d, 4, 4, bT, 'tv');
  body.push(...lines, set('q', add(get('qt'), get('kk'))), ...storePlanes(v, 'q', 'plane'));
  // Window rows y0..y0+3 and columns x0..x0+3 of x (unpadded coordinates).
  const inside = (v: string, lim: string) => `(i32.and (i32.ge_s ${v} ${i32(0)}) (i32.lt_s ${v} ${lim}))`;
  const gather = [
    // A window that reaches into the padding is first gathered into the scratch window (4 x 4 x c,
    // zeros outside x); interior windows are read in place.
    ...loop(
      'r',
      i32(4),
      loop('u', i32(4), [
        set('yy', add(get('y0'), get('r'))),
        set('xx', add(get('x0'), get('u'))),
        set('q', add(get('win'), mul(add(mul(get('r'), i32(4)), get('u')), get('cs')))),
        `(if (i32.and ${inside(get('yy'), get('h'))} ${inside(get('xx'), get('w'))})`,
        `(then (memory.copy ${get('q')} ${add(get('src'), mul(add(mul(add(mul(get('b'), get('h')), get('yy')), get('w')), get('xx')), get('cs')))} ${get('cs')}))`,
        `(else (memory.fill ${get('q')} ${i32(0)} ${get('cs')})))`,
      ]),
    ),
    set('base', get('win')),
    set('rs', get('wrs')),
  ];
  const perTile = [
    set('y0', `(i32.sub ${mul(get('i'), i32(2))} ${get('pt')})`),
    set('x0', `(i32.sub ${mul(get('j'), i32(2))} ${get('pl')})`),
    `(if (i32.and (i32.and (i32.ge_s ${get('y0')} ${i32(0)}) (i32.le_s ${add(get('y0'), i32(4))} ${get('h')}))` +
      ` (i32.and (i32.ge_s ${get('x0')} ${i32(0)}) (i32.le_s ${add(get('x0'), i32(4))} ${get('w')})))`,
    `(then ${set('base', add(get('src'), mul(add(mul(add(mul(get('b'), get('h')), get('y0')), get('w')), get('x0')), get('cs'))))} ${set('rs', get('xrs'))})`,
    `(else ${gather.join('\n')}))`,
    set('qt', add(get('dst'), mul(get('tile'), get('cs')))),
  ];
  return tileFunc(
    '(func (export "winoInput") (param $src i32) (param $dst i32) (param $win i32) (param $n i32) (param $h i32) (param $w i32) (param $c i32) (param $pt i32) (param $pl i32) (param $th i32) (param $tw i32) (param $t0 i32) (param $t1 i32)',
    ['r', 'u', 'cs', 'cs2', 'cs3', 'rs', 'xrs', 'wrs', 'plane', 'base', 'pr', 'qt', 'q', 'y0', 'x0', 'yy', 'xx'],
    [...d, ...names('tv', 16)],
    [
      set('cs', mul(get('c'), i32(4))),
      set('cs2', mul(get('cs'), i32(2))),
      set('cs3', mul(get('cs'), i32(3))),
      set('xrs', mul(get('w'), get('cs'))),
      set('wrs', mul(get('cs'), i32(4))),
      set('plane', mul(mul(get('n'), get('tpi')), get('cs'))),
    ],
    perTile,
    'cs',
    body,
  );
}

function outputFunc(): string {
  const m = names('m', 16);
  const y = names('y', 4);
  // y[a][b] = (Aᵀ M A)[a][b] (+ bias, then ReLU), stored where the output has that row/column.
  const [lines, out] = separable(m, 4, 4, aT, 'r');
  const body = [
    set('p', add(get('pt'), get('kk'))),
    ...loadPlanes(m, 'p', 'plane'),
    ...lines,
    ...out.map((e, k) => set(y[k], e)),
    `(if ${get('bias')} (then (local.set $bv ${load(add(get('bias'), get('kk')))})`,
    ...y.map((v) => set(v, vadd(get(v), get('bv')))),
    '))',
    `(if ${get('relu')} (then`,
    ...y.map((v) => set(v, `(f32x4.max ${get(v)} (v128.const f32x4 0 0 0 0))`)),
    '))',
    set('o', add(get('ot'), get('kk'))),
    store(get('o'), get('y0')),
    `(if ${get('w1')} (then ${store(add(get('o'), get('ks')), get('y1'))}))`,
    `(if ${get('h1')} (then ${store(add(get('o'), get('rowb')), get('y2'))}`,
    `(if ${get('w1')} (then ${store(add(add(get('o'), get('rowb')), get('ks')), get('y3'))}))))`,
  ];
  return tileFunc(
    '(func (export "winoOutput") (param $src i32) (param $dst i32) (param $bias i32) (param $n i32) (param $oh i32) (param $ow i32) (param $k i32) (param $th i32) (param $tw i32) (param $relu i32) (param $t0 i32) (param $t1 i32)',
    ['ks', 'rowb', 'plane', 'pt', 'ot', 'p', 'o', 'h1', 'w1'],
    [...m, ...names('r', 8), ...y, 'bv'],
    [
      set('ks', mul(get('k'), i32(4))),
      set('rowb', mul(get('ow'), get('ks'))),
      set('plane', mul(mul(get('n'), get('tpi')), get('ks'))),
    ],
    [set('pt', add(get('src'), mul(get('tile'), get('ks')))), set('ot', outputTileAddr('dst')), ...secondRowCol],
    'ks',
    body,
  );
}

function gradOutputFunc(): string {
  const d = names('d', 4);
  const zero = '(else (v128.const i32x4 0 0 0 0))';
  // dy of the tile's 2x2 outputs (past the edge: zero), then Ŷ = A dy Aᵀ stored plane by plane.
  const [lines, yh] = separable(d, 2, 2, aMat, 'p');
  const body = [
    set('o', add(get('ot'), get('kk'))),
    set(d[0], load(get('o'))),
    set(d[1], `(if (result v128) ${get('w1')} (then ${load(add(get('o'), get('ks')))}) ${zero})`),
    set(d[2], `(if (result v128) ${get('h1')} (then ${load(add(get('o'), get('rowb')))}) ${zero})`),
    set(
      d[3],
      `(if (result v128) (i32.and ${get('h1')} ${get('w1')}) (then ${load(add(add(get('o'), get('rowb')), get('ks')))}) ${zero})`,
    ),
    ...lines,
    set('q', add(get('qt'), get('kk'))),
    ...storePlanes(yh, 'q', 'plane'),
  ];
  return tileFunc(
    '(func (export "winoGradOutput") (param $src i32) (param $dst i32) (param $n i32) (param $oh i32) (param $ow i32) (param $k i32) (param $th i32) (param $tw i32) (param $t0 i32) (param $t1 i32)',
    ['ks', 'rowb', 'plane', 'ot', 'qt', 'o', 'q', 'h1', 'w1'],
    [...d, ...names('p', 8)],
    [
      set('ks', mul(get('k'), i32(4))),
      set('rowb', mul(get('ow'), get('ks'))),
      set('plane', mul(mul(get('n'), get('tpi')), get('ks'))),
    ],
    [set('ot', outputTileAddr('src')), set('qt', add(get('dst'), mul(get('tile'), get('ks')))), ...secondRowCol],
    'ks',
    body,
  );
}

/**
 * A per-element filter transform over elements [e0, e1) of cin·cout: `side` x `side` taps in, the
 * separable transform `t` out, every tap a [cin, cout] plane (stride tap bytes) in and out.
 */
function filterTransformFunc(name: string, side: number, t: (v: string[]) => string[]): string {
  const x = names('x', side * side);
  const [lines, out] = separable(x, side, side, t, 'a');
  const body = [
    set('p', add(get('src'), get('e'))),
    ...loadPlanes(x, 'p', 'tap'),
    ...lines,
    set('q', add(get('dst'), get('e'))),
    ...storePlanes(out, 'q', 'tap'),
  ];
  return [
    `(func (export "${name}") (param $src i32) (param $dst i32) (param $cin i32) (param $cout i32) (param $e0 i32) (param $e1 i32)`,
    locals(['e', 'tap', 'p', 'q'], 'i32'),
    locals([...x, ...names('a', 4 * side)], 'v128'),
    set('tap', mul(mul(get('cin'), get('cout')), i32(4))),
    ...loop('e', mul(get('e1'), i32(4)), body, 16, mul(get('e0'), i32(4))),
    ')',
  ].join('\n');
}

/** The Winograd functions' text. */
export function winogradFuncs(): string[] {
  return [
    inputFunc(),
    filterTransformFunc('winoFilter', 3, gT),
    outputFunc(),
    gradOutputFunc(),
    filterTransformFunc('winoGradFilter', 4, gTMat),
  ];
}
