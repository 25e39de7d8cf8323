/**
 * `unclip`: unCLIP's diversity under guidance (Ramesh et al., Fig. 9 / Sec. 5.1: unCLIP keeps its
 * semantic diversity as the decoder guidance scale grows, where GLIDE collapses), and the
 * manipulations of Sec. 3 (variations, interpolations, text diffs) with the shipped models.
 *
 * Guidance cells (mode x decoder scale): for each of the judge's 9 category prompts
 * ("an emoji of <category>"), `perPrompt` images
 *   - mode `unclip`: prior (64 steps, scale 2, best of 2) -> image embedding -> decoder;
 *   - mode `glide`: the paper's GLIDE-like baseline, a decoder trained on CLIP *text* embeddings with
 *     the decoder's recipe (`weights/text-unet`: `train cond-unet --condition text`, same architecture,
 *     init, steps, lr, batch, 15% condition dropout), conditioned directly on the prompt's text embedding;
 *   - mode `standin` (only with `--param standin=1`): the image-embedding decoder fed the prompt's
 *     text embedding directly (CLIP's space is joint), the stand-in used before text-unet existed.
 * The prior's embeddings and every x_T are the same at every scale (seeded), so only the decoder
 * guidance changes along a curve. Per cell: diversity = mean pairwise judge-LPIPS among each prompt's
 * samples (averaged over prompts; judge-LPIPS is the LPIPS formula over the judge's features, a
 * stand-in for LPIPS), FD to the 142 images of the committed emoji subset in the judge's feature
 * space, the judge's agreement with the prompt's category, and CLIP score to the prompt.
 * Variations: `variationsEach` decodes (DDIM eta 1) of the CLIP embedding of held-out images, judged
 * the source's category. Interpolation (slerp between two held-out images' embeddings, one x_T) and
 * text diffs (source category prompt -> next category's prompt, theta 0 ... 0.5, from the DDIM
 * inversion) as grids, with the judge's P(target category) along theta.
 * Writes guidance.svg/.png, samples.png, variations.png, interpolation.png, textdiff.png.
 * The text-conditioned decoder's sha256 is part of the glide cells' keys (`weights=<sha>`), not of the
 * settings: retraining it changes only those cells, never the unCLIP and manipulation cells (which do
 * not use it); cells of another version of it are not read.
 * `--param decoder=PATH --param textDecoder=PATH --param prior=PATH --param clip=PATH --param judge=DIR`
 * point it at other weights; `--param standin=1` adds the stand-in's guidance cells.
 */
import { relative } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fileHash, type Experiment, type GridOptions, type JsonObject } from '../lib/experiments/grid.js';
import { Dataset } from '../lib/data/dataset.js';
import { testSubsetPath } from '../lib/data/index.js';
import { loadClipModel, loadCondDiffuser, loadPriorModel, resolveWeights } from '../lib/models/load.js';
import type { Diffuser } from '../lib/models/diffuser.js';
import {
  UNCLIP_DEFAULTS,
  decode,
  interpolate,
  samplePrior,
  textDiff,
  variations,
  type UnclipModels,
} from '../lib/methods/unclip.js';
import { l2normalize } from '../lib/methods/common.js';
import { loadJudge } from '../lib/eval/unet.js';
import { categoryPrompt } from '../lib/train/tasks/clip.js';
import type { Judge } from '../nets/judge/model.js';
import type { CLIP } from '../nets/clip/index.js';
import { clipExtractor, judgeExtractor } from '../lib/metrics/extractors.js';
import { categoryAgreement, clipScore, frechetDistanceOf, meanPairwiseDistance } from '../lib/metrics/embedding.js';
import { judgeLpips } from '../lib/metrics/lpips.js';
import { packageRoot, weightsPath } from '../lib/paths.js';
import { plotFiles, type PlotSpec } from '../lib/experiments/plot.js';
import { samplesPng, stackRows } from '../lib/experiments/samples.js';
import { METHODS_PROTOCOL } from '../lib/eval/methods.js';

interface Cell {
  [k: string]: string | number;
  /** 'unclip' | 'glide' | 'standin': a guidance cell; 'variations' | 'interpolation' | 'textdiff': a manipulation. */
  kind: string;
  /** Decoder guidance scale (guidance cells; 0 for the others). */
  scale: number;
  // glide cells also carry `weights`: the sha256 (16 hex) of the text-conditioned decoder they ran
}
type Result = { [k: string]: number | string | number[] | string[] };
interface Shared {
  m: UnclipModels & { clip: CLIP };
  /** The GLIDE-like baseline: the decoder trained on CLIP text embeddings (weights/text-unet). */
  textDecoder: Diffuser;
  judge: Judge;
  ds: Dataset;
  real: tf.Tensor4D;
  /** The prior's draw for the prompts, made by the first unclip cell of this process (deterministic given the seed, so every process draws the same). */
  priorZ?: tf.Tensor2D;
}

const SCALES = [1, 2, 4, 8];
/** Guidance modes: unCLIP, the text-conditioned decoder (GLIDE-like), the image decoder on text embeddings (stand-in). */
const MODE_LABEL: Record<string, string> = {
  unclip: 'unCLIP (prior + decoder)',
  glide: 'text-conditioned decoder (GLIDE-like, text-unet)',
  standin: 'image decoder on text embedding (stand-in)',
};
const GUIDANCE_KINDS = Object.keys(MODE_LABEL);
const { priorSteps, priorScale, bestOf } = UNCLIP_DEFAULTS.prior;
const PRIOR = { priorSteps, priorScale, bestOf };

function plan(opts: GridOptions) {
  return {
    perPrompt: opts.quick ? 2 : 5,
    scales: opts.quick ? [1, 4] : SCALES,
    steps: opts.quick ? 8 : 20,
    prior: opts.quick ? { ...PRIOR, priorSteps: 8 } : PRIOR,
    variationSources: opts.quick ? 2 : 9,
    variationsEach: 4,
    interpolations: opts.quick ? 1 : 4,
    textDiffs: opts.quick ? 1 : 4,
    frames: UNCLIP_DEFAULTS.interpolate.frames,
    seed: METHODS_PROTOCOL.unclip.seed,
    decoderFile: resolveWeights('cond-unet', opts.params.decoder),
    // the text-conditioned decoder is a cond-unet (same loader), shipped as weights/text-unet/text-unet.safetensors
    textDecoderFile: resolveWeights('cond-unet', opts.params.textDecoder ?? weightsPath('text-unet')),
    modes: ['unclip', 'glide', ...(opts.params.standin && opts.params.standin !== '0' ? ['standin'] : [])],
    priorFile: resolveWeights('prior', opts.params.prior),
    clipFile: resolveWeights('clip', opts.params.clip),
    judgeDir: opts.params.judge ?? weightsPath('judge'),
  };
}
interface Plan {
  perPrompt: number;
  steps: number;
  prior: { priorSteps: number; priorScale: number; bestOf: number };
  variationSources: number;
  variationsEach: number;
  interpolations: number;
  textDiffs: number;
  frames: number;
  seed: number;
}

const rel = (p: string) => relative(packageRoot(), p) || p;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Held-out items of the subset spread evenly over its test split (category-sorted order), k of them. */
function spread(ds: Dataset, k: number, offset = 0): number[] {
  const test = ds.indicesOf('test');
  return Array.from({ length: k }, (_, j) => test[(Math.floor((j * test.length) / k) + offset) % test.length]);
}

async function guidanceCell(
  cell: Cell,
  s: Shared,
  p: Plan,
  progress: (a: number, b: number) => Promise<void>,
): Promise<Result> {
  const cats = s.ds.categoryNames;
  const labels = cats.flatMap((_, c) => new Array<number>(p.perPrompt).fill(c));
  const prompts = labels.map((c) => categoryPrompt(cats[c]));
  const zt = tf.tidy(() => l2normalize(s.m.clip.encodeText(prompts)));
  let z: tf.Tensor2D;
  // unclip and standin decode with the image-embedding decoder, glide with the text-conditioned one
  const decoder = cell.kind === 'glide' ? s.textDecoder : s.m.decoder;
  if (cell.kind === 'unclip') {
    // the same prior draw at every scale: only the decoder guidance changes along the curve
    if (!s.priorZ)
      s.priorZ = (
        await samplePrior(s.m.prior, s.m.priorSchedule, zt, {
          ...p.prior,
          seed: p.seed,
          onProgress: (q) => void progress(q.step, q.total),
        })
      ).embeddings;
    zt.dispose();
    z = tf.clone(s.priorZ);
  } else {
    z = zt;
  }
  const images = await decode(decoder, z, {
    decoderScale: cell.scale,
    steps: p.steps,
    seed: p.seed + 100,
    onProgress: (q) => void progress(q.step, q.total),
  });
  z.dispose();
  try {
    const net = judgeLpips(s.judge);
    const perPrompt = cats.map((_, c) => {
      const g = tf.tidy(() => images.slice(c * p.perPrompt, p.perPrompt)) as tf.Tensor4D;
      const d = meanPairwiseDistance(g, net).value;
      g.dispose();
      return d;
    });
    const judge = judgeExtractor(s.judge);
    const fd = frechetDistanceOf(images, s.real, judge).value;
    const agree = categoryAgreement(images, labels, judge).value;
    const cs = clipScore(images, prompts, clipExtractor(s.m.clip)).value;
    const first = tf.tidy(() =>
      tf.gather(
        images,
        cats.map((_, c) => c * p.perPrompt),
      ),
    ) as tf.Tensor4D;
    const samples = samplesPng(first);
    first.dispose();
    return {
      diversity: mean(perPrompt),
      diversityPerPrompt: perPrompt,
      fd,
      categoryRate: agree,
      clipScore: cs,
      n: labels.length,
      samples,
    };
  } finally {
    images.dispose();
  }
}

async function variationsCell(s: Shared, p: Plan, progress: (a: number, b: number) => Promise<void>): Promise<Result> {
  const src = spread(s.ds, p.variationSources);
  const judge = judgeExtractor(s.judge);
  const rows: string[] = [];
  const agree: number[] = [];
  const div: number[] = [];
  const want = src.map((i) => s.judge.config.categories.indexOf(s.ds.categoryNames[s.ds.categoryIds[i]]));
  const x = s.ds.images(src, { rgb: true });
  const srcAgree = categoryAgreement(x, want, judge).value;
  try {
    for (let j = 0; j < src.length; j++) {
      const xi = tf.tidy(() => x.slice(j, 1)) as tf.Tensor4D;
      const v = await variations(s.m, xi, {
        n: p.variationsEach,
        steps: p.steps,
        seed: p.seed + j,
        onProgress: (q) => void progress(q.step, q.total),
      });
      agree.push(categoryAgreement(v.images, [want[j]], judge).value);
      div.push(meanPairwiseDistance(v.images, judgeLpips(s.judge)).value);
      if (rows.length < 6) {
        const both = tf.concat([xi, v.images]) as tf.Tensor4D;
        rows.push(samplesPng(both));
        both.dispose();
      }
      tf.dispose([xi, v.images, v.embedding]);
    }
  } finally {
    x.dispose();
  }
  return {
    sources: src.length,
    each: p.variationsEach,
    categoryAgreement: mean(agree),
    sourceAgreement: srcAgree,
    diversity: mean(div),
    rows,
  };
}

async function interpolationCell(
  s: Shared,
  p: Plan,
  progress: (a: number, b: number) => Promise<void>,
): Promise<Result> {
  const a = spread(s.ds, p.interpolations, 0);
  const b = spread(s.ds, p.interpolations, 3 * 6 + 2); // three categories on: a different category
  const rows: string[] = [];
  const labels: string[] = [];
  for (let k = 0; k < a.length; k++) {
    const xa = s.ds.images([a[k]], { rgb: true });
    const xb = s.ds.images([b[k]], { rgb: true });
    const r = await interpolate(s.m, xa, xb, {
      frames: p.frames,
      steps: p.steps,
      seed: p.seed + k,
      onProgress: (q) => void progress(q.step, q.total),
    });
    const all = tf.concat([xa, r.images, xb]) as tf.Tensor4D;
    rows.push(samplesPng(all));
    labels.push(`${s.ds.items[a[k]].name} -> ${s.ds.items[b[k]].name}`);
    tf.dispose([xa, xb, all, r.images, r.embeddings, r.endpoints]);
  }
  return { rows, labels };
}

async function textDiffCell(s: Shared, p: Plan, progress: (a: number, b: number) => Promise<void>): Promise<Result> {
  const src = spread(s.ds, p.textDiffs, 1);
  const cats = s.ds.categoryNames;
  const thetas = [0, 0.125, 0.25, 0.375, 0.5];
  const rows: string[] = [];
  const labels: string[] = [];
  const pByTheta: number[][] = thetas.map(() => []);
  for (const [k, i] of src.entries()) {
    const from = cats[s.ds.categoryIds[i]];
    const to = cats[(s.ds.categoryIds[i] + 1) % cats.length];
    const x = s.ds.images([i], { rgb: true });
    const r = await textDiff(s.m, x, {
      source: categoryPrompt(from),
      target: categoryPrompt(to),
      thetas,
      steps: p.steps,
      seed: p.seed + k,
      onProgress: (q) => void progress(q.step, q.total),
    });
    const ti = s.judge.config.categories.indexOf(to);
    const probs = tf.tidy(() => tf.softmax(s.judge.apply(r.images).category).arraySync() as number[][]);
    probs.forEach((q, j) => pByTheta[j].push(q[ti]));
    const all = tf.concat([x, r.images]) as tf.Tensor4D;
    rows.push(samplesPng(all));
    labels.push(`${s.ds.items[i].name}: ${from} -> ${to}`);
    tf.dispose([x, all, r.images, r.embeddings]);
  }
  return { rows, labels, thetas, pTarget: pByTheta.map(mean) };
}

const exp: Experiment<Cell, Result, Shared> = {
  name: 'unclip',
  summary:
    'unCLIP: diversity (judge-LPIPS) and FD vs decoder guidance scale, prior + decoder vs the decoder on text embeddings; variations, interpolations, text diffs',
  settings(opts) {
    const p = plan(opts);
    const judgeFile = `${p.judgeDir}/judge.safetensors`;
    return {
      method:
        "unclip (lib/methods/unclip.ts): prior -> decoder; GLIDE-like baseline: a decoder trained on CLIP text embeddings with the same recipe (weights/text-unet), on the prompt's text embedding" +
        (p.modes.includes('standin') ? "; stand-in: the image decoder on the prompt's text embedding" : ''),
      modes: p.modes,
      prompts: "an emoji of <category>, the judge's 9 categories",
      perPrompt: p.perPrompt,
      scales: p.scales,
      decoderSteps: p.steps,
      prior: p.prior,
      variations: {
        sources: p.variationSources,
        each: p.variationsEach,
        eta: UNCLIP_DEFAULTS.variations.eta,
        decoderScale: UNCLIP_DEFAULTS.decode.decoderScale,
      },
      interpolations: p.interpolations,
      textDiffs: p.textDiffs,
      seed: p.seed,
      real: { source: rel(testSubsetPath(packageRoot())), split: 'all', n: 142 },
      weights: {
        decoder: { file: rel(p.decoderFile), sha256: fileHash(p.decoderFile) },
        // its sha256 is in the glide cells' keys (see the file comment)
        textDecoder: { file: rel(p.textDecoderFile) },
        prior: { file: rel(p.priorFile), sha256: fileHash(p.priorFile) },
        clip: { file: rel(p.clipFile), sha256: fileHash(p.clipFile) },
        judge: { file: rel(judgeFile), sha256: fileHash(judgeFile) },
      },
      extractor:
        "diversity: judge-LPIPS (the LPIPS formula over the judge's block features, unit heads; a stand-in, not comparable with published LPIPS); FD: judge penultimate features (not Inception); category rate: the judge; CLIP score: shipped CLIP",
    } satisfies JsonObject;
  },
  cells(opts) {
    const p = plan(opts);
    const textSha = fileHash(p.textDecoderFile);
    const guidance = (kind: string): Cell[] =>
      p.scales.map((scale): Cell => (kind === 'glide' ? { kind, scale, weights: textSha } : { kind, scale }));
    // the cells that do not use the text-conditioned decoder first, then those that do
    return [
      ...guidance('unclip'),
      { kind: 'variations', scale: 0 },
      { kind: 'interpolation', scale: 0 },
      { kind: 'textdiff', scale: 0 },
      ...p.modes.filter((k) => k !== 'unclip').flatMap(guidance),
    ];
  },
  async setup(_settings, opts) {
    const p = plan(opts);
    const decoder = await loadCondDiffuser(p.decoderFile);
    const textDecoder = await loadCondDiffuser(p.textDecoderFile);
    const { prior, schedule } = await loadPriorModel(p.priorFile);
    const clip = await loadClipModel(p.clipFile);
    const judge = await loadJudge(p.judgeDir);
    const ds = Dataset.load(testSubsetPath(packageRoot()));
    return {
      m: { decoder, prior, priorSchedule: schedule, clip },
      textDecoder,
      judge,
      ds,
      real: ds.images(undefined, { rgb: true }),
    };
  },
  dispose(s) {
    s.m.decoder.unet.dispose();
    s.textDecoder.unet.dispose();
    s.m.prior.dispose();
    s.m.clip.dispose();
    s.judge.dispose();
    s.real.dispose();
    s.priorZ?.dispose();
  },
  async runCell(cell, ctx) {
    const st = ctx.settings as unknown as {
      perPrompt: number;
      decoderSteps: number;
      prior: Plan['prior'];
      variations: { sources: number; each: number };
      interpolations: number;
      textDiffs: number;
      seed: number;
    };
    const q = {
      perPrompt: st.perPrompt,
      steps: st.decoderSteps,
      prior: st.prior,
      variationSources: st.variations.sources,
      variationsEach: st.variations.each,
      interpolations: st.interpolations,
      textDiffs: st.textDiffs,
      frames: UNCLIP_DEFAULTS.interpolate.frames,
      seed: st.seed,
    };
    if (GUIDANCE_KINDS.includes(cell.kind)) return guidanceCell(cell, ctx.shared, q, ctx.progress);
    if (cell.kind === 'variations') return variationsCell(ctx.shared, q, ctx.progress);
    if (cell.kind === 'interpolation') return interpolationCell(ctx.shared, q, ctx.progress);
    if (cell.kind === 'textdiff') return textDiffCell(ctx.shared, q, ctx.progress);
    throw new Error(`experiment unclip: unknown cell kind '${cell.kind}'`);
  },
  merge(results, info) {
    const s = info.settings as unknown as {
      perPrompt: number;
      scales: number[];
      decoderSteps: number;
      prior: { priorSteps: number; priorScale: number };
      modes: string[];
      weights: { decoder: { file: string }; textDecoder: { file: string } };
    };
    const g = results.filter((r) => GUIDANCE_KINDS.includes(r.cell.kind));
    const f = (v: unknown) => (typeof v === 'number' ? v.toFixed(3) : '–');
    const get = (kind: string, scale: number) => g.find((r) => r.cell.kind === kind && r.cell.scale === scale)?.result;
    const rows = s.scales.flatMap((sc) =>
      s.modes.map((k) => {
        const u = get(k, sc);
        return `| ${sc} | ${MODE_LABEL[k]} | ${f(u?.diversity)} | ${f(u?.fd)} | ${f(u?.categoryRate)} | ${f(u?.clipScore)} |`;
      }),
    );
    // along the curve: how diversity and FD change from the lowest to the highest decoder scale, per mode
    const lo = s.scales[0];
    const hi = s.scales[s.scales.length - 1];
    const trend = s.modes.map((k) => {
      const a = get(k, lo);
      const b = get(k, hi);
      const d = (key: string) =>
        typeof a?.[key] === 'number' && typeof b?.[key] === 'number'
          ? ((b[key] as number) - (a[key] as number)).toFixed(3)
          : '–';
      return `| ${MODE_LABEL[k]} | ${d('diversity')} | ${d('fd')} | ${d('categoryRate')} |`;
    });
    const v = results.find((r) => r.cell.kind === 'variations')?.result;
    const td = results.find((r) => r.cell.kind === 'textdiff')?.result;
    const table = [
      `unCLIP on the 9 category prompts, ${s.perPrompt} samples each (decoder ${s.weights.decoder.file}, ${s.decoderSteps} DDIM decoder steps; prior ${s.prior.priorSteps} steps, scale ${s.prior.priorScale}, best of 2), against the GLIDE-like baseline: a decoder trained on CLIP text embeddings with the same recipe (${s.weights.textDecoder.file}), conditioned directly on the prompt's text embedding${s.modes.includes('standin') ? "; and the stand-in used before it (the image decoder fed the prompt's text embedding)" : ''}. Same x_T and seeds in every mode. Diversity = mean pairwise judge-LPIPS among a prompt's samples (a stand-in for LPIPS); FD in judge features to the 142 subset images (not Inception FID).`,
      info.missing.length ? `\nPartial: ${info.missing.length} cells missing (${info.missing.join(', ')}).\n` : '',
      '| decoder scale | mode | diversity | FD | judged prompt category | CLIP score |',
      '| ---: | --- | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      `Change from decoder scale ${lo} to ${hi}:`,
      '',
      '| mode | Δ diversity | Δ FD | Δ judged category |',
      '| --- | ---: | ---: | ---: |',
      ...trend,
      '',
      "Paper (Fig. 9, MS-COCO): as guidance grows GLIDE's samples collapse to one mode while unCLIP keeps its semantic diversity; zero-shot FID 10.39 (unCLIP, diffusion prior) vs 12.24 (GLIDE).",
      '',
      '| manipulation | ours | paper |',
      '| --- | ---: | --- |',
      v
        ? `| variations: judged the source's category (${v.sources} held-out sources x ${v.each}, DDIM eta 1, scale 3) | ${f(v.categoryAgreement)} (sources themselves: ${f(v.sourceAgreement)}) | keep the semantics (qualitative, Fig. 3) |`
        : '| variations | – | |',
      v
        ? `| variations: mean pairwise judge-LPIPS among a source's variations | ${f(v.diversity)} | vary non-essential details |`
        : null,
      td
        ? `| text diff: judge P(target) at theta ${(td.thetas as number[]).join(' / ')} (${(td.rows as string[]).length} images) | ${(td.pTarget as number[]).map(f).join(' / ')} | moves toward the target text (qualitative, Fig. 5) |`
        : '| text diff | – | |',
    ]
      .filter((l) => l !== null)
      .join('\n')
      .replace(/\n{3,}/g, '\n\n');
    const curve = g.map((r) => ({
      mode: MODE_LABEL[r.cell.kind],
      scale: r.cell.scale,
      diversity: r.result.diversity as number,
      fd: r.result.fd as number,
      categoryRate: r.result.categoryRate as number,
      clipScore: r.result.clipScore as number,
    }));
    const json = {
      guidance: curve,
      variations: v
        ? {
            categoryAgreement: v.categoryAgreement,
            sourceAgreement: v.sourceAgreement,
            diversity: v.diversity,
            sources: v.sources,
            each: v.each,
          }
        : null,
      textDiff: td ? { thetas: td.thetas, pTarget: td.pTarget } : null,
    };
    const files: Record<string, string | Uint8Array> = curve.length
      ? plotFiles({ guidance: guidancePlot(curve, s.perPrompt) })
      : {};
    const sheet = g.map((r) => ({
      label: `${r.cell.kind} scale ${r.cell.scale}: first sample per category prompt`,
      png: r.result.samples as string,
    }));
    if (sheet.length)
      files['samples.png'] = stackRows(sheet, { title: 'UNCLIP VS TEXT-CONDITIONED DECODER, BY DECODER SCALE' });
    if (v)
      files['variations.png'] = stackRows(
        (v.rows as string[]).map((png, i) => ({ label: `source ${i}, then ${v.each} variations`, png })),
        { title: 'UNCLIP VARIATIONS OF HELD-OUT EMOJI' },
      );
    const it = results.find((r) => r.cell.kind === 'interpolation')?.result;
    if (it)
      files['interpolation.png'] = stackRows(
        (it.rows as string[]).map((png, i) => ({ label: `a, slerp frames, b: ${(it.labels as string[])[i]}`, png })),
        { title: 'UNCLIP INTERPOLATIONS' },
      );
    if (td)
      files['textdiff.png'] = stackRows(
        (td.rows as string[]).map((png, i) => ({
          label: `input, theta ${(td.thetas as number[]).join(' ')}: ${(td.labels as string[])[i]}`,
          png,
        })),
        { title: 'UNCLIP TEXT DIFFS' },
      );
    return { table, json, files };
  },
};
export default exp;

function guidancePlot(pts: { mode: string; scale: number; diversity: number; fd: number }[], per: number): PlotSpec {
  const panel = (y: string, title: string) => ({
    width: 320,
    height: 260,
    data: { values: pts },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'scale', type: 'quantitative', title: 'decoder guidance scale' },
      y: { field: y, type: 'quantitative', title, scale: { zero: false } },
      color: { field: 'mode', type: 'nominal', title: null, legend: { orient: 'bottom' } },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'unCLIP: diversity and FD vs decoder guidance',
      subtitle: `9 category prompts x ${per} samples; judge features (stand-ins for LPIPS and Inception)`,
    },
    hconcat: [
      panel('diversity', 'diversity: mean pairwise judge-LPIPS'),
      panel('fd', 'FD to real emoji (judge features)'),
    ],
  } as PlotSpec;
}
