/**
 * diffguide/metrics against reference numbers: scikit-image (SSIM, PSNR), pytorch-fid (FD), a numpy
 * implementation of torch-fidelity's KID estimator and of the LPIPS formula
 * (test/fixtures/metrics/make_metrics_fixtures.py wrote metrics_cases.json), the released LPIPS heads,
 * and the shipped judge and CLIP as extractors.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot, weightsPath } from '../lib/paths.js';
import { xorshiftUniform } from '../lib/random.js';
import { HAVE_PARITY, parity } from './fixtures.js';
import {
  ssim,
  psnr,
  gaussianTaps,
  frechetDistance,
  frechetDistanceOfGaussians,
  meanCov,
  kid,
  mmd2Unbiased,
  mmd2OfSubsets,
  sampleWithoutReplacement,
  lpips,
  lpipsOfFeatures,
  pairwiseLpips,
  loadLpipsHeads,
  lpipsNet,
  judgeLpips,
  topKRetrieval,
  meanPairwiseDistance,
  clipScore,
  directionalClipSimilarity,
  categoryAgreement,
  frechetDistanceOf,
  kidOf,
  loadExtractor,
  loadJudgeExtractor,
  loadClipExtractor,
  registerExtractor,
  extractorKinds,
  parseExtractorSpec,
  extract,
  type ImageTextExtractor,
  type LpipsNet,
  type CategoryExtractor,
} from '../lib/metrics/index.js';
import { Rng } from '../lib/random.js';

interface ImageCase {
  name: string;
  shape: [number, number, number, number];
  a: number[];
  b: number[];
  ssim: number[];
  psnr: number[];
}
interface KidCase {
  a: number[][];
  b: number[][];
  full: number;
  subsetSize: number;
  subsets: [number[], number[]][];
  mmds: number[];
  mean: number;
  std: number;
}
interface Cases {
  images: ImageCase[];
  kid: KidCase[];
  kidUnequal: { a: number[][]; b: number[][]; mmd2: number };
  lpips: {
    shapes: [number, number, number, number][];
    a: number[][];
    b: number[][];
    weights: number[][];
    lpips: number[];
    unit: number[];
  };
}
const CASES = JSON.parse(
  readFileSync(join(packageRoot(), 'test', 'fixtures', 'metrics', 'metrics_cases.json'), 'utf8'),
) as Cases;

const images = (c: ImageCase) =>
  [tf.tensor4d(Float32Array.from(c.a), c.shape), tf.tensor4d(Float32Array.from(c.b), c.shape)] as const;

/** The closed-form unbiased MMD² of two whole sets, written out here independently of lib/metrics. */
function closedFormMmd2(x: number[][], y: number[][]): number {
  const d = x[0].length;
  const k = (u: number[], v: number[]) => (u.reduce((s, ui, i) => s + ui * v[i], 0) / d + 1) ** 3;
  const m = x.length;
  const n = y.length;
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) if (i !== j) sxx += k(x[i], x[j]);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) syy += k(y[i], y[j]);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) sxy += k(x[i], y[j]);
  return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - (2 * sxy) / (m * n);
}

/** A smooth 32x32 RGB test image batch [n, 32, 32, 3] in [-1, 1] (deterministic), plus optional noise. */
function smoothImages(n: number, seed: number, noise = 0): tf.Tensor4D {
  const s = 32;
  const out = new Float32Array(n * s * s * 3);
  const r = xorshiftUniform(n * 6, seed);
  const z = noise ? xorshiftUniform(out.length, seed + 999) : null;
  for (let i = 0; i < n; i++)
    for (let y = 0; y < s; y++)
      for (let x = 0; x < s; x++)
        for (let c = 0; c < 3; c++) {
          const k = ((i * s + y) * s + x) * 3 + c;
          const v =
            0.6 *
            Math.sin((x / s) * Math.PI * (1 + 2 * Math.abs(r[i * 6 + c])) + r[i * 6 + 3]) *
            Math.cos((y / s) * Math.PI * (1 + Math.abs(r[i * 6 + 4])) + c);
          out[k] = Math.max(-1, Math.min(1, v + (z ? noise * z[k] : 0)));
        }
  return tf.tensor4d(out, [n, s, s, 3]);
}

describe('metrics: ssim and psnr (scikit-image)', () => {
  it("Gaussian taps are scipy.ndimage's: 11 taps for sigma 1.5, truncate 3.5, summing to 1", () => {
    const w = gaussianTaps(1.5);
    expect(w.length).to.equal(11);
    expect(w.reduce((a, b) => a + b, 0)).to.be.closeTo(1, 1e-15);
    expect(w[5] / w[4]).to.be.closeTo(Math.exp(0.5 / 2.25), 1e-12);
  });

  for (const c of CASES.images) {
    it(`matches skimage on ${c.name} (to 1e-4)`, () => {
      const [a, b] = images(c);
      const s = ssim(a, b);
      const p = psnr(a, b);
      expect(s).to.have.length(c.shape[0]);
      s.forEach((v, i) => expect(v).to.be.closeTo(c.ssim[i], 1e-4));
      p.forEach((v, i) => expect(v).to.be.closeTo(c.psnr[i], 1e-4));
      tf.dispose([a, b]);
    });
  }

  it('identical images: SSIM 1, PSNR Infinity; SSIM is symmetric; shape errors name the fix', () => {
    const [a, b] = images(CASES.images[0]);
    expect(ssim(a, a).every((v) => Math.abs(v - 1) < 1e-12)).to.equal(true);
    expect(psnr(a, a).every((v) => v === Infinity)).to.equal(true);
    ssim(b, a).forEach((v, i) => expect(v).to.be.closeTo(CASES.images[0].ssim[i], 1e-12));
    const small = tf.zeros([1, 10, 10, 3]) as tf.Tensor4D;
    expect(() => ssim(small, small)).to.throw(/smaller than the 11x11 Gaussian window/);
    expect(() => psnr(a, small)).to.throw(/differ in shape/);
    tf.dispose([a, b, small]);
  });
});

describe('metrics: Fréchet distance (pytorch-fid)', () => {
  it("matches pytorch-fid's formula on the parity feature sets, as rows and as tensors", function () {
    if (!HAVE_PARITY) return this.skip();
    const c = JSON.parse(readFileSync(parity('fid_cases.json'), 'utf8')) as {
      feats1: number[][];
      feats2: number[][];
      fid: number;
    };
    const fd = frechetDistance(c.feats1, c.feats2);
    expect(fd).to.be.closeTo(c.fid, 1e-6 * Math.max(1, Math.abs(c.fid)));
    const t1 = tf.tensor2d(c.feats1);
    const t2 = tf.tensor2d(c.feats2);
    expect(frechetDistance(t1, t2)).to.be.closeTo(c.fid, 1e-4 * Math.max(1, Math.abs(c.fid))); // float32 copies
    tf.dispose([t1, t2]);
  });

  it('the Gaussian form agrees with the feature form', () => {
    const a = [
      [1, 2],
      [3, 1],
      [0, 0],
      [2, 5],
    ];
    const b = [
      [0, 1],
      [4, 4],
      [1, 3],
    ];
    const ga = meanCov(a.flat(), 4, 2);
    const gb = meanCov(b.flat(), 3, 2);
    const g = frechetDistanceOfGaussians(ga.mean, ga.cov, gb.mean, gb.cov);
    expect(frechetDistance(a, b)).to.be.closeTo(g, 1e-12);
    expect(frechetDistance(ga.mean, ga.cov, gb.mean, gb.cov)).to.equal(g);
    expect(() =>
      frechetDistance(a, [
        [1, 2, 3],
        [4, 5, 6],
      ]),
    ).to.throw(/widths differ/);
  });
});

describe('metrics: KID (torch-fidelity / clean-fid estimator)', () => {
  CASES.kid.forEach((c, idx) => {
    it(`case ${idx} (${c.a.length} x ${c.a[0].length}): one full-size subset = the closed form (1e-5 relative) = numpy's`, () => {
      const closed = closedFormMmd2(c.a, c.b);
      const r = kid(c.a, c.b, { subsets: 1, subsetSize: c.a.length, seed: 3 });
      expect(Math.abs(r.mean - closed) / Math.abs(closed)).to.be.below(1e-5);
      expect(Math.abs(r.mean - c.full) / Math.abs(c.full)).to.be.below(1e-9);
      expect(r.std).to.equal(0);
      expect(mmd2Unbiased(c.a, c.b)).to.be.closeTo(c.full, 1e-9 * Math.abs(c.full));
    });

    it(`case ${idx}: numpy's subsets replayed give torch-fidelity's per-subset MMD², mean and std`, () => {
      const v = mmd2OfSubsets(c.a, c.b, c.subsets);
      v.forEach((x, i) => expect(x).to.be.closeTo(c.mmds[i], 1e-9 * Math.max(1, Math.abs(c.mmds[i]))));
      const mean = v.reduce((p, x) => p + x, 0) / v.length;
      const std = Math.sqrt(v.reduce((p, x) => p + (x - mean) ** 2, 0) / v.length);
      expect(mean).to.be.closeTo(c.mean, 1e-9);
      expect(std).to.be.closeTo(c.std, 1e-9);
    });
  });

  it('unequal set sizes: the general unbiased estimator', () => {
    const c = CASES.kidUnequal;
    expect(mmd2Unbiased(c.a, c.b)).to.be.closeTo(c.mmd2, 1e-9 * Math.abs(c.mmd2));
    expect(closedFormMmd2(c.a, c.b)).to.be.closeTo(c.mmd2, 1e-9 * Math.abs(c.mmd2));
  });

  it('random subsets: seeded, drawn without replacement, mean/std over subsets; cached and direct kernels agree', () => {
    const c = CASES.kid[0];
    const r1 = kid(c.a, c.b, { subsets: 6, subsetSize: 20, seed: 11 });
    const r2 = kid(c.a, c.b, { subsets: 6, subsetSize: 20, seed: 11 });
    const r3 = kid(c.a, c.b, { subsets: 6, subsetSize: 20, seed: 12 });
    const direct = kid(c.a, c.b, { subsets: 6, subsetSize: 20, seed: 11, maxCacheEntries: 0 });
    expect(r1.values).to.deep.equal(r2.values);
    expect(r1.values).to.not.deep.equal(r3.values);
    direct.values.forEach((v, i) => expect(v).to.be.closeTo(r1.values[i], 1e-12));
    expect(r1.std).to.be.above(0);
    const mean = r1.values.reduce((p, x) => p + x, 0) / 6;
    expect(r1.mean).to.be.closeTo(mean, 1e-15);
    expect(r1.std).to.be.closeTo(Math.sqrt(r1.values.reduce((p, x) => p + (x - mean) ** 2, 0) / 6), 1e-15);
    // the same draws, replayed
    const rng = new Rng(11);
    const subsets: [number[], number[]][] = [];
    for (let s = 0; s < 6; s++)
      subsets.push([sampleWithoutReplacement(c.a.length, 20, rng), sampleWithoutReplacement(c.b.length, 20, rng)]);
    for (const [ia, ib] of subsets) {
      expect(new Set(ia).size).to.equal(20);
      expect(new Set(ib).size).to.equal(20);
    }
    mmd2OfSubsets(c.a, c.b, subsets).forEach((v, i) => expect(v).to.be.closeTo(r1.values[i], 1e-12));
    // defaults: 100 subsets of min(1000, N1, N2)
    const d = kid(c.a, c.b);
    expect(d.subsets).to.equal(100);
    expect(d.subsetSize).to.equal(c.a.length);
    expect(() => kid(c.a, c.b, { subsetSize: 41 })).to.throw(/larger than a feature set/);
    // a shifted distribution is farther than a fresh draw of the same one
    const same = kid(c.a.slice(0, 20), c.a.slice(20), { subsets: 1, subsetSize: 20 }).mean;
    const far = kid(
      c.a,
      c.a.map((r) => r.map((v) => v + 1)),
      { subsets: 1, subsetSize: 40 },
    ).mean;
    expect(far).to.be.above(same + 0.1);
  });
});

describe('metrics: LPIPS', () => {
  const L = CASES.lpips;
  const feats = (which: number[][]) => which.map((v, l) => tf.tensor4d(Float32Array.from(v), L.shapes[l]));

  it('the formula matches an independent numpy computation on given features (learned and unit heads)', () => {
    const fa = feats(L.a);
    const fb = feats(L.b);
    const heads = { source: 'fixture', weights: L.weights.map((w) => Float32Array.from(w)) };
    const d = lpipsOfFeatures(fa, fb, heads);
    const u = lpipsOfFeatures(fa, fb, 'unit');
    Array.from(d.dataSync()).forEach((v, i) => expect(v).to.be.closeTo(L.lpips[i], 1e-5 * Math.max(1, L.lpips[i])));
    Array.from(u.dataSync()).forEach((v, i) => expect(v).to.be.closeTo(L.unit[i], 1e-5 * Math.max(1, L.unit[i])));
    const z = lpipsOfFeatures(fa, fa, heads);
    expect(Math.max(...z.dataSync())).to.be.below(1e-6);
    expect(() => lpipsOfFeatures(fa, fb, { source: 'two', weights: heads.weights.slice(0, 2) })).to.throw(
      /heads \(two\) have 2/,
    );
    tf.dispose([...fa, ...fb, d, u, z]);
  });

  it('reads the released v0.1 heads (alex, vgg, squeeze: legacy torch format) with their shapes', async function () {
    if (!HAVE_PARITY || !existsSync(parity('real/alex.pth'))) return this.skip();
    const expected: Record<string, number[]> = {
      alex: [64, 192, 384, 256, 256],
      vgg: [64, 128, 256, 512, 512],
      squeeze: [64, 128, 256, 384, 384, 512, 512],
    };
    for (const [net, channels] of Object.entries(expected)) {
      const h = await loadLpipsHeads(parity(`real/${net}.pth`));
      expect(
        h.weights.map((w) => w.length),
        net,
      ).to.deep.equal(channels);
      for (const w of h.weights) {
        expect(Math.min(...w)).to.be.at.least(0);
        expect(Math.max(...w)).to.be.above(0);
      }
      expect(lpipsNet((x) => [x], h).name).to.equal(`LPIPS-${net}`);
    }
    // a trunk whose channels do not fit the heads is refused with the reason
    const alex = await loadLpipsHeads(parity('real/alex.pth'));
    const x = tf.zeros([1, 8, 8, 3]) as tf.Tensor4D;
    const wrong = lpipsNet((t) => [t, t, t, t, t], alex);
    expect(() => lpips(x, x, wrong)).to.throw(/layer 0 has 3 channels, its head .* has 64/);
    x.dispose();
    // a checkpoint that is not LPIPS heads
    try {
      await loadLpipsHeads(parity('ddpm_tiny.safetensors'));
      expect.fail('loaded a non-LPIPS checkpoint');
    } catch (e) {
      expect((e as Error).message).to.match(/has no key lin0\.model\.1\.weight; expected LPIPS v0\.1 linear heads/);
    }
  });

  it('lpips(a, b, net) runs the trunk in batches; pairwiseLpips gives the same distances for every pair', () => {
    // a fixed two-layer trunk: the image and its 2x2 average pool scaled by a channel ramp
    const ramp = tf.tensor1d([1, 0.5, 2]);
    const trunk = (x: tf.Tensor4D) => [x, tf.avgPool(x, 2, 2, 'valid').mul(ramp) as tf.Tensor4D];
    const net: LpipsNet = {
      name: 'toy',
      trunk,
      heads: { source: 'toy', weights: [Float32Array.from([1, 2, 3]), Float32Array.from([0.5, 0.5, 0])] },
      batch: 2,
    };
    const x = smoothImages(5, 7, 0.2);
    const perm = tf.gather(x, tf.tensor1d([1, 2, 3, 4, 0], 'int32')) as tf.Tensor4D;
    const d = lpips(x, perm, net);
    const direct = tf.tidy(() => lpipsOfFeatures(trunk(x), trunk(perm), net.heads).dataSync());
    d.forEach((v, i) => expect(v).to.be.closeTo(direct[i], 1e-6));
    const pairs = pairwiseLpips(x, { ...net, batch: 3 }, { pairBatch: 4 });
    expect(pairs).to.have.length(10);
    let k = 0;
    for (let i = 0; i < 5; i++)
      for (let j = i + 1; j < 5; j++) {
        const one = lpips(x.slice(i, 1), x.slice(j, 1), net)[0];
        expect(pairs[k++]).to.be.closeTo(one, 1e-6);
      }
    const div = meanPairwiseDistance(x, net);
    expect(div.extractor).to.equal('toy');
    expect(div.value).to.be.closeTo(pairs.reduce((a, b) => a + b, 0) / 10, 1e-9);
    tf.dispose([ramp, x, perm]);
  });
});

describe('metrics: retrieval and diversity on features', () => {
  it('topKRetrieval: cosine nearest gallery items, by predicate or labels, one k or several', () => {
    // queries: the axes of R^3; gallery: 6 items, two near each axis (the second farther)
    const q = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ];
    const g = [
      [0.9, 0.1, 0],
      [0.2, 1, 0],
      [0, 0.3, 1],
      [1, 0, 0.8],
      [0.1, 0.1, 1],
      [0, 1, 0.9],
    ];
    const owner = [0, 1, 2, 0, 2, 1];
    // cosines: q0 ranks g0 (.99), g3 (.78), ...; q1 ranks g1 (.98), g5 (.74), ...; q2 ranks g4 (.99), g2 (.96), g5 (.67), g3 (.62), ...
    expect(topKRetrieval(q, g, { queryLabels: [0, 1, 2], galleryLabels: owner }, 1)).to.equal(1);
    // one relevant item per query, at rank 2, 2 and 3
    const far = (qi: number, gi: number) => gi === [3, 5, 5][qi];
    expect(topKRetrieval(q, g, far, [1, 2, 6])).to.deep.equal([0, 2 / 3, 1]);
    const tq = tf.tensor2d(q);
    expect(topKRetrieval(tq, g, far, 2)).to.be.closeTo(2 / 3, 1e-12);
    tq.dispose();
    expect(() => topKRetrieval(q, [[1, 2]], far, 1)).to.throw(/width 3, gallery 2/);
  });

  it('meanPairwiseDistance: l2 and cosine on hand-checked points', () => {
    expect(
      meanPairwiseDistance([
        [0, 0],
        [3, 4],
        [0, 4],
      ]),
    ).to.be.closeTo(4, 1e-12); // 5, 4, 3
    expect(
      meanPairwiseDistance(
        [
          [1, 0],
          [0, 2],
          [-3, 0],
        ],
        'cosine',
      ),
    ).to.be.closeTo((1 + 2 + 1) / 3, 1e-9);
    expect(() => meanPairwiseDistance([[1, 2]])).to.throw(/at least 2 rows/);
  });
});

/**
 * A small exact extractor for checking the embedding metrics by hand: an image's features are its
 * per-channel means, a text's are fixed 3-vectors.
 */
function channelMeanExtractor(): ImageTextExtractor & CategoryExtractor {
  const words: Record<string, number[]> = { red: [1, 0, 0], green: [0, 1, 0], blue: [0, 0, 1], grey: [1, 1, 1] };
  return {
    name: 'channel-means',
    source: 'test',
    dim: 3,
    categories: ['red', 'green', 'blue'],
    images: (x) => tf.tidy(() => x.mean([1, 2]).add(1) as tf.Tensor2D),
    texts: (t) => tf.tensor2d(t.map((s) => words[s])),
    classify: (x) => Array.from(tf.tidy(() => x.mean([1, 2]).argMax(-1).dataSync())),
    dispose: () => {},
  };
}

function solid(colors: number[][]): tf.Tensor4D {
  return tf.tidy(() => tf.tensor2d(colors).reshape([colors.length, 1, 1, 3]).tile([1, 4, 4, 1]) as tf.Tensor4D);
}

describe('metrics: CLIP score, directional similarity, category agreement', () => {
  it('clipScore and directionalClipSimilarity: the cosines computed by hand, named by the extractor', () => {
    const ext = channelMeanExtractor();
    const x = solid([
      [1, -1, -1],
      [-1, 1, 0],
    ]); // features [2, 0, 0], [0, 2, 1]
    const s = clipScore(x, ['red', 'green'], ext);
    expect(s.extractor).to.equal('channel-means');
    expect(s.values![0]).to.be.closeTo(1, 1e-6);
    expect(s.values![1]).to.be.closeTo(2 / Math.sqrt(5), 1e-6);
    expect(s.value).to.be.closeTo((1 + 2 / Math.sqrt(5)) / 2, 1e-6);
    // one text for all images
    expect(clipScore(x, 'grey', ext).values![0]).to.be.closeTo(1 / Math.sqrt(3), 1e-6);
    expect(() => clipScore(x, ['red', 'green', 'blue'], ext)).to.throw(/3 texts for 2 images/);
    // src red [2,0,0] -> edit [0,2,1]: unit-embedding difference (-1, 2/sqrt5, 1/sqrt5); text direction red -> green (-1, 1, 0)
    const src = solid([[1, -1, -1]]);
    const edit = solid([[-1, 1, 0]]);
    const r = directionalClipSimilarity(src, edit, 'red', 'green', ext);
    const di = [-1, 2 / Math.sqrt(5), 1 / Math.sqrt(5)];
    const dt = [-1, 1, 0];
    const cos = (di[0] * dt[0] + di[1] * dt[1]) / (Math.hypot(...di) * Math.hypot(...dt));
    expect(r.values![0]).to.be.closeTo(cos, 1e-5);
    expect(r.extractor).to.equal('channel-means');
    // the reverse edit points against the direction
    expect(directionalClipSimilarity(edit, src, 'red', 'green', ext).values![0]).to.be.closeTo(-cos, 1e-5);
    tf.dispose([x, src, edit]);
  });

  it('categoryAgreement: by index, by name and by reference images', () => {
    const ext = channelMeanExtractor();
    const x = solid([
      [1, -1, -1],
      [-1, 1, 0],
      [0, 0, 1],
    ]); // classified red, green, blue
    expect(categoryAgreement(x, [0, 1, 2], ext).value).to.equal(1);
    const byName = categoryAgreement(x, ['red', 'red', 'blue'], ext);
    expect(byName.value).to.be.closeTo(2 / 3, 1e-12);
    expect(byName.predicted).to.deep.equal([0, 1, 2]);
    expect(byName.extractor).to.equal('channel-means');
    const ref = solid([[0, 1, 0]]);
    expect(categoryAgreement(x, ref, ext).value).to.be.closeTo(1 / 3, 1e-12);
    expect(() => categoryAgreement(x, ['purple'], ext)).to.throw(/'purple' is not a category of channel-means/);
    tf.dispose([x, ref]);
  });
});

describe('metrics: extractors', () => {
  it('loadExtractor knows judge and clip, refuses unknown kinds with the known ones, loads registered kinds by config', async () => {
    expect(extractorKinds()).to.include.members(['judge', 'clip']);
    expect(parseExtractorSpec('clip:/x/ViT-B-32.pt')).to.deep.equal({ kind: 'clip', path: '/x/ViT-B-32.pt' });
    expect(parseExtractorSpec('judge')).to.deep.equal({ kind: 'judge' });
    try {
      await loadExtractor('inception-test:/nowhere.pth');
      expect.fail('loaded an unknown kind');
    } catch (e) {
      expect((e as Error).message).to.match(
        /no feature extractor of kind 'inception-test'; known kinds: .*judge.*clip/,
      );
    }
    registerExtractor('pool-test', async (cfg) => ({
      name: cfg.name ?? `pool-test:${cfg.path}`,
      source: cfg.path ?? 'none',
      dim: 3,
      images: (x) => tf.tidy(() => x.mean([1, 2]) as tf.Tensor2D),
      dispose: () => {},
    }));
    const ext = await loadExtractor({ kind: 'pool-test', path: 'cfg-path' });
    const a = smoothImages(6, 1);
    const b = smoothImages(6, 2, 0.3);
    const r = frechetDistanceOf(a, b, ext);
    expect(r.extractor).to.equal('pool-test:cfg-path');
    const fa = extract(ext, a, 4); // batched the same as whole
    const fb = ext.images(b);
    expect(r.value).to.be.closeTo(frechetDistance(fa, fb), 1e-9);
    const k = kidOf(a, b, ext, { subsets: 3, subsetSize: 4, seed: 1 });
    expect(k.extractor).to.equal('pool-test:cfg-path');
    expect(k.value).to.be.closeTo(kid(fa, fb, { subsets: 3, subsetSize: 4, seed: 1 }).mean, 1e-12);
    tf.dispose([a, b, fa, fb]);
  });

  const haveJudge = existsSync(join(weightsPath('judge'), 'judge.safetensors'));
  const haveClip = existsSync(join(weightsPath('clip'), 'clip.safetensors'));

  it('the shipped judge: features, categories and judge-LPIPS (0 for identical images, growing with noise)', async function () {
    if (!haveJudge) return this.skip();
    const ext = await loadJudgeExtractor();
    expect(ext.name).to.equal('judge');
    expect(ext.dim).to.equal(128);
    const x = smoothImages(4, 5);
    const f = extract(ext, x);
    expect(f.shape).to.deep.equal([4, 128]);
    const cats = categoryAgreement(x, x, ext);
    expect(cats.value).to.equal(1);
    expect(cats.extractor).to.equal('judge');
    const net = judgeLpips(ext.judge);
    expect(net.name).to.equal('judge-LPIPS');
    const maps = ext.judge.featureMaps(x);
    expect(maps.map((m) => m.shape.slice(1))).to.deep.equal([
      [32, 32, 32],
      [16, 16, 64],
      [16, 16, 64],
      [8, 8, 128],
      [8, 8, 128],
      [4, 4, 128],
    ]);
    tf.dispose(maps);
    expect(Math.max(...lpips(x, x, net))).to.be.below(1e-6);
    const means = [0.05, 0.2, 0.6].map((s) => {
      const y = smoothImages(4, 5, s);
      const d = lpips(x, y, net);
      y.dispose();
      return d.reduce((a, b) => a + b, 0) / d.length;
    });
    expect(means[0]).to.be.above(0);
    expect(means[1]).to.be.above(means[0]);
    expect(means[2]).to.be.above(means[1]);
    const div = meanPairwiseDistance(x, net);
    expect(div.extractor).to.equal('judge-LPIPS');
    expect(div.n).to.equal(6);
    tf.dispose([x, f]);
    ext.dispose();
  });

  it('the shipped CLIP: clipScore and the directional similarity equal the cosines of its own embeddings', async function () {
    if (!haveClip) return this.skip();
    const ext = (await loadExtractor('clip')) as ImageTextExtractor;
    expect(ext.name).to.equal('clip');
    const x = smoothImages(2, 9);
    const y = smoothImages(2, 10);
    const s = clipScore(x, 'an emoji of a face', ext);
    const ei = ext.images(x);
    const et = ext.texts(['an emoji of a face']);
    const [vi, vt] = [ei.arraySync(), et.arraySync()[0]];
    const cos = (u: number[], v: number[]) =>
      u.reduce((a, ui, i) => a + ui * v[i], 0) / (Math.hypot(...u) * Math.hypot(...v));
    vi.forEach((u, i) => expect(s.values![i]).to.be.closeTo(cos(u, vt), 1e-5));
    const r = directionalClipSimilarity(x, y, 'an emoji of a cat', 'an emoji of a dog', ext);
    const ey = ext.images(y).arraySync();
    const es = ext.texts(['an emoji of a cat', 'an emoji of a dog']).arraySync();
    const unit = (u: number[]) => u.map((v) => v / Math.hypot(...u));
    const dt = unit(es[1]).map((v, i) => v - unit(es[0])[i]);
    vi.forEach((u, i) => {
      const di = unit(ey[i]).map((v, k) => v - unit(u)[k]);
      expect(r.values![i]).to.be.closeTo(cos(di, dt), 1e-4);
    });
    expect(r.extractor).to.equal('clip');
    tf.dispose([x, y, ei, et]);
    ext.dispose();
  });
});

describe('metrics: tensor counts do not grow', () => {
  it('over repeated calls of every metric', async () => {
    const ext = channelMeanExtractor();
    const c = CASES.images[0];
    const [a, b] = images(c);
    const fa = tf.tensor2d(CASES.kid[0].a);
    const fb = tf.tensor2d(CASES.kid[0].b);
    const x = smoothImages(4, 3);
    const y = smoothImages(4, 4, 0.2);
    const ramp = tf.tensor1d([1, 0.5, 2]);
    const net: LpipsNet = {
      name: 'toy',
      trunk: (t) => [t, tf.avgPool(t, 2, 2, 'valid').mul(ramp) as tf.Tensor4D],
      heads: 'unit',
      batch: 3,
    };
    const judge = existsSync(join(weightsPath('judge'), 'judge.safetensors')) ? await loadJudgeExtractor() : null;
    const run = () => {
      ssim(a, b);
      psnr(a, b);
      frechetDistance(fa, fb);
      kid(fa, fb, { subsets: 2, subsetSize: 10 });
      lpips(x, y, net);
      pairwiseLpips(x, net, { pairBatch: 4 });
      meanPairwiseDistance(x, net);
      meanPairwiseDistance(fa);
      topKRetrieval(fa, fb, () => false, [1, 5]);
      topKRetrieval(CASES.kid[0].a, CASES.kid[0].b, () => true, 1);
      clipScore(x, 'red', ext);
      directionalClipSimilarity(x, y, 'red', 'green', ext, { batch: 3 });
      categoryAgreement(x, y, ext);
      frechetDistanceOf(x, y, ext);
      kidOf(x, y, ext, { subsets: 2, subsetSize: 3 });
      if (judge) {
        lpips(x, y, judgeLpips(judge.judge));
        categoryAgreement(x, [0, 1, 2, 3], judge);
        frechetDistanceOf(x, y, judge);
      }
    };
    run();
    const before = tf.memory().numTensors;
    run();
    run();
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([a, b, fa, fb, x, y, ramp]);
    judge?.dispose();
  });
});
