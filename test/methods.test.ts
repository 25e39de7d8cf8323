/**
 * The five methods on tiny random-weight models: properties that hold for any net (masks, endpoints,
 * invertibility, delta round-trip, no tensor growth). The judge-based assertions on the shipped
 * weights are in test/methods-trained.test.ts.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UNet } from '../nets/unet/index.js';
import { makeSchedule } from '../samplers/schedule.js';
import { Rng } from '../lib/random.js';
import {
  cosine,
  disposeModels,
  makeDiffuser,
  mae,
  randomModels,
  slerp,
  tinyUNetConfig,
  type Diffuser,
} from '../lib/methods/index.js';
import { cloneUNet } from '../lib/models/diffuser.js';
import { sdedit, sdeditComposite } from '../lib/methods/sdedit.js';
import { sdg } from '../lib/methods/sdg.js';
import { sample } from '../lib/methods/sample.js';
import * as dclip from '../lib/methods/diffusionclip.js';
import * as unclip from '../lib/methods/unclip.js';
import { IMAGIC_DEFAULTS, imagic, interpolateEmbeddings, resolveImagicOptions } from '../lib/methods/imagic.js';
import { Prior } from '../nets/prior/index.js';

/** A smooth test image [1, S, S, 3] in [-1, 1]. */
function testImage(size: number, seed = 0): tf.Tensor4D {
  return tf.tidy(() => {
    const r = new Rng(seed);
    const lo = r.uniform<tf.Rank.R4>([1, 4, 4, 3], -0.8, 0.8);
    return tf.image.resizeBilinear(lo, [size, size]) as tf.Tensor4D;
  });
}

/** A 16x16 unconditional diffuser with a random net (small init so the chain stays tame). */
function tinyDiffuser(seed = 0): Diffuser {
  return makeDiffuser(
    UNet.random(tinyUNetConfig({ imageSize: 16, modelChannels: 32 }), seed, { referenceInit: false }),
    makeSchedule('linear', 1000),
    { source: 'random' },
  );
}

describe('methods: maths', () => {
  it('slerp: exact endpoints, unit norm kept, angle proportional to t', () => {
    const a = tf.tensor2d([[1, 0, 0]]);
    const b = tf.tensor2d([[0, 2, 0]]);
    const s0 = slerp(a, b, 0);
    const s1 = slerp(a, b, 1);
    const sh = slerp(a, b, 0.5);
    const s3 = slerp(l2(a), l2(b), 1 / 3);
    expect(Array.from(s0.dataSync())).to.deep.equal([1, 0, 0]);
    expect(Array.from(s1.dataSync())).to.deep.equal([0, 2, 0]);
    const h = sh.dataSync();
    // direction at 45 degrees, norm interpolated linearly (1.5)
    expect(h[0]).to.be.closeTo(1.5 * Math.SQRT1_2, 1e-5);
    expect(h[1]).to.be.closeTo(1.5 * Math.SQRT1_2, 1e-5);
    const t3 = s3.dataSync();
    expect(Math.atan2(t3[1], t3[0])).to.be.closeTo(Math.PI / 6, 1e-5);
    expect(Math.hypot(t3[0], t3[1], t3[2])).to.be.closeTo(1, 1e-5);
    tf.dispose([a, b, s0, s1, sh, s3]);
  });

  it('slerp of parallel vectors falls back to lerp (no NaN)', () => {
    const a = tf.tensor2d([[1, 1]]);
    const s = slerp(a, a, 0.3);
    expect(Array.from(s.dataSync()).every(Number.isFinite)).to.equal(true);
    expect(s.dataSync()[0]).to.be.closeTo(1, 1e-5);
    tf.dispose([a, s]);
  });

  it('Imagic interpolation endpoints are exactly e_opt (eta 0) and e_tgt (eta 1)', () => {
    const et = tf.tensor2d([[0.3, -1.2, 2.5]]);
    const eo = tf.tensor2d([[1.1, 0.7, -0.4]]);
    const e = interpolateEmbeddings(et, eo, [0, 0.5, 1]);
    const v = e.arraySync();
    expect(v[0]).to.deep.equal(Array.from(eo.dataSync()));
    expect(v[2]).to.deep.equal(Array.from(et.dataSync()));
    expect(v[1][0]).to.be.closeTo(0.7, 1e-6);
    tf.dispose([et, eo, e]);
  });

  it('resolveImagicOptions: IMAGIC_DEFAULTS fill what is not given; values out of range are refused by name', () => {
    const o = resolveImagicOptions({ ftSteps: 7, embLr: undefined });
    expect(o.ftSteps).to.equal(7);
    expect(o.embLr).to.equal(IMAGIC_DEFAULTS.embLr);
    expect(o.etas).to.deep.equal([...IMAGIC_DEFAULTS.etas]);
    expect(resolveImagicOptions({ embSteps: 0, ftSteps: 0 }).ftSteps, 'stage ablations: 0 steps allowed').to.equal(0);
    expect(() => resolveImagicOptions({ ftLr: 0 })).to.throw(/ftLr must be a number > 0/);
    expect(() => resolveImagicOptions({ embSteps: 1.5 })).to.throw(/embSteps must be an integer/);
    expect(() => resolveImagicOptions({ etas: [] })).to.throw(/etas must list/);
    expect(() => resolveImagicOptions({ etas: [0, NaN] })).to.throw(/etas must be a number/);
    expect(() => resolveImagicOptions({ sampler: 'euler' as 'ddim' })).to.throw(/sampler must be 'ddim' or 'ddpm'/);
    expect(() => resolveImagicOptions({ seed: -1 })).to.throw(/seed must be an integer/);
    expect(() => resolveImagicOptions({ guidanceFrom: 'uncond' as 'zero' })).to.throw(
      /guidanceFrom must be 'zero' or 'eopt'/,
    );
  });
});

function l2(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => x.div(tf.norm(x, 2, 1, true)));
}

describe('nets/prior (unCLIP prior)', () => {
  it('state_dict round-trip (PyTorch layout) gives the same predictions; keep = 0 ignores the text; training loss decreases', () => {
    const p = Prior.random({ embedDim: 8, width: 16, depth: 2 }, 3);
    // give the zero-initialised output layers values so the test sees them
    tf.tidy(() => {
      for (const [k, v] of p.params)
        if (/out_proj|fc2/.test(k)) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', k.length));
    });
    const q = Prior.fromStateDict(p.toStateDict());
    const x = tf.randomNormal([3, 8], 0, 1, 'float32', 1) as tf.Tensor2D;
    const txt = tf.randomNormal([3, 8], 0, 1, 'float32', 2) as tf.Tensor2D;
    const txt2 = tf.randomNormal([3, 8], 0, 1, 'float32', 4) as tf.Tensor2D;
    const t = tf.tensor1d([1, 500, 999]);
    const keep0 = tf.zeros([3]) as tf.Tensor1D;
    const a = p.apply(x, t, txt);
    const b = q.apply(x, t, txt);
    expect(mae(a, b)).to.be.below(1e-6);
    const n1 = p.apply(x, t, txt, keep0);
    const n2 = p.apply(x, t, txt2, keep0);
    expect(mae(n1, n2)).to.equal(0);
    expect(mae(a, n1)).to.be.greaterThan(1e-4);
    // a few Adam steps on a fixed batch reduce the x0 loss
    const sched = makeSchedule('cosine', 1000);
    const params = p.params;
    const losses: number[] = [];
    const opt = tf.train.adam(3e-3);
    for (let i = 0; i < 30; i++) {
      const l = opt.minimize(() => p.loss(x, txt, sched.alphasCumprod, new Rng(7), 0), true, [...params.values()])!;
      losses.push(l.dataSync()[0]);
      l.dispose();
    }
    expect(losses[29]).to.be.below(losses[0] * 0.8);
    opt.dispose();
    tf.dispose([x, txt, txt2, t, keep0, a, b, n1, n2]);
    p.dispose();
    q.dispose();
  });
});

describe('methods: SDEdit (random net)', function () {
  this.timeout(120000);
  let d: Diffuser;
  let guide: tf.Tensor4D;
  before(() => {
    d = tinyDiffuser(1);
    guide = testImage(16, 3);
  });
  after(() => {
    d.unet.dispose();
    guide.dispose();
  });

  it('masked editing leaves the kept region within 1/255 of the guide (VP and VE)', async () => {
    const mask = tf.tidy(() => {
      const m = tf.buffer([1, 16, 16, 1]);
      for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) m.set(x < 8 ? 1 : 0, 0, y, x, 0);
      return m.toTensor();
    }) as tf.Tensor4D;
    for (const sde of ['vp', 've'] as const) {
      const r = await sdedit(d, guide, { t0: 0.5, steps: 10, mask, sde, seed: 4 });
      const keptErr = tf.tidy(() => tf.max(tf.abs(r.images.sub(guide)).mul(mask)).dataSync()[0]);
      const freeDiff = tf.tidy(() => tf.mean(tf.abs(r.images.sub(guide)).mul(tf.scalar(1).sub(mask))).dataSync()[0]);
      expect(keptErr, sde).to.be.at.most(1 / 255);
      expect(freeDiff, `${sde}: regenerated region should change`).to.be.greaterThan(0.01);
      r.images.dispose();
    }
    mask.dispose();
  });

  it('t0 -> 0 returns the guide', async () => {
    const r = await sdedit(d, guide, { t0: 0.001, steps: 5, seed: 1 });
    expect(mae(r.images, guide)).to.be.below(0.02);
    r.images.dispose();
  });

  it('repeats give K different samples per guide; compositing keeps the background', async () => {
    const r = await sdedit(d, guide, { t0: 0.4, steps: 5, repeats: 3, seed: 2 });
    expect(r.images.shape).to.deep.equal([3, 16, 16, 3]);
    const diff = tf.tidy(() => tf.mean(tf.abs(r.images.slice(0, 1).sub(r.images.slice(1, 1)))).dataSync()[0]);
    expect(diff).to.be.greaterThan(1e-3);
    r.images.dispose();
    const over = tf.fill([1, 16, 16, 3], 0.9) as tf.Tensor4D;
    const region = tf.tidy(() =>
      tf.pad(tf.ones([1, 6, 6, 1]), [
        [0, 0],
        [5, 5],
        [5, 5],
        [0, 0],
      ]),
    ) as tf.Tensor4D;
    const c = await sdeditComposite(d, guide, over, region, { t0: 0.4, steps: 5, seed: 3 });
    const bgErr = tf.tidy(() => tf.max(tf.abs(c.images.sub(guide)).mul(tf.scalar(1).sub(region))).dataSync()[0]);
    expect(bgErr).to.be.at.most(1 / 255);
    tf.dispose([c.images, c.composite, over, region]);
  });

  it('resizes guides of another size with a note', async () => {
    const big = testImage(32, 5);
    const notes: string[] = [];
    const r = await sdedit(d, big, { t0: 0.2, steps: 3, onNote: (m) => notes.push(m) });
    expect(r.images.shape).to.deep.equal([1, 16, 16, 3]);
    expect(notes.join()).to.match(/resized from 32x32 to 16x16/);
    tf.dispose([big, r.images]);
  });
});

describe('methods: DiffusionCLIP (random net)', function () {
  this.timeout(300000);
  let d: Diffuser;
  let img: tf.Tensor4D;
  before(() => {
    d = tinyDiffuser(2);
    img = testImage(16, 7);
  });
  after(() => {
    d.unet.dispose();
    img.dispose();
  });

  it('DDIM inversion + regeneration with the original model reconstructs the input; the error shrinks with smaller steps', async () => {
    // a random net has a rough eps(x, t), so the discretisation error is visible: ~O(1/steps)
    const errs: number[] = [];
    let latentDist = 0;
    for (const n of [20, 150]) {
      const inv = await dclip.invert(d, img, { t0: 0.3, nInv: n });
      const r = await dclip.regenerate(d, inv, { nGen: n });
      errs.push(mae(r.images, img));
      latentDist = mae(inv.latent, img);
      tf.dispose([inv.latent, r.images]);
    }
    expect(latentDist, 'the latent is far from the image').to.be.greaterThan(0.1);
    expect(errs[1]).to.be.below(0.015);
    expect(errs[1]).to.be.below(errs[0] / 3);
  });

  it('resolveDiffusionClipOptions: every default from DIFFUSIONCLIP_DEFAULTS; an out-of-range option is refused by name, before any work', async () => {
    const D = dclip.DIFFUSIONCLIP_DEFAULTS;
    const o = dclip.resolveDiffusionClipOptions({});
    for (const k of Object.keys(o) as (keyof typeof o)[]) if (k !== 'idEncoder') expect(o[k], k).to.deep.equal(D[k]);
    expect(dclip.resolveDiffusionClipOptions({ lr: 1e-3, nTrain: 3 })).to.include({ lr: 1e-3, nTrain: 3, t0: D.t0 });
    const refused = (opts: dclip.DiffusionClipOptions) => {
      try {
        dclip.resolveDiffusionClipOptions(opts);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(refused({ t0: 0 })).to.match(/^t0 must be/);
    expect(refused({ t0: 1.5 })).to.match(/^t0 must be/);
    expect(refused({ nTrain: 0 })).to.match(/^nTrain must be an integer >= 1/);
    expect(refused({ iters: 2.5 })).to.match(/^iters must be/);
    expect(refused({ lr: 0 })).to.match(/^lr must be a number > 0/);
    expect(refused({ clipWeight: -1 })).to.match(/^clipWeight must be/);
    expect(refused({ eta: 2 })).to.match(/^eta must be/);
    expect(refused({ mode: 'fast' as 'full' })).to.match(/mode must be 'full' or 'perstep'/);
    expect(refused({ idWeight: 1 })).to.match(/needs an idEncoder/);
    expect(refused({ templates: ['a face'] })).to.match(/templates/);
    // finetune checks first: a bad option fails before the inversion runs
    const m = randomModels(0, { imageSize: 16, modelChannels: 32, embedDim: 32 });
    const before = tf.memory().numTensors;
    let msg = '';
    try {
      await dclip.finetune(m.unet, m.clip, img, { source: 'a', target: 'b', nTrain: 0 });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).to.match(/^nTrain must be/);
    expect(tf.memory().numTensors, 'nothing made, nothing left').to.equal(before);
    disposeModels(m);
  });

  it('mixEdit: a segment list without minFraction 0 is refused', async () => {
    let msg = '';
    try {
      await dclip.mixEdit(d, [d], [{ minFraction: 0.5, weights: [1] }], img, { nInv: 2, nGen: 2 });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).to.match(/minFraction: 0/);
  });

  it('delta file round-trip: base + delta == fine-tuned', async () => {
    const base = d.unet;
    const ft = cloneUNet(base);
    // perturb the copy as a fine-tune would
    tf.tidy(() => {
      for (const [k, v] of ft.params)
        if (!k.includes('norm')) v.assign(v.add(tf.randomNormal(v.shape, 0, 0.01, 'float32', k.length)));
    });
    const dir = mkdtempSync(join(tmpdir(), 'dg-delta-'));
    try {
      const path = join(dir, 'delta.safetensors');
      await dclip.saveDelta(path, base, ft, { source: 'a', target: 'b' });
      const back = await dclip.applyDelta(base, path);
      let maxErr = 0;
      for (const [k, v] of ft.params) {
        const e = tf.tidy(() => tf.max(tf.abs(v.sub(back.params.get(k)!))).dataSync()[0]);
        maxErr = Math.max(maxErr, e);
      }
      expect(maxErr).to.be.below(1e-6);
      back.dispose();
      // a delta for another architecture is refused with a clear message
      const other = UNet.random(tinyUNetConfig({ imageSize: 16, modelChannels: 64 }), 0);
      let msg = '';
      try {
        (await dclip.applyDelta(other, path)).dispose();
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).to.match(/delta/);
      other.dispose();
    } finally {
      ft.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('methods: no tensor growth over whole runs (tiny random models)', function () {
  this.timeout(600000);
  let m: ReturnType<typeof randomModels>;
  let img: tf.Tensor4D;
  let img2: tf.Tensor4D;
  before(() => {
    m = randomModels(0, { imageSize: 16, modelChannels: 32, embedDim: 32 });
    img = testImage(16, 11);
    img2 = testImage(16, 12);
  });
  after(() => {
    disposeModels(m);
    tf.dispose([img, img2]);
  });

  /** Runs `run`, disposes what it returns, and checks the tensor count is back (plus `kept` tensors the caller keeps). */
  async function noGrowth(name: string, run: () => Promise<tf.Tensor[]>, kept = 0): Promise<void> {
    const before = tf.memory().numTensors;
    const outs = await run();
    for (const o of outs)
      expect(Array.from(o.dataSync()).every(Number.isFinite), `${name}: finite output`).to.equal(true);
    tf.dispose(outs);
    expect(tf.memory().numTensors, name).to.equal(before + kept);
  }

  it('sample, SDEdit (vp, ve, masked)', async () => {
    await noGrowth('sample', async () => [(await sample(m.unet, { n: 2, steps: 4, sampler: 'ddpm' })).images]);
    await noGrowth('sdedit', async () => [(await sdedit(m.unet, img, { steps: 4, repeats: 2 })).images]);
    await noGrowth('sdedit ve', async () => [(await sdedit(m.unet, img, { steps: 4, sde: 've' })).images]);
  });

  it('SDG (text, content, style, on x0, DDIM)', async () => {
    const enc = { noisy: m.noisy, image: m.clip, text: m.clip };
    await noGrowth('sdg text', async () => [(await sdg(m.unet, enc, { text: 'a red heart', n: 2, steps: 3 })).images]);
    await noGrowth('sdg content+text', async () => [
      (await sdg(m.unet, enc, { text: 'a cat', image: img, n: 1, steps: 3 })).images,
    ]);
    await noGrowth('sdg x0 ddim', async () => [
      (await sdg(m.unet, enc, { text: 'a cat', on: 'x0', sampler: 'ddim', n: 1, steps: 3 })).images,
    ]);
  });

  it('SDG style guidance (Gram matrices of encoder features)', async () => {
    // fails while nets/clip's visionTransformer tf.keep()s requested features (they escape every tidy)
    const enc = { noisy: m.noisy, image: m.clip, text: m.clip };
    await noGrowth('sdg style', async () => [
      (await sdg(m.unet, enc, { image: img, imageMode: 'style', n: 1, steps: 3 })).images,
    ]);
  });

  it('SDG guidance changes the sample (same noise, scale 0 vs > 0)', async () => {
    const enc = { noisy: m.noisy, text: m.clip };
    const a = await sdg(m.unet, enc, { text: 'a cat', n: 1, steps: 5, scale: 0, seed: 3 });
    const b = await sdg(m.unet, enc, { text: 'a cat', n: 1, steps: 5, scale: 5000, seed: 3 });
    const u = await sample(m.unet, { n: 1, steps: 5, sampler: 'ddpm', seed: 3 });
    expect(mae(a.images, u.images), 'scale 0 = unguided sampling from the same noise').to.be.below(1e-5);
    expect(mae(a.images, b.images)).to.be.greaterThan(1e-4);
    tf.dispose([a.images, b.images, u.images]);
  });

  it('DiffusionCLIP: fine-tune (full chain and per-step), edit with modelRatio, mix, latent optimisation', async () => {
    let ft: dclip.FinetuneResult | null = null;
    let ft2: dclip.FinetuneResult | null = null;
    await noGrowth(
      'finetune full',
      async () => {
        ft = await dclip.finetune(m.unet, m.clip, img, {
          source: 'a cat',
          target: 'a dog',
          nInv: 4,
          nTrain: 2,
          iters: 2,
          mode: 'full',
        });
        return [];
      },
      m.unet.unet.params.size,
    );
    await noGrowth(
      'finetune perstep',
      async () => {
        ft2 = await dclip.finetune(m.unet, m.clip, img, {
          source: 'a cat',
          target: 'a dog',
          nInv: 4,
          nTrain: 2,
          iters: 1,
          mode: 'perstep',
        });
        return [];
      },
      m.unet.unet.params.size,
    );
    const f1 = ft as unknown as dclip.FinetuneResult;
    const f2 = ft2 as unknown as dclip.FinetuneResult;
    expect(f1.losses.length).to.equal(2);
    expect(f2.losses.length).to.equal(2);
    // the copy moved, the original did not
    const moved = tf.tidy(() => {
      let s = 0;
      for (const [k, v] of f1.model.unet.params) s += tf.sum(tf.abs(v.sub(m.unet.unet.params.get(k)!))).dataSync()[0];
      return s;
    });
    expect(moved).to.be.greaterThan(0);
    await noGrowth('edit', async () => {
      const r = await dclip.edit(m.unet, f1.model, img, { nInv: 4, nGen: 3, modelRatio: 0.5, returnSteps: true });
      expect(r.steps!.length).to.equal(3);
      return [r.images, ...r.steps!];
    });
    // modelRatio 0 is the original model: identical to plain inversion + regeneration
    const r0 = await dclip.edit(m.unet, f1.model, img, { nInv: 4, nGen: 4, modelRatio: 0 });
    const inv = await dclip.invert(m.unet, img, { nInv: 4 });
    const rg = await dclip.regenerate(m.unet, inv, { nGen: 4 });
    const rgc = tf.clipByValue(rg.images, -1, 1);
    expect(mae(r0.images, rgc)).to.be.below(1e-6);
    tf.dispose([r0.images, inv.latent, rg.images, rgc]);
    await noGrowth('mix', async () => [
      (
        await dclip.mixEdit(
          m.unet,
          [f1.model, f2.model],
          [
            { minFraction: 0.3, weights: [1, 0] },
            { minFraction: 0, weights: [0.5, 0.5] },
          ],
          img,
          { nInv: 4, nGen: 3 },
        )
      ).images,
    ]);
    await noGrowth('latent optim', async () => [
      (
        await dclip.latentOptimize(m.unet, m.clip, img, {
          source: 'a cat',
          target: 'a dog',
          nInv: 4,
          nGen: 2,
          iters: 2,
        })
      ).images,
    ]);
    f1.model.unet.dispose();
    f2.model.unet.dispose();
  });

  it('unCLIP: text -> image (best of 2), variations, interpolation endpoints, text diffs', async () => {
    const models: unclip.UnclipModels = {
      decoder: m.cond,
      prior: m.prior.prior,
      priorSchedule: m.prior.schedule,
      clip: m.clip,
    };
    await noGrowth('text2image', async () => {
      const r = await unclip.textToImage(models, ['a cat', 'a heart'], { priorSteps: 4, steps: 3 });
      expect(r.images.shape).to.deep.equal([2, 16, 16, 3]);
      expect(r.similarity.length).to.equal(2);
      return [r.images, r.imageEmbeddings];
    });
    await noGrowth('variations', async () => {
      const r = await unclip.variations(models, img, { n: 2, steps: 3 });
      const diff = tf.tidy(() => mae(r.images.slice(0, 1), r.images.slice(1, 1)));
      expect(diff, 'eta > 0 gives different variations').to.be.greaterThan(1e-4);
      return [r.images, r.embedding];
    });
    await noGrowth('variations from the inverted x_T', async () => {
      // unCLIP's (z_i, x_T): at eta 0 every variation is the one deterministic decode of the inverted x_T
      const inv = await unclip.variations(models, img, { n: 2, steps: 3, eta: 0, invert: true });
      const noise = await unclip.variations(models, img, { n: 2, steps: 3, eta: 0, invert: false });
      expect(inv.settings.invert).to.equal(true);
      const same = tf.tidy(() => mae(inv.images.slice(0, 1), inv.images.slice(1, 1)));
      const other = tf.tidy(() => mae(inv.images.slice(0, 1), noise.images.slice(0, 1)));
      expect(same, 'one start, eta 0: identical').to.equal(0);
      expect(other, 'the inverted x_T is not the seed noise').to.be.greaterThan(1e-4);
      return [inv.images, inv.embedding, noise.images, noise.embedding];
    });
    await noGrowth('interpolate', async () => {
      const r = await unclip.interpolate(models, img, img2, { frames: 3, steps: 3 });
      tf.tidy(() => {
        expect(cosine(r.embeddings.slice(0, 1), r.endpoints.slice(0, 1)).dataSync()[0]).to.be.closeTo(1, 1e-6);
        expect(cosine(r.embeddings.slice(2, 1), r.endpoints.slice(1, 1)).dataSync()[0]).to.be.closeTo(1, 1e-6);
        expect(mae(r.embeddings.slice(0, 1), r.endpoints.slice(0, 1))).to.equal(0);
        expect(mae(r.embeddings.slice(2, 1), r.endpoints.slice(1, 1))).to.equal(0);
      });
      return [r.images, r.embeddings, r.endpoints];
    });
    await noGrowth('text diff', async () => {
      const r = await unclip.textDiff(models, img, { source: 'a cat', target: 'a dog', thetas: [0, 0.5], steps: 3 });
      return [r.images, r.embeddings];
    });
  });

  it('unCLIP decoder from the same x_T and embedding is deterministic at eta 0', async () => {
    const z = tf.randomNormal([1, 32], 0, 1, 'float32', 5) as tf.Tensor2D;
    const a = await unclip.decode(m.cond, z, { steps: 3, seed: 9 });
    const b = await unclip.decode(m.cond, z, { steps: 3, seed: 9 });
    expect(mae(a, b)).to.equal(0);
    tf.dispose([z, a, b]);
  });

  it('Imagic: stages 1-3; eta 0 / 1 use exactly e_opt / e_tgt; the sweep reuses one model', async () => {
    await noGrowth('imagic', async () => {
      const r = await imagic(m.cond, m.clip, img, 'a dog', {
        etas: [0, 0.5, 1],
        embSteps: 3,
        ftSteps: 2,
        steps: 3,
        batch: 2,
      });
      expect(r.images.shape).to.deep.equal([3, 16, 16, 3]);
      const e = r.embeddings.arraySync();
      expect(e[0]).to.deep.equal(r.eOpt.arraySync()[0]);
      expect(e[2]).to.deep.equal(r.eTarget.arraySync()[0]);
      expect(mae(r.eOpt, r.eTarget), 'stage 1 moved the embedding').to.be.greaterThan(0);
      expect(r.losses.embedding.length).to.equal(3);
      expect(r.losses.finetune.length).to.equal(2);
      return [r.images, r.embeddings, r.eOpt, r.eTarget];
    });
  });

  it("Imagic guidanceFrom 'eopt': eta 0 samples as unguided (cond == reference); eta 1 is guided", async () => {
    const o = { etas: [0, 1], embSteps: 2, ftSteps: 1, steps: 3, start: 'inversion' as const, seed: 3 };
    const a = await imagic(m.cond, m.clip, img, 'a dog', { ...o, guidanceScale: 1 });
    const b = await imagic(m.cond, m.clip, img, 'a dog', { ...o, guidanceScale: 3, guidanceFrom: 'eopt' });
    const [a0, a1, b0, b1] = [a.images.slice(0, 1), a.images.slice(1, 1), b.images.slice(0, 1), b.images.slice(1, 1)];
    expect(mae(a0, b0), 'eta 0: guidance from e_opt adds nothing').to.be.below(1e-5);
    expect(mae(a1, b1), 'eta 1: the scale acts').to.be.greaterThan(1e-4);
    tf.dispose([a0, a1, b0, b1, a.images, a.embeddings, a.eOpt, a.eTarget, b.images, b.embeddings, b.eOpt, b.eTarget]);
  });
});
