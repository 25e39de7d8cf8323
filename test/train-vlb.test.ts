/** Improved DDPM's variational-bound term (lib/train/vlb.ts) and `train unet --learn-sigma`. */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalKl, approxStandardNormalCdf, discretizedGaussianLogLikelihood, vlbTerms } from '../lib/train/vlb.js';
import { makeSchedule } from '../samplers/schedule.js';
import { diffusionModel } from '../samplers/model.js';
import { qSample } from '../samplers/core.js';
import { main } from '../lib/cli/main.js';
import { loadUNetDiffuser } from '../lib/methods/index.js';
import { sample } from '../lib/methods/sample.js';

const scalar = (t: tf.Tensor) => t.dataSync()[0];
/** Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf =
    1 -
    t *
      (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) *
      Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

describe('lib/train/vlb: the variational-bound term', () => {
  it('normalKl is 0 for equal Gaussians and matches the closed form otherwise', () => {
    tf.tidy(() => {
      expect(scalar(normalKl(tf.scalar(0.3), tf.scalar(-1), tf.scalar(0.3), tf.scalar(-1)))).to.be.closeTo(0, 1e-7);
      // KL(N(0, 1) || N(1, e)) = 0.5 (e^-1 + e^-1 + 1 - 1) = 1/e
      expect(scalar(normalKl(tf.scalar(0), tf.scalar(0), tf.scalar(1), tf.scalar(1)))).to.be.closeTo(1 / Math.E, 1e-6);
    });
  });

  it('the tanh CDF is within 1e-3 of the normal CDF; the discretised likelihood sums to 1 over the 256 levels', () => {
    tf.tidy(() => {
      // Phi at 0, +-1, 2 (exact values to 6 digits)
      const got = approxStandardNormalCdf(tf.tensor1d([0, 1, -1, 2])).arraySync() as number[];
      [0.5, 0.841345, 0.158655, 0.97725].forEach((v, i) => expect(got[i]).to.be.closeTo(v, 1e-3));
      const levels = tf.linspace(-1, 1, 256);
      for (const [mean, logScale] of [
        [0.1, Math.log(0.05)],
        [-0.9, Math.log(0.5)],
        [0.999, Math.log(0.002)],
      ]) {
        const p = tf.exp(discretizedGaussianLogLikelihood(levels, tf.scalar(mean), tf.scalar(logScale))).sum();
        expect(scalar(p), `mean ${mean}`).to.be.closeTo(1, 2e-3);
      }
    });
  });

  it('vlbTerms: 0 when p equals the true posterior, the KL of the variances otherwise, the decoder NLL at t = 0; gradient only into the variance half', () => {
    const schedule = makeSchedule('cosine', 1000);
    const model = diffusionModel((x) => x, { prediction: 'x0', variance: 'learnedRange' });
    tf.tidy(() => {
      const x0 = tf.randomUniform([3, 4, 4, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
      const idx = [10, 400, 999];
      const xt = qSample(x0, schedule, idx, tf.randomNormal([3, 4, 4, 3], 0, 1, 'float32', 2) as tf.Tensor4D);
      // x0-prediction of the true x0 gives the true posterior mean; frac -1 gives its (clipped) variance
      const exact = tf.concat([x0, tf.fill([3, 4, 4, 3], -1)], 3) as tf.Tensor4D;
      (vlbTerms(model, schedule, x0, xt, idx, exact).arraySync() as number[]).forEach((v) =>
        expect(v).to.be.closeTo(0, 1e-5),
      );
      // frac +1: variance beta_t instead; KL of two zero-mean-difference Gaussians per element
      const wide = tf.concat([x0, tf.fill([3, 4, 4, 3], 1)], 3) as tf.Tensor4D;
      const got = vlbTerms(model, schedule, x0, xt, idx, wide).arraySync() as number[];
      idx.forEach((i, k) => {
        const d = Math.log(schedule.betas[i]) - schedule.posteriorLogVarianceClipped[i];
        expect(got[k], `index ${i}`).to.be.closeTo((0.5 * (Math.exp(-d) + d - 1)) / Math.LN2, 1e-4);
      });
      // t = 0: the decoder NLL in bits/dim of x0 on the 8-bit grid, mean x0, std sigma: -log2 P(bin), the
      // end levels taking the tails (exact normal CDF here, the tanh form in the library)
      const grid = tf.round(x0.add(1).mul(127.5)).div(127.5).sub(1) as tf.Tensor4D;
      const at0 = vlbTerms(
        model,
        schedule,
        grid,
        grid,
        [0, 0, 0],
        tf.concat([grid, tf.fill([3, 4, 4, 3], -1)], 3) as tf.Tensor4D,
      ).arraySync() as number[];
      const sigma = Math.exp(0.5 * schedule.posteriorLogVarianceClipped[0]);
      const inBin = normalCdf(1 / 255 / sigma) - normalCdf(-1 / 255 / sigma);
      const atEnd = normalCdf(1 / 255 / sigma);
      const values = grid.arraySync() as number[][][][];
      values.forEach((img, k) => {
        const px = img.flat(2);
        const bits = px.map((v) => -Math.log2(Math.abs(v) > 0.999 ? atEnd : inBin));
        expect(at0[k], `sample ${k}`).to.be.closeTo(bits.reduce((a, b) => a + b, 0) / px.length, 0.01);
      });
      // the mean half gets no gradient from the bound
      const g = tf.grad((out: tf.Tensor) => vlbTerms(model, schedule, x0, xt, idx, out as tf.Tensor4D).sum())(
        wide.add(tf.randomNormal(wide.shape, 0, 0.1, 'float32', 3)),
      );
      expect(scalar(tf.abs(g.slice([0, 0, 0, 0], [-1, -1, -1, 3])).max())).to.equal(0);
      expect(scalar(tf.abs(g.slice([0, 0, 0, 3], [-1, -1, -1, 3])).max())).to.be.greaterThan(0);
    });
  });

  it('vlbTerms refuses a fixed-variance model', () => {
    const schedule = makeSchedule('cosine', 10);
    const x = tf.zeros([1, 2, 2, 3]) as tf.Tensor4D;
    expect(() =>
      vlbTerms(
        diffusionModel((y) => y),
        schedule,
        x,
        x,
        [1],
        x,
      ),
    ).to.throw(/learnedRange/);
    x.dispose();
  });
});

describe('train unet --learn-sigma', function () {
  this.timeout(300000);
  it('trains a 6-channel UNet on the hybrid loss, exports it, and the samplers use its variance', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-sigma-'));
    const out = join(dir, 'run');
    const quiet = process.stderr.write.bind(process.stderr);
    const logs: string[] = [];
    const log = console.log;
    process.stderr.write = ((s: string) => (logs.push(String(s)), true)) as typeof process.stderr.write;
    console.log = (...a: unknown[]) => void logs.push(a.join(' '));
    let code: number;
    try {
      code = await main([
        'train',
        'unet',
        '--data',
        'test/data/emoji32-subset.json',
        '--learn-sigma',
        '--steps',
        '3',
        '--batch',
        '2',
        '--sample-every',
        '0',
        '--out',
        out,
      ]);
    } finally {
      process.stderr.write = quiet;
      console.log = log;
    }
    expect(code, logs.join('')).to.equal(0);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as {
      outChannels: number;
      learnSigma: boolean;
    };
    expect(cfg).to.include({ outChannels: 6, learnSigma: true });
    // the logged loss is L_simple + the bound: finite and positive
    const rows = readFileSync(join(out, 'loss.csv'), 'utf8').trim().split('\n').slice(1);
    expect(rows.length).to.be.at.least(1);
    for (const r of rows)
      expect(Number(r.split(',')[1]))
        .to.be.greaterThan(0)
        .and.lessThan(1e3);
    const d = await loadUNetDiffuser(join(out, 'unet.safetensors'));
    expect(d.variance).to.equal('learnedRange');
    const s = await sample(d, { n: 2, steps: 3, sampler: 'ddpm', seed: 1 });
    expect(s.images.shape).to.deep.equal([2, 32, 32, 3]);
    expect(Number.isFinite(scalar(s.images.abs().max()))).to.equal(true);
    s.images.dispose();
    d.unet.dispose();
  });
});
