/**
 * `sdg`: Semantic Diffusion Guidance (Liu et al., "More Control for Free!") against ILVR, at emoji
 * scale, with the shipped unet, noisy CLIP, CLIP and judge. Inputs are held-out emoji (the test split
 * of the full prepared dataset emoji32; `--quick` and `--param data=subset` use the committed test
 * subset). Parts, one cell each per (method, reference or category):
 *
 *   image   for each of R references (distinct emoji, one vendor's artwork each, spread over the
 *           judge's categories: `distinctReferences`), K samples that share their x_T across methods:
 *           'sdg' (image-content guidance: cosine of noisy-CLIP embeddings of x_t and the noised
 *           reference), 'ilvr-N' (ILVR low-pass replacement at downsampling factor N), 'unguided'.
 *           Merged per method: FD to held-out real images (judge features), diversity (mean
 *           pairwise judge-LPIPS between the K samples of one reference), and top-1/5 retrieval:
 *           each reference queries the samples of all references (judge features, cosine), a hit
 *           when one of its own samples is among the k nearest (the paper's Table 1 columns).
 *   text    for each category, K samples toward its prompt: 'xt' (noisy CLIP on x_t, SDG), 'x0'
 *           (plain CLIP on the predicted x0: the paper's ablation of the self-supervised noisy
 *           CLIP) and 'unguided' (same x_T): judge category success and P(target).
 *   style   Gram-matrix (style) guidance toward a reference; 'multi' text + image guidance (the
 *           reference's content, another category's prompt): grids plus their judge figures.
 *   real    the judge features of the held-out comparison set FD is measured against.
 *
 * Writes table.md, results.json, retrieval.svg/.png (the plot: FD, diversity and top-1 per method)
 * and sample sheets (image.png, text.png, style.png).
 * `--param unet=PATH --param judge=DIR --param data=emoji32|subset --param scale=S` change the inputs.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { CellRecord, Experiment, GridOptions, JsonObject } from '../lib/experiments/grid.js';
import { fmt, judgeFileOf, mean, relPath as rel, weightsEntry } from '../lib/experiments/setup.js';
import { plotFiles, type PlotSpec } from '../lib/experiments/plot.js';
import { samplesPng, stackRows } from '../lib/experiments/samples.js';
import { Dataset } from '../lib/data/dataset.js';
import { loadDataset, testSubsetPath } from '../lib/data/index.js';
import { loadClipModel, loadNoisyClipModel, loadUNetDiffuser, resolveWeights } from '../lib/models/load.js';
import { SDG_DEFAULTS, sdg } from '../lib/methods/sdg.js';
import { sample, startNoise } from '../lib/methods/sample.js';
import { diffusionModelOf, fullChain, type Diffuser } from '../lib/methods/common.js';
import { sampleDdpm } from '../samplers/ddpm.js';
import { ilvr } from '../guidance/ilvr.js';
import {
  frechetDistance,
  judgeLpips,
  lpips,
  pairwiseLpips,
  topKRetrieval,
  cosineMatrix,
} from '../lib/metrics/index.js';
import { loadJudge } from '../lib/eval/unet.js';
import { categoryPrompt } from '../lib/train/tasks/clip.js';
import type { Judge } from '../nets/judge/model.js';
import type { CLIP, NoisyCLIPImageEncoder } from '../nets/clip/index.js';
import { packageRoot, weightsPath } from '../lib/paths.js';

interface Cell {
  [k: string]: string | number;
  part: 'real' | 'image' | 'text' | 'style' | 'multi';
  method: string;
  index: number;
}
type Result = JsonObject;
interface Shared {
  unet: Diffuser;
  clip: CLIP;
  noisy: NoisyCLIPImageEncoder;
  judge: Judge;
  ds: Dataset;
}

/** The paper's Table 1 (FFHQ, 256 px; ILVR at N = 32), from ../shared/papers.md. */
const PAPER = {
  ilvr: { label: 'ILVR (image guidance, N = 32)', fid: 17.15, lpips: 0.439, top1: 0.205, top5: 0.416 },
  sdgImage: { label: 'SDG (image guidance)', fid: 14.37, lpips: 0.583, top1: 0.52, top5: 0.742 },
  sdgText: { label: 'SDG (text guidance)', fid: 28.38, lpips: 0.61, top1: 0.553, top5: 0.795 },
};

function plan(opts: GridOptions) {
  const q = opts.quick;
  const int = (k: string, d: number) => {
    const v = Number(opts.params[k] ?? d);
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`experiment sdg: --param ${k}=${opts.params[k]} must be a positive integer`);
    return v;
  };
  const data = opts.params.data ?? (q ? 'subset' : 'emoji32');
  if (data !== 'subset' && data !== 'emoji32')
    throw new Error(
      `experiment sdg: --param data=${data}: use emoji32 (the full prepared dataset) or subset (test/data/emoji32-subset.json)`,
    );
  return {
    data,
    refs: int('refs', q ? 2 : 8),
    k: int('k', q ? 2 : 6),
    textK: int('textK', q ? 2 : 6),
    categories: int('categories', q ? 2 : 9),
    steps: int('steps', q ? 10 : 25),
    factors: q ? [4, 8] : [4, 8, 16],
    styleRefs: int('styleRefs', q ? 1 : 4),
    realN: int('realN', q ? 32 : 128),
    // one scale for every arm, so that they compare: the one SDG's noisy-CLIP arm ('xt') was tuned at
    scale: Number(opts.params.scale ?? SDG_DEFAULTS.scale.xt),
    // Gram guidance at SDG_DEFAULTS.gramScale (1e4) and scale 200 diverged (NaN at step 6 of 25) on one
    // of four references (1f3aa/google); 3e3 ran on all four, as did scale 100 at 1e4.
    styleGramScale: Number(opts.params.styleGramScale ?? 3e3),
    unetFile: resolveWeights('unet', opts.params.unet),
    judgeDir: opts.params.judge ?? weightsPath('judge'),
  };
}

function openData(data: string): Dataset {
  if (data === 'subset') {
    const p = testSubsetPath(packageRoot());
    if (!existsSync(p)) throw new Error(`experiment sdg needs the committed test subset ${p}; restore it with git`);
    return Dataset.load(p);
  }
  return loadDataset('emoji32');
}

/**
 * `n` held-out references, each a different emoji in one vendor's artwork, spread over the categories:
 * reference j takes category floor(j * C / n) of `categories` (the judge's, in order) and vendor
 * j mod V (the dataset's vendors, in order); of that category's test items in that vendor whose emoji
 * (the id before '/') is not taken yet, the middle one in dataset order. When there is none: the same
 * category in any vendor, then any category.
 */
export function distinctReferences(ds: Dataset, n: number, categories: string[]): number[] {
  const test = ds.indicesOf('test');
  const emoji = (i: number) => ds.items[i].id.split('/')[0];
  const taken = new Set<string>();
  const out: number[] = [];
  for (let j = 0; j < n; j++) {
    const cat = categories[Math.floor((j * categories.length) / n)];
    const vendor = ds.vendorNames[j % ds.vendorNames.length];
    const free = test.filter((i) => !taken.has(emoji(i)));
    const tiers = [
      free.filter((i) => ds.categories[i] === cat && ds.vendors[i] === vendor),
      free.filter((i) => ds.categories[i] === cat),
      free,
    ];
    const pool = tiers.find((t) => t.length);
    if (!pool)
      throw new Error(`experiment sdg: asked for ${n} distinct held-out emoji, ${ds.name}'s test split has ${j}`);
    const pick = pool[Math.floor(pool.length / 2)];
    taken.add(emoji(pick));
    out.push(pick);
  }
  return out;
}

const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
const rows = (t: tf.Tensor2D) => (t.arraySync() as number[][]).map((r) => r.map(r4));

const exp: Experiment<Cell, Result, Shared> = {
  name: 'sdg',
  summary:
    'SDG image-content guidance vs ILVR (FD, judge-LPIPS diversity, top-k retrieval), text guidance with noisy vs plain CLIP, style and text+image grids',
  settings(opts) {
    const p = plan(opts);
    const judgeFile = judgeFileOf('sdg', p.judgeDir);
    const clipFile = resolveWeights('clip');
    const noisyFile = resolveWeights('noisy-clip');
    const ds = openData(p.data);
    const judgeCfg = JSON.parse(readFileSync(`${p.judgeDir}/config.json`, 'utf8')) as { categories: string[] };
    const refIds = distinctReferences(ds, p.refs, judgeCfg.categories).map((i) => ds.items[i].id);
    // style / text + image references: spread over the distinct image references (distinct emoji, vendors alternating)
    const styleIds = Array.from(
      { length: p.styleRefs },
      (_, j) => refIds[Math.floor((j * refIds.length) / p.styleRefs)],
    );
    return {
      method:
        'sdg (DDPM ancestral, gradient shifts the mean) vs ILVR (low-pass replacement) vs unguided, same x_T per reference',
      steps: p.steps,
      scale: p.scale,
      styleGramScale: p.styleGramScale,
      samplesPerReference: p.k,
      samplesPerCategory: p.textK,
      ilvrFactors: p.factors,
      data: {
        dataset: p.data === 'subset' ? rel(testSubsetPath(packageRoot())) : 'emoji32 (lib/data loadDataset)',
        split: 'test',
        references: refIds,
        referenceRule:
          "distinct emoji, one vendor each: reference j from category floor(j * C / R) of the judge's C categories and vendor j mod V, the middle of that category's free test items",
        styleReferences: styleIds,
        realN: p.realN,
      },
      categories: judgeCfg.categories.slice(0, p.categories),
      weights: {
        unet: weightsEntry(p.unetFile),
        clip: weightsEntry(clipFile),
        noisyClip: weightsEntry(noisyFile),
        judge: weightsEntry(judgeFile),
      },
      extractor:
        'judge (weights/judge): pooled features for FD and retrieval, categories for success; judge-LPIPS (LPIPS formula over the judge block outputs, unit weights; not LPIPS) for diversity',
    } satisfies JsonObject;
  },
  cells(opts) {
    const p = plan(opts);
    const methods = ['sdg', ...p.factors.map((f) => `ilvr-${f}`), 'unguided'];
    const out: Cell[] = [{ part: 'real', method: 'held-out', index: 0 }];
    for (const m of methods) for (let r = 0; r < p.refs; r++) out.push({ part: 'image', method: m, index: r });
    for (const m of ['xt', 'x0', 'unguided'])
      for (let c = 0; c < p.categories; c++) out.push({ part: 'text', method: m, index: c });
    for (let r = 0; r < p.styleRefs; r++) {
      out.push({ part: 'style', method: 'gram', index: r });
      out.push({ part: 'multi', method: 'text+image', index: r });
    }
    return out;
  },
  async setup(settings, opts) {
    const p = plan(opts);
    return {
      unet: await loadUNetDiffuser(p.unetFile),
      clip: await loadClipModel(),
      noisy: await loadNoisyClipModel(),
      judge: await loadJudge(p.judgeDir),
      ds: openData(p.data),
    };
  },
  dispose(s) {
    s.unet.unet.dispose();
    s.clip.dispose();
    s.noisy.dispose();
    s.judge.dispose();
  },
  async runCell(cell, ctx) {
    const { unet, clip, noisy, judge, ds } = ctx.shared;
    const st = ctx.settings as {
      steps: number;
      scale: number;
      styleGramScale: number;
      samplesPerReference: number;
      samplesPerCategory: number;
      categories: string[];
      data: { references: string[]; styleReferences: string[]; realN: number };
    };
    const net = judgeLpips(judge);
    const byId = (id: string) => {
      const i = ds.items.findIndex((it) => it.id === id);
      if (i < 0)
        throw new Error(
          `experiment sdg: held-out item ${id} is not in ${ds.name}; the settings were made with another dataset`,
        );
      return i;
    };
    const onProgress = (q: { step: number; total: number }) => void ctx.progress(q.step, q.total);
    const probs = (x: tf.Tensor4D) => tf.tidy(() => tf.softmax(judge.apply(x).category).arraySync() as number[][]);
    const cos = (x: tf.Tensor4D, ref: tf.Tensor4D) => {
      const a = judge.features(x);
      const b = judge.features(ref);
      const c = Array.from(cosineMatrix(a, b)).map(r4);
      tf.dispose([a, b]);
      return c;
    };
    const keepSheet = (ref: tf.Tensor4D | null, x: tf.Tensor4D) => {
      const all = ref ? (tf.concat([ref, x]) as tf.Tensor4D) : x;
      try {
        return samplesPng(all);
      } finally {
        if (ref) all.dispose();
      }
    };
    if (cell.part === 'real') {
      const test = ds.indicesOf('test');
      const n = Math.min(st.data.realN, test.length);
      const idx = Array.from({ length: n }, (_, j) => test[Math.floor((j * test.length) / n)]);
      const x = ds.images(idx, { rgb: true });
      const f = judge.features(x);
      const out = { n, features: rows(f) };
      tf.dispose([x, f]);
      return out;
    }
    if (cell.part === 'image') {
      const ref = ds.images([byId(st.data.references[cell.index])], { rgb: true });
      const n = st.samplesPerReference;
      const seed = 100 + cell.index;
      let images: tf.Tensor4D;
      if (cell.method === 'sdg') {
        images = (
          await sdg(
            unet,
            { noisy, image: clip, text: clip },
            { image: ref, imageMode: 'content', n, steps: st.steps, scale: st.scale, seed, onProgress },
          )
        ).images;
      } else if (cell.method.startsWith('ilvr-')) {
        const factor = Number(cell.method.slice(5));
        const x = startNoise(unet, n, seed);
        const out = await sampleDdpm(diffusionModelOf(unet), x, fullChain(unet.schedule, st.steps), {
          seed: seed + 1,
          refSeed: seed + 2,
          clipDenoised: true,
          stepHook: ilvr(ref, factor),
          callback: (s) => onProgress({ step: s.step + 1, total: s.total }),
        });
        images = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
        tf.dispose([x, out]);
      } else {
        images = (await sample(unet, { n, steps: st.steps, sampler: SDG_DEFAULTS.sampler, seed, onProgress })).images;
      }
      const f = judge.features(images);
      const rf = judge.features(ref);
      const refs = tf.tidy(() => tf.tile(ref, [n, 1, 1, 1])) as tf.Tensor4D;
      const out = {
        features: rows(f),
        refFeature: rows(rf)[0],
        diversityPairs: n > 1 ? pairwiseLpips(images, net).map(r4) : [],
        lpipsToRef: lpips(images, refs, net).map(r4),
        cosToRef: cos(images, ref),
        samples: keepSheet(ref, images),
      };
      tf.dispose([images, f, rf, ref, refs]);
      return out;
    }
    if (cell.part === 'text') {
      const cat = st.categories[cell.index];
      const target = judge.config.categories.indexOf(cat);
      const n = st.samplesPerCategory;
      const seed = 500 + cell.index;
      const images =
        cell.method === 'unguided'
          ? (await sample(unet, { n, steps: st.steps, sampler: SDG_DEFAULTS.sampler, seed, onProgress })).images
          : (
              await sdg(
                unet,
                { noisy, image: clip, text: clip },
                {
                  text: categoryPrompt(cat),
                  on: cell.method as 'xt' | 'x0',
                  n,
                  steps: st.steps,
                  scale: st.scale,
                  seed,
                  onProgress,
                },
              )
            ).images;
      const p = probs(images);
      const out = {
        category: cat,
        prompt: categoryPrompt(cat),
        pTarget: p.map((q) => r4(q[target])),
        hit: p.map((q) => (q.indexOf(Math.max(...q)) === target ? 1 : 0)),
        samples: keepSheet(null, images),
      };
      images.dispose();
      return out;
    }
    // style / multi: one reference, K samples
    const ref = ds.images([byId(st.data.styleReferences[cell.index])], { rgb: true });
    const n = st.samplesPerReference;
    const seed = 900 + cell.index;
    const refCat = ds.categories[byId(st.data.styleReferences[cell.index])];
    const cats = judge.config.categories;
    const other = cats[(cats.indexOf(refCat) + 1) % cats.length];
    const r =
      cell.part === 'style'
        ? await sdg(
            unet,
            { noisy, image: clip, text: clip },
            {
              image: ref,
              imageMode: 'style',
              gramScale: st.styleGramScale,
              n,
              steps: st.steps,
              scale: st.scale,
              seed,
              onProgress,
            },
          )
        : await sdg(
            unet,
            { noisy, image: clip, text: clip },
            {
              image: ref,
              imageMode: 'content',
              text: categoryPrompt(other),
              n,
              steps: st.steps,
              scale: st.scale,
              seed,
              onProgress,
            },
          );
    const base = (await sample(unet, { n, steps: st.steps, sampler: SDG_DEFAULTS.sampler, seed })).images;
    const p = probs(r.images);
    const pb = probs(base);
    const refs = tf.tidy(() => tf.tile(ref, [n, 1, 1, 1])) as tf.Tensor4D;
    const ti = cats.indexOf(other);
    const out = {
      reference: refCat,
      text: cell.part === 'multi' ? categoryPrompt(other) : null,
      pText: cell.part === 'multi' ? p.map((q) => r4(q[ti])) : null,
      pTextUnguided: cell.part === 'multi' ? pb.map((q) => r4(q[ti])) : null,
      cosToRef: cos(r.images, ref),
      cosToRefUnguided: cos(base, ref),
      lpipsToRef: lpips(r.images, refs, net).map(r4),
      lpipsToRefUnguided: lpips(base, refs, net).map(r4),
      samples: keepSheet(ref, tf.tidy(() => tf.concat([r.images, base])) as tf.Tensor4D),
    };
    tf.dispose([r.images, base, ref, refs]);
    return out;
  },
  merge(results, info) {
    const s = info.settings as {
      steps: number;
      scale: number;
      samplesPerReference: number;
      samplesPerCategory: number;
      ilvrFactors: number[];
      categories: string[];
      data: { references: string[] };
    };
    const pick = (part: string, method?: string) =>
      results.filter((r) => r.cell.part === part && (method === undefined || r.cell.method === method));
    const real = pick('real')[0]?.result as { n: number; features: number[][] } | undefined;
    const methods = ['sdg', ...s.ilvrFactors.map((f) => `ilvr-${f}`), 'unguided'];
    const label = (m: string) =>
      m === 'sdg' ? 'SDG (image content)' : m === 'unguided' ? 'unguided (same x_T)' : `ILVR, N = ${m.slice(5)}`;
    const imageRows = methods.map((m) => {
      const rs = pick('image', m);
      const feats: number[][] = [];
      const owner: number[] = [];
      const refFeats: number[][] = [];
      const refOf: number[] = [];
      for (const r of rs) {
        const res = r.result as { features: number[][]; refFeature: number[] };
        res.features.forEach((f) => (feats.push(f), owner.push(r.cell.index)));
        refFeats.push(res.refFeature);
        refOf.push(r.cell.index);
      }
      const fd = real && feats.length > 1 ? frechetDistance(feats, real.features) : null;
      const div = mean(rs.flatMap((r) => r.result.diversityPairs as number[]));
      const ks = [1, 5].filter((k) => k <= feats.length);
      const ret =
        refFeats.length && feats.length
          ? topKRetrieval(refFeats, feats, { queryLabels: refOf, galleryLabels: owner }, ks)
          : [];
      return {
        method: m,
        label: label(m),
        references: rs.length,
        samples: feats.length,
        fd,
        diversity: Number.isNaN(div) ? null : div,
        top1: ret[0] ?? null,
        top5: ret[1] ?? null,
        lpipsToRef: mean(rs.flatMap((r) => r.result.lpipsToRef as number[])),
        cosToRef: mean(rs.flatMap((r) => r.result.cosToRef as number[])),
      };
    });
    const paperOf = (m: string) => (m === 'sdg' ? PAPER.sdgImage : m === 'ilvr-4' ? PAPER.ilvr : null);
    const textModes = ['xt', 'x0', 'unguided'];
    const textLabel = (m: string) =>
      m === 'xt'
        ? 'SDG text, noisy CLIP on x_t'
        : m === 'x0'
          ? 'SDG text, plain CLIP on predicted x0'
          : 'unguided (same x_T)';
    const textRows = textModes.map((m) => {
      const rs = pick('text', m);
      return {
        mode: m,
        label: textLabel(m),
        categories: rs.length,
        samples: rs.reduce((a, r) => a + (r.result.hit as number[]).length, 0),
        success: mean(rs.flatMap((r) => r.result.hit as number[])),
        pTarget: mean(rs.flatMap((r) => r.result.pTarget as number[])),
      };
    });
    const perCategory = s.categories.map((c, i) => ({
      category: c,
      ...Object.fromEntries(
        textModes.map((m) => [
          m,
          (() => {
            const r = pick('text', m).find((x) => x.cell.index === i);
            return r ? mean(r.result.hit as number[]) : null;
          })(),
        ]),
      ),
    }));
    const extra = (part: string) =>
      pick(part).map((r) => ({
        index: r.cell.index,
        reference: r.result.reference,
        text: r.result.text,
        pText: r.result.pText ? mean(r.result.pText as number[]) : null,
        pTextUnguided: r.result.pTextUnguided ? mean(r.result.pTextUnguided as number[]) : null,
        cosToRef: mean(r.result.cosToRef as number[]),
        cosToRefUnguided: mean(r.result.cosToRefUnguided as number[]),
        lpipsToRef: mean(r.result.lpipsToRef as number[]),
        lpipsToRefUnguided: mean(r.result.lpipsToRefUnguided as number[]),
      }));
    const style = extra('style');
    const multi = extra('multi');
    const R = s.data.references.length;
    const table = [
      `SDG vs ILVR on ${R} held-out emoji references, ${s.samplesPerReference} samples each (${s.steps} DDPM steps, SDG scale ${s.scale}); FD to ${real?.n ?? '?'} held-out images and retrieval in judge features; diversity = mean pairwise judge-LPIPS (not LPIPS) between samples of one reference. Paper: FFHQ 256 px, FID with Inception, LPIPS, ILVR at N = 32 (32x downsampling; ours at 32 px: N = 4 gives the same 8x8 low-pass).`,
      '',
      '| method | FD (judge) | diversity (judge-LPIPS) | top-1 | top-5 | judge-LPIPS to ref | judge cos to ref | paper FID | paper LPIPS | paper top-1 | paper top-5 |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...imageRows.map((r) => {
        const p = paperOf(r.method);
        return `| ${r.label} | ${fmt(r.fd, 2)} | ${fmt(r.diversity)} | ${fmt(r.top1)} | ${fmt(r.top5)} | ${fmt(r.lpipsToRef)} | ${fmt(r.cosToRef)} | ${p ? p.fid : ''} | ${p ? p.lpips : ''} | ${p ? p.top1 : ''} | ${p ? p.top5 : ''} |`;
      }),
      '',
      `Retrieval: each reference queries all ${R * s.samplesPerReference} samples of its method; a hit when one of its own ${s.samplesPerReference} is among the k nearest (chance: top-1 ${fmt(1 / R)}, top-5 ${fmt(chanceTopK(R * s.samplesPerReference, s.samplesPerReference, 5))}).`,
      '',
      `References: ${R} distinct emoji, each in one vendor's artwork, spread over the judge's categories (reference j: category floor(j * C / R) of the judge's C categories, vendor j mod V of the dataset's vendors, the middle of that category's test items of that vendor whose emoji is not taken; chosen deterministically by distinctReferences in experiments/sdg.ts): ${s.data.references.join(', ')}.`,
      '',
      `Text guidance toward each category prompt ("an emoji of ..."), ${s.samplesPerCategory} samples per category, ${s.categories.length} categories; success = the judge's top category is the prompt's (chance ${fmt(1 / 9)}). Paper (SDG text guidance, FFHQ): top-1 ${PAPER.sdgText.top1}, top-5 ${PAPER.sdgText.top5} (retrieval of the text, not a classifier).`,
      '',
      '| guidance | samples | judge success | judge P(target) |',
      '| --- | ---: | ---: | ---: |',
      ...textRows.map((r) => `| ${r.label} | ${r.samples} | ${fmt(r.success)} | ${fmt(r.pTarget)} |`),
      '',
      'Style (Gram) and text + image guidance, vs unguided samples from the same x_T (judge features; sheets in style.png):',
      '',
      '| guidance | reference | text | judge cos to ref (guided / unguided) | judge-LPIPS to ref (guided / unguided) | judge P(text category) (guided / unguided) |',
      '| --- | --- | --- | ---: | ---: | ---: |',
      ...[
        ...style.map((r) => ({ ...r, g: 'style (Gram)' })),
        ...multi.map((r) => ({ ...r, g: 'text + image content' })),
      ].map(
        (r) =>
          `| ${r.g} | ${r.reference} | ${r.text ?? '–'} | ${fmt(r.cosToRef)} / ${fmt(r.cosToRefUnguided)} | ${fmt(r.lpipsToRef)} / ${fmt(r.lpipsToRefUnguided)} | ${r.pText === null ? '–' : `${fmt(r.pText)} / ${fmt(r.pTextUnguided)}`} |`,
      ),
    ].join('\n');
    const json = { image: imageRows, text: textRows, perCategory, style, multi, paper: PAPER, realN: real?.n ?? null };
    const files: Record<string, string | Uint8Array> = plotFiles({ comparison: comparisonPlot(imageRows, textRows) });
    const sheet = (part: string, lab: (r: CellRecord<Cell, Result>) => string, title: string) => {
      const rs = pick(part).filter((r) => typeof r.result.samples === 'string');
      if (rs.length)
        files[`${part}.png`] = stackRows(
          rs.map((r) => ({ label: lab(r), png: r.result.samples as string })),
          { title },
        );
    };
    sheet(
      'image',
      (r) => `${label(r.cell.method)}: ref ${r.cell.index} (first tile), samples`,
      'SDG IMAGE GUIDANCE VS ILVR',
    );
    sheet('text', (r) => `${textLabel(r.cell.method)}: ${r.result.category}`, 'SDG TEXT GUIDANCE');
    const sm = [...pick('style'), ...pick('multi')].filter((r) => typeof r.result.samples === 'string');
    if (sm.length)
      files['style.png'] = stackRows(
        sm.map((r) => ({
          label:
            r.cell.part === 'style'
              ? `style (gram) of ref (first), then ${s.samplesPerReference} guided, ${s.samplesPerReference} unguided`
              : `content of ref + "${r.result.text}", then guided, unguided`,
          png: r.result.samples as string,
        })),
        { title: 'SDG STYLE AND TEXT+IMAGE GUIDANCE' },
      );
    return { table, json, files };
  },
};
export default exp;

/** P(at least one of `rel` relevant items among k drawn from `n`): retrieval at chance. */
function chanceTopK(n: number, rel: number, k: number): number {
  if (k >= n) return 1;
  let miss = 1;
  for (let i = 0; i < k; i++) miss *= (n - rel - i) / (n - i);
  return 1 - Math.max(0, miss);
}

/** The plot: per method FD, diversity, top-1 (image guidance), and the text-guidance success rates. */
function comparisonPlot(
  image: { label: string; fd: number | null; diversity: number | null; top1: number | null }[],
  text: { label: string; success: number }[],
): PlotSpec {
  const long = image
    .flatMap((r) => [
      { method: r.label, metric: 'FD, judge (lower = better)', value: r.fd },
      { method: r.label, metric: 'diversity, judge-LPIPS', value: r.diversity },
      { method: r.label, metric: 'top-1 retrieval of the ref', value: r.top1 },
    ])
    .filter((d) => d.value !== null && Number.isFinite(d.value));
  const bar = (title: string, values: object[], y: string) => ({
    title: { text: title, fontSize: 12 },
    data: { values },
    mark: { type: 'bar' as const },
    width: 170,
    height: 170,
    encoding: {
      y: { field: y, type: 'nominal' as const, title: null, sort: null, axis: { labelLimit: 220 } },
      x: { field: 'value', type: 'quantitative' as const, title: null },
      color: { field: y, type: 'nominal' as const, legend: null, sort: null },
    },
  });
  const metrics = [...new Set(long.map((d) => d.metric))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'SDG vs ILVR (image guidance) and text guidance on held-out emoji',
      subtitle: 'judge features; diversity is judge-LPIPS, not LPIPS',
    },
    vconcat: [
      {
        hconcat: metrics.map((m) =>
          bar(
            m,
            long.filter((d) => d.metric === m),
            'method',
          ),
        ),
        resolve: { axis: { y: 'independent' } },
      },
      bar(
        'text guidance: judge success (top category = prompt)',
        text
          .filter((t) => Number.isFinite(t.success))
          .map((t) => ({ mode: t.label.replace('SDG text, ', ''), value: t.success })),
        'mode',
      ),
    ],
  } as PlotSpec;
}
