/**
 * `sdedit`: SDEdit's faithfulness / realism trade-off over t0 (Meng et al., Fig. 3 and Table 1's
 * direction) and its image compositing: guides are simulated stroke paintings (lib/image/strokes.ts:
 * 8x8 flat blocks, 4 colour levels) of held-out emoji (the test split of the committed subset
 * test/data/emoji32-subset), edited with the shipped unet. Per sweep cell (t0 x seed), over the guides:
 *   - L2 to the guide: per image sqrt(mean (x - g)^2) in [-1, 1] units, averaged (faithfulness);
 *   - L2 to the source emoji the strokes came from (same units);
 *   - realism as the paper measures it: KID (unbiased MMD², cubic kernel, 100 subsets) of the
 *     edits to held-out real images (other test images than the sources: the test split of
 *     emoji32, or of the subset with `--quick` / `--param data=subset`), in judge features;
 *   - realism by the shipped judge (a classifier trained on real emoji only, never used for
 *     guidance): its mean top-class probability, and how often its category is the source's.
 * The cell t0 = 0 is the guides themselves (no edit), the real source images, and the features of
 * the KID reference set. The paper's claim: L2 to the guide grows with t0 while realism grows (KID
 * falls); a t0 in between gives both.
 * Compositing (cells `composite=paste|masked|full`): the central half-size square of source
 * (i + n/2) mod n pasted into source i; naive paste vs SDEdit of the composite with the background
 * kept exactly (masked, lib/methods/sdedit.ts `sdeditComposite`) at several t0, and SDEdit of the
 * whole composite without a mask; realism as above, faithfulness as L2 to the pasted patch inside the
 * region and to the background outside it.
 * Writes the trade-off plot (tradeoff.svg/.png: L2 to the guide vs KID, and vs the judge's
 * confidence, one point per t0), a sample sheet (samples.png: the first guides and their edits at
 * each t0, seed 0) and the compositing sheet (composite.png).
 * `--param unet=PATH --param judge=DIR` point it at other weights; `--param n=N` changes the guide
 * count, `--param realN=N` the KID reference set, `--param data=emoji32|subset` where it comes from.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { CellRecord, Experiment, GridOptions, JsonObject } from '../lib/experiments/grid.js';
import { Dataset } from '../lib/data/dataset.js';
import { loadDataset, testSubsetPath } from '../lib/data/index.js';
import { simulateStrokes } from '../lib/image/strokes.js';
import { loadUNetDiffuser, resolveWeights } from '../lib/models/load.js';
import { SDEDIT_DEFAULTS, sdedit, sdeditComposite } from '../lib/methods/sdedit.js';
import type { Diffuser } from '../lib/models/diffuser.js';
import { loadJudge } from '../lib/eval/unet.js';
import type { Judge } from '../nets/judge/model.js';
import { kid } from '../lib/metrics/index.js';
import { packageRoot, weightsPath } from '../lib/paths.js';
import { plotFiles, type PlotSpec } from '../lib/experiments/plot.js';
import { samplesPng, stackRows } from '../lib/experiments/samples.js';
import { fmt, judgeFileOf, mean, meanSd, relPath, weightsEntry } from '../lib/experiments/setup.js';

/** Sweep cells { t0, seed } (t0 = 0: the references); compositing cells { composite, t0, seed }. */
interface Cell {
  [k: string]: number | string;
  t0: number;
  seed: number;
}
type Result = JsonObject;
interface Shared {
  unet: Diffuser;
  judge: Judge;
  /** The guides' source images [n, 32, 32, 3]; also the compositing backgrounds. */
  real: tf.Tensor4D;
  guides: tf.Tensor4D;
  /** The judge category index of each source. */
  labels: number[];
  /** Held-out real images KID compares against. */
  kidRef: tf.Tensor4D;
  /** Compositing: the patch donors (source (i + n/2) mod n), the region [1, S, S, 1] and the naive paste. */
  overlays: tf.Tensor4D;
  region: tf.Tensor4D;
  pasted: tf.Tensor4D;
}

const STROKES = { cell: 8, levels: 4 };
/** Images per row of the sample sheets. */
const SHEET = 8;
const T0S = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/** KID: subsets of min(samples, reference) rows, as torch-fidelity's defaults otherwise. */
const KID = { subsets: 100, seed: 0 };
const COMPOSITE_LABEL: Record<string, string> = {
  paste: 'naive paste',
  masked: 'SDEdit, background kept (masked)',
  full: 'SDEdit of the whole composite (no mask)',
};

function plan(opts: GridOptions) {
  const q = opts.quick;
  const int = (k: string, d: number) => {
    const v = Number(opts.params[k] ?? d);
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`experiment sdedit: --param ${k}=${opts.params[k]} must be a positive integer`);
    return v;
  };
  const data = opts.params.data ?? (q ? 'subset' : 'emoji32');
  if (data !== 'subset' && data !== 'emoji32')
    throw new Error(
      `experiment sdedit: --param data=${data}: use emoji32 (the full prepared dataset) or subset (test/data/emoji32-subset.json)`,
    );
  const n = int('n', q ? 4 : 32);
  if (n < 2) throw new Error(`experiment sdedit: --param n=${n}: KID and compositing need at least 2 guides`);
  return {
    n,
    data,
    realN: int('realN', q ? 16 : 128),
    t0s: q ? [0.3, 0.6, 0.9] : T0S,
    seeds: q ? [0] : [0, 1, 2],
    steps: q ? 10 : 25,
    composite: { t0s: q ? [0.5] : [0.3, 0.5, 0.7], fullT0s: [0.5], seeds: [0] },
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

function openData(data: string): Dataset {
  return data === 'subset' ? Dataset.load(testSubsetPath(packageRoot())) : loadDataset('emoji32');
}

/** The KID reference: `n` test images of `ds` other than `exclude`, spread evenly over its test split. */
function kidReference(ds: Dataset, n: number, exclude: string[]): string[] {
  const skip = new Set(exclude);
  const pool = ds.indicesOf('test').filter((i) => !skip.has(ds.items[i].id));
  if (pool.length < 2)
    throw new Error(`experiment sdedit: ${ds.name} has ${pool.length} test images besides the guides' sources`);
  const m = Math.min(n, pool.length);
  return Array.from({ length: m }, (_, j) => ds.items[pool[Math.floor((j * pool.length) / m)]].id);
}

/** The compositing region: the central square of half the image side, [1, S, S, 1] with 1 inside. */
function centralSquare(size: number): tf.Tensor4D {
  const lo = size / 4;
  const hi = (3 * size) / 4;
  const v = new Float32Array(size * size);
  for (let y = lo; y < hi; y++) for (let x = lo; x < hi; x++) v[y * size + x] = 1;
  return tf.tensor4d(v, [1, size, size, 1]);
}

const r4 = (v: number) => Math.round(v * 1e4) / 1e4;

const exp: Experiment<Cell, Result, Shared> = {
  name: 'sdedit',
  summary:
    "SDEdit t0 sweep on simulated stroke paintings of held-out emoji (L2 to the guide vs KID to real images and the judge's realism) and masked compositing vs naive paste",
  settings(opts) {
    const p = plan(opts);
    const judgeFile = judgeFileOf('sdedit', p.judgeDir);
    const items = testItems(p.n);
    const ds = openData(p.data);
    const realIds = kidReference(ds, p.realN, items.ids);
    return {
      method: 'sdedit (VP, DDPM ancestral steps from t0)',
      steps: p.steps,
      repeats: SDEDIT_DEFAULTS.repeats,
      t0s: p.t0s,
      seeds: p.seeds,
      guides: { source: relPath(items.path), split: 'test', n: p.n, ids: items.ids, strokes: STROKES },
      kid: {
        reference: {
          dataset: p.data === 'subset' ? relPath(testSubsetPath(packageRoot())) : 'emoji32 (lib/data loadDataset)',
          split: 'test',
          rule: "test images other than the guides' sources, spread evenly over the split",
          n: realIds.length,
          ids: realIds,
        },
        ...KID,
        subsetSize: 'min(samples, reference)',
      },
      composite: {
        pairs: 'background = source i, patch from source (i + n/2) mod n',
        region: 'central square, half the image side ([S/4, 3S/4) in x and y)',
        maskedT0s: p.composite.t0s,
        fullT0s: p.composite.fullT0s,
        seeds: p.composite.seeds,
      },
      weights: { unet: weightsEntry(p.unetFile), judge: weightsEntry(judgeFile) },
      extractor:
        'judge (weights/judge): pooled features [N, 128] for KID; its softmax top-class probability and category agreement as a second realism measure',
    } satisfies JsonObject;
  },
  cells(opts) {
    const p = plan(opts);
    const c = p.composite;
    const sweep = (seed: number) => p.t0s.map((t0) => ({ t0, seed }));
    // seed 0's sweep and the compositing first: a run cut short still has one whole picture
    return [
      { t0: 0, seed: 0 },
      ...sweep(p.seeds[0]),
      { composite: 'paste', t0: 0, seed: 0 },
      ...c.seeds.flatMap((seed) => [
        ...c.t0s.map((t0) => ({ composite: 'masked', t0, seed })),
        ...c.fullT0s.map((t0) => ({ composite: 'full', t0, seed })),
      ]),
      ...p.seeds.slice(1).flatMap(sweep),
    ] as Cell[];
  },
  async setup(settings, opts) {
    const p = plan(opts);
    const unet = await loadUNetDiffuser(p.unetFile);
    const judge = await loadJudge(p.judgeDir);
    const ds = Dataset.load(testSubsetPath(packageRoot()));
    const s = settings as { guides: { ids: string[] }; kid: { reference: { ids: string[] } } };
    const indexOf = (d: Dataset, id: string) => {
      const i = d.items.findIndex((it) => it.id === id);
      if (i < 0)
        throw new Error(`experiment sdedit: item ${id} is not in ${d.name}; the settings were made with other data`);
      return i;
    };
    const idx = s.guides.ids.map((id) => indexOf(ds, id));
    const real = ds.images(idx, { rgb: true });
    const guides = simulateStrokes(real, STROKES);
    const labels = idx.map((i) => judge.config.categories.indexOf(ds.categories[i]));
    const refDs = openData(p.data);
    const kidRef = refDs.images(
      s.kid.reference.ids.map((id) => indexOf(refDs, id)),
      { rgb: true },
    );
    const n = idx.length;
    const overlays = tf.tidy(() =>
      tf.gather(
        real,
        Array.from({ length: n }, (_, i) => (i + Math.floor(n / 2)) % n),
      ),
    ) as tf.Tensor4D;
    const region = centralSquare(real.shape[1]);
    const pasted = tf.tidy(() => overlays.mul(region).add(real.mul(tf.scalar(1).sub(region)))) as tf.Tensor4D;
    return { unet, judge, real, guides, labels, kidRef, overlays, region, pasted };
  },
  dispose(s) {
    s.unet.unet.dispose();
    s.judge.dispose();
    tf.dispose([s.real, s.guides, s.kidRef, s.overlays, s.region, s.pasted]);
  },
  async runCell(cell, ctx) {
    const { unet, judge, real, guides, labels, kidRef, overlays, region, pasted } = ctx.shared;
    const rms = (a: tf.Tensor4D, b: tf.Tensor4D) =>
      tf.tidy(() => mean(Array.from(tf.sqrt(tf.mean(tf.square(a.sub(b)), [1, 2, 3])).dataSync())));
    /** RMS over the pixels where `m` ([1, S, S, 1]) is 1, per image, averaged. */
    const rmsIn = (a: tf.Tensor4D, b: tf.Tensor4D, m: tf.Tensor4D) =>
      tf.tidy(() => {
        const count = tf.sum(m).mul(a.shape[3]);
        const per = tf.sqrt(tf.sum(tf.square(a.sub(b)).mul(m), [1, 2, 3]).div(count));
        return mean(Array.from(per.dataSync()));
      });
    const judged = (x: tf.Tensor4D) =>
      tf.tidy(() => {
        const p = tf.softmax(judge.apply(x).category);
        const conf = Array.from(tf.max(p, -1).dataSync());
        const arg = Array.from(tf.argMax(p, -1).dataSync());
        return { confidence: mean(conf), agreement: mean(arg.map((c, i) => (c === labels[i] ? 1 : 0))) };
      });
    const features = (x: tf.Tensor4D) => {
      const f = judge.features(x);
      try {
        return (f.arraySync() as number[][]).map((r) => r.map(r4));
      } finally {
        f.dispose();
      }
    };
    const n = guides.shape[0];
    const k = Math.min(SHEET, n);
    const row = (...xs: tf.Tensor4D[]) => {
      const f = tf.tidy(() => tf.concat(xs.map((x) => x.slice(0, k)))) as tf.Tensor4D;
      try {
        return samplesPng(f, k);
      } finally {
        f.dispose();
      }
    };
    const steps = ctx.settings.steps as number;
    const onProgress = (p: { step: number; total: number }) => ctx.progress(p.step, p.total);
    const outside = tf.tidy(() => tf.scalar(1).sub(region)) as tf.Tensor4D;
    try {
      if (typeof cell.composite === 'string') {
        let images: tf.Tensor4D;
        if (cell.composite === 'paste') images = tf.clone(pasted);
        else {
          const r = await sdeditComposite(unet, real, overlays, region, {
            t0: cell.t0,
            steps,
            seed: cell.seed,
            keepBackground: cell.composite === 'masked',
            onProgress,
          });
          r.composite.dispose();
          images = r.images;
        }
        try {
          const j = judged(images);
          const out: Result = {
            n,
            l2Inside: rmsIn(images, overlays, region),
            l2Outside: rmsIn(images, real, outside),
            judgeConfidence: j.confidence,
            judgeAgreement: j.agreement,
            features: features(images),
            samples: row(images),
          };
          if (cell.composite === 'paste') {
            out.backgroundL2Inside = rmsIn(real, overlays, region);
            out.inputs = row(real, overlays);
          }
          return out;
        } finally {
          images.dispose();
        }
      }
      if (cell.t0 === 0) {
        const g = judged(guides);
        const r = judged(real);
        return {
          n,
          l2Guide: 0,
          l2Source: rms(guides, real),
          judgeConfidence: g.confidence,
          judgeAgreement: g.agreement,
          realConfidence: r.confidence,
          realAgreement: r.agreement,
          features: features(guides),
          sourceFeatures: features(real),
          kidRefFeatures: features(kidRef),
          samples: row(guides, real),
        };
      }
      const out = await sdedit(unet, guides, { t0: cell.t0, steps, seed: cell.seed, onProgress });
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
          features: features(out.images),
          samples: row(out.images),
        };
      } finally {
        out.images.dispose();
      }
    } finally {
      outside.dispose();
    }
  },
  merge(results, info) {
    const s = info.settings as {
      t0s: number[];
      steps: number;
      guides: { n: number };
      kid: { subsets: number; seed: number; reference: { n: number; dataset: string } };
      composite: { maskedT0s: number[]; fullT0s: number[] };
      weights: { unet: { file: string } };
    };
    type Rec = CellRecord<Cell, Result>;
    const ref0 = results.find((r) => r.cell.t0 === 0 && r.cell.composite === undefined);
    const kidRef = ref0 ? (ref0.result.kidRefFeatures as number[][]) : null;
    /** KID of a cell's features (or any feature set) to the reference, null while the t0 = 0 cell is missing. */
    const kidOf = (f: number[][]) =>
      kidRef ? kid(f, kidRef, { ...KID, subsetSize: Math.min(f.length, kidRef.length) }).mean : null;
    const sweep = (t0: number) => results.filter((r) => r.cell.t0 === t0 && r.cell.composite === undefined);
    const comp = (m: string, t0: number) => results.filter((r) => r.cell.composite === m && r.cell.t0 === t0);
    const num = (rs: Rec[], key: string) => rs.map((r) => r.result[key] as number);
    const kids = (rs: Rec[], key = 'features') =>
      rs.map((r) => kidOf(r.result[key] as number[][])).filter((v): v is number => v !== null);
    const m = (v: number[]) => (v.length ? mean(v) : null);
    const sweepRow = (t0: number) => {
      const rs = sweep(t0);
      const kv = kids(rs);
      return {
        t0,
        seeds: rs.length,
        l2Guide: m(num(rs, 'l2Guide')),
        l2Source: m(num(rs, 'l2Source')),
        kid: m(kv),
        kidPerSeed: kv,
        judgeConfidence: m(num(rs, 'judgeConfidence')),
        judgeAgreement: m(num(rs, 'judgeAgreement')),
      };
    };
    const json = {
      rows: [0, ...s.t0s].map(sweepRow),
      real: ref0
        ? {
            kid: kidOf(ref0.result.sourceFeatures as number[][]),
            judgeConfidence: ref0.result.realConfidence as number,
            judgeAgreement: ref0.result.realAgreement as number,
          }
        : null,
      composite: [
        ['paste', 0],
        ...s.composite.maskedT0s.map((t0) => ['masked', t0] as const),
        ...s.composite.fullT0s.map((t0) => ['full', t0] as const),
      ].map(([method, t0]) => {
        const rs = comp(method as string, t0 as number);
        const kv = kids(rs);
        return {
          method,
          label: COMPOSITE_LABEL[method],
          t0,
          seeds: rs.length,
          kid: m(kv),
          kidPerSeed: kv,
          judgeConfidence: m(num(rs, 'judgeConfidence')),
          judgeAgreement: m(num(rs, 'judgeAgreement')),
          l2Inside: m(num(rs, 'l2Inside')),
          l2Outside: m(num(rs, 'l2Outside')),
        };
      }),
      kidReference: s.kid.reference.n,
    };
    const paste = comp('paste', 0)[0];
    // the figures over seeds: 'mean ± sd' (sd over seeds)
    const cellF = (rs: Rec[], key: string, d = 3) => meanSd(num(rs, key), d);
    const kidF = (rs: Rec[]) => meanSd(kids(rs), 4);
    const ref = sweep(0);
    const real = json.real;
    const sweepLines = [
      `| guide (no edit) | ${ref.length} | 0 | ${cellF(ref, 'l2Source')} | ${kidF(ref)} | ${cellF(ref, 'judgeConfidence')} | ${cellF(ref, 'judgeAgreement')} |`,
      ...s.t0s.map((t0) => {
        const rs = sweep(t0);
        return `| ${t0.toFixed(1)} | ${rs.length} | ${cellF(rs, 'l2Guide')} | ${cellF(rs, 'l2Source')} | ${kidF(rs)} | ${cellF(rs, 'judgeConfidence')} | ${cellF(rs, 'judgeAgreement')} |`;
      }),
      `| real source images | ${ref.length} | ${cellF(ref, 'l2Source')} | 0 | ${fmt(real?.kid, 4)} | ${fmt(real?.judgeConfidence)} | ${fmt(real?.judgeAgreement)} |`,
    ];
    const compLines = [
      `| background images (no paste) | – | ${ref.length} | ${fmt(real?.kid, 4)} | ${fmt(real?.judgeConfidence)} | ${fmt(real?.judgeAgreement)} | ${paste ? fmt(paste.result.backgroundL2Inside as number) : '–'} | 0 |`,
      ...json.composite.map((c) => {
        const rs = comp(c.method as string, c.t0 as number);
        return `| ${c.label} | ${c.t0 || '–'} | ${rs.length} | ${kidF(rs)} | ${cellF(rs, 'judgeConfidence')} | ${cellF(rs, 'judgeAgreement')} | ${cellF(rs, 'l2Inside')} | ${cellF(rs, 'l2Outside')} |`;
      }),
    ];
    const table = [
      `SDEdit on ${s.guides.n} stroke paintings of held-out emoji (${s.steps} DDPM steps from t0, ${s.weights.unet.file}). Realism: KID (unbiased MMD², cubic kernel, ${s.kid.subsets} subsets of min(samples, reference) rows, seed ${s.kid.seed}) to ${s.kid.reference.n} other held-out real images (${s.kid.reference.dataset}, test split) in judge features, lower = more realistic; and the judge's confidence / category. Mean ± sd over seeds. papers.md gives no figures for this sweep (the paper: KID and L2 on LSUN, 256 px; human studies).`,
      '',
      '| t0 | seeds | L2 to guide | L2 to source | KID to real (judge) | judge confidence | judge category = source |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...sweepLines,
      '',
      `Image compositing: the central half-side square of source (i + n/2) mod n pasted into source i (${s.guides.n} composites); naive paste vs SDEdit of the composite with the background kept exactly (masked) and SDEdit of the whole composite. Faithfulness: RMS L2 inside the region to the pasted patch, outside it to the background. The paper reports human preference only (SDEdit improves compositing satisfaction by up to 83.73% over blending and GAN baselines).`,
      '',
      '| composite | t0 | seeds | KID to real (judge) | judge confidence | judge category = background | L2 inside to patch | L2 outside to background |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...compLines,
    ].join('\n');
    const files: Record<string, string | Uint8Array> = plotFiles({
      tradeoff: tradeoffPlot(
        json.rows.filter((r) => r.t0 > 0),
        json.rows[0],
        real,
        s.guides.n,
        s.steps,
      ),
    });
    const sheet = [
      ...ref
        .filter((r) => r.result.samples)
        .map((r) => ({ label: 'guides (strokes), then their source emoji', png: r.result.samples as string })),
      ...results
        .filter((r) => r.cell.composite === undefined && r.cell.t0 > 0 && r.cell.seed === 0 && r.result.samples)
        .map((r) => ({ label: `sdedit t0 = ${r.cell.t0}`, png: r.result.samples as string })),
    ];
    if (sheet.length)
      files['samples.png'] = stackRows(sheet, { title: `SDEDIT: STROKE GUIDES AND EDITS (SEED 0, ${s.steps} STEPS)` });
    const compSheet = [
      ...(paste
        ? [
            { label: 'backgrounds, then the sources of the pasted patches', png: paste.result.inputs as string },
            { label: 'naive paste (central square)', png: paste.result.samples as string },
          ]
        : []),
      ...results
        .filter((r) => r.cell.composite !== undefined && r.cell.composite !== 'paste' && r.cell.seed === 0)
        .map((r) => ({
          label: `${r.cell.composite === 'masked' ? 'sdedit, background kept' : 'sdedit, no mask'} t0 = ${r.cell.t0}`,
          png: r.result.samples as string,
        })),
    ];
    if (compSheet.length)
      files['composite.png'] = stackRows(compSheet, {
        title: `SDEDIT COMPOSITING VS NAIVE PASTE (SEED 0, ${s.steps} STEPS)`,
      });
    return { table, json, files };
  },
};
export default exp;

type Row = {
  t0: number;
  l2Guide: number | null;
  kid: number | null;
  judgeConfidence: number | null;
  judgeAgreement: number | null;
};

/**
 * The realism / faithfulness trade-off, one point per t0: L2 to the guide (x) against KID to real
 * images (left, the paper's measure) and against the judge's confidence (right); grey squares are the
 * unedited guides, the dashed lines the real source images.
 */
function tradeoffPlot(
  rows: Row[],
  guide: Row | undefined,
  real: { kid: number | null; judgeConfidence: number | null } | null,
  n: number,
  steps: number,
): PlotSpec {
  const panel = (y: 'kid' | 'judgeConfidence', title: string) => {
    const pts = rows
      .filter((r) => r.l2Guide !== null && r[y] !== null)
      .map((r) => ({ t0: r.t0, l2: r.l2Guide, y: r[y], label: `t0=${r.t0}` }));
    const refs = guide && guide[y] !== null ? [{ l2: 0, y: guide[y], label: 'guides (no edit)' }] : [];
    const realY = real && typeof real[y] === 'number' ? real[y] : null;
    const enc = { x: { field: 'l2', type: 'quantitative' as const }, y: { field: 'y', type: 'quantitative' as const } };
    return {
      width: 360,
      height: 280,
      layer: [
        {
          data: { values: pts },
          mark: { type: 'line' as const, point: true },
          encoding: {
            x: {
              field: 'l2',
              type: 'quantitative' as const,
              title: 'L2 to the guide (RMS, [-1, 1] units; lower = more faithful)',
            },
            y: { field: 'y', type: 'quantitative' as const, title, scale: { zero: false } },
            order: { field: 't0' },
          },
        },
        {
          data: { values: pts },
          mark: { type: 'text' as const, dx: 6, dy: -8, align: 'left' as const, fontSize: 10 },
          encoding: { ...enc, text: { field: 'label' } },
        },
        ...(refs.length
          ? [
              {
                data: { values: refs },
                mark: { type: 'point' as const, shape: 'square', color: 'gray', filled: true, size: 60 },
                encoding: enc,
              },
              {
                data: { values: refs },
                mark: { type: 'text' as const, dx: 6, dy: 10, align: 'left' as const, fontSize: 10, color: 'gray' },
                encoding: { ...enc, text: { field: 'label' } },
              },
            ]
          : []),
        ...(realY !== null
          ? [
              {
                data: { values: [{ y: realY }] },
                mark: { type: 'rule' as const, strokeDash: [4, 3], color: 'gray' },
                encoding: { y: { field: 'y', type: 'quantitative' as const } },
              },
            ]
          : []),
      ],
    };
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'SDEdit: faithfulness vs realism over t0',
      subtitle: `${n} stroke guides of held-out emoji, ${steps} steps; KID and confidence in judge features (dashed: the real source images)`,
    },
    hconcat: [
      panel('kid', 'KID to held-out real images (judge; lower = more realistic)'),
      panel('judgeConfidence', 'judge confidence (higher = more realistic)'),
    ],
  } as PlotSpec;
}
