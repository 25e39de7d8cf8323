/**
 * Samplers against exact answers: data with a closed-form denoiser (a Gaussian and a 2-component
 * mixture), exact chain moments computed independently in float64 (test/samplers_exact.ts).
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import {
  blendModels,
  classifierFree,
  mixByTime,
  ddimInvert,
  ddimStep,
  ddimChainSync,
  diffusionModel,
  diffusionTarget,
  gaussianMixtureNet,
  makeSchedule,
  qSample,
  randomStart,
  respace,
  sampleDdim,
  sampleDdpm,
  sampleEulerMaruyama,
  type DiffusionModel,
  type NetFn,
  type SamplerOptions,
  type Schedule,
  type StepInfo,
} from '../samplers/index.js';
import { channelStats, gaussianChain, gridChain, type Comp, type Kind } from './samplers_exact.js';

const base = makeSchedule('linear', 1000);
const sched = (steps: number): Schedule => (steps === 1000 ? base : respace(base, String(steps)));

const MU = [0.5, -0.3];
const STD = 0.4;
const N = 6000;

function gaussModel(kind: Kind, s: Schedule): DiffusionModel {
  const comps = [{ mean: MU, std: STD }];
  if (kind === 'ddpm-lr')
    return diffusionModel(gaussianMixtureNet(base, comps, { learnedRangeFor: s }), { variance: 'learnedRange' });
  return diffusionModel(gaussianMixtureNet(base, comps), {
    variance: kind === 'ddpm-large' ? 'fixedLarge' : 'fixedSmall',
  });
}

async function runKind(
  kind: Kind,
  model: DiffusionModel,
  x: tf.Tensor4D,
  s: Schedule,
  opts: SamplerOptions = {},
): Promise<tf.Tensor4D> {
  switch (kind) {
    case 'ddim':
      return sampleDdim(model, x, s, { ...opts, eta: 0 });
    case 'ddim-eta1':
      return sampleDdim(model, x, s, { ...opts, eta: 1 });
    case 'em-vp':
      return sampleEulerMaruyama(model, x, s, { ...opts, sde: 'vp' });
    case 'em-ve':
      return sampleEulerMaruyama(model, x, s, { ...opts, sde: 've' });
    default:
      return sampleDdpm(model, x, s, opts);
  }
}

/** |sample mean - m| within z standard errors, |sample var - v| within z standard errors. */
function expectMoments(
  label: string,
  got: { mean: number; variance: number },
  want: { mean: number; variance: number },
  n: number,
  z = 5,
) {
  const seMean = Math.sqrt(want.variance / n);
  const seVar = want.variance * Math.sqrt(2 / (n - 1));
  expect(Math.abs(got.mean - want.mean), `${label}: mean ${got.mean} vs ${want.mean} (se ${seMean})`).to.be.lessThan(
    z * seMean,
  );
  expect(
    Math.abs(got.variance - want.variance),
    `${label}: variance ${got.variance} vs ${want.variance} (se ${seVar})`,
  ).to.be.lessThan(z * seVar);
}

const KINDS: Kind[] = ['ddpm-small', 'ddpm-large', 'ddpm-lr', 'ddim', 'ddim-eta1', 'em-vp', 'em-ve'];

describe('samplers: Gaussian data, exact chain moments', function () {
  this.timeout(600000);
  for (const steps of [10, 1000]) {
    for (const kind of KINDS) {
      it(`${kind} at ${steps} steps matches the exact discrete chain${steps === 1000 ? ' and the data' : ''}`, async () => {
        const s = sched(steps);
        const model = gaussModel(kind, s);
        const x = randomStart([N, 1, 1, 2], 11);
        const y = await runKind(kind, model, x, s, { seed: 5 });
        const st = channelStats(y);
        for (let c = 0; c < 2; c++) {
          const exact = gaussianChain(kind, s, { mean: MU[c], std: STD, weight: 1 }, s.length - 1, 0, 1);
          expectMoments(`${kind}/${steps} ch${c}`, { mean: st.mean[c], variance: st.variance[c] }, exact, N);
          if (steps === 1000) {
            // the 1000-step chain is itself close to the data distribution
            expect(Math.abs(exact.mean - MU[c])).to.be.lessThan(0.01);
            expect(Math.abs(exact.variance / (STD * STD) - 1)).to.be.lessThan(0.03);
            expectMoments(
              `${kind}/${steps} ch${c} vs data`,
              { mean: st.mean[c], variance: st.variance[c] },
              { mean: MU[c], variance: STD * STD },
              N,
            );
          }
          if (kind === 'ddpm-lr') {
            // optimal (learned-range) variance reproduces the data exactly at any step count
            expect(Math.abs(exact.variance - STD * STD)).to.be.lessThan(1e-3);
          }
        }
        tf.dispose([x, y]);
      });
    }
  }

  it('x0- and v-parameterised nets give the same samples as eps', async () => {
    const s = sched(10);
    const comps = [{ mean: MU, std: STD }];
    const x = randomStart([64, 1, 1, 2], 3);
    const ys = await Promise.all(
      (['eps', 'x0', 'v'] as const).map((p) =>
        sampleDdpm(diffusionModel(gaussianMixtureNet(base, comps, { prediction: p }), { prediction: p }), x, s, {
          seed: 9,
        }),
      ),
    );
    expect(tf.max(tf.abs(ys[1].sub(ys[0]))).dataSync()[0]).to.be.lessThan(1e-4);
    expect(tf.max(tf.abs(ys[2].sub(ys[0]))).dataSync()[0]).to.be.lessThan(1e-4);
    tf.dispose([x, ...ys]);
  });
});

describe('samplers: Gaussian mixture data', function () {
  this.timeout(600000);
  const comps: Comp[] = [
    { mean: -0.6, std: 0.2, weight: 0.3 },
    { mean: 0.5, std: 0.25, weight: 0.7 },
  ];
  const netComps = comps.map((c) => ({ mean: c.mean, std: c.std, weight: c.weight }));
  const dataMean = comps.reduce((a, c) => a + c.weight * c.mean, 0);
  const dataVar = comps.reduce((a, c) => a + c.weight * (c.std ** 2 + c.mean ** 2), 0) - dataMean ** 2;

  for (const kind of ['ddpm-small', 'ddim', 'em-vp'] as Kind[]) {
    it(`${kind} at 10 steps matches the exact (grid-propagated) chain`, async () => {
      const s = sched(10);
      const model = diffusionModel(gaussianMixtureNet(base, netComps));
      const x = randomStart([N, 1, 1, 1], 21);
      const y = await runKind(kind, model, x, s, { seed: 8 });
      const st = channelStats(y);
      const exact = gridChain(kind, s, comps, s.length - 1);
      expectMoments(`mixture ${kind}/10`, { mean: st.mean[0], variance: st.variance[0] }, exact, N);
      tf.dispose([x, y]);
    });
  }

  for (const kind of ['ddpm-small', 'ddim', 'em-vp', 'em-ve'] as Kind[]) {
    it(`${kind} at 1000 steps reproduces the data: mean, variance and mode weights`, async () => {
      const model = diffusionModel(gaussianMixtureNet(base, netComps));
      const x = randomStart([N, 2, 2, 1], 31);
      const y = await runKind(kind, model, x, base, { seed: 4 });
      const d = y.dataSync();
      let sum = 0;
      let sq = 0;
      for (const v of d) sum += v;
      const m = sum / d.length;
      for (const v of d) sq += (v - m) ** 2;
      const variance = sq / (d.length - 1);
      // the 4 pixels of a sample come from one component: samples are the unit
      let first = 0;
      for (let k = 0; k < N; k++) {
        const avg = (d[4 * k] + d[4 * k + 1] + d[4 * k + 2] + d[4 * k + 3]) / 4;
        if (Math.abs(avg - comps[0].mean) < Math.abs(avg - comps[1].mean)) first++;
      }
      const frac = first / N;
      expect(Math.abs(frac - 0.3), `mode weight ${frac}`).to.be.lessThan(5 * Math.sqrt(0.21 / N));
      // pixels within a sample are correlated through the component: use samples as the unit for the mean
      expect(Math.abs(m - dataMean), `mean ${m}`).to.be.lessThan(5 * Math.sqrt(dataVar / N));
      expect(Math.abs(variance / dataVar - 1), `variance ${variance} vs ${dataVar}`).to.be.lessThan(0.06);
      tf.dispose([x, y]);
    });
  }
});

describe('samplers: starting point, inversion, seeds, hygiene', function () {
  this.timeout(600000);
  const comps = [{ mean: MU, std: STD }];
  const model = diffusionModel(gaussianMixtureNet(base, comps));

  it('DDIM inversion followed by DDIM sampling returns the input', async () => {
    const x0 = randomStart([2000, 1, 1, 2], 41).mul(STD).add(tf.tensor1d(MU)) as tf.Tensor4D;
    // exact pairing + fixed-point refinement: identity for any step count
    for (const [steps, iters, tol] of [
      [50, 6, 1e-3],
      [1000, 2, 1e-3],
    ] as const) {
      const s = sched(steps);
      const lat = await ddimInvert(model, x0, s, { fixedPointIters: iters });
      const back = await sampleDdim(model, lat, s);
      const err = tf.max(tf.abs(back.sub(x0))).dataSync()[0];
      expect(err, `${steps} steps, ${iters} iterations`).to.be.lessThan(tol);
      if (steps === 1000) {
        // the latent has the noise marginal at t = 999: variance ~ 1
        const st = channelStats(lat);
        expect(Math.abs(st.variance[0] - 1)).to.be.lessThan(0.08);
      }
      tf.dispose([lat, back]);
    }
    // classic single-evaluation inversion converges with the step count
    const errs: number[] = [];
    for (const steps of [50, 1000]) {
      const s = sched(steps);
      const lat = await ddimInvert(model, x0, s);
      const back = await sampleDdim(model, lat, s);
      errs.push(tf.max(tf.abs(back.sub(x0))).dataSync()[0]);
      tf.dispose([lat, back]);
    }
    expect(errs[1]).to.be.lessThan(errs[0] / 5);
    expect(errs[1]).to.be.lessThan(0.02);
    x0.dispose();
  });

  it('inversion to an intermediate index pairs with sampling from it (DiffusionCLIP-style t0)', async () => {
    const s = respace(base, [0, 100, 200, 300, 400]);
    const x0 = randomStart([500, 1, 1, 2], 42).mul(STD).add(tf.tensor1d(MU)) as tf.Tensor4D;
    const lat = await ddimInvert(model, x0, s, { toIndex: 3, fixedPointIters: 8 });
    const back = await sampleDdim(model, lat, s, { startIndex: 3 });
    expect(tf.max(tf.abs(back.sub(x0))).dataSync()[0]).to.be.lessThan(1e-3);
    tf.dispose([x0, lat, back]);
  });

  it('SDEdit: start at t0 -> 0 returns the guide; at t0 = T the guide is ignored', async () => {
    const guide = tf.fill([N, 1, 1, 2], 2.5) as tf.Tensor4D; // far from the data
    const noise = randomStart([N, 1, 1, 2], 51);
    // t0 = first index: almost no noise, the output is the guide
    const xs = qSample(guide, base, 0, noise);
    const y0 = await sampleDdpm(model, xs, base, { startIndex: 0, seed: 1 });
    expect(tf.max(tf.abs(y0.sub(guide))).dataSync()[0]).to.be.lessThan(0.07);
    // t0 = T: output has the data distribution, whatever the guide
    const s = sched(100);
    for (const g of [2.5, -2.5]) {
      const gd = tf.fill([N, 1, 1, 2], g) as tf.Tensor4D;
      const xt = qSample(gd, s, s.length - 1, noise);
      const y = await sampleDdpm(model, xt, s, { startIndex: s.length - 1, seed: 2 });
      const st = channelStats(y);
      for (let c = 0; c < 2; c++) {
        const aT = s.alphaBar(s.length - 1);
        const exact = gaussianChain(
          'ddpm-small',
          s,
          { mean: MU[c], std: STD, weight: 1 },
          s.length - 1,
          Math.sqrt(aT) * g,
          1 - aT,
        );
        expectMoments(`sdedit guide ${g} ch${c}`, { mean: st.mean[c], variance: st.variance[c] }, exact, N);
        // and the exact chain from this guide is the data distribution up to 1e-3
        expect(
          Math.abs(
            exact.mean - gaussianChain('ddpm-small', s, { mean: MU[c], std: STD, weight: 1 }, s.length - 1, 0, 1).mean,
          ),
        ).to.be.lessThan(1e-3);
      }
      tf.dispose([gd, xt, y]);
    }
    // in between, the output mean moves toward the guide (faithfulness) monotonically in t0
    const means: number[] = [];
    for (const idx of [20, 50, 80]) {
      const xt = qSample(guide, s, idx, noise);
      const y = await sampleDdpm(model, xt, s, { startIndex: idx, seed: 3 });
      means.push(channelStats(y).mean[0]);
      tf.dispose([xt, y]);
    }
    expect(means[0]).to.be.greaterThan(means[1]);
    expect(means[1]).to.be.greaterThan(means[2]);
    tf.dispose([guide, noise, xs, y0]);
  });

  it('the same seed gives the same samples; another seed does not', async () => {
    const s = sched(10);
    const x = randomStart([16, 2, 2, 2], 61);
    for (const kind of ['ddpm-small', 'ddim-eta1', 'em-vp'] as Kind[]) {
      const a = await runKind(kind, model, x, s, { seed: 7 });
      const b = await runKind(kind, model, x, s, { seed: 7 });
      const c = await runKind(kind, model, x, s, { seed: 8 });
      expect(tf.max(tf.abs(a.sub(b))).dataSync()[0], kind).to.equal(0);
      expect(tf.max(tf.abs(a.sub(c))).dataSync()[0], kind).to.be.greaterThan(1e-3);
      tf.dispose([a, b, c]);
    }
    x.dispose();
  });

  it('calls the callback once per step with x and x0, awaiting it', async () => {
    const s = sched(10);
    const x = randomStart([4, 1, 1, 2], 62);
    const seen: Array<{ step: number; total: number; t: number; shape: number[] }> = [];
    let order = '';
    const y = await sampleDdim(model, x, s, {
      callback: async (info: StepInfo) => {
        await new Promise((r) => setTimeout(r, 1));
        order += info.step;
        seen.push({ step: info.step, total: info.total, t: info.t, shape: info.x0!.shape });
      },
    });
    expect(seen.map((v) => v.step)).to.deep.equal([...Array(10).keys()]);
    expect(order).to.equal('0123456789');
    expect(seen[0].t).to.equal(s.timestepMap[9]);
    expect(seen[9].t).to.equal(0);
    expect(seen[0].shape).to.deep.equal([4, 1, 1, 2]);
    tf.dispose([x, y]);
  });

  it('NaN/Inf in the model output stops sampling, naming the step', async () => {
    const s = sched(10);
    const bad: NetFn = (x, t) => tf.tidy(() => (t.dataSync()[0] < 500 ? x.mul(NaN) : x.mul(0.1)) as tf.Tensor4D);
    const x = randomStart([2, 1, 1, 2], 63);
    const before = tf.memory().numTensors;
    let msg = '';
    try {
      await sampleDdpm(diffusionModel(bad), x, s, { seed: 1 });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).to.match(/step 6\/10/);
    expect(msg).to.match(/NaN or Inf/);
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
  });

  it('no tensor growth over sampling runs (all samplers, inversion)', async () => {
    const s = sched(10);
    const x = randomStart([8, 2, 2, 2], 64);
    const once = async () => {
      for (const kind of KINDS)
        (
          await runKind(kind, kind === 'ddpm-lr' ? gaussModel('ddpm-lr', s) : model, x, s, {
            seed: 1,
            callback: () => {},
          })
        ).dispose();
      (await ddimInvert(model, x, s, { fixedPointIters: 1 })).dispose();
    };
    await once();
    const before = tf.memory().numTensors;
    await once();
    await once();
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
  });

  it('ddimStep (pure, differentiable) chains to the same result as sampleDdim, and gradients flow through it', async () => {
    const s = sched(10);
    const x = randomStart([4, 1, 1, 2], 66);
    const want = await sampleDdim(model, x, s);
    const chain = (xv: tf.Tensor4D) => {
      let cur = xv;
      for (let i = s.length - 1; i >= 0; i--) cur = ddimStep(model, cur, s, i).x;
      return cur;
    };
    const got = tf.tidy(() => chain(x));
    expect(tf.max(tf.abs(got.sub(want))).dataSync()[0]).to.be.lessThan(1e-5);
    // d(sum x0_final)/d(x_T) through 10 steps: matches the exact affine chain's slope
    const g = tf.grad((xv: tf.Tensor) => chain(xv as tf.Tensor4D).sum())(x);
    const exact = gaussianChain('ddim', s, { mean: MU[0], std: STD, weight: 1 }, s.length - 1, 0, 1);
    const slope = Math.sqrt(exact.variance); // affine map x_T -> x_0 with unit-variance input
    expect(g.dataSync()[0]).to.be.closeTo(slope, 1e-3);
    expect(s.nearestIndex(560)).to.equal(5);
    tf.dispose([x, want, got, g]);
  });

  it('ddimChainSync is that chain: equal to the loop of ddimSteps, to sampleDdim (and its clipDenoised), and with consume it frees what it made', async () => {
    const s = sched(10);
    const x = randomStart([4, 1, 1, 2], 66);
    const loop = tf.tidy(() => {
      let cur = x;
      for (let i = s.length - 1; i >= 0; i--) cur = ddimStep(model, cur, s, i).x;
      return cur;
    });
    const got = tf.tidy(() => ddimChainSync(model, x, s));
    expect(Array.from(got.dataSync())).to.deep.equal(Array.from(loop.dataSync()));
    const wantClipped = await sampleDdim(model, x, s, { clipDenoised: true });
    const before = tf.memory().numTensors;
    const clipped = ddimChainSync(model, tf.clone(x), s, { clipDenoised: true, consume: true });
    expect(tf.memory().numTensors).to.equal(before + 1);
    expect(tf.max(tf.abs(clipped.sub(wantClipped))).dataSync()[0]).to.be.lessThan(1e-5);
    tf.dispose([x, loop, got, wantClipped, clipped]);
  });

  it('rejects bad ranges and mismatched nets with clear errors', async () => {
    const s = sched(10);
    const x = randomStart([2, 1, 1, 2], 65);
    let msg = '';
    await sampleDdpm(model, x, s, { startIndex: 10 }).catch((e) => (msg = e.message));
    expect(msg).to.match(/startIndex 10 out of range 0\.\.9/);
    const twoC = diffusionModel(gaussianMixtureNet(base, comps, { learnedRangeFor: s }));
    await sampleDdpm(twoC, x, s).catch((e) => (msg = e.message));
    expect(msg).to.match(/learnedRange/);
    x.dispose();
  });
});

describe('model wrapper and net combinators', () => {
  // a tiny conditional net: out = tanh(x W) + emb-dependent per-channel offset, t-dependent scale
  const w = tf.tensor2d([
    [0.3, -0.2],
    [0.5, 0.1],
  ]);
  const e = tf.tensor2d([
    [0.7, -0.4],
    [0.2, 0.9],
    [-0.3, 0.5],
  ]); // emb dim 3 -> 2 channels
  const net: NetFn = (x, t, cond) =>
    tf.tidy(() => {
      const [n, h, ww, c] = x.shape;
      let y = tf.tanh(tf.matMul(x.reshape([-1, c]), w)).reshape([n, h, ww, c]);
      y = y.mul(t.div(1000).add(1).reshape([n, 1, 1, 1]));
      if (cond?.emb) y = y.add(tf.matMul(cond.emb, e).reshape([n, 1, 1, c]));
      return y as tf.Tensor4D;
    });
  const x = tf.randomNormal([3, 2, 2, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
  const t = tf.tensor1d([10, 500, 999]);
  const emb = tf.randomNormal([3, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
  const uncond = { emb: tf.zeros([3, 3]) as tf.Tensor2D };
  after(() => tf.dispose([w, e, x, t, emb, uncond.emb]));

  it('classifier-free guidance: scale 1 = conditional, 0 = unconditional, w = extrapolation, in one batched call', () => {
    let calls = 0;
    const counted: NetFn = (a, b, c) => {
      calls++;
      return net(a, b, c);
    };
    const cond = net(x, t, { emb });
    const unc = net(x, t, uncond);
    const g1 = classifierFree(counted, { scale: 1, uncond })(x, t, { emb });
    // a batch-1 null conditioning is tiled to the batch
    const g1b = classifierFree(net, { scale: 2, uncond: { emb: tf.zeros([1, 3]) as tf.Tensor2D } })(x, t, { emb });
    const g1c = classifierFree(net, { scale: 2, uncond })(x, t, { emb });
    expect(tf.max(tf.abs(g1b.sub(g1c))).dataSync()[0]).to.be.lessThan(1e-6);
    expect(calls).to.equal(1);
    const g0 = classifierFree(net, { scale: 0, uncond })(x, t, { emb });
    const g3 = classifierFree(net, { scale: 3, uncond })(x, t, { emb });
    expect(tf.max(tf.abs(g1.sub(cond))).dataSync()[0]).to.be.lessThan(1e-6);
    expect(tf.max(tf.abs(g0.sub(unc))).dataSync()[0]).to.be.lessThan(1e-6);
    const want = unc.add(cond.sub(unc).mul(3));
    expect(tf.max(tf.abs(g3.sub(want))).dataSync()[0]).to.be.lessThan(1e-5);
    // guidedChannels: only the first channel is guided, the rest is conditional
    const gp = classifierFree(net, { scale: 3, uncond, guidedChannels: 1 })(x, t, { emb });
    const ch = (a: tf.Tensor, k: number) => a.slice([0, 0, 0, k], [-1, -1, -1, 1]);
    expect(tf.max(tf.abs(ch(gp, 0).sub(ch(want, 0)))).dataSync()[0]).to.be.lessThan(1e-5);
    expect(tf.max(tf.abs(ch(gp, 1).sub(ch(cond, 1)))).dataSync()[0]).to.be.lessThan(1e-6);
    tf.dispose([cond, unc, g1, g0, g3, want, gp]);
  });

  it('blendModels (DiffusionCLIP model_ratio) and mixByTime (multi-attribute thresholds) mix raw outputs', () => {
    const one: NetFn = (v) => tf.onesLike(v) as tf.Tensor4D;
    const three: NetFn = (v) => tf.onesLike(v).mul(3) as tf.Tensor4D;
    const b = blendModels(one, three, 0.25)(x, t);
    expect(b.dataSync()[0]).to.be.closeTo(1.5, 1e-6);
    const mix = mixByTime([
      { minT: 0, nets: [one, three], weights: [1, 1] },
      { minT: 500, nets: [three], weights: [1] },
    ]);
    const hi = tf.fill([3], 700) as tf.Tensor1D;
    const lo = tf.fill([3], 100) as tf.Tensor1D;
    expect(mix(x, hi).dataSync()[0]).to.be.closeTo(3, 1e-6);
    expect(mix(x, lo).dataSync()[0]).to.be.closeTo(2, 1e-6);
    tf.dispose([b, hi, lo]);
  });

  it('learned-range variance interpolates between the clipped posterior and beta log variances', () => {
    const s = sched(10);
    const frac = 0.25;
    const lrNet: NetFn = (xx) =>
      tf.tidy(() => tf.concat([xx.mul(0.1), tf.onesLike(xx).mul(2 * frac - 1)], 3) as tf.Tensor4D);
    const m = diffusionModel(lrNet, { variance: 'learnedRange' });
    const p = m.predict(x, s, 4);
    const want = frac * Math.log(s.betas[4]) + (1 - frac) * s.posteriorLogVarianceClipped[4];
    expect(Math.abs(p.logVariance.dataSync()[0] - want)).to.be.lessThan(1e-5);
    const large = diffusionModel(net, { variance: 'fixedLarge' }).predict(x, s, 4);
    expect(Math.abs(large.variance.dataSync()[0] - s.betas[4])).to.be.lessThan(1e-7);
    tf.dispose([p, large] as never);
  });
});

describe('samplers: training targets agree with the samplers parameterisations', () => {
  for (const prediction of ['eps', 'x0', 'v'] as const) {
    it(`a net that outputs diffusionTarget('${prediction}') exactly gives back x0 and the noise`, () => {
      tf.tidy(() => {
        const schedule = makeSchedule('cosine', 1000);
        const idx = [0, 250, 600, 900];
        const x0 = tf.randomUniform([4, 4, 4, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
        const noise = tf.randomNormal([4, 4, 4, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
        const xt = qSample(x0, schedule, idx, noise);
        const target = diffusionTarget(prediction, x0, schedule, idx, noise);
        const model = diffusionModel(() => target, { prediction, variance: 'fixedSmall' });
        const p = model.predict(xt, schedule, idx);
        expect(tf.max(tf.abs(p.x0.sub(x0))).dataSync()[0]).to.be.below(2e-3);
        expect(tf.max(tf.abs(p.eps.sub(noise))).dataSync()[0]).to.be.below(2e-3);
      });
    });
  }
  it('v is sqrt(abar) noise - sqrt(1 - abar) x0', () => {
    tf.tidy(() => {
      const schedule = makeSchedule('cosine', 1000);
      const x0 = tf.ones([1, 1, 1, 1]) as tf.Tensor4D;
      const noise = tf.fill([1, 1, 1, 1], 2) as tf.Tensor4D;
      const a = schedule.alphaBar(500);
      expect(diffusionTarget('v', x0, schedule, [500], noise).dataSync()[0]).to.be.closeTo(
        2 * Math.sqrt(a) - Math.sqrt(1 - a),
        1e-6,
      );
    });
  });
});
