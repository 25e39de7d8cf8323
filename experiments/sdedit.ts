/**
 * `sdedit`: SDEdit's faithfulness / realism trade-off over t0 (Meng et al., Fig. 3 and Table 1's
 * direction): guides are simulated stroke paintings (lib/image/strokes.ts: 8x8 flat blocks, 4 colour
 * levels) of held-out emoji (the test split of the committed subset test/data/emoji32-subset), edited
 * with the shipped unet. Per cell (t0 x seed), over the guides:
 *   - L2 to the guide: per image sqrt(mean (x - g)^2) in [-1, 1] units, averaged (faithfulness);
 *   - L2 to the source emoji the strokes came from (same units);
 *   - realism, by the shipped judge (a classifier trained on real emoji only, never used for
 *     guidance): its mean top-class probability, and how often its category is the source's.
 * The cell t0 = 0 is the guides themselves (no edit) and the real source images, for reference.
 * The paper's claim: L2 to the guide grows with t0 while realism grows; a t0 in between gives both.
 * Writes the trade-off plot (tradeoff.svg/.png: L2 to the guide vs the judge's confidence, one
 * point per t0) and a sample sheet (samples.png: the first guides and their edits at each t0, seed 0).
 * `--param unet=PATH --param judge=DIR` point it at other weights; `--param n=N` changes the guide count.
 */
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  fileHash,
  type CellRecord,
  type Experiment,
  type GridOptions,
  type JsonObject,
} from '../lib/experiments/grid.js';
import { Dataset } from '../lib/data/dataset.js';
import { testSubsetPath } from '../lib/data/index.js';
import { simulateStrokes } from '../lib/image/strokes.js';
import { loadUNetDiffuser, resolveWeights } from '../lib/models/load.js';
import { sdedit } from '../lib/methods/sdedit.js';
import type { Diffuser } from '../lib/models/diffuser.js';
import { loadJudge } from '../lib/eval/unet.js';
import type { Judge } from '../nets/judge/model.js';
import { packageRoot, weightsPath } from '../lib/paths.js';
import { plotFiles, type PlotSpec } from '../lib/experiments/plot.js';
import { samplesPng, stackRows } from '../lib/experiments/samples.js';

interface Cell {
  [k: string]: number;
  t0: number;
  seed: number;
}
interface Result {
  [k: string]: number | string | null;
  n: number;
  l2Guide: number;
  l2Source: number;
  judgeConfidence: number;
  judgeAgreement: number;
  /** t0 = 0 only: the real source images' figures. */
  realConfidence: number | null;
  realAgreement: number | null;
  /** The first SHEET images of this cell (t0 = 0: the guides, then their sources) as a PNG row, base64. */
  samples: string;
}
interface Shared {
  unet: Diffuser;
  judge: Judge;
  real: tf.Tensor4D;
  guides: tf.Tensor4D;
  labels: number[];
}

const STROKES = { cell: 8, levels: 4 };
/** Images per row of the sample sheet. */
const SHEET = 8;
const T0S = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

function plan(opts: GridOptions) {
  const n = Number(opts.params.n ?? (opts.quick ? 4 : 32));
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`experiment sdedit: --param n=${opts.params.n} must be a positive integer`);
  return {
    n,
    t0s: opts.quick ? [0.3, 0.6, 0.9] : T0S,
    seeds: opts.quick ? [0] : [0, 1, 2],
    steps: opts.quick ? 10 : 25,
    unetFile: resolveWeights('unet', opts.params.unet),
    judgeDir: opts.params.judge ?? weightsPath('judge'),
  };
}

/** Held-out items: the first n of the test split of the committed subset. */
function testItems(n: number): { path: string; ids: string[] } {
  const path = testSubsetPath(packageRoot());
  if (!existsSync(path))
    throw new Error(`experiment sdedit needs the committed test subset ${path}; restore it with git`);
  const index = JSON.parse(readFileSync(path, 'utf8')) as { items: { id: string; split: string }[] };
  const ids = index.items.filter((i) => i.split === 'test').map((i) => i.id);
  if (ids.length < n) throw new Error(`experiment sdedit: --param n=${n} but ${path} has ${ids.length} test images`);
  return { path, ids: ids.slice(0, n) };
}

const rel = (p: string) => relative(packageRoot(), p) || p;

const exp: Experiment<Cell, Result, Shared> = {
  name: 'sdedit',
  summary: "SDEdit t0 sweep on simulated stroke paintings of held-out emoji: L2 to the guide vs the judge's realism",
  settings(opts) {
    const p = plan(opts);
    const judgeFile = `${p.judgeDir}/judge.safetensors`;
    if (!existsSync(judgeFile))
      throw new Error(
        `experiment sdedit needs the judge: ${judgeFile} is missing (diffguide train judge, or --param judge=DIR)`,
      );
    const items = testItems(p.n);
    return {
      method: 'sdedit (VP, DDPM ancestral steps from t0)',
      steps: p.steps,
      repeats: 1,
      t0s: p.t0s,
      seeds: p.seeds,
      guides: { source: rel(items.path), split: 'test', n: p.n, ids: items.ids, strokes: STROKES },
      weights: {
        unet: { file: rel(p.unetFile), sha256: fileHash(p.unetFile) },
        judge: { file: rel(judgeFile), sha256: fileHash(judgeFile) },
      },
      extractor: 'judge (weights/judge classifier: softmax top-class probability and category agreement)',
    } satisfies JsonObject;
  },
  cells(opts) {
    const p = plan(opts);
    return [{ t0: 0, seed: 0 }, ...p.seeds.flatMap((seed) => p.t0s.map((t0) => ({ t0, seed })))];
  },
  async setup(settings, opts) {
    const p = plan(opts);
    const unet = await loadUNetDiffuser(p.unetFile);
    const judge = await loadJudge(p.judgeDir);
    const ds = Dataset.load(testSubsetPath(packageRoot()));
    const ids = (settings.guides as { ids: string[] }).ids;
    const idx = ids.map((id) => ds.items.findIndex((it) => it.id === id));
    const real = ds.images(idx, { rgb: true });
    const guides = simulateStrokes(real, STROKES);
    const labels = idx.map((i) => judge.config.categories.indexOf(ds.categories[i]));
    return { unet, judge, real, guides, labels };
  },
  dispose(s) {
    s.unet.unet.dispose();
    s.judge.dispose();
    tf.dispose([s.real, s.guides]);
  },
  async runCell(cell, ctx) {
    const { unet, judge, real, guides, labels } = ctx.shared;
    const rms = (a: tf.Tensor4D, b: tf.Tensor4D) =>
      tf.tidy(() => mean(Array.from(tf.sqrt(tf.mean(tf.square(a.sub(b)), [1, 2, 3])).dataSync())));
    const judged = (x: tf.Tensor4D) =>
      tf.tidy(() => {
        const p = tf.softmax(judge.apply(x).category);
        const conf = Array.from(tf.max(p, -1).dataSync());
        const arg = Array.from(tf.argMax(p, -1).dataSync());
        return { confidence: mean(conf), agreement: mean(arg.map((c, i) => (c === labels[i] ? 1 : 0))) };
      });
    const n = guides.shape[0];
    const k = Math.min(SHEET, n);
    const firsts = (x: tf.Tensor4D) => tf.tidy(() => x.slice(0, k));
    const row = (x: tf.Tensor4D) => {
      const f = firsts(x);
      try {
        return samplesPng(f);
      } finally {
        f.dispose();
      }
    };
    if (cell.t0 === 0) {
      const g = judged(guides);
      const r = judged(real);
      const both = tf.tidy(() => tf.concat([firsts(guides), firsts(real)])) as tf.Tensor4D;
      const samples = (() => {
        try {
          return samplesPng(both, k);
        } finally {
          both.dispose();
        }
      })();
      return {
        n,
        l2Guide: 0,
        l2Source: rms(guides, real),
        judgeConfidence: g.confidence,
        judgeAgreement: g.agreement,
        realConfidence: r.confidence,
        realAgreement: r.agreement,
        samples,
      };
    }
    const out = await sdedit(unet, guides, {
      t0: cell.t0,
      steps: ctx.settings.steps as number,
      seed: cell.seed,
      onProgress: (p) => ctx.progress(p.step, p.total),
    });
    try {
      const j = judged(out.images);
      return {
        n,
        l2Guide: rms(out.images, guides),
        l2Source: rms(out.images, real),
        judgeConfidence: j.confidence,
        judgeAgreement: j.agreement,
        realConfidence: null,
        realAgreement: null,
        samples: row(out.images),
      };
    } finally {
      out.images.dispose();
    }
  },
  merge(results, info) {
    const s = info.settings as {
      t0s: number[];
      steps: number;
      guides: { n: number };
      weights: { unet: { file: string } };
    };
    const by = (t0: number) => results.filter((r) => r.cell.t0 === t0);
    const f = (rs: CellRecord<Cell, Result>[], k: keyof Result) => {
      if (!rs.length) return '–';
      const v = rs.map((r) => r.result[k] as number);
      return v.length > 1 ? `${mean(v).toFixed(3)} ± ${sd(v).toFixed(3)}` : mean(v).toFixed(3);
    };
    const ref = by(0);
    const rows = [
      `| guide (no edit) | ${ref.length} | 0 | ${f(ref, 'l2Source')} | ${f(ref, 'judgeConfidence')} | ${f(ref, 'judgeAgreement')} |`,
      ...s.t0s.map((t0) => {
        const rs = by(t0);
        return `| ${t0.toFixed(1)} | ${rs.length} | ${f(rs, 'l2Guide')} | ${f(rs, 'l2Source')} | ${f(rs, 'judgeConfidence')} | ${f(rs, 'judgeAgreement')} |`;
      }),
      `| real source images | ${ref.length} | ${f(ref, 'l2Source')} | 0 | ${f(ref, 'realConfidence')} | ${f(ref, 'realAgreement')} |`,
    ];
    const table = [
      `SDEdit on ${s.guides.n} stroke paintings of held-out emoji (${s.steps} DDPM steps from t0, ${s.weights.unet.file}); realism by the judge. Mean ± sd over seeds.`,
      '',
      '| t0 | seeds | L2 to guide | L2 to source | judge confidence | judge category = source |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
    const json = {
      rows: [0, ...s.t0s].map((t0) => {
        const rs = by(t0);
        const m = (k: keyof Result) => (rs.length ? mean(rs.map((r) => r.result[k] as number)) : null);
        return {
          t0,
          seeds: rs.length,
          l2Guide: m('l2Guide'),
          l2Source: m('l2Source'),
          judgeConfidence: m('judgeConfidence'),
          judgeAgreement: m('judgeAgreement'),
        };
      }),
      real: ref.length
        ? { judgeConfidence: ref[0].result.realConfidence, judgeAgreement: ref[0].result.realAgreement }
        : null,
    };
    const files: Record<string, string | Uint8Array> = plotFiles({
      tradeoff: tradeoffPlot(
        json.rows.filter((r) => r.t0 > 0),
        json.rows[0],
        json.real,
        s.guides.n,
        s.steps,
      ),
    });
    const sheet = [
      ...ref
        .filter((r) => r.result.samples)
        .map((r) => ({ label: 'guides (strokes), then their source emoji', png: r.result.samples })),
      ...results
        .filter((r) => r.cell.t0 > 0 && r.cell.seed === 0 && r.result.samples)
        .map((r) => ({ label: `sdedit t0 = ${r.cell.t0}`, png: r.result.samples })),
    ];
    if (sheet.length)
      files['samples.png'] = stackRows(sheet, { title: `SDEDIT: STROKE GUIDES AND EDITS (SEED 0, ${s.steps} STEPS)` });
    return { table, json, files };
  },
};
export default exp;

type Row = { t0: number; l2Guide: number | null; judgeConfidence: number | null; judgeAgreement: number | null };

/** The realism / faithfulness trade-off: L2 to the guide (x) against the judge's confidence (y), one point per t0. */
function tradeoffPlot(
  rows: Row[],
  guide: Row | undefined,
  real: { judgeConfidence: number | string | null } | null,
  n: number,
  steps: number,
): PlotSpec {
  const pts = rows
    .filter((r) => r.l2Guide !== null)
    .map((r) => ({ t0: r.t0, l2: r.l2Guide, conf: r.judgeConfidence, agree: r.judgeAgreement, label: `t0=${r.t0}` }));
  const refs = [
    ...(guide && guide.judgeConfidence !== null
      ? [{ l2: 0, conf: guide.judgeConfidence, label: 'guides (no edit)' }]
      : []),
  ];
  const realConf = real && typeof real.judgeConfidence === 'number' ? real.judgeConfidence : null;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'SDEdit: faithfulness vs realism over t0',
      subtitle: `${n} stroke guides of held-out emoji, ${steps} steps; realism = judge confidence (dashed: real images)`,
    },
    width: 420,
    height: 300,
    layer: [
      {
        data: { values: pts },
        mark: { type: 'line', point: true },
        encoding: {
          x: {
            field: 'l2',
            type: 'quantitative',
            title: 'L2 to the guide (RMS, [-1, 1] units; lower = more faithful)',
          },
          y: {
            field: 'conf',
            type: 'quantitative',
            title: 'judge confidence (higher = more realistic)',
            scale: { zero: false },
          },
          order: { field: 't0' },
        },
      },
      {
        data: { values: pts },
        mark: { type: 'text', dx: 6, dy: -8, align: 'left', fontSize: 10 },
        encoding: {
          x: { field: 'l2', type: 'quantitative' },
          y: { field: 'conf', type: 'quantitative' },
          text: { field: 'label' },
        },
      },
      ...(refs.length
        ? [
            {
              data: { values: refs },
              mark: { type: 'point' as const, shape: 'square', color: 'gray', filled: true, size: 60 },
              encoding: {
                x: { field: 'l2', type: 'quantitative' as const },
                y: { field: 'conf', type: 'quantitative' as const },
              },
            },
            {
              data: { values: refs },
              mark: { type: 'text' as const, dx: 6, dy: 10, align: 'left' as const, fontSize: 10, color: 'gray' },
              encoding: {
                x: { field: 'l2', type: 'quantitative' as const },
                y: { field: 'conf', type: 'quantitative' as const },
                text: { field: 'label' },
              },
            },
          ]
        : []),
      ...(realConf !== null
        ? [
            {
              data: { values: [{ conf: realConf }] },
              mark: { type: 'rule' as const, strokeDash: [4, 3], color: 'gray' },
              encoding: { y: { field: 'conf', type: 'quantitative' as const } },
            },
          ]
        : []),
    ],
  } as PlotSpec;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
function sd(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
}
