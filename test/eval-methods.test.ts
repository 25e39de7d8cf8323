/**
 * The evals' shared pieces: one batched sampler (lib/models/sample-batched.ts) behind `eval unet`,
 * `eval methods` and training's `sampleUNet`; the two unet paths giving the same numbers; the judge's
 * probabilities (lib/eval/judge.ts). Tiny random models, so these run in seconds.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { Dataset, testSubsetPath } from '../lib/data/index.js';
import { Judge, type JudgeConfig } from '../nets/judge/model.js';
import { UNet, type UNetConfig } from '../nets/unet/index.js';
import { makeSchedule, respace, respaceEven } from '../samplers/schedule.js';
import { diffusionModel } from '../samplers/model.js';
import { gaussianMixtureNet } from '../samplers/analytic.js';
import { sampleDdim } from '../samplers/ddim.js';
import { logSnrTimesteps, sampleDpmSolver2M } from '../samplers/dpm-solver.js';
import { makeDiffuser } from '../lib/models/diffuser.js';
import { sampleBatched } from '../lib/models/sample-batched.js';
import { sampleUNet } from '../lib/train/tasks/unet.js';
import { evalUNet, judgeSamples, loadUNet } from '../lib/eval/unet.js';
import { loadUNetDiffuser } from '../lib/models/load.js';
import { evalMethods, METHODS_PROTOCOL } from '../lib/eval/methods.js';
import { judgeProbs } from '../lib/eval/judge.js';
import { UNCLIP_EVAL_DECODER_STEPS, unclipEvalSettings } from '../lib/eval/unclip.js';
import { UNCLIP_DEFAULTS } from '../lib/methods/unclip.js';
import { methodOverrides } from '../lib/cli/commands/eval.js';
import { writeSafetensors } from '../lib/io/index.js';

const ds = Dataset.load(testSubsetPath(packageRoot()));
const UNET: Partial<UNetConfig> = {
  kind: 'guided-diffusion',
  imageSize: 32,
  inChannels: 3,
  outChannels: 3,
  modelChannels: 32,
  channelMult: [1, 2],
  numResBlocks: 1,
  attentionDs: [],
  numHeadChannels: 32,
};
const JUDGE: JudgeConfig = {
  imageSize: 32,
  widths: [8, 16],
  strides: [2, 2],
  groups: 4,
  categories: ds.categoryNames,
  vendors: ds.vendorNames,
};

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);

describe('eval: one batched sampler (lib/models/sample-batched.ts)', function () {
  this.timeout(300000);

  it('sample i depends on the seed and i alone (not n, not the batch); sampleUNet is the same sampler', async () => {
    const net = UNet.random(UNET, 3);
    const schedule = makeSchedule('cosine', 1000);
    const d = makeDiffuser(net, schedule, { prediction: 'v' });
    const before = tf.memory().numTensors;
    const a = await sampleBatched(d, 5, { steps: 3, seed: 7, batch: 2 });
    const b = await sampleBatched(d, 3, { steps: 3, seed: 7, batch: 3 });
    const c = await sampleUNet(net, schedule, 5, { steps: 3, seed: 7, prediction: 'v' });
    const other = await sampleBatched(d, 3, { steps: 3, seed: 8 });
    expect(a.shape).to.deep.equal([5, 32, 32, 3]);
    const head = a.slice(0, 3);
    expect(maxAbsDiff(head, b)).to.be.below(1e-5);
    expect(maxAbsDiff(a, c)).to.be.below(1e-5);
    // another seed, other images; and the images of one call are not copies of each other
    expect(maxAbsDiff(b, other)).to.be.above(0.05);
    expect(tf.tidy(() => maxAbsDiff(a.slice(0, 1), a.slice(1, 1)))).to.be.above(0.05);
    expect(tf.tidy(() => tf.min(a).dataSync()[0])).to.be.at.least(-1);
    expect(tf.tidy(() => tf.max(a).dataSync()[0])).to.be.at.most(1);
    tf.dispose([a, b, c, other, head]);
    expect(tf.memory().numTensors).to.equal(before);
    net.dispose();
  });

  it('refuses a step count the schedule does not have, naming the range', async () => {
    const net = UNet.random(UNET, 3);
    const d = makeDiffuser(net, makeSchedule('cosine', 100));
    let err: Error | undefined;
    await sampleBatched(d, 2, { steps: 101 }).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/steps must be an integer in \[1, 100\]/);
    net.dispose();
  });
});

describe('samplers/dpm-solver.ts: DPM-Solver++(2M)', () => {
  it('solves the DDIM ODE to second order: on an exact Gaussian-mixture denoiser, 15 log-SNR steps beat DDIM-15 and DDIM-30', async () => {
    const base = makeSchedule('cosine', 1000);
    const model = diffusionModel(
      gaussianMixtureNet(base, [
        { mean: -0.5, std: 0.2 },
        { mean: 0.6, std: 0.1 },
      ]),
    );
    const x = tf.randomNormal([4, 4, 4, 1], 0, 1, 'float32', 11) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const ref = await sampleDdim(model, x, respaceEven(base, 1000));
    const keep = logSnrTimesteps(base, 15);
    expect(keep[0]).to.equal(0);
    expect(keep[keep.length - 1]).to.equal(999);
    expect(keep.length).to.be.within(10, 15);
    expect([...keep].sort((a, b) => a - b)).to.deep.equal(keep);
    const dpm = sampleDpmSolver2M(model, x, respace(base, keep));
    const ddim15 = await sampleDdim(model, x, respaceEven(base, 15));
    const ddim30 = await sampleDdim(model, x, respaceEven(base, 30));
    const eDpm = maxAbsDiff(dpm, ref);
    expect(eDpm).to.be.below(maxAbsDiff(ddim15, ref) / 2);
    expect(eDpm).to.be.below(maxAbsDiff(ddim30, ref));
    // first order is DDIM (eta 0) exactly
    const first = sampleDpmSolver2M(model, x, respaceEven(base, 10), { order: 1 });
    const ddim10 = await sampleDdim(model, x, respaceEven(base, 10));
    expect(maxAbsDiff(first, ddim10)).to.be.below(1e-5);
    tf.dispose([ref, dpm, ddim15, ddim30, first, ddim10]);
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
  });
});

describe('eval: eval unet and eval methods measure the same samples', function () {
  this.timeout(600000);

  it('the same weights, n, steps and seed give the same category TV, histogram and FD in both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-eval-methods-'));
    const net = UNet.random(UNET, 5);
    const judge = Judge.random(JUDGE, 2);
    mkdirSync(join(dir, 'unet'));
    mkdirSync(join(dir, 'judge'));
    await writeSafetensors(join(dir, 'unet', 'unet.safetensors'), net.toStateDict());
    writeFileSync(
      join(dir, 'unet', 'config.json'),
      JSON.stringify({ ...net.config, schedule: 'cosine', timesteps: 1000, prediction: 'v' }),
    );
    await writeSafetensors(join(dir, 'judge', 'judge.safetensors'), judge.toStateDict());
    writeFileSync(join(dir, 'judge', 'config.json'), JSON.stringify(JUDGE));
    const n = 6;
    const steps = 3;
    const seed = METHODS_PROTOCOL.unet.seed;
    const sampler = METHODS_PROTOCOL.unet.sampler;
    const u = await evalUNet(net, 'cosine', 1000, judge, ds, { n, steps, seed, sampler, prediction: 'v' });
    const unetSection = (seedShift?: number) =>
      evalMethods({
        ds,
        weights: join(dir, 'unet'),
        judge: join(dir, 'judge'),
        only: ['unet'],
        unetOverride: { n, steps, sampler },
        seedShift,
      });
    const m = await unetSection();
    const details = m.unet as { n: number; steps: number; fdSamples: number; sampleCategories: Record<string, number> };
    expect(details.n).to.equal(n);
    expect(details.steps).to.equal(steps);
    expect((m.protocol as { unet: { n: number } }).unet.n).to.equal(n);
    expect(details.sampleCategories).to.deep.equal(u.sampleCategories);
    expect(m.bars.unet_category_tv.value).to.equal(u.bars.category_tv_distance.value);
    // FD(samples, held-out) in the judge's features: the same samples give the same number
    expect(details.fdSamples).to.be.closeTo(u.fid as number, 1e-6 * (u.fid as number));
    // a different seed gives other samples: the agreement above is not a constant
    const d = makeDiffuser(net, makeSchedule('cosine', 1000), { prediction: 'v' });
    const same = await judgeSamples(d, judge, ds, { n, steps, seed, sampler });
    const other = await judgeSamples(d, judge, ds, { n, steps, seed: seed + 1, sampler });
    expect(same.tv).to.equal(u.bars.category_tv_distance.value);
    expect([...other.features]).to.not.deep.equal([...same.features]);
    // --seed 1 (seedShift): the protocol's seeds + 1, recorded in the report: those other samples
    const m1 = await unetSection(1);
    expect((m1.protocol as { unet: { seed: number } }).unet.seed).to.equal(seed + 1);
    expect((m1.protocol as { sdg: { seed: number } }).sdg.seed).to.equal(METHODS_PROTOCOL.sdg.seed + 1);
    expect(m1.bars.unet_category_tv.value).to.equal(other.tv);
    net.dispose();
    judge.dispose();
  });
});

describe('eval methods: settings other than the defaults (--sdg-scale, --unclip-decoder-scale, ...)', () => {
  it('the flags given become overrides, the others stay unset (the defaults); a bad --sdg-on is refused', () => {
    const o = methodOverrides({ values: { 'sdg-scale': '400', 'unclip-eta': '0.5' }, positionals: [] });
    expect(o.sdg).to.deep.equal({ scale: 400, steps: undefined, on: undefined, normalizeGrad: undefined });
    expect(o.unclip).to.deep.equal({
      decoderScale: undefined,
      priorScale: undefined,
      variationEta: 0.5,
      variationInvert: undefined,
    });
    const inv = methodOverrides({ values: { 'unclip-invert': 'false' }, positionals: [] });
    expect(inv.unclip?.variationInvert).to.equal(false);
    expect(methodOverrides({ values: { 'sdg-normalize-grad': 'true' }, positionals: [] }).sdg?.normalizeGrad).to.equal(
      true,
    );
    expect(() => methodOverrides({ values: { 'unclip-invert': 'yes' }, positionals: [] })).to.throw(/unclip-invert/);
    expect(() => methodOverrides({ values: { 'sdg-on': 'x1' }, positionals: [] })).to.throw(/sdg-on/);
  });

  it('the --diffusionclip-* flags become its overrides; bad values are refused before any fine-tune', async () => {
    const o = methodOverrides({
      values: { 'diffusionclip-lr': '3e-3', 'diffusionclip-mode': 'perstep', 'diffusionclip-inputs': '8' },
      positionals: [],
    });
    expect(o.diffusionclip).to.deep.include({
      lr: 3e-3,
      mode: 'perstep',
      inputs: 8,
      t0: undefined,
      modelRatio: undefined,
    });
    expect(() => methodOverrides({ values: { 'diffusionclip-mode': 'chain' }, positionals: [] })).to.throw(
      /diffusionclip-mode/,
    );
    const P = METHODS_PROTOCOL.diffusionclip;
    for (const [bad, re] of [
      [{ inputs: P.inputs + 1 }, /inputs/],
      [{ lr: 0 }, /lr/],
      [{ modelRatio: Number.NaN }, /modelRatio/],
    ] as const) {
      let err: unknown;
      await evalMethods({ ds, only: ['diffusionclip'], overrides: { diffusionclip: bad } }).catch((e) => (err = e));
      expect(String(err)).to.match(re);
    }
  });

  it("the unCLIP prompt bars run on UNCLIP_DEFAULTS' prior and decoder scales unless told", () => {
    const U = UNCLIP_DEFAULTS;
    expect(unclipEvalSettings({})).to.deep.equal({
      priorScale: U.prior.priorScale,
      priorSteps: U.prior.priorSteps,
      bestOf: U.prior.bestOf,
      decoderScale: U.decode.decoderScale,
      steps: UNCLIP_EVAL_DECODER_STEPS,
    });
    expect(unclipEvalSettings({ decoderScale: U.decode.decoderScale + 2 }).decoderScale).to.equal(
      U.decode.decoderScale + 2,
    );
  });
});

describe('eval: the methods load the UNet eval unet measures', () => {
  it('a config naming its model ("model": "unet") keeps its UNet fields: numHeadChannels 32 stays 32', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-eval-load-'));
    // attention at 1/2 resolution with 64 channels: 2 heads of 32 (inferred from the weights alone: 1 of 64)
    const cfg: Partial<UNetConfig> = { ...UNET, attentionDs: [2], numHeadChannels: 32 };
    const net = UNet.random(cfg, 1);
    await writeSafetensors(join(dir, 'unet.safetensors'), net.toStateDict());
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ model: 'unet', ...net.config, schedule: 'cosine', timesteps: 1000, prediction: 'v' }),
    );
    const d = await loadUNetDiffuser(dir);
    const u = await loadUNet(dir);
    expect(d.unet.config.numHeadChannels).to.equal(32);
    expect(d.unet.config.numHeadChannels).to.equal(u.net.config.numHeadChannels);
    expect(d.unet.config.imageSize).to.equal(32);
    expect(d.prediction).to.equal('v');
    // and so the same output
    const x = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const t = tf.tensor1d([500]);
    const a = tf.tidy(() => d.unet.apply(x, t, {}));
    const b = tf.tidy(() => u.net.apply(x, t, {}));
    expect(maxAbsDiff(a, b)).to.equal(0);
    tf.dispose([x, t, a, b]);
    net.dispose();
    d.unet.dispose();
    u.net.dispose();
  });
});

describe('eval: judgeProbs (lib/eval/judge.ts)', () => {
  it('softmax rows that sum to 1, argmax = predict, the same in any batch size', () => {
    const judge = Judge.random(JUDGE, 4);
    const x = ds.images(ds.indicesOf('test').slice(0, 5), { rgb: true });
    const before = tf.memory().numTensors;
    const p = judgeProbs(judge, x);
    const p2 = judgeProbs(judge, x, 2);
    expect(tf.memory().numTensors).to.equal(before);
    expect(p.length).to.equal(5);
    const cats = judge.predict(x).category;
    p.forEach((row, i) => {
      expect(row.length).to.equal(ds.categoryNames.length);
      expect(row.reduce((s, v) => s + v, 0)).to.be.closeTo(1, 1e-5);
      expect(row.indexOf(Math.max(...row))).to.equal(cats[i]);
      row.forEach((v, k) => expect(v).to.be.closeTo(p2[i][k], 1e-6));
    });
    x.dispose();
    judge.dispose();
  });
});
