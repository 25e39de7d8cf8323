/**
 * `diffguide eval methods`: issue 14's goals for every method, measured on the shipped weights with
 * the judge (a classifier trained on real images only, never used for guidance). One fixed
 * protocol (`METHODS_PROTOCOL`: n, steps, seeds, inputs), so that two runs on the same weights give
 * the same figures and two sets of weights are compared on equal terms. Inputs are held-out emoji
 * of the full prepared dataset (the `emoji32` split), never training images.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import { weightsPath } from '../paths.js';
import type { Judge } from '../../nets/judge/model.js';
import {
  loadClipModel,
  loadCondDiffuser,
  loadNoisyClipModel,
  loadPriorModel,
  loadUNetDiffuser,
} from '../models/load.js';
import type { Diffuser } from '../models/diffuser.js';
import { sample } from '../methods/sample.js';
import { sdg, type SDGOptions } from '../methods/sdg.js';
import * as dclip from '../methods/diffusionclip.js';
import * as unclip from '../methods/unclip.js';
import { imagic } from '../methods/imagic.js';
import { judgeSamples, loadJudge } from './unet.js';
import { judgeProbs } from './judge.js';
import { categoryPrompt } from '../data/prompts.js';
import { frechetDistanceOfFeatures } from '../metrics/frechet.js';
import { ssim } from '../metrics/image.js';
import { evalUnclipPrompts } from './unclip.js';
import type { Bar } from '../metrics/clip-dataset.js';
import { checkCount } from '../options.js';

/** A category-changing edit the judge can score: inputs of `from`, text toward `to`. */
export interface CategoryEdit {
  from: string;
  to: string;
}

/**
 * The edits of the DiffusionCLIP bar. The examples (grinning -> angry face, cat -> dog face,
 * red -> blue heart) stay inside one judge category, which the judge cannot tell apart; these cross
 * categories, so "judged the target" has a meaning.
 */
export const DIFFUSIONCLIP_EDITS: readonly CategoryEdit[] = [
  { from: 'Smileys & Emotion', to: 'Animals & Nature' },
  { from: 'Animals & Nature', to: 'Food & Drink' },
  { from: 'Food & Drink', to: 'Objects' },
];

/**
 * The fixed protocol. Changing a number here changes what the bars mean: say so in the model cards.
 * The methods' own settings (SDG's steps and scale, DiffusionCLIP's fine-tune, Imagic's etas and
 * steps) are not here: each runs with its defaults (what it does when called without options), which
 * the report records.
 * - unet: the 1,000 samples by DPM-Solver++(2M) at 15 log-SNR steps: the ODE DDIM (eta 0)
 *   solves, to second order (test/eval-methods.test.ts: on an exact Gaussian-mixture denoiser it lands
 *   nearer DDIM-1000 than DDIM-30 does; at first order it is DDIM). The model cards' unet bars sample
 *   by DDIM 50 steps; no side-by-side of the two samplers on the shipped UNet is recorded.
 * - sdg: 4 samples per category prompt (36); the unguided baseline is `sample` with the same seeds and
 *   SDG's sampler and steps, i.e. the same x_T and step noise without the guidance.
 */
export const METHODS_PROTOCOL = {
  unet: { n: 1000, sampler: 'dpm2m', steps: 15, seed: 0 },
  sdg: { perCategory: 4, seed: 0 },
  diffusionclip: { edits: DIFFUSIONCLIP_EDITS, inputs: 16, trainImages: 4, seed: 0 },
  unclip: { perCategory: 4, variationSources: 18, variationsEach: 4, seed: 0 },
  imagic: { pairs: 8, seed: 0 },
} as const;

export const METHOD_SECTIONS = ['unet', 'sdg', 'diffusionclip', 'unclip', 'imagic'] as const;
export type MethodSection = (typeof METHOD_SECTIONS)[number];

/**
 * Method settings other than their defaults, to compare settings on this protocol (the CLI's
 * `eval methods --sdg-scale`, `--unclip-decoder-scale`, ...). An unset entry is the method's default
 * (`SDG_DEFAULTS`, `UNCLIP_DEFAULTS`), checked by its resolve function; each section's `settings`
 * record what ran.
 */
export interface MethodsEvalOverrides {
  sdg?: Pick<SDGOptions, 'scale' | 'steps' | 'on' | 'sampler' | 'normalizeGrad'>;
  unclip?: Pick<unclip.DecodeOptions, 'decoderScale'> &
    Pick<unclip.PriorOptions, 'priorScale' | 'bestOf'> & {
      /** The variations' DDIM eta (default `UNCLIP_DEFAULTS.variations.eta`). */
      variationEta?: number;
      /** Variations from the source's DDIM-inverted x_T (default `UNCLIP_DEFAULTS.variations.invert`). */
      variationInvert?: boolean;
    };
  /**
   * DiffusionCLIP's fine-tune and edit (`DIFFUSIONCLIP_DEFAULTS`; the fine-tune's t0 is also the
   * edit's), and `inputs`: fewer held-out inputs per edit than the protocol's, for quick comparisons
   * (the report's protocol records it).
   */
  diffusionclip?: Pick<
    dclip.DiffusionClipOptions,
    't0' | 'iters' | 'lr' | 'clipWeight' | 'l1Weight' | 'mode' | 'modelRatio'
  > & { inputs?: number };
}

export interface MethodsEvalArgs {
  /** The dataset whose held-out split gives the inputs (emoji32). */
  ds: Dataset;
  /** The unconditional UNet (default weights/unet); the other models are the shipped ones. */
  weights?: string;
  /** Judge folder (default weights/judge). */
  judge?: string;
  /** CLIP folder (default weights/clip). */
  clip?: string;
  /** Sections to run (default all). */
  only?: MethodSection[];
  /**
   * Tests only: a smaller unet section (`n`, `steps`) than METHODS_PROTOCOL's; the report's protocol
   * records what ran. The CLI never sets it.
   */
  unetOverride?: { n?: number; steps?: number; sampler?: 'ddim' | 'dpm2m' };
  /** Method settings other than the defaults (default none: every method on its defaults). */
  overrides?: MethodsEvalOverrides;
  /**
   * Added to every section's protocol seed: another draw of the same protocol, to see how much a bar
   * moves with the samples (default 0: the protocol's own seeds, which the shipped figures use).
   */
  seedShift?: number;
  onProgress?: (msg: string) => void;
}

export interface MethodsEvalReport {
  model: 'methods';
  bars: Record<string, Bar>;
  [k: string]: unknown;
}

const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / Math.max(1, v.length);

function categoryIndex(judge: Judge, name: string): number {
  const i = judge.config.categories.indexOf(name);
  if (i < 0) throw new Error(`the judge has no category '${name}' (it has ${judge.config.categories.join(', ')})`);
  return i;
}

/** Held-out items of a category, spread evenly over it, at most `n`. */
function heldOutOf(ds: Dataset, category: string, n: number): number[] {
  const all = ds.indicesOf('test').filter((i) => ds.categoryNames[ds.categoryIds[i]] === category);
  if (all.length === 0) throw new Error(`no held-out images of category '${category}' in ${ds.name}`);
  const k = Math.min(n, all.length);
  return Array.from({ length: k }, (_, j) => all[Math.floor((j * all.length) / k)]);
}

/** FD between two image sets in the judge's feature space. */
function judgeFd(judge: Judge, a: tf.Tensor4D, b: tf.Tensor4D): number {
  const fa = judge.predict(a).features;
  const fb = judge.predict(b).features;
  return frechetDistanceOfFeatures(fa, a.shape[0], fb, b.shape[0], judge.featureDim);
}

/** A section's protocol with its seed moved by `seedShift`. */
function shifted<T extends { seed: number }>(a: MethodsEvalArgs, p: T): T {
  return { ...p, seed: p.seed + (a.seedShift ?? 0) };
}

/** The unet section's protocol: METHODS_PROTOCOL.unet under the tests' override. */
function unetProtocol(a: MethodsEvalArgs): { n: number; sampler: 'ddim' | 'dpm2m'; steps: number; seed: number } {
  return shifted(a, { ...METHODS_PROTOCOL.unet, ...a.unetOverride });
}

function diffusionclipProtocol(a: MethodsEvalArgs): Omit<typeof METHODS_PROTOCOL.diffusionclip, 'inputs'> & {
  inputs: number;
} {
  const P = METHODS_PROTOCOL.diffusionclip;
  const inputs = checkCount('diffusionclip inputs', a.overrides?.diffusionclip?.inputs ?? P.inputs, {
    max: P.inputs,
    why: "at most the protocol's inputs per edit",
  });
  return shifted(a, { ...P, inputs });
}

/** Unconditional samples: FD to held-out over the real-vs-real floor, and category TV (as `eval unet`'s). */
async function unetBars(
  a: MethodsEvalArgs,
  judge: Judge,
  log: (m: string) => void,
): Promise<{ bars: Record<string, Bar>; details: Record<string, unknown> }> {
  const P = unetProtocol(a);
  const unet = await loadUNetDiffuser(a.weights);
  const ds = a.ds;
  try {
    log(`eval methods: unet, ${P.n} samples (${P.sampler}, ${P.steps} steps)`);
    let last = 0;
    const s = await judgeSamples(unet, judge, ds, {
      ...P,
      onProgress: (d, t) => {
        if (d - last >= 200 || d === t) log(`  sampled ${d}/${t}`);
        if (d - last >= 200) last = d;
      },
    });
    const test = ds.indicesOf('test');
    const held = ds.images(test, { rgb: true });
    // the floor: as many training images as samples, against the same held-out set
    const train = ds.indicesOf('train');
    const m = Math.min(P.n, train.length);
    const pick = Array.from({ length: m }, (_, j) => train[Math.floor((j * train.length) / m)]);
    const real = ds.images(pick, { rgb: true });
    const hf = judge.predict(held).features;
    const fdSamples = frechetDistanceOfFeatures(s.features, P.n, hf, test.length, judge.featureDim);
    const fdFloor = frechetDistanceOfFeatures(judge.predict(real).features, m, hf, test.length, judge.featureDim);
    tf.dispose([held, real]);
    const ratio = fdSamples / fdFloor;
    const tv = s.tv;
    return {
      bars: {
        unet_fd_over_floor: {
          value: ratio,
          goal: `<= 1.5: FD(${P.n} samples (${P.sampler}, ${P.steps} steps), ${test.length} held-out) / FD(${m} training images, same held-out), judge features (FD ${fdSamples.toFixed(3)} vs floor ${fdFloor.toFixed(3)})`,
          pass: ratio <= 1.5,
        },
        unet_category_tv: {
          value: tv,
          goal: `<= 0.10: TV of the judge's category distribution of ${P.n} samples vs the data's (all ${ds.size} labels; as eval unet's category_tv_distance)`,
          pass: tv <= 0.1,
        },
      },
      details: {
        unet: {
          ...P,
          fdSamples,
          fdFloor,
          heldOut: test.length,
          floorImages: m,
          tvVsTrainSplit: s.tvVsTrainSplit,
          sampleCategories: Object.fromEntries(judge.config.categories.map((c, i) => [c, s.histogram[i]])),
        },
      },
    };
  } finally {
    unet.unet.dispose();
  }
}

/** SDG text guidance toward each category prompt: judged that category; FD vs unguided samples. */
async function sdgBars(
  a: MethodsEvalArgs,
  judge: Judge,
  log: (m: string) => void,
): Promise<{ bars: Record<string, Bar>; details: Record<string, unknown> }> {
  const P = shifted(a, METHODS_PROTOCOL.sdg);
  const unet = await loadUNetDiffuser(a.weights);
  const clip = await loadClipModel(a.clip);
  const noisy = await loadNoisyClipModel();
  const cats = judge.config.categories;
  const guided: tf.Tensor4D[] = [];
  const unguided: tf.Tensor4D[] = [];
  const perCategory: Record<string, number> = {};
  let settings: Record<string, unknown> = {};
  try {
    for (const [k, c] of cats.entries()) {
      log(`eval methods: SDG "${categoryPrompt(c)}" (${k + 1}/${cats.length})`);
      const g = await sdg(
        unet,
        { noisy, image: clip, text: clip },
        { ...a.overrides?.sdg, text: categoryPrompt(c), n: P.perCategory, seed: P.seed + k },
      );
      settings = g.settings;
      const hits = judge.predict(g.images).category.filter((j) => j === k).length;
      perCategory[c] = hits / P.perCategory;
      guided.push(g.images);
      // the unguided twin: the same x_T and step noise (same seed), SDG's sampler and steps, no guidance
      const u = await sample(unet, {
        n: P.perCategory,
        seed: P.seed + k,
        steps: Number(g.settings.steps),
        sampler: g.settings.sampler === 'ddim' ? 'ddim' : 'ddpm',
      });
      unguided.push(u.images);
    }
    const all = tf.concat(guided) as tf.Tensor4D;
    const base = tf.concat(unguided) as tf.Tensor4D;
    const held = a.ds.images(a.ds.indicesOf('test'), { rgb: true });
    const fdGuided = judgeFd(judge, all, held);
    const fdBase = judgeFd(judge, base, held);
    const baseRate = mean(
      cats.map(
        (_, k) =>
          judge.predict(base.slice(k * P.perCategory, P.perCategory)).category.filter((j) => j === k).length /
          P.perCategory,
      ),
    );
    tf.dispose([all, base, held]);
    const rate = mean(Object.values(perCategory));
    const ratio = fdGuided / fdBase;
    return {
      bars: {
        sdg_text_category_rate: {
          value: rate,
          goal: `>= 0.6: SDG samples (${P.perCategory} per prompt, ${cats.length} category prompts) judged the prompt's category, mean over prompts (chance ${(1 / cats.length).toFixed(2)})`,
          pass: rate >= 0.6,
        },
        sdg_fd_guided_over_unguided: {
          value: ratio,
          goal: `<= 1.5: FD(guided, held-out) / FD(unguided twins: same seeds, sampler and steps, held-out) (FD ${fdGuided.toFixed(3)} vs ${fdBase.toFixed(3)}; ${cats.length * P.perCategory} each)`,
          pass: ratio <= 1.5,
        },
      },
      details: { sdg: { perCategory, unguidedCategoryRate: baseRate, fdGuided, fdUnguided: fdBase, settings } },
    };
  } finally {
    tf.dispose(guided);
    tf.dispose(unguided);
    unet.unet.dispose();
    clip.dispose();
    noisy.dispose();
  }
}

/** DiffusionCLIP: fine-tune on a few training images per edit, edit held-out inputs; target rate and SSIM. */
async function diffusionclipBars(
  a: MethodsEvalArgs,
  judge: Judge,
  log: (m: string) => void,
): Promise<{ bars: Record<string, Bar>; details: Record<string, unknown> }> {
  const P = diffusionclipProtocol(a);
  const { inputs: _, ...override } = a.overrides?.diffusionclip ?? {};
  // checked before any model loads; unset ones are DIFFUSIONCLIP_DEFAULTS
  const o = dclip.resolveDiffusionClipOptions(override);
  const unet = await loadUNetDiffuser(a.weights);
  const clip = await loadClipModel(a.clip);
  const ds = a.ds;
  const rows: { edit: string; targetRate: number; ssim: number; inputs: number; inputTargetRate: number }[] = [];
  let settings: Record<string, unknown> = {};
  try {
    for (const e of P.edits) {
      const ti = categoryIndex(judge, e.to);
      const trainIdx = ds.indicesOf('train').filter((i) => ds.categoryNames[ds.categoryIds[i]] === e.from);
      const fitIdx = Array.from(
        { length: P.trainImages },
        (_, j) => trainIdx[Math.floor((j * trainIdx.length) / P.trainImages)],
      );
      const xs = ds.images(fitIdx, { rgb: true });
      log(
        `eval methods: DiffusionCLIP ${e.from} -> ${e.to}: fine-tune on ${P.trainImages} training images (${Object.values(override).some((v) => v !== undefined) ? 'overridden settings' : "the method's defaults"})`,
      );
      const ft = await dclip.finetune(unet, clip, xs, {
        source: categoryPrompt(e.from),
        target: categoryPrompt(e.to),
        t0: o.t0,
        iters: o.iters,
        lr: o.lr,
        clipWeight: o.clipWeight,
        l1Weight: o.l1Weight,
        mode: o.mode,
      });
      settings = { finetune: ft.settings };
      xs.dispose();
      try {
        const x = ds.images(heldOutOf(ds, e.from, P.inputs), { rgb: true });
        const out = await dclip.edit(unet, ft.model, x, { t0: o.t0, modelRatio: o.modelRatio });
        settings = { ...settings, edit: out.settings };
        const before = judge.predict(x).category.filter((c) => c === ti).length / x.shape[0];
        const rate = judge.predict(out.images).category.filter((c) => c === ti).length / x.shape[0];
        rows.push({
          edit: `${e.from} -> ${e.to}`,
          targetRate: rate,
          ssim: mean(ssim(out.images, x)),
          inputs: x.shape[0],
          inputTargetRate: before,
        });
        tf.dispose([x, out.images]);
      } finally {
        ft.model.unet.dispose();
      }
    }
  } finally {
    unet.unet.dispose();
    clip.dispose();
  }
  const rate = mean(rows.map((r) => r.targetRate));
  const s = mean(rows.map((r) => r.ssim));
  const n = rows.reduce((t, r) => t + r.inputs, 0);
  return {
    bars: {
      diffusionclip_target_rate: {
        value: rate,
        goal: `>= 0.7: edited held-out inputs judged the target category, mean over ${rows.length} edits (${n} inputs)`,
        pass: rate >= 0.7,
      },
      diffusionclip_ssim: {
        value: s,
        goal: `>= 0.5: mean SSIM of each edit to its input (same ${n} inputs)`,
        pass: s >= 0.5,
      },
    },
    details: { diffusionclip: { edits: rows, trainImages: P.trainImages, settings } },
  };
}

/** unCLIP: category prompts through prior + decoder; variations of held-out images keep the category. */
async function unclipBars(
  a: MethodsEvalArgs,
  judge: Judge,
  log: (m: string) => void,
): Promise<{ bars: Record<string, Bar>; details: Record<string, unknown> }> {
  const P = shifted(a, METHODS_PROTOCOL.unclip);
  const clip = await loadClipModel(a.clip);
  const decoder = await loadCondDiffuser();
  const { prior, schedule } = await loadPriorModel();
  const ds = a.ds;
  const { variationEta, variationInvert, ...shared } = a.overrides?.unclip ?? {};
  try {
    log(`eval methods: unCLIP, ${P.perCategory} samples per category prompt`);
    const r = await evalUnclipPrompts(decoder, prior, schedule, clip, judge, ds, {
      ...shared,
      perCategory: P.perCategory,
      seed: P.seed,
      onProgress: log,
    });
    const test = ds.indicesOf('test');
    const srcIdx = Array.from(
      { length: P.variationSources },
      (_, j) => test[Math.floor((j * test.length) / P.variationSources)],
    );
    let same = 0;
    let variationSettings: Record<string, number | boolean> = {};
    log(`eval methods: unCLIP variations of ${srcIdx.length} held-out images`);
    for (const [j, i] of srcIdx.entries()) {
      const x = ds.images([i], { rgb: true });
      const v = await unclip.variations({ decoder, prior, priorSchedule: schedule, clip }, x, {
        decoderScale: shared.decoderScale,
        eta: variationEta,
        invert: variationInvert,
        n: P.variationsEach,
        seed: P.seed + j,
      });
      variationSettings = v.settings;
      same += judge.predict(v.images).category.filter((c) => c === ds.categoryIds[i]).length;
      tf.dispose([x, v.images, v.embedding]);
    }
    const keep = same / (srcIdx.length * P.variationsEach);
    return {
      bars: {
        unclip_prompt_category_rate: {
          value: r.promptCategoryRate,
          goal: `>= 0.85: ${r.samples} samples for the category prompts (prior -> decoder) judged that category`,
          pass: r.promptCategoryRate >= 0.85,
        },
        unclip_variations_keep_category: {
          value: keep,
          goal: `>= 0.75: ${P.variationsEach} variations of each of ${srcIdx.length} held-out images judged the source's category`,
          pass: keep >= 0.75,
        },
      },
      details: {
        unclip: {
          priorNearestCategory: r.priorNearestCategory,
          settings: { prompts: r.settings, variations: variationSettings },
        },
      },
    };
  } finally {
    clip.dispose();
    decoder.unet.dispose();
    prior.dispose();
  }
}

/**
 * The Imagic edit pairs: held-out images round-robin over the categories, each sent toward the next
 * category of the dataset's (sorted) category list, so every pair asks for a change the judge sees.
 */
export function imagicPairs(ds: Dataset, n: number): { index: number; from: string; to: string }[] {
  const cats = ds.categoryNames;
  const out: { index: number; from: string; to: string }[] = [];
  for (let k = 0; out.length < n && k < n * cats.length; k++) {
    const from = cats[k % cats.length];
    const pool = ds.indicesOf('test').filter((i) => cats[ds.categoryIds[i]] === from);
    const index = pool[(Math.floor(k / cats.length) * 7) % Math.max(1, pool.length)];
    if (index === undefined) continue;
    out.push({ index, from, to: cats[(k + 1) % cats.length] });
  }
  return out;
}

/** Imagic: best eta per pair; success = judge P(target) +0.3 over the input with SSIM >= 0.5. */
async function imagicBars(
  a: MethodsEvalArgs,
  judge: Judge,
  log: (m: string) => void,
): Promise<{ bars: Record<string, Bar>; details: Record<string, unknown> }> {
  const P = shifted(a, METHODS_PROTOCOL.imagic);
  const cond = await loadCondDiffuser();
  const clip = await loadClipModel(a.clip);
  const rows: {
    from: string;
    to: string;
    pInput: number;
    best: { eta: number; pTarget: number; ssim: number } | null;
  }[] = [];
  let etas: number[] = [];
  let settings: Record<string, unknown> = {};
  try {
    for (const [k, p] of imagicPairs(a.ds, P.pairs).entries()) {
      log(`eval methods: Imagic pair ${k + 1}/${P.pairs}: ${p.from} -> ${p.to}`);
      const ti = categoryIndex(judge, p.to);
      const x = a.ds.images([p.index], { rgb: true });
      const r = await imagic(cond, clip, x, categoryPrompt(p.to), { seed: P.seed + k });
      etas = r.etas;
      settings = r.settings;
      const pInput = judgeProbs(judge, x)[0][ti];
      const probs = judgeProbs(judge, r.images).map((q) => q[ti]);
      const xs = tf.tidy(() => tf.tile(x, [r.etas.length, 1, 1, 1])) as tf.Tensor4D;
      const sims = ssim(r.images, xs);
      let best: { eta: number; pTarget: number; ssim: number } | null = null;
      for (const [j, eta] of r.etas.entries()) {
        if (sims[j] >= 0.5 && (!best || probs[j] > best.pTarget)) best = { eta, pTarget: probs[j], ssim: sims[j] };
      }
      rows.push({ from: p.from, to: p.to, pInput, best });
      tf.dispose([x, xs, r.images, r.embeddings, r.eOpt, r.eTarget]);
    }
  } finally {
    cond.unet.dispose();
    clip.dispose();
  }
  const ok = rows.filter((r) => r.best && r.best.pTarget - r.pInput >= 0.3).length;
  const rate = ok / rows.length;
  return {
    bars: {
      imagic_success_rate: {
        value: rate,
        goal: `>= 0.6: pairs (of ${rows.length}) where some eta of Imagic's default sweep [${etas.join(', ')}] with SSIM to the input >= 0.5 raises the judge's P(target category) by >= 0.3`,
        pass: rate >= 0.6,
      },
    },
    details: { imagic: { pairs: rows, withSsimOk: rows.filter((r) => r.best).length, settings } },
  };
}

const SECTION_FNS: Record<MethodSection, typeof unetBars> = {
  unet: unetBars,
  sdg: sdgBars,
  diffusionclip: diffusionclipBars,
  unclip: unclipBars,
  imagic: imagicBars,
};

/** Every method's bars (or the sections in `only`), with timings per section. */
export async function evalMethods(a: MethodsEvalArgs): Promise<MethodsEvalReport> {
  const log = a.onProgress ?? (() => undefined);
  const judge = await loadJudge(a.judge ?? weightsPath('judge'));
  const bars: Record<string, Bar> = {};
  const details: Record<string, unknown> = {};
  const seconds: Record<string, number> = {};
  try {
    for (const s of a.only ?? METHOD_SECTIONS) {
      const t = Date.now();
      const r = await SECTION_FNS[s](a, judge, log);
      // each section's bars as soon as they exist: a later section that fails loses nothing measured
      for (const [k, b] of Object.entries(r.bars))
        log(`eval methods: ${b.pass ? 'PASS' : 'FAIL'} ${k} = ${b.value.toFixed(4)} (${b.goal})`);
      Object.assign(bars, r.bars);
      Object.assign(details, r.details);
      seconds[s] = Math.round((Date.now() - t) / 100) / 10;
    }
  } finally {
    judge.dispose();
  }
  return {
    model: 'methods',
    extractor: 'judge (weights/judge) features and categories',
    protocol: {
      unet: unetProtocol(a),
      sdg: shifted(a, METHODS_PROTOCOL.sdg),
      diffusionclip: diffusionclipProtocol(a),
      unclip: shifted(a, METHODS_PROTOCOL.unclip),
      imagic: shifted(a, METHODS_PROTOCOL.imagic),
    },
    seconds,
    ...details,
    bars,
  };
}
