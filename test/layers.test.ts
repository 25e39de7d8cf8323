/**
 * The import graph of lib/, nets/, samplers/ and guidance/ (issue 13): every relative import (static
 * `import ... from`, side-effect `import '...'`, `export ... from`, dynamic `import('...')`) is parsed
 * from the source and checked against the layer table below, and the graph between files must have no
 * cycles. Pure text: no module is loaded.
 */
import { expect } from 'chai';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCANNED = ['lib', 'nets', 'samplers', 'guidance'];

/**
 * Layers, lowest first. A module may import its own layer (same folder) or a layer of lower rank;
 * two different layers of the same rank may not import each other (except as PEERS allows).
 */
const RANK: Record<string, number> = {
  // 0: leaves with no imports of ours: the seeded RNG, file locations, option ranges/checks, WGSL maths.
  'lib/random': 0,
  'lib/paths': 0,
  'lib/options': 0,
  'lib/webgpu-math': 0,
  // 1: file writing helpers; the wasm kernels (fastgrad uses the RNG for thread ids); checkpoint formats.
  'lib/output': 1,
  'lib/fastgrad': 1,
  'lib/io': 1,
  // 2: tensor ops on top of the kernels; PNG/resize/grids (write through lib/output); the webgpu backend's kernels.
  'lib/ops': 2,
  'lib/image': 2,
  'lib/webgpu': 2,
  // 3: backend selection (registers fastgrad / webgpu); datasets (decode images); the networks (UNet, CLIP,
  //    prior, judge: ops + io for their weights), which know nothing of diffusion.
  'lib/backend': 3,
  'lib/backend-browser': 3,
  'lib/data': 3,
  nets: 3,
  // 4: diffusion maths (schedules, models, samplers) and guidance terms; they refer to each other only as
  //    types (PEERS), and guidance refers to nets only as types (TYPE_ONLY).
  samplers: 4,
  guidance: 4,
  // 5: the model layer (Diffuser bundle, loaders of shipped/converted weights) and the optimisers (Adam,
  //    EMA, the methods' optimize loop): what training and the methods both stand on.
  'lib/models': 5,
  'lib/optim': 5,
  // 6: metrics (FD, KID, LPIPS, CLIP scores, retrieval); feature extractors load CLIP through lib/models.
  'lib/metrics': 6,
  // 7: training and the five methods: both on lib/models, never on each other.
  'lib/train': 7,
  'lib/methods': 7,
  // 8: evaluation of trained models and of the methods against their goals (runs both).
  'lib/eval': 8,
  // 9: applications of the library: the demo, experiment grids (and the top-level experiment definitions and
  //    benchmark suites that the CLI registers).
  'lib/demo': 9,
  'lib/experiments': 9,
  experiments: 9,
  bench: 9,
  // 10: the command line.
  'lib/cli': 10,
  // 11: the package's entry point re-exports everything.
  'lib/index': 11,
};

/** Same-rank layers that may import each other, type-only. */
const PEERS: Array<[string, string]> = [
  ['samplers', 'guidance'],
  ['guidance', 'samplers'],
];
/** Layer -> lower layers it may import only as `import type` (guidance takes nets as interfaces, never code). */
const TYPE_ONLY: Record<string, string[]> = { guidance: ['nets', 'samplers'], samplers: ['guidance'] };

/**
 * Re-exports left at old paths after a module moved up (issue 13), so code in flight keeps compiling.
 * Each must hold nothing but `export ... from` lines; exempt from the rank rule only. Delete them once
 * nothing imports the old path.
 */
const UPWARD_SHIMS = new Set<string>([]);

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
  /** `import('...')`. */
  dynamic?: boolean;
  text: string;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir))) {
    const p = join(dir, e);
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Comments removed (block, then line comments not preceded by ':' as in URLs), strings kept. */
function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/(^|[^:\\'"`])\/\/.*$/gm, '$1');
}

const STATIC = /(?:^|[;\n}])\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*'([^']+)'/g;
const BARE = /(?:^|[;\n])\s*import\s+'([^']+)'/g;
const DYNAMIC = /\bimport\s*\(\s*'([^']+)'\s*\)/g;

/** The relative imports of one file, as repository paths (`.js` specifiers -> `.ts` files). */
export function importsOf(file: string, src: string): Edge[] {
  const text = stripComments(src);
  const out: Edge[] = [];
  const add = (spec: string, typeOnly: boolean, what: string, dynamic = false) => {
    if (!spec.startsWith('.')) return;
    const to = normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push({ from: file, to, typeOnly, dynamic, text: what.replace(/^[\s;}]+/, '').replace(/\s+/g, ' ') });
  };
  for (const m of text.matchAll(STATIC)) {
    const clause = m[3];
    // `import { type A, type B } from` is type-only too; `import X, { type A }` is not
    const braces = /^\{([\s\S]*)\}$/.exec(clause.trim());
    const allTypes =
      !!braces &&
      braces[1]
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .every((s) => s.startsWith('type '));
    add(m[4], !!m[2] || allTypes, m[0]);
  }
  for (const m of text.matchAll(BARE)) add(m[1], false, m[0]);
  for (const m of text.matchAll(DYNAMIC)) add(m[1], false, m[0], true);
  return out;
}

/** The layer of a repository path: the longest RANK key that is the path or a folder above it. */
export function layerOf(path: string): string | undefined {
  const p = path.replace(/\.ts$/, '');
  let best: string | undefined;
  for (const k of Object.keys(RANK))
    if ((p === k || p.startsWith(k + '/')) && (!best || k.length > best.length)) best = k;
  return best;
}

/** Layer-rule violations among `edges`, one message each. */
export function layerViolations(edges: Edge[]): string[] {
  const bad: string[] = [];
  for (const e of edges) {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (!a || !b) {
      bad.push(
        `${e.from}: '${!a ? e.from : e.to}' is in no layer; add its folder to RANK in test/layers.test.ts (${e.text})`,
      );
      continue;
    }
    if (a === b) continue;
    if (TYPE_ONLY[a]?.includes(b) && !e.typeOnly) {
      bad.push(`${e.from} imports ${e.to} as code; ${a} may import ${b} only with \`import type\` (${e.text})`);
      continue;
    }
    if (UPWARD_SHIMS.has(e.from)) continue;
    const peer = PEERS.some(([x, y]) => x === a && y === b) && e.typeOnly;
    if (RANK[b] < RANK[a] || peer) continue;
    bad.push(
      `${e.from} (${a}, rank ${RANK[a]}) imports ${e.to} (${b}, rank ${RANK[b]}): a layer imports only lower ones; move the shared code down (${e.text})`,
    );
  }
  return bad;
}

/**
 * Cycles among files over `edges`. Type-only imports are left out (erased at run time), and so are dynamic
 * `import()`s (lazy: they run after every module has initialised, e.g. lib/cli/commands/bench.ts loading the
 * suites that register themselves with it), so a cycle here is one that fixes module initialisation order.
 */
export function cyclesOf(edges: Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) if (!e.typeOnly && !e.dynamic) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (f: string) => {
    state.set(f, 1);
    stack.push(f);
    for (const g of next.get(f) ?? []) {
      if (state.get(g) === 1) cycles.push([...stack.slice(stack.indexOf(g)), g]);
      else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of [...next.keys()].sort()) if (!state.has(f)) visit(f);
  return cycles;
}

function allEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const root of SCANNED)
    for (const f of sources(root)) edges.push(...importsOf(f, readFileSync(join(ROOT, f), 'utf8')));
  return edges;
}

describe('layers: the import graph of lib/, nets/, samplers/, guidance/', () => {
  const edges = allEdges();

  it('parses the imports (static, export-from, side-effect, dynamic; type-only recognised)', () => {
    expect(edges.length).to.be.greaterThan(300);
    const src = [
      "import * as tf from '@tensorflow/tfjs';",
      "import type { A } from '../samplers/model.js';",
      "import { type B, type C } from './b.js';",
      "import D, { type E } from './d.js';",
      "export { F } from '../models/diffuser.js';",
      "export * from './g.js';",
      "import './side.js';",
      "const h = await import('../h.js');",
      "// import { no } from './comment.js';",
      "/* import('./block.js') */",
    ].join('\n');
    const got = importsOf('lib/x/y.ts', src).map((e) => `${e.to}${e.typeOnly ? ' (type)' : ''}`);
    expect(got.sort()).to.deep.equal(
      [
        'lib/samplers/model.ts (type)',
        'lib/x/b.ts (type)',
        'lib/x/d.ts',
        'lib/models/diffuser.ts',
        'lib/x/g.ts',
        'lib/x/side.ts',
        'lib/h.ts',
      ].sort(),
    );
  });

  it('every module imports only its own layer or lower ones (lib/train and lib/methods never each other)', () => {
    expect(layerViolations(edges)).to.deep.equal([]);
  });

  it('flags an upward import (lib/train -> lib/methods) and a code import of nets from guidance', () => {
    const up = importsOf('lib/train/loop.ts', "import { sdg } from '../methods/sdg.js';");
    expect(layerViolations(up)).to.have.length(1);
    expect(layerViolations(up)[0]).to.match(
      /lib\/train\/loop\.ts \(lib\/train, rank 7\) imports lib\/methods\/sdg\.ts \(lib\/methods, rank 7\)/,
    );
    const code = importsOf('guidance/x.ts', "import { UNet } from '../nets/unet/index.js';");
    expect(layerViolations(code)[0]).to.match(/only with `import type`/);
    expect(
      layerViolations(importsOf('guidance/x.ts', "import type { UNet } from '../nets/unet/index.js';")),
    ).to.deep.equal([]);
  });

  it('the upward re-exports left at old paths hold nothing but re-exports', () => {
    for (const f of UPWARD_SHIMS) {
      const body = stripComments(readFileSync(join(ROOT, f), 'utf8'))
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      expect(body.length, f).to.be.greaterThan(0);
      for (const l of body) expect(l, f).to.match(/^export (\*|\{[^}]*\}|type \{[^}]*\}) from '[^']+';$/);
    }
  });

  it('no import cycles between files (type-only imports exempt)', () => {
    const cycles = cyclesOf(edges).map((c) => c.join(' -> '));
    expect(cycles).to.deep.equal([]);
    // the check finds one when there is one
    const loop = [
      ...importsOf('lib/a.ts', "import './b.js';"),
      ...importsOf('lib/b.ts', "import { x } from './a.js';"),
    ];
    expect(cyclesOf(loop).map((c) => c.join(' -> '))).to.deep.equal(['lib/a.ts -> lib/b.ts -> lib/a.ts']);
  });

  it('every scanned file is in a layer', () => {
    const missing = SCANNED.flatMap((r) => sources(r)).filter((f) => !layerOf(f));
    expect(missing).to.deep.equal([]);
  });
});
