/**
 * JUDGE-BASED TESTS ON THE SHIPPED WEIGHTS (issue 5's assertions). Each block runs when the models
 * it needs are in weights/ (unet, clip, noisy-clip, cond-unet, prior, judge) and skips with a
 * message naming what is missing otherwise. They run whatever a model's `quality` in config.json
 * says: replacing a shipped model must keep these effects. The judge (a classifier trained on real images only)
 * scores the outputs; it is never used for guidance. Same seeds throughout, small sample counts to
 * stay within a few minutes on 2 cores.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { weightsPath } from '../lib/paths.js';
import { loadJudge } from '../lib/eval/unet.js';
import { judgeProbs } from '../lib/eval/judge.js';
import type { Judge } from '../nets/judge/model.js';
import {
  cosine,
  l2normalize,
  loadClipModel,
  loadCondDiffuser,
  loadNoisyClipModel,
  loadPriorModel,
  loadUNetDiffuser,
  mae,
  shippedModels,
  type Diffuser,
  type ModelName,
} from '../lib/methods/index.js';
import type { CLIP, NoisyCLIPImageEncoder } from '../nets/clip/index.js';
import type { Prior } from '../nets/prior/index.js';
import type { Schedule } from '../samplers/schedule.js';
import { sdedit } from '../lib/methods/sdedit.js';
import { sdg } from '../lib/methods/sdg.js';
import { sample } from '../lib/methods/sample.js';
import * as dclip from '../lib/methods/diffusionclip.js';
import * as unclip from '../lib/methods/unclip.js';
import { imagic } from '../lib/methods/imagic.js';
import { emojiInputs, strokeGuides } from '../lib/demo/showcase.js';
import { simulateStrokes } from '../lib/image/strokes.js';
import { categoryPrompt } from '../lib/data/prompts.js';

const have = shippedModels();
function need(ctx: Mocha.Context, models: ModelName[]): void {
  const missing = models.filter((m) => !have[m]);
  if (missing.length) {
    console.log(
      `      (skipped: shipped weights missing for ${missing.join(', ')}; make them with diffguide train ${missing.join(' / ')})`,
    );
    ctx.skip();
  }
  // DIFFGUIDE_TRAINED_TESTS=skip skips them (e.g. while replacing a model with one still in training).
  if (process.env.DIFFGUIDE_TRAINED_TESTS === 'skip') {
    console.log('      (skipped: DIFFGUIDE_TRAINED_TESTS=skip)');
    ctx.skip();
  }
}

function catIndex(judge: Judge, name: string): number {
  const i = judge.config.categories.findIndex((c) => c.toLowerCase() === name.toLowerCase());
  if (i < 0) throw new Error(`judge has no category ${name}: ${judge.config.categories.join(', ')}`);
  return i;
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('methods on the shipped weights (judge-based)', function () {
  this.timeout(1800000);
  let judge: Judge | undefined;
  let unet: Diffuser | undefined;
  let cond: Diffuser | undefined;
  let clip: CLIP | undefined;
  let noisy: NoisyCLIPImageEncoder | undefined;
  let prior: { prior: Prior; schedule: Schedule } | undefined;
  let inputs: { images: tf.Tensor4D; captions: string[] } | null = null;

  before(async () => {
    if (have.judge) judge = await loadJudge(weightsPath('judge'));
    if (have.unet) unet = await loadUNetDiffuser();
    if (have['cond-unet']) cond = await loadCondDiffuser();
    if (have.clip) clip = await loadClipModel();
    if (have['noisy-clip']) noisy = await loadNoisyClipModel();
    if (have.prior) prior = await loadPriorModel();
    inputs = emojiInputs(['grinning face', 'cat face', 'red heart', 'dog face'], 32);
  });
  after(() => {
    judge?.dispose();
    unet?.unet.dispose();
    cond?.unet.dispose();
    clip?.dispose();
    noisy?.dispose();
    prior?.prior.dispose();
    inputs?.images.dispose();
  });

  it('SDEdit: closer to the guide at t0 = 0.3 than 0.8; more realistic (judge confidence) at 0.8; masked region kept within 1/255', async function () {
    need(this, ['unet', 'judge']);
    // Guides: coarse stroke paintings simulated from real emoji (4x4 flat blocks, 4 colour levels), the
    // unrealistic input SDEdit is for. Hand-drawn-looking flat shapes (strokeGuides) are already
    // emoji-like to the judge: its confidence on them rose with t0 in 1 of 6 runs (3 seeds x 2 weights).
    const real = emojiInputs(['grinning face', 'cat face', 'dog face', 'hamburger', 'red apple'], 32);
    if (!real) throw new Error('no emoji dataset: the committed test subset test/data/emoji32-subset.json is missing');
    const g = simulateStrokes(real.images);
    real.images.dispose();
    const n = g.shape[0];
    const r3 = await sdedit(unet!, g, { t0: 0.3, repeats: 2, seed: 1 });
    const r8 = await sdedit(unet!, g, { t0: 0.8, repeats: 2, seed: 1 });
    const gg = tf.tidy(() => tf.tile(g.expandDims(1), [1, 2, 1, 1, 1]).reshape([2 * n, 32, 32, 3])) as tf.Tensor4D;
    const d3 = mae(r3.images, gg);
    const d8 = mae(r8.images, gg);
    const conf = (x: tf.Tensor4D) => mean(judgeProbs(judge!, x).map((p) => Math.max(...p)));
    const c3 = conf(r3.images);
    const c8 = conf(r8.images);
    console.log(
      `      ${2 * n} edits per t0: MAE to guide t0=0.3 ${d3.toFixed(3)}, t0=0.8 ${d8.toFixed(3)}; judge confidence guides ${conf(g).toFixed(3)}, t0=0.3 ${c3.toFixed(3)}, t0=0.8 ${c8.toFixed(3)}`,
    );
    expect(d3).to.be.below(d8);
    expect(c8).to.be.greaterThan(c3);
    tf.dispose([g, gg, r3.images, r8.images]);
    const strokes = strokeGuides(32);
    const mask = tf.tidy(() => tf.concat([tf.ones([1, 32, 16, 1]), tf.zeros([1, 32, 16, 1])], 2)) as tf.Tensor4D;
    const first = strokes.slice(0, 1);
    const rm = await sdedit(unet!, first, { t0: 0.6, mask, seed: 2 });
    const kept = tf.tidy(() => tf.max(tf.abs(rm.images.sub(first)).mul(mask)).dataSync()[0]);
    expect(kept).to.be.at.most(1 / 255);
    tf.dispose([strokes, mask, rm.images, first]);
  });

  it('SDG: text guidance raises the judge probability of the category; content guidance raises similarity to the reference', async function () {
    need(this, ['unet', 'clip', 'noisy-clip', 'judge']);
    const n = 6;
    const base = await sample(unet!, { n, steps: 100, sampler: 'ddpm', seed: 5 });
    const ci = catIndex(judge!, 'Animals & Nature');
    // Toward a category, as the issue asks: the category prompt. ("cat face" pulls toward the cat
    // faces of Smileys & Emotion as much as toward Animals & Nature.)
    const g = await sdg(
      unet!,
      { noisy, image: clip, text: clip },
      { text: categoryPrompt('Animals & Nature'), n, seed: 5 },
    );
    const pBase = mean(judgeProbs(judge!, base.images).map((p) => p[ci]));
    const pGuided = mean(judgeProbs(judge!, g.images).map((p) => p[ci]));
    console.log(`      P(Animals & Nature): unguided ${pBase.toFixed(3)}, guided ${pGuided.toFixed(3)}`);
    expect(pGuided).to.be.greaterThan(pBase);
    // the last input found (the committed test subset lacks some of the names asked for)
    const ref = inputs ? inputs.images.slice(inputs.images.shape[0] - 1, 1) : strokeGuides(32).slice(1, 1);
    const c = await sdg(unet!, { noisy, image: clip, text: clip }, { image: ref, imageMode: 'content', n, seed: 5 });
    const sim = (x: tf.Tensor4D) =>
      tf.tidy(() =>
        mean(Array.from(cosine(clip!.encodeImage(x).embedding, clip!.encodeImage(ref).embedding).dataSync())),
      );
    const sBase = sim(base.images);
    const sGuided = sim(c.images);
    console.log(
      `      CLIP similarity to the reference: unguided ${sBase.toFixed(3)}, content-guided ${sGuided.toFixed(3)}`,
    );
    expect(sGuided).to.be.greaterThan(sBase);
    tf.dispose([base.images, g.images, c.images, ref]);
  });

  it('SDG on x0 (plain CLIP on the predicted x0) keeps images: pixel roughness near the unguided samples', async function () {
    need(this, ['unet', 'clip']);
    const n = 2;
    const opts = { n, steps: 12, sampler: 'ddpm' as const, seed: 3 };
    const base = await sample(unet!, opts);
    const g = await sdg(
      unet!,
      { image: clip, text: clip },
      { ...opts, text: categoryPrompt('Food & Drink'), on: 'x0' },
    );
    // mean |difference| of horizontally neighbouring pixels: ~0.05-0.1 for emoji, ~1 for saturated noise
    const rough = (x: tf.Tensor4D) =>
      tf.tidy(() => {
        const w = x.shape[2];
        return x
          .slice([0, 0, 1, 0], [-1, -1, w - 1, -1])
          .sub(x.slice([0, 0, 0, 0], [-1, -1, w - 1, -1]))
          .abs()
          .mean()
          .dataSync()[0];
      });
    const rb = rough(base.images);
    const rg = rough(g.images);
    console.log(`      pixel roughness: unguided ${rb.toFixed(3)}, guided on x0 ${rg.toFixed(3)}`);
    expect(rg).to.be.below(Math.max(3 * rb, 0.2));
    tf.dispose([base.images, g.images]);
  });

  it('DiffusionCLIP: inversion + regeneration reconstructs the input; a short fine-tune moves the judge toward the target', async function () {
    need(this, ['unet', 'clip', 'judge']);
    const x = inputs ? inputs.images.slice(0, 1) : (await sample(unet!, { n: 1, seed: 3 })).images;
    const inv = await dclip.invert(unet!, x, { t0: 0.5, nInv: 40 });
    const r = await dclip.regenerate(unet!, inv, { nGen: 40 });
    const err = mae(r.images, x);
    console.log(`      reconstruction MAE at t0 = 0.5, 40 steps: ${err.toFixed(4)}`);
    expect(err).to.be.below(0.05);
    const ti = catIndex(judge!, 'Animals & Nature');
    const ft = await dclip.finetune(unet!, clip!, x, {
      source: 'grinning face, smileys & emotion',
      target: 'cat face, animals & nature',
      iters: 5,
    });
    const e = await dclip.edit(unet!, ft.model, x, {});
    const before = judgeProbs(judge!, r.images)[0][ti];
    const after = judgeProbs(judge!, e.images)[0][ti];
    console.log(`      P(Animals & Nature) regenerated ${before.toFixed(3)} -> edited ${after.toFixed(3)}`);
    expect(after).to.be.greaterThan(before);
    ft.model.unet.dispose();
    tf.dispose([x, inv.latent, r.images, e.images]);
  });

  it('unCLIP: variations share the source category more often than chance; interpolation endpoints reproduce the endpoint embeddings', async function () {
    need(this, ['cond-unet', 'clip', 'prior', 'judge']);
    const m: unclip.UnclipModels = { decoder: cond!, prior: prior!.prior, priorSchedule: prior!.schedule, clip: clip! };
    const srcs = inputs ? inputs.images : strokeGuides(32);
    let same = 0;
    let total = 0;
    for (let i = 0; i < srcs.shape[0]; i++) {
      const s = srcs.slice(i, 1);
      const cat = judge!.predict(s).category[0];
      const v = await unclip.variations(m, s, { n: 4, seed: i });
      same += judge!.predict(v.images).category.filter((c) => c === cat).length;
      total += 4;
      tf.dispose([s, v.images, v.embedding]);
    }
    const chance = 1 / judge!.config.categories.length;
    console.log(`      variations sharing the source category: ${same}/${total} (chance ${chance.toFixed(2)})`);
    expect(same / total).to.be.greaterThan(chance);
    // Endpoints: the two inputs farthest apart in CLIP space (grinning face and cat face are 0.89
    // apart, too close for "closer to its own endpoint" to mean anything).
    const [ia, ib] = tf.tidy(() => {
      const e = l2normalize(clip!.encodeImage(srcs).embedding);
      const sim = tf.matMul(e, e, false, true).arraySync() as number[][];
      let best: [number, number] = [0, 1];
      for (let i = 0; i < sim.length; i++)
        for (let j = i + 1; j < sim.length; j++) if (sim[i][j] < sim[best[0]][best[1]]) best = [i, j];
      return best;
    });
    const a = srcs.slice(ia, 1);
    const b = srcs.slice(ib, 1);
    const it = await unclip.interpolate(m, a, b, { frames: 3, seed: 0 });
    const back = tf.tidy(() => l2normalize(clip!.encodeImage(it.images).embedding));
    const [c0a, c0b, c2a, c2b] = tf.tidy(() => [
      cosine(back.slice(0, 1), it.endpoints.slice(0, 1)).dataSync()[0],
      cosine(back.slice(0, 1), it.endpoints.slice(1, 1)).dataSync()[0],
      cosine(back.slice(2, 1), it.endpoints.slice(0, 1)).dataSync()[0],
      cosine(back.slice(2, 1), it.endpoints.slice(1, 1)).dataSync()[0],
    ]);
    console.log(
      `      frame 0: cos to A ${c0a.toFixed(3)} / B ${c0b.toFixed(3)}; last frame: cos to A ${c2a.toFixed(3)} / B ${c2b.toFixed(3)}`,
    );
    expect(c0a).to.be.greaterThan(c0b);
    expect(c2b).to.be.greaterThan(c2a);
    tf.dispose([a, b, it.images, it.embeddings, it.endpoints, back]);
    if (!inputs) srcs.dispose();
  });

  it('Imagic: eta = 0 reconstructs the input better than eta = 1; eta = 1 scores higher on the target text', async function () {
    need(this, ['cond-unet', 'clip']);
    const x = inputs ? inputs.images.slice(0, 1) : strokeGuides(32).slice(0, 1);
    const target = 'cat face, animals & nature';
    const r = await imagic(cond!, clip!, x, target, { etas: [0, 1], seed: 0 });
    const i0 = r.images.slice(0, 1);
    const i1 = r.images.slice(1, 1);
    const m0 = mae(i0, x);
    const m1 = mae(i1, x);
    const score = tf.tidy(() => {
      const t = clip!.encodeText([target]);
      return Array.from(cosine(clip!.encodeImage(r.images).embedding, t).dataSync());
    });
    console.log(
      `      MAE to input eta 0 ${m0.toFixed(3)}, eta 1 ${m1.toFixed(3)}; CLIP score eta 0 ${score[0].toFixed(3)}, eta 1 ${score[1].toFixed(3)}`,
    );
    expect(m0).to.be.below(m1);
    expect(score[1]).to.be.greaterThan(score[0]);
    tf.dispose([x, i0, i1, r.images, r.embeddings, r.eOpt, r.eTarget]);
  });
});
