/**
 * Guidance: analytic shifts against exact chains, built-ins on a tiny real conv encoder (random
 * weights), combinators, masks, ILVR.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import type { EncodeImageOptions, ImageEncoder, ImageEncoding, TextEncoder } from '../nets/clip/types.js';
import {
  asLoss,
  clipText,
  cosine,
  directionalClip,
  directionalScore,
  duringIndices,
  gramMatrix,
  identity,
  ilvr,
  imageContent,
  imageStyle,
  l1,
  l2,
  lowPass,
  scale,
  sum,
  textDirection,
  weighted,
  type GuidanceContext,
  type GuidanceFn,
} from '../guidance/index.js';
import {
  diffusionModel,
  gaussianMixtureNet,
  makeSchedule,
  qSample,
  randomStart,
  repaintMoves,
  respace,
  sampleDdim,
  sampleDdpm,
  sampleMasked,
  type SamplerOptions,
} from '../samplers/index.js';
import { Rng } from '../lib/random.js';
import { channelStats, gaussianChain, type ExactGuide, type Kind } from './samplers_exact.js';

const base = makeSchedule('linear', 1000);
const MU = [0.5, -0.3];
const STD = 0.4;
const N = 6000;

/** A small real conv encoder with random weights implementing ImageEncoder (time-conditioned when t is given). */
class TinyEncoder implements ImageEncoder {
  readonly embedDim = 8;
  readonly calls: Array<{ t: boolean; features: boolean }> = [];
  private readonly w1: tf.Tensor4D;
  private readonly b1: tf.Tensor1D;
  private readonly tw: tf.Tensor1D;
  private readonly w2: tf.Tensor4D;
  private readonly wd: tf.Tensor2D;
  constructor(seed: number) {
    const r = new Rng(seed);
    this.w1 = r.normal<tf.Rank.R4>([3, 3, 3, 6]).mul(0.4) as tf.Tensor4D;
    this.b1 = r.normal<tf.Rank.R1>([6]).mul(0.1) as tf.Tensor1D;
    this.tw = r.normal<tf.Rank.R1>([6]).mul(0.3) as tf.Tensor1D;
    this.w2 = r.normal<tf.Rank.R4>([3, 3, 6, 8]).mul(0.3) as tf.Tensor4D;
    this.wd = r.normal<tf.Rank.R2>([8, 8]).mul(0.5) as tf.Tensor2D;
  }
  encodeImage(x: tf.Tensor4D, opts: EncodeImageOptions = {}): ImageEncoding {
    this.calls.push({ t: !!opts.t, features: !!opts.features });
    return tf.tidy(() => {
      const xi = tf.image.resizeBilinear(x, [16, 16], false, true);
      let pre = tf.conv2d(xi, this.w1, 1, 'same').add(this.b1);
      if (opts.t) pre = pre.add(tf.sin(opts.t.div(200)).reshape([-1, 1, 1, 1]).mul(this.tw));
      const h1 = tf.relu(pre) as tf.Tensor4D;
      const h2 = tf.relu(tf.conv2d(tf.avgPool(h1, 2, 2, 'valid'), this.w2, 1, 'same')) as tf.Tensor4D;
      const embedding = tf.matMul(tf.mean(h2, [1, 2]) as tf.Tensor2D, this.wd).add(0.05) as tf.Tensor2D;
      return { embedding, features: opts.features ? [h1, h2] : [] };
    });
  }
  dispose() {
    tf.dispose([this.w1, this.b1, this.tw, this.w2, this.wd]);
  }
}

/** Bag-of-characters text encoder (a real function of the text, deterministic). */
class TinyText implements TextEncoder {
  readonly embedDim = 8;
  encodeText(texts: string[]): tf.Tensor2D {
    const rows = texts.map((s) => {
      const v = new Array<number>(8).fill(0.1);
      for (let k = 0; k < s.length; k++) v[(s.charCodeAt(k) * 7 + k) % 8] += 1;
      return v;
    });
    return tf.tensor2d(rows);
  }
}

function fakeCtx(x: tf.Tensor4D, index = 500): GuidanceContext {
  const abar = base.alphaBar(index);
  return {
    x0: x.mul(0.9) as tf.Tensor4D,
    eps: tf.zerosLike(x) as tf.Tensor4D,
    schedule: base,
    index,
    step: 0,
    total: 1,
    alphaBar: abar,
    noised: (ref) => ref.mul(Math.sqrt(abar)) as tf.Tensor4D,
  };
}

describe('guidance: analytic pull toward a point moves the mean by the predicted amount', function () {
  this.timeout(600000);
  const s = respace(base, '10');
  const model = diffusionModel(gaussianMixtureNet(base, [{ mean: MU, std: STD }]));
  const P = 1.5;
  const pull =
    (lambda: number): GuidanceFn =>
    (x) =>
      tf.tidy(() => tf.sum(tf.square(x.sub(P))).mul(-lambda / 2) as tf.Scalar);
  const pullX0 =
    (lambda: number): GuidanceFn =>
    (_x, _t, ctx) =>
      tf.tidy(() => tf.sum(tf.square(ctx.x0.sub(P))).mul(-lambda / 2) as tf.Scalar);
  const cases: Array<{ name: string; kind: Kind; guide: ExactGuide; opts: SamplerOptions; fn: GuidanceFn }> = [
    {
      name: 'DDPM mean shift on x_t',
      kind: 'ddpm-small',
      guide: { lambda: 2, p: P, scale: 1, mode: 'mean', target: 'xt' },
      opts: {},
      fn: pull(2),
    },
    {
      name: 'DDPM eps shift on x_t',
      kind: 'ddpm-small',
      guide: { lambda: 0.5, p: P, scale: 2, mode: 'eps', target: 'xt' },
      opts: { guidanceMode: 'eps', guidanceScale: 2 },
      fn: pull(0.5),
    },
    {
      name: 'DDIM eps shift on x_t',
      kind: 'ddim',
      guide: { lambda: 1, p: P, scale: 1, mode: 'eps', target: 'xt' },
      opts: {},
      fn: pull(1),
    },
    {
      name: 'DDPM mean shift on x0 (linear)',
      kind: 'ddpm-small',
      guide: { lambda: 1, p: P, scale: 1, mode: 'mean', target: 'x0-linear' },
      opts: { guidanceX0: 'linear' },
      fn: pullX0(1),
    },
    {
      name: 'DDPM mean shift on x0 through the net',
      kind: 'ddpm-small',
      guide: { lambda: 6, p: P, scale: 1, mode: 'mean', target: 'x0-model' },
      opts: { guidanceX0: 'model' },
      fn: pullX0(6),
    },
    {
      name: 'built-in l2 (sum) on x0 = pull with lambda 2',
      kind: 'ddpm-small',
      guide: { lambda: 2, p: P, scale: 0.5, mode: 'mean', target: 'x0-linear' },
      opts: { guidanceScale: 0.5 },
      fn: l2(tf.fill([1, 1, 1, 2], P) as tf.Tensor4D, { reduction: 'sum' }),
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const x = randomStart([N, 1, 1, 2], 71);
      const run = (g?: GuidanceFn) =>
        c.kind === 'ddim'
          ? sampleDdim(model, x, s, { ...c.opts, guidance: g, seed: 3 })
          : sampleDdpm(model, x, s, { ...c.opts, guidance: g, seed: 3 });
      const y = await run(c.fn);
      const y0 = await run(undefined);
      const st = channelStats(y);
      const st0 = channelStats(y0);
      for (let ch = 0; ch < 2; ch++) {
        const comp = { mean: MU[ch], std: STD, weight: 1 };
        const want = gaussianChain(c.kind, s, comp, s.length - 1, 0, 1, c.guide);
        const plain = gaussianChain(c.kind, s, comp, s.length - 1, 0, 1);
        const se = Math.sqrt(want.variance / N);
        expect(
          Math.abs(st.mean[ch] - want.mean),
          `${c.name} ch${ch}: mean ${st.mean[ch]} vs predicted ${want.mean}`,
        ).to.be.lessThan(5 * se);
        expect(Math.abs(st.variance[ch] - want.variance), `${c.name} ch${ch}: var`).to.be.lessThan(
          5 * want.variance * Math.sqrt(2 / N),
        );
        // the predicted shift is large, and the sampler realised it
        expect(Math.abs(want.mean - plain.mean)).to.be.greaterThan(20 * se);
        const se0 = Math.sqrt(plain.variance / N);
        expect(Math.abs(st.mean[ch] - st0.mean[ch] - (want.mean - plain.mean))).to.be.lessThan(5 * (se + se0));
      }
      tf.dispose([x, y, y0]);
    });
  }

  it("DDIM refuses 'mean' guidance with a message naming the fix", async () => {
    const x = randomStart([2, 1, 1, 2], 72);
    let msg = '';
    await sampleDdim(model, x, s, { guidance: pull(1), guidanceMode: 'mean' }).catch((e) => (msg = e.message));
    expect(msg).to.match(/guidanceMode: 'eps'/);
    x.dispose();
  });

  it('clipGradNorm bounds the shift; normalizeGrad makes it independent of the loss scale', async () => {
    const x = randomStart([500, 1, 1, 2], 73);
    const y0 = await sampleDdpm(model, x, s, { seed: 1 });
    const yc = await sampleDdpm(model, x, s, { seed: 1, guidance: pull(1000), clipGradNorm: 1e-6 });
    expect(tf.max(tf.abs(yc.sub(y0))).dataSync()[0]).to.be.lessThan(1e-4);
    const ya = await sampleDdpm(model, x, s, { seed: 1, guidance: pull(1), normalizeGrad: true });
    const yb = await sampleDdpm(model, x, s, { seed: 1, guidance: pull(50), normalizeGrad: true });
    expect(tf.max(tf.abs(ya.sub(yb))).dataSync()[0]).to.be.lessThan(1e-4);
    expect(tf.max(tf.abs(ya.sub(y0))).dataSync()[0]).to.be.greaterThan(1e-2);
    tf.dispose([x, y0, yc, ya, yb]);
  });
});

describe('guidance combinators', () => {
  const x = tf.randomNormal([2, 4, 4, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const t = tf.tensor1d([500, 500]);
  after(() => tf.dispose([x, t]));
  const a: GuidanceFn = (v) => tf.sum(tf.square(v)) as tf.Scalar;
  const b: GuidanceFn = (v) => tf.sum(tf.sin(v)) as tf.Scalar;
  const grad = (g: GuidanceFn, index = 500) => {
    const ctx = fakeCtx(x, index);
    const out = tf.grad((v: tf.Tensor) => g(v as tf.Tensor4D, t, ctx))(x);
    tf.dispose([ctx.x0, ctx.eps]);
    return out;
  };

  it('sum, weighted, scale and asLoss combine values and gradients linearly', () => {
    const ga = grad(a);
    const gb = grad(b);
    const check = (g: GuidanceFn, want: tf.Tensor) => {
      const got = grad(g);
      expect(tf.max(tf.abs(got.sub(want))).dataSync()[0]).to.be.lessThan(1e-4);
      tf.dispose([got, want]);
    };
    check(sum(a, b), ga.add(gb));
    check(
      weighted([
        [a, 2],
        [b, -3],
      ]),
      ga.mul(2).sub(gb.mul(3)),
    );
    check(
      weighted([
        [a, 0],
        [b, 1],
      ]),
      gb.clone(),
    );
    check(scale(a, 0.5), ga.mul(0.5));
    check(asLoss(b), gb.neg());
    tf.dispose([ga, gb]);
  });

  it('duringIndices switches a term off outside its range (zero gradient, still defined)', () => {
    const g = grad(duringIndices(a, 100, 200), 500);
    expect(tf.max(tf.abs(g)).dataSync()[0]).to.equal(0);
    const g2 = grad(duringIndices(a, 100, 600), 500);
    expect(tf.max(tf.abs(g2)).dataSync()[0]).to.be.greaterThan(0);
    tf.dispose([g, g2]);
  });
});

describe('guidance built-ins on a tiny conv encoder', () => {
  const enc = new TinyEncoder(1);
  const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
  const ref = tf.randomUniform([1, 8, 8, 3], -1, 1, 'float32', 8) as tf.Tensor4D;
  const t = tf.tensor1d([300, 300]);
  after(() => {
    enc.dispose();
    tf.dispose([x, ref, t]);
  });

  /** value and gradient of g at x with a fake context */
  const valGrad = (g: GuidanceFn, at: tf.Tensor4D = x) => {
    const ctx = fakeCtx(at, 300);
    const { value, grad } = tf.valueAndGrad((v: tf.Tensor) =>
      g(v as tf.Tensor4D, t, { ...ctx, x0: v.mul(0.9) as tf.Tensor4D }),
    )(at);
    tf.dispose([ctx.x0, ctx.eps]);
    return { value: value.dataSync()[0], grad, dispose: () => tf.dispose([value, grad]) };
  };

  it('clipText: cosine per sample summed; x_t path passes t, x0 path does not; ascent raises it', () => {
    const text = tf.randomNormal([8], 0, 1, 'float32', 9);
    enc.calls.length = 0;
    const g = clipText(enc, text);
    const r = valGrad(g);
    expect(enc.calls[0].t).to.equal(true);
    const direct = tf.sum(cosine(enc.encodeImage(x, { t }).embedding, text.expandDims(0) as tf.Tensor2D)).dataSync()[0];
    expect(r.value).to.be.closeTo(direct, 1e-5);
    expect(Math.abs(r.value)).to.be.at.most(2);
    const up = x.add(r.grad.mul(0.5)) as tf.Tensor4D;
    expect(valGrad(g, up).value).to.be.greaterThan(r.value);
    enc.calls.length = 0;
    const g0 = clipText(enc, text, { onX0: true });
    const r0 = valGrad(g0);
    expect(enc.calls[0].t).to.equal(false);
    const direct0 = tf
      .sum(cosine(enc.encodeImage(x.mul(0.9) as tf.Tensor4D).embedding, text.expandDims(0) as tf.Tensor2D))
      .dataSync()[0];
    expect(r0.value).to.be.closeTo(direct0, 1e-5);
    r.dispose();
    r0.dispose();
    tf.dispose([text, up]);
  });

  it('imageContent: 1 per sample when x_t is the reference noised to t; below 1 otherwise', () => {
    const g = imageContent(enc, ref);
    const same = tf.concat([ref, ref]).mul(Math.sqrt(base.alphaBar(300))) as tf.Tensor4D; // = fakeCtx.noised(ref)
    const r1 = valGrad(g, same);
    expect(r1.value).to.be.closeTo(2, 1e-5);
    const r2 = valGrad(g);
    expect(r2.value).to.be.lessThan(1.999);
    expect(tf.max(tf.abs(r2.grad)).dataSync()[0]).to.be.greaterThan(0);
    r1.dispose();
    r2.dispose();
    same.dispose();
  });

  it('gramMatrix is F^T F / (C M) per sample; imageStyle is 0 at the reference and negative elsewhere', () => {
    const f = tf.randomNormal([2, 3, 3, 4], 0, 1, 'float32', 10);
    const gm = gramMatrix(f);
    const d = f.arraySync() as number[][][][];
    let want = 0;
    for (let h = 0; h < 3; h++) for (let w = 0; w < 3; w++) want += d[1][h][w][2] * d[1][h][w][3];
    want /= 4 * 9;
    expect((gm.arraySync() as number[][][])[1][2][3]).to.be.closeTo(want, 1e-5);
    const g = imageStyle(enc, ref, { gramScale: 1 });
    const same = tf.concat([ref, ref]).mul(Math.sqrt(base.alphaBar(300))) as tf.Tensor4D;
    const r1 = valGrad(g, same);
    expect(Math.abs(r1.value)).to.be.lessThan(1e-9);
    const r2 = valGrad(g);
    expect(r2.value).to.be.lessThan(0);
    const gmax = tf.max(tf.abs(r2.grad)).dataSync()[0];
    const up = x.add(r2.grad.mul(0.05 / gmax)) as tf.Tensor4D;
    expect(valGrad(g, up).value).to.be.greaterThan(r2.value);
    tf.dispose([f, gm, same, up]);
    r1.dispose();
    r2.dispose();
  });

  it('textDirection averages normalised template embeddings; directional score = cos(edit, direction) - 1', () => {
    const te = new TinyText();
    const dir = textDirection(te, 'cat', 'dog', ['{}', 'a photo of a {}.']);
    expect(tf.norm(dir).dataSync()[0]).to.be.closeTo(1, 1e-5);
    const es = tf.tidy(() => {
      const n = (v: tf.Tensor2D) => v.div(tf.norm(v, 2, 1, true));
      const s = n(te.encodeText(['cat', 'a photo of a cat.']));
      const tt = n(te.encodeText(['dog', 'a photo of a dog.']));
      const m = tf.mean(tt.sub(s), 0, true);
      return m.div(tf.norm(m));
    });
    expect(tf.max(tf.abs(es.sub(dir))).dataSync()[0]).to.be.lessThan(1e-6);
    const sc = directionalScore(enc, x, ref, dir).dataSync();
    const manual = tf
      .tidy(() => {
        const n = (v: tf.Tensor2D) => v.div(tf.norm(v, 2, 1, true));
        const edit = n(n(enc.encodeImage(x).embedding).sub(n(enc.encodeImage(ref).embedding)) as tf.Tensor2D);
        return tf.sum(edit.mul(dir), 1).sub(1);
      })
      .dataSync();
    expect(sc[0]).to.be.closeTo(manual[0], 1e-4);
    expect(sc[1]).to.be.closeTo(manual[1], 1e-4);
    const g = directionalClip(enc, ref, {
      textEncoder: te,
      source: 'cat',
      target: 'dog',
      templates: ['{}', 'a photo of a {}.'],
    });
    const r = valGrad(g);
    expect(r.value).to.be.lessThan(0);
    expect(r.value).to.be.greaterThan(-4.0001);
    r.dispose();
    g.dispose();
    tf.dispose([dir, es]);
  });

  it('l1, l2 and identity have the documented values', () => {
    const ctx = fakeCtx(x, 300);
    const v1 = l1(ref)(x, t, ctx).dataSync()[0];
    const v2 = l2(ref)(x, t, ctx).dataSync()[0];
    const want1 = -tf.sum(tf.mean(tf.abs(ctx.x0.sub(ref)), [1, 2, 3])).dataSync()[0];
    const want2 = -tf.sum(tf.mean(tf.square(ctx.x0.sub(ref)), [1, 2, 3])).dataSync()[0];
    expect(v1).to.be.closeTo(want1, 1e-5);
    expect(v2).to.be.closeTo(want2, 1e-5);
    const same = tf.concat([ref, ref]).div(0.9) as tf.Tensor4D; // fakeCtx x0 = 0.9 x
    const idv = identity(enc, ref)(same, t, fakeCtx(same, 300)).dataSync()[0];
    expect(idv).to.be.closeTo(2, 1e-5);
    same.dispose();
  });

  it('guided sampling with encoder guidance: no tensor growth (linear and through-the-net x0)', async () => {
    const s = respace(base, '5');
    const model = diffusionModel(gaussianMixtureNet(base, [{ mean: 0, std: 0.5 }]));
    const text = tf.randomNormal([8], 0, 1, 'float32', 11);
    const g = weighted([
      [clipText(enc, text), 1],
      [imageContent(enc, ref), 0.5],
      [imageStyle(enc, ref), 1e-9],
    ]);
    const xT = randomStart([2, 8, 8, 3], 12);
    const once = async () => {
      (await sampleDdpm(model, xT, s, { seed: 1, guidance: g, guidanceScale: 10 })).dispose();
      (
        await sampleDdpm(model, xT, s, {
          seed: 1,
          guidance: clipText(enc, text, { onX0: true }),
          guidanceX0: 'model',
          stepHook: ilvr(ref, 2),
        })
      ).dispose();
      (await sampleDdim(model, xT, s, { seed: 1, guidance: g })).dispose();
    };
    await once();
    const before = tf.memory().numTensors;
    await once();
    expect(tf.memory().numTensors).to.equal(before);
    // guidance changes the result and the run is reproducible
    const a = await sampleDdpm(model, xT, s, { seed: 2, guidance: g, guidanceScale: 10 });
    const b = await sampleDdpm(model, xT, s, { seed: 2, guidance: g, guidanceScale: 10 });
    const c = await sampleDdpm(model, xT, s, { seed: 2 });
    expect(tf.max(tf.abs(a.sub(b))).dataSync()[0]).to.equal(0);
    expect(tf.max(tf.abs(a.sub(c))).dataSync()[0]).to.be.greaterThan(1e-3);
    tf.dispose([text, xT, a, b, c]);
  });
});

describe('step hooks: masks (SDEdit / RePaint) and ILVR', function () {
  this.timeout(600000);
  const s = respace(base, '20');
  const model = diffusionModel(gaussianMixtureNet(base, [{ mean: MU, std: STD }]));

  it('masked sampling keeps the known region exactly and samples the rest from the data', async () => {
    const n = 4000;
    const reference = tf.tensor4d([[[[2.0, 0]]]]); // channel 0 known (off-distribution), channel 1 generated
    const mask = tf.tensor4d([[[[1, 0]]]]);
    const x = randomStart([n, 1, 1, 2], 81);
    const y = await sampleMasked(model, x, s, { reference, mask, seed: 2, resample: 1 });
    const st = channelStats(y);
    const d = y.dataSync();
    let maxErr = 0;
    for (let k = 0; k < n; k++) maxErr = Math.max(maxErr, Math.abs(d[2 * k] - 2));
    expect(maxErr).to.be.lessThan(1e-6);
    // dims are independent under this data, so the free channel follows the unmasked chain
    const want = gaussianChain('ddpm-small', s, { mean: MU[1], std: STD, weight: 1 }, s.length - 1, 0, 1);
    expect(Math.abs(st.mean[1] - want.mean)).to.be.lessThan(5 * Math.sqrt(want.variance / n));
    expect(Math.abs(st.variance[1] - want.variance)).to.be.lessThan(5 * want.variance * Math.sqrt(2 / n));
    // RePaint resampling: more moves, the known region still exact
    const moves = repaintMoves(19, -1, 5, 3);
    expect(moves.filter((m) => m.to < m.from).length).to.equal(20 + 3 * 2 * 5);
    expect(moves.filter((m) => m.to > m.from).length).to.equal(3 * 2 * 5);
    let level = 19;
    for (const m of moves) {
      expect(m.from).to.equal(level);
      expect(Math.abs(m.to - m.from)).to.equal(1);
      level = m.to;
    }
    expect(level).to.equal(-1);
    let steps = 0;
    const y2 = await sampleMasked(model, x, s, {
      reference,
      mask,
      seed: 2,
      jumpLength: 5,
      resample: 3,
      callback: () => void steps++,
    });
    expect(steps).to.equal(moves.length);
    const d2 = y2.dataSync();
    for (let k = 0; k < n; k++) maxErr = Math.max(maxErr, Math.abs(d2[2 * k] - 2));
    expect(maxErr).to.be.lessThan(1e-6);
    tf.dispose([reference, mask, x, y, y2]);
  });

  it('SDEdit masked editing from a noised guide keeps the kept region within 1/255', async () => {
    const guide = tf.randomUniform([2, 4, 4, 2], -1, 1, 'float32', 3) as tf.Tensor4D;
    const mask = tf.tensor4d(
      Array.from({ length: 16 }, (_, k) => (k % 4 < 2 ? 1 : 0)),
      [1, 4, 4, 1],
    );
    const noise = randomStart([2, 4, 4, 2], 4);
    const start = 12;
    const xt = qSample(guide, s, start, noise);
    const y = await sampleDdpm(model, xt, s, {
      startIndex: start,
      stepHook: (await import('../samplers/hooks.js')).maskHook(guide, mask),
      refNoise: noise,
      seed: 5,
    });
    const err = tf.max(tf.abs(y.sub(guide).mul(mask))).dataSync()[0];
    expect(err).to.be.lessThan(1 / 255);
    const free = tf.max(tf.abs(y.sub(guide).mul(tf.scalar(1).sub(mask)))).dataSync()[0];
    expect(free).to.be.greaterThan(1e-2);
    tf.dispose([guide, mask, noise, xt, y]);
  });

  it('ILVR: the hook replaces the low-pass part; samples follow the reference low frequencies', async () => {
    const ref = tf.randomUniform([1, 4, 4, 2], -1, 1, 'float32', 6) as tf.Tensor4D;
    const xx = tf.randomNormal([3, 4, 4, 2], 0, 1, 'float32', 7) as tf.Tensor4D;
    const hook = ilvr(ref, 2);
    const out = hook(xx, {
      step: 0,
      total: 1,
      schedule: s,
      from: 1,
      to: 0,
      alphaBar: 1,
      x0: xx,
      noised: (r) => r.clone(),
    });
    // not applied on the final step to the clean image (ILVR conditions while t > 0)
    const last = hook(xx, {
      step: 0,
      total: 1,
      schedule: s,
      from: 0,
      to: -1,
      alphaBar: 1,
      x0: xx,
      noised: (r) => r.clone(),
    });
    expect(last).to.equal(xx);
    const want = xx.sub(lowPass(xx, 2)).add(lowPass(ref, 2));
    expect(tf.max(tf.abs(out.sub(want))).dataSync()[0]).to.be.lessThan(1e-6);
    const xT = randomStart([200, 4, 4, 2], 8);
    const a = await sampleDdpm(model, xT, s, { seed: 1, stepHook: ilvr(ref, 2) });
    const b = await sampleDdpm(model, xT, s, { seed: 1 });
    const dist = (y: tf.Tensor4D) =>
      tf.mean(tf.abs(tf.avgPool(y, 2, 2, 'valid').sub(tf.avgPool(ref, 2, 2, 'valid')))).dataSync()[0];
    expect(dist(a)).to.be.lessThan(dist(b) / 3);
    tf.dispose([ref, xx, out, want, xT, a, b]);
  });
});

describe('integration with nets/unet and nets/clip (parity fixtures)', function () {
  this.timeout(600000);
  it('SDG-style guided DDPM with the real UNet (learned sigma) and CLIP: runs, guidance changes the sample, no growth', async function () {
    const { HAVE_PARITY, parity } = await import('./fixtures.js');
    if (!HAVE_PARITY) this.skip();
    const { readStateDict } = await import('../lib/io/index.js');
    const { UNet } = await import('../nets/unet/index.js');
    const { CLIP } = await import('../nets/clip/index.js');
    const unet = UNet.fromStateDict(await readStateDict(parity('gd_tiny_a.pt')));
    const clip = CLIP.fromStateDict(await readStateDict(parity('clip_tiny.pt')));
    const c = unet.config;
    const size = c.imageSize ?? 32;
    const model = diffusionModel((x, t, cond) => unet.apply(x, t, cond ?? {}), {
      variance: c.outChannels === 2 * c.inChannels ? 'learnedRange' : 'fixedSmall',
    });
    const s = respace(makeSchedule('linear', 1000), '3');
    const xT = randomStart([1, size, size, c.inChannels], 1);
    const text = tf.randomNormal([1, clip.embedDim], 0, 1, 'float32', 2);
    const g = clipText(clip, text, { onX0: true });
    const run = (guided: boolean) =>
      sampleDdpm(model, xT, s, { seed: 3, clipDenoised: true, guidance: guided ? g : undefined, guidanceScale: 50 });
    (await run(true)).dispose();
    (await run(false)).dispose();
    const before = tf.memory().numTensors;
    const a = await run(true);
    const b = await run(false);
    expect(a.shape).to.deep.equal([1, size, size, c.inChannels]);
    const diff = tf.tidy(() => tf.max(tf.abs(a.sub(b))));
    expect(diff.dataSync()[0]).to.be.greaterThan(1e-4);
    tf.dispose([a, b, diff]);
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([xT, text]);
  });
});
