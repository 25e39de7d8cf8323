/**
 * The showcase behind `diffguide demo` / `npm run demo`: all five methods (and plain sampling) on
 * the shipped weights, writing PNGs and ONE HTML page with inputs, outputs and settings side by side.
 * Budgeted to finish in under 10 minutes on 2 CPU cores with the shipped 32x32 models.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writePng } from '../image/png.js';
import { packageRoot, packageVersion } from '../paths.js';
import { backendInfo } from '../backend.js';
import { Dataset } from '../data/dataset.js';
import { testSubsetPath, preparedPath, SHOWCASE_EMOJI } from '../data/index.js';
import { DEFAULT_SEED, imageSizeOf, type ProgressFn } from '../methods/common.js';
import { type Diffuser } from '../models/diffuser.js';
import {
  WeightsError,
  disposeModels,
  loadClipModel,
  loadCondDiffuser,
  loadNoisyClipModel,
  loadPriorModel,
  loadUNetDiffuser,
  randomModels,
  type ModelSet,
} from '../models/load.js';
import { SAMPLE_DEFAULTS, sample } from '../methods/sample.js';
import { sdedit } from '../methods/sdedit.js';
import { SDG_DEFAULTS, sdg } from '../methods/sdg.js';
import * as dclip from '../methods/diffusionclip.js';
import * as unclip from '../methods/unclip.js';
import { imagic } from '../methods/imagic.js';
import { renderDemoPage, type DemoImage, type DemoRow, type DemoSection } from './html.js';
import { makeDirs } from '../output.js';

export interface DemoOptions {
  /** Output folder (created). */
  out: string;
  /** Tiny random models instead of the shipped weights (development/tests only). */
  randomWeights?: boolean;
  /** Minimal step counts everywhere (tests). Default false. */
  quick?: boolean;
  /** Seed of every method's draws (`DEFAULT_SEED`). */
  seed?: number;
  /** Preloaded models (skips loading). */
  models?: ModelSet;
  onProgress?: ProgressFn;
  /** One line per finished row (stderr in the CLI). */
  log?: (msg: string) => void;
}

export interface DemoResult {
  /** Absolute path of the HTML page. */
  page: string;
  sections: DemoSection[];
  wallMs: number;
}

/**
 * The SDEdit row's showcase choices (display, not method defaults: those are SDEDIT_DEFAULTS). t0 swept over
 * the paper's faithful -> realistic range; two samples per guide show the spread; the masked edit noises
 * past the default t0 (0.5) so the regenerated half visibly differs between its three samples.
 */
const SDEDIT_SHOWCASE = { strokeT0s: [0.3, 0.5, 0.8], strokeRepeats: 2, maskT0: 0.6, maskRepeats: 3 } as const;

/** Step budgets: full (the real demo) and quick (tests). */
function budget(quick: boolean) {
  return quick
    ? {
        sampleSteps: 3,
        sdeditSteps: 3,
        sdgSteps: 3,
        nInv: 3,
        nTrain: 2,
        iters: 1,
        nGen: 3,
        priorSteps: 3,
        decSteps: 3,
        embSteps: 2,
        ftSteps: 2,
        imagicSteps: 3,
        imagicBatch: 2,
      }
    : // sized for < 10 min on 2 cores with the shipped 32x32 models (UNet forward ~0.17 s at batch 1 on wasm, 1 thread)
      {
        sampleSteps: 20,
        sdeditSteps: 20,
        sdgSteps: 50,
        nInv: 20,
        nTrain: 4,
        iters: 3,
        nGen: 20,
        priorSteps: unclip.UNCLIP_DEFAULTS.prior.priorSteps,
        decSteps: 20,
        embSteps: 40,
        ftSteps: 50,
        imagicSteps: 20,
        imagicBatch: 1,
      };
}

/** Procedural stroke paintings (SDEdit guides) at `size`: [3, S, S, 3] in [-1, 1]. */
export function strokeGuides(size: number): tf.Tensor4D {
  return tf.tidy(() => {
    const c = tf.linspace(-1, 1, size);
    const X = tf.tile(c.reshape([1, size]), [size, 1]);
    const Y = tf.tile(c.reshape([size, 1]), [1, size]);
    const paint = (mask: tf.Tensor, rgb: [number, number, number], base: tf.Tensor3D) => {
      const m = mask.toFloat().expandDims(2);
      return base.mul(tf.scalar(1).sub(m)).add(
        tf
          .tensor1d(rgb.map((v) => v / 127.5 - 1))
          .reshape([1, 1, 3])
          .mul(m),
      ) as tf.Tensor3D;
    };
    const white = tf.ones([size, size, 3]) as tf.Tensor3D;
    // a yellow face with two eyes and a mouth
    let face = paint(X.square().add(Y.square()).less(0.7), [250, 200, 40], white);
    face = paint(X.add(0.3).square().add(Y.add(0.25).square()).less(0.02), [60, 40, 20], face);
    face = paint(X.sub(0.3).square().add(Y.add(0.25).square()).less(0.02), [60, 40, 20], face);
    face = paint(tf.logicalAnd(X.abs().less(0.4), Y.sub(0.35).abs().less(0.06)), [120, 40, 30], face);
    // a red heart: two discs and a triangle
    const lobes = tf.logicalOr(
      X.add(0.35).square().add(Y.add(0.25).square()).less(0.16),
      X.sub(0.35).square().add(Y.add(0.25).square()).less(0.16),
    );
    const tri = tf.logicalAnd(Y.greater(-0.25), Y.less(X.abs().mul(-1.2).add(0.75)));
    const heart = paint(tf.logicalOr(lobes, tri), [220, 30, 50], white);
    // a green tree on a brown trunk
    let tree = paint(
      tf.logicalAnd(Y.greater(-0.8), Y.less(X.abs().mul(-1.6).add(0.4)).logicalAnd(Y.less(0.4))),
      [40, 160, 60],
      white,
    );
    tree = paint(tf.logicalAnd(X.abs().less(0.12), Y.greaterEqual(0.4).logicalAnd(Y.less(0.85))), [120, 80, 40], tree);
    return tf.stack([face, heart, tree]) as tf.Tensor4D;
  });
}

/**
 * Real input images: the named emoji (the Noto image of each) from the committed test subset, else
 * the prepared dataset. A name is a `SHOWCASE_EMOJI` label (found by its code) or an emoji name
 * (exact, else the first caption that starts with it). Null when neither dataset exists; throws
 * naming the emoji that neither has, so no caller silently runs on a stand-in.
 * @returns images [N, size, size, 3] in [-1, 1], in the order of `names`
 */
export function emojiInputs(names: string[], size: number): { images: tf.Tensor4D; captions: string[] } | null {
  const find = (ds: Dataset, name: string): number => {
    const code = SHOWCASE_EMOJI[name];
    if (code !== undefined) return ds.items.findIndex((it) => it.group === code);
    const exact = ds.items.findIndex((it) => it.name === name);
    return exact >= 0 ? exact : ds.captions.findIndex((c) => c.toLowerCase().startsWith(name));
  };
  const candidates = [testSubsetPath(packageRoot()), preparedPath('emoji', 32)].filter((p) => existsSync(p));
  if (!candidates.length) return null;
  let missing: string[] = names;
  for (const p of candidates) {
    const ds = Dataset.load(p);
    const idx = names.map((n) => find(ds, n));
    missing = names.filter((_, k) => idx[k] < 0);
    if (missing.length) continue;
    const x = ds.images(idx);
    if (x.shape[1] === size) return { images: x, captions: [...names] };
    const y = tf.image.resizeBilinear(x, [size, size]) as tf.Tensor4D;
    x.dispose();
    return { images: y, captions: [...names] };
  }
  throw new Error(
    `emoji ${missing.map((n) => `'${n}'`).join(', ')} not found in ${candidates.join(' or ')}; ` +
      `use one of the showcase emoji (${Object.keys(SHOWCASE_EMOJI).join(', ')}) or prepare the full dataset with: diffguide data prepare emoji`,
  );
}

/** Load each shipped model that exists; the ones missing are reported (with the command that makes them), not fatal. */
async function loadShipped(
  log: (msg: string) => void,
): Promise<{ models: ModelSet; missing: Map<keyof ModelSet, string> }> {
  const models: ModelSet = {};
  const missing = new Map<keyof ModelSet, string>();
  const loaders: [keyof ModelSet, () => Promise<unknown>][] = [
    ['unet', loadUNetDiffuser],
    ['cond', loadCondDiffuser],
    ['clip', loadClipModel],
    ['noisy', loadNoisyClipModel],
    ['prior', loadPriorModel],
  ];
  for (const [key, load] of loaders) {
    try {
      (models as Record<string, unknown>)[key] = await load();
    } catch (e) {
      if (!(e instanceof WeightsError)) {
        disposeModels(models);
        throw e;
      }
      missing.set(key, e.message);
      log(`demo: ${e.message.split('\n')[0]}`);
    }
  }
  return { models, missing };
}

/** Run the showcase; returns the page path (the CLI prints it as its last line). */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const startMs = Date.now();
  const out = resolve(opts.out);
  const imgDir = join(out, 'img');
  makeDirs(imgDir);
  const quick = opts.quick ?? false;
  const B = budget(quick);
  const seed = opts.seed ?? DEFAULT_SEED;
  const log = opts.log ?? (() => undefined);
  const own = !opts.models;
  const loaded =
    opts.models || opts.randomWeights
      ? { models: opts.models ?? randomModels(seed), missing: new Map<keyof ModelSet, string>() }
      : await loadShipped(log);
  const m = loaded.models as Required<ModelSet>;
  const sections: DemoSection[] = [];
  /** True when the method's models are all there; otherwise the page gets a section saying what to make. */
  const needs = (method: string, keys: (keyof ModelSet)[]): boolean => {
    const absent = keys.filter((k) => !m[k]);
    if (!absent.length) return true;
    const why = absent.map((k) => loaded.missing.get(k) ?? `${k} is not loaded`).join(' ');
    sections.push({
      method,
      blurb: `Skipped: this method needs models that are not in weights/ yet. ${why}`,
      rows: [],
    });
    log(`demo: ${method} skipped (missing ${absent.join(', ')})`);
    return false;
  };
  const keep: tf.Tensor[] = [];
  let counter = 0;
  const save = (x: tf.Tensor4D, captions: string[], stem: string): DemoImage[] =>
    captions.map((caption, i) => {
      const name = `${String(++counter).padStart(3, '0')}-${stem}-${i}.png`;
      const one = x.slice(i, 1);
      writePng(join(imgDir, name), one);
      one.dispose();
      return { src: `img/${name}`, caption };
    });
  const timed = async (title: string, f: () => Promise<Omit<DemoRow, 'title' | 'ms'>>): Promise<DemoRow> => {
    const rowStartMs = Date.now();
    const r = await f();
    const row = { title, ...r, ms: Date.now() - rowStartMs };
    log(`demo: ${title} (${(row.ms / 1000).toFixed(1)} s)`);
    return row;
  };
  const onProgress = opts.onProgress;
  const unet = m.unet as Diffuser;
  const anyDiffuser = (m.unet ?? m.cond) as Diffuser | undefined;
  if (!anyDiffuser)
    throw new WeightsError(
      `the demo needs at least the unconditional UNet (weights/unet) or the conditional one (weights/cond-unet): ${[...loaded.missing.values()].join(' ')}`,
    );
  const size = imageSizeOf(anyDiffuser);
  try {
    // inputs: real held-out emoji when available, else the model's own samples
    const names = ['grinning face', 'cat face', 'red heart', 'dog face'];
    let real = emojiInputs(names, size);
    if (!real) {
      if (!m.unet)
        throw new WeightsError(
          'no input images: the emoji test subset is missing and weights/unet is not there to sample inputs',
        );
      const s = await sample(unet, { n: 4, steps: B.sampleSteps, seed: seed + 99 });
      real = { images: s.images, captions: names.map((_, i) => `sample #${i}`) };
    }
    keep.push(real.images);
    const inputImgs = real.images;
    const inputAt = (i: number) => inputImgs.slice(Math.min(i, inputImgs.shape[0] - 1), 1);
    const capAt = (i: number) => real!.captions[Math.min(i, real!.captions.length - 1)];

    // 0. plain sampling
    if (needs('Sampling', ['unet'])) {
      const row = await timed(`unguided ${SAMPLE_DEFAULTS.sampler.toUpperCase()} samples`, async () => {
        const r = await sample(unet, { n: 6, steps: B.sampleSteps, seed, onProgress });
        const o = save(
          r.images,
          Array.from({ length: 6 }, (_, i) => `#${i}`),
          'sample',
        );
        r.images.dispose();
        return { inputs: [], outputs: o, settings: { ...r.settings, weights: unet.source } };
      });
      sections.push({
        method: 'Sampling',
        blurb: 'Unguided samples of the unconditional UNet: the baseline every method starts from.',
        rows: [row],
      });
    }

    // 1. SDEdit
    if (needs('SDEdit', ['unet'])) {
      const rows: DemoRow[] = [];
      const guides = strokeGuides(size);
      keep.push(guides);
      const gIn = save(guides, ['face strokes', 'heart strokes', 'tree strokes'], 'sdedit-guide');
      for (const t of SDEDIT_SHOWCASE.strokeT0s) {
        rows.push(
          await timed(`stroke-to-image, t0 = ${t}`, async () => {
            const r = await sdedit(unet, guides, {
              t0: t,
              steps: B.sdeditSteps,
              repeats: SDEDIT_SHOWCASE.strokeRepeats,
              seed,
              onProgress,
            });
            const o = save(
              r.images,
              ['face #0', 'face #1', 'heart #0', 'heart #1', 'tree #0', 'tree #1'],
              `sdedit-${t}`,
            );
            r.images.dispose();
            return { inputs: gIn, outputs: o, settings: r.settings };
          }),
        );
      }
      rows.push(
        await timed('masked editing: regenerate the right half, keep the left exactly', async () => {
          const x = inputAt(0);
          const mask = tf.tidy(() =>
            tf.concat([tf.ones([1, size, size / 2, 1]), tf.zeros([1, size, size / 2, 1])], 2),
          ) as tf.Tensor4D;
          const vis = tf.tidy(() => x.mul(mask).add(tf.scalar(1).sub(mask).mul(-0.2))) as tf.Tensor4D;
          const ins = [...save(x, [capAt(0)], 'sdedit-mask-in'), ...save(vis, ['kept region'], 'sdedit-mask')];
          const r = await sdedit(unet, x, {
            t0: SDEDIT_SHOWCASE.maskT0,
            steps: B.sdeditSteps,
            repeats: SDEDIT_SHOWCASE.maskRepeats,
            mask,
            seed,
            onProgress,
          });
          const o = save(r.images, ['#0', '#1', '#2'], 'sdedit-masked');
          tf.dispose([x, mask, vis, r.images]);
          return { inputs: ins, outputs: o, settings: r.settings };
        }),
      );
      sections.push({
        method: 'SDEdit',
        blurb:
          'Noise a guide to t0 and denoise: small t0 stays faithful to the strokes, large t0 is more realistic. With a mask, the kept region is reproduced exactly.',
        rows,
      });
    }

    // 2. SDG
    if (needs('SDG', ['unet', 'clip', 'noisy'])) {
      const rows: DemoRow[] = [];
      const enc = { noisy: m.noisy, image: m.clip, text: m.clip };
      // one unguided baseline from the same noise serves every guided row
      const base = await sample(unet, { n: 3, steps: B.sdgSteps, sampler: SDG_DEFAULTS.sampler, seed });
      keep.push(base.images);
      const baseImgs = save(base.images, ['unguided #0', 'unguided #1', 'unguided #2'], 'sdg-base');
      for (const text of ['red heart', 'cat face']) {
        rows.push(
          await timed(`text guidance: "${text}" (first row: unguided, same noise)`, async () => {
            const r = await sdg(unet, enc, { text, n: 3, steps: B.sdgSteps, seed, onProgress });
            const o = [...baseImgs, ...save(r.images, ['guided #0', 'guided #1', 'guided #2'], `sdg-${text}`)];
            r.images.dispose();
            return { inputs: [], outputs: o, settings: r.settings };
          }),
        );
      }
      rows.push(
        await timed('image content guidance', async () => {
          const ref = inputAt(2);
          const ins = save(ref, [capAt(2)], 'sdg-ref');
          const r = await sdg(unet, enc, {
            image: ref,
            imageMode: 'content',
            n: 3,
            steps: B.sdgSteps,
            seed,
            onProgress,
          });
          const o = save(r.images, ['#0', '#1', '#2'], 'sdg-content');
          tf.dispose([ref, r.images]);
          return { inputs: ins, outputs: o, settings: r.settings };
        }),
      );
      sections.push({
        method: 'SDG',
        blurb:
          'Semantic diffusion guidance: the gradient of a time-conditioned CLIP score on x_t shifts each DDPM step toward a text or a reference image.',
        rows,
      });
    }

    // 3. DiffusionCLIP
    if (needs('DiffusionCLIP', ['unet', 'clip'])) {
      const rows: DemoRow[] = [];
      const x = inputAt(0);
      keep.push(x);
      const ins = save(x, [capAt(0)], 'dclip-in');
      rows.push(
        await timed('inversion + regeneration (original model)', async () => {
          const inv = await dclip.invert(unet, x, { t0: dclip.DIFFUSIONCLIP_DEFAULTS.t0, nInv: B.nInv, onProgress });
          const r = await dclip.regenerate(unet, inv, { nGen: B.nInv, onProgress });
          const lat = tf.clipByValue(inv.latent, -1, 1) as tf.Tensor4D;
          const o = [...save(lat, ['latent x_t0'], 'dclip-lat'), ...save(r.images, ['regenerated'], 'dclip-regen')];
          const err = tf.tidy(() => tf.mean(tf.abs(r.images.sub(x))).dataSync()[0]);
          tf.dispose([inv.latent, r.images, lat]);
          return {
            inputs: ins,
            outputs: o,
            settings: { t0: dclip.DIFFUSIONCLIP_DEFAULTS.t0, nInv: B.nInv, reconstructionMAE: err },
          };
        }),
      );
      const source = 'grinning face';
      const target = 'angry face';
      let ft: dclip.FinetuneResult | null = null;
      try {
        rows.push(
          await timed(`fine-tune "${source}" -> "${target}" and edit (model ratios 0.5, 1)`, async () => {
            ft = await dclip.finetune(unet, m.clip, x, {
              source,
              target,
              t0: dclip.DIFFUSIONCLIP_DEFAULTS.t0,
              nInv: B.nInv,
              nTrain: B.nTrain,
              iters: B.iters,
              onProgress,
            });
            const outs: DemoImage[] = [];
            for (const ratio of [0.5, 1]) {
              const r = await dclip.edit(unet, ft.model, x, {
                t0: dclip.DIFFUSIONCLIP_DEFAULTS.t0,
                nInv: B.nInv,
                nGen: B.nGen,
                modelRatio: ratio,
                onProgress,
              });
              outs.push(...save(r.images, [`ratio ${ratio}`], `dclip-edit-${ratio}`));
              r.images.dispose();
            }
            return {
              inputs: ins,
              outputs: outs,
              settings: {
                ...ft.settings,
                nGen: B.nGen,
                firstLoss: ft.losses[0],
                finalLoss: ft.losses[ft.losses.length - 1],
              },
            };
          }),
        );
      } finally {
        (ft as dclip.FinetuneResult | null)?.model.unet.dispose();
      }
      sections.push({
        method: 'DiffusionCLIP',
        blurb:
          'Invert with deterministic DDIM, fine-tune a copy of the UNet with a directional CLIP loss, regenerate with the fine-tuned (or blended) model.',
        rows,
      });
    }

    // 4. unCLIP
    if (needs('unCLIP', ['cond', 'prior', 'clip'])) {
      const rows: DemoRow[] = [];
      const um: unclip.UnclipModels = {
        decoder: m.cond,
        prior: m.prior.prior,
        priorSchedule: m.prior.schedule,
        clip: m.clip,
      };
      rows.push(
        await timed(`text -> prior -> decoder (best of ${unclip.UNCLIP_DEFAULTS.prior.bestOf})`, async () => {
          const prompts = ['red heart', 'cat face', 'grinning face'];
          const r = await unclip.textToImage(um, prompts, {
            n: 2,
            priorSteps: B.priorSteps,
            steps: B.decSteps,
            seed,
            onProgress,
          });
          const o = save(
            r.images,
            prompts.flatMap((p) => [`${p} #0`, `${p} #1`]),
            'unclip-text',
          );
          tf.dispose([r.images, r.imageEmbeddings]);
          return {
            inputs: [],
            outputs: o,
            settings: { ...r.settings, similarity: r.similarity.map((s) => Number(s.toFixed(3))) },
          };
        }),
      );
      rows.push(
        await timed(`image variations (DDIM eta ${unclip.UNCLIP_DEFAULTS.variations.eta})`, async () => {
          const x = inputAt(1);
          const ins = save(x, [capAt(1)], 'unclip-var-in');
          const r = await unclip.variations(um, x, { steps: B.decSteps, seed, onProgress });
          const o = save(
            r.images,
            Array.from({ length: r.settings.n }, (_, i) => `#${i}`),
            'unclip-var',
          );
          tf.dispose([x, r.images, r.embedding]);
          return { inputs: ins, outputs: o, settings: r.settings };
        }),
      );
      rows.push(
        await timed('interpolation (slerp, fixed x_T)', async () => {
          const a = inputAt(0);
          const b = inputAt(1);
          const ins = [...save(a, [capAt(0)], 'unclip-int-a'), ...save(b, [capAt(1)], 'unclip-int-b')];
          const r = await unclip.interpolate(um, a, b, { steps: B.decSteps, seed, onProgress });
          const o = save(
            r.images,
            r.thetas.map((t) => `theta ${t}`),
            'unclip-int',
          );
          tf.dispose([a, b, r.images, r.embeddings, r.endpoints]);
          return { inputs: ins, outputs: o, settings: r.settings };
        }),
      );
      rows.push(
        await timed('text diff "cat face" -> "dog face"', async () => {
          const x = inputAt(1);
          const ins = save(x, [capAt(1)], 'unclip-diff-in');
          const r = await unclip.textDiff(um, x, {
            source: 'cat face',
            target: 'dog face',
            steps: B.decSteps,
            seed,
            onProgress,
          });
          const o = save(
            r.images,
            r.thetas.map((t) => `theta ${t}`),
            'unclip-diff',
          );
          tf.dispose([x, r.images, r.embeddings]);
          return { inputs: ins, outputs: o, settings: r.settings };
        }),
      );
      sections.push({
        method: 'unCLIP',
        blurb:
          'A prior maps a CLIP text embedding to an image embedding; a decoder UNet conditioned on that embedding draws the image. Variations, interpolations and text diffs edit in embedding space.',
        rows,
      });
    }

    // 5. Imagic
    if (needs('Imagic', ['cond', 'clip'])) {
      const x = inputAt(0);
      const target = 'cat face';
      const row = await timed(`edit "${capAt(0)}" toward "${target}" (eta sweep, stages 1-2 shared)`, async () => {
        const ins = save(x, [capAt(0)], 'imagic-in');
        const r = await imagic(m.cond, m.clip, x, target, {
          etas: [0, 0.5, 0.7, 0.9, 1],
          embSteps: B.embSteps,
          ftSteps: B.ftSteps,
          batch: B.imagicBatch,
          steps: B.imagicSteps,
          seed,
          onProgress,
        });
        const o = save(
          r.images,
          r.etas.map((e) => `eta ${e}`),
          'imagic',
        );
        const settings = {
          ...r.settings,
          finalEmbLoss: r.losses.embedding.at(-1),
          finalFtLoss: r.losses.finetune.at(-1),
        };
        tf.dispose([r.images, r.embeddings, r.eOpt, r.eTarget]);
        return { inputs: ins, outputs: o, settings };
      });
      x.dispose();
      sections.push({
        method: 'Imagic',
        blurb:
          'Optimise a text embedding to reconstruct the input, fine-tune the conditional UNet on it, then interpolate e = eta * e_target + (1 - eta) * e_opt: eta 0 reconstructs, eta 1 follows the text.',
        rows: [row],
      });
    }
  } finally {
    tf.dispose(keep);
    if (own) disposeModels(m);
  }
  const wallMs = Date.now() - startMs;
  const info = backendInfo();
  const intro = {
    package: `diffguide ${packageVersion()}`,
    weights: opts.randomWeights
      ? 'TINY RANDOM MODELS (--random-weights: development only, outputs are noise)'
      : `shipped weights/: ${(['unet', 'cond', 'clip', 'noisy', 'prior'] as const).filter((k) => m[k]).join(', ')}${loaded.missing.size ? ` (missing: ${[...loaded.missing.keys()].join(', ')})` : ''}`,
    backend: info ? `${info.name}${info.simd ? ' (SIMD)' : ''}, ${info.threads} thread(s)` : tf.getBackend(),
    seed,
    'wall time': `${(wallMs / 1000).toFixed(1)} s`,
    date: new Date().toISOString(),
  };
  const page = join(out, 'index.html');
  writeFileSync(
    page,
    renderDemoPage('diffguide showcase: SDG, SDEdit, DiffusionCLIP, unCLIP, Imagic', intro, sections),
  );
  writeFileSync(join(out, 'demo.json'), JSON.stringify({ intro, sections }, null, 2) + '\n');
  return { page, sections, wallMs };
}
