/**
 * Streamed UNet weights (nets/host-params.ts): weights in host memory, each block's uploaded just
 * before it runs and freed after. Same outputs and input gradients as resident weights, no tensors
 * left on the backend between calls, fp16 kept as fp16 in host memory.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { UNet, type UNetConfig } from '../nets/unet/index.js';
import { f16ToF32, f32ToF16 } from '../lib/io/f16.js';
import { HostParams } from '../nets/host-params.js';
import { chooseWeightMode, WEIGHT_MODE_ENV } from '../lib/models/stream.js';

// The 256 px model's structure in miniature: scale-shift norms, ResBlock up/down, attention with fixed head channels.
const CFG: Partial<UNetConfig> = {
  kind: 'guided-diffusion',
  imageSize: 16,
  inChannels: 3,
  outChannels: 6,
  modelChannels: 32,
  channelMult: [1, 2],
  numResBlocks: 1,
  attentionDs: [2],
  numHeadChannels: 16,
  useScaleShiftNorm: true,
  resblockUpdown: true,
  learnSigma: true,
};

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

describe('UNet: streamed weights (host memory, uploaded per block)', () => {
  let resident: UNet;
  let streamed: UNet;
  let x: tf.Tensor4D;
  let t: tf.Tensor1D;
  before(() => {
    resident = UNet.random(CFG, 7, { referenceInit: false });
    streamed = UNet.random(CFG, 7, { referenceInit: false, stream: true });
    x = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    t = tf.tensor1d([10, 500]);
  });
  after(() => {
    resident.dispose();
    streamed.dispose();
    tf.dispose([x, t]);
  });

  it('holds no backend tensors: no variables, the same parameter count in host memory', () => {
    expect(streamed.streamed).to.equal(true);
    expect(resident.streamed).to.equal(false);
    expect(streamed.params.size).to.equal(0);
    expect(streamed.numParams()).to.equal(resident.numParams());
    expect(streamed.hostBytes()).to.equal(4 * resident.numParams());
  });

  it('forward: equal to the resident net (1e-6), and the tensor count does not grow over calls', () => {
    const a = resident.apply(x, t);
    const before = tf.memory().numTensors;
    const b = streamed.apply(x, t);
    expect(maxAbsDiff(a, b)).to.be.below(1e-6);
    expect(tf.memory().numTensors).to.equal(before + 1);
    b.dispose();
    for (let i = 0; i < 2; i++) streamed.apply(x, t).dispose();
    expect(tf.memory().numTensors).to.equal(before);
    a.dispose();
  });

  it('intermediates: every block output equal to the resident net', () => {
    const a = resident.applyWithIntermediates(x, t);
    const b = streamed.applyWithIntermediates(x, t);
    expect(Object.keys(b.intermediates)).to.deep.equal(Object.keys(a.intermediates));
    for (const k of Object.keys(a.intermediates))
      expect(maxAbsDiff(a.intermediates[k], b.intermediates[k]), k).to.be.below(1e-6);
    tf.dispose([a, b] as unknown as tf.TensorContainer);
  });

  it('under a gradient tape (the taped path): d/dx of a loss equal to the resident net; nothing left behind', () => {
    const loss = (u: UNet) => (xx: tf.Tensor) =>
      u
        .apply(xx as tf.Tensor4D, t)
        .square()
        .mean();
    const ga = tf.grad(loss(resident))(x);
    const before = tf.memory().numTensors;
    const gb = tf.grad(loss(streamed))(x);
    expect(tf.memory().numTensors).to.equal(before + 1);
    const scale = tf.tidy(() => ga.abs().max().dataSync()[0]);
    expect(scale).to.be.above(0);
    expect(maxAbsDiff(ga, gb)).to.be.below(1e-6 * Math.max(1, scale));
    tf.dispose([ga, gb]);
    expect(tf.memory().numTensors).to.equal(before - 1);
  });

  it('toStateDict equals the resident net; fromStateDict({stream}) of it runs the same', () => {
    const sd = resident.toStateDict();
    const sd2 = streamed.toStateDict();
    expect([...sd2.keys()]).to.deep.equal([...sd.keys()]);
    for (const [k, v] of sd) expect(Array.from(sd2.get(k)!.data), k).to.deep.equal(Array.from(v.data));
    const before = tf.memory().numTensors;
    const re = UNet.fromStateDict(sd, resident.config, { stream: true });
    expect(tf.memory().numTensors).to.equal(before);
    const a = resident.apply(x, t);
    const b = re.apply(x, t);
    expect(maxAbsDiff(a, b)).to.be.below(1e-6);
    tf.dispose([a, b]);
    re.dispose();
  });

  it('fp16 weights stay fp16 in host memory (half the bytes) and run as the float32 net of the same values', () => {
    // Round the weights to fp16 values, mark them as from an fp16 file.
    const sd = resident.toStateDict();
    for (const v of sd.values()) {
      v.data = f16ToF32(f32ToF16(v.data as Float32Array));
      v.sourceDtype = 'float16';
    }
    const r32 = UNet.fromStateDict(sd, resident.config);
    const s16 = UNet.fromStateDict(sd, resident.config, { stream: true });
    expect(s16.hostBytes()).to.equal(2 * r32.numParams());
    const a = r32.apply(x, t);
    const b = s16.apply(x, t);
    expect(maxAbsDiff(a, b)).to.be.below(1e-6);
    tf.dispose([a, b]);
    r32.dispose();
    s16.dispose();
  });
});

describe('UNet.random({stream, streamF16}): the draw rounded to fp16 in host memory', () => {
  it('half the host bytes; the same net as resident weights rounded to fp16 (1e-6)', () => {
    const s16 = UNet.random(CFG, 7, { referenceInit: false, stream: true, streamF16: true });
    const r = UNet.random(CFG, 7, { referenceInit: false });
    expect(s16.hostBytes()).to.equal(2 * r.numParams());
    const sd = r.toStateDict();
    for (const v of sd.values()) v.data = f16ToF32(f32ToF16(v.data as Float32Array));
    const r16 = UNet.fromStateDict(sd, r.config);
    const x = tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const t = tf.tensor1d([250]);
    const a = r16.apply(x, t);
    const b = s16.apply(x, t);
    expect(maxAbsDiff(a, b)).to.be.below(1e-6);
    tf.dispose([a, b, x, t]);
    [s16, r, r16].forEach((u) => u.dispose());
  });
});

describe('host-params: fp16 conversion and uploads', () => {
  it('every non-NaN binary16 pattern round-trips through float32', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToF16(f16ToF32(bits));
    let bad = 0;
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (!isNaN && back[i] !== i) bad++;
      if (isNaN && !Number.isNaN(f16ToF32(new Uint16Array([back[i]]))[0])) bad++;
    }
    expect(bad).to.equal(0);
  });

  it('float32 -> fp16 rounds to nearest (even on ties) and saturates to infinity', () => {
    const x = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 1e-8, 3e-8, -2.5, 2 ** -24]);
    expect(Array.from(f16ToF32(f32ToF16(x)))).to.deep.equal([1, 1 + 2 ** -9, Infinity, 0, 2 ** -24, -2.5, 2 ** -24]);
  });

  it('upload makes a float32 tensor of the stored values; a wrong length is refused naming the key', () => {
    const h = new HostParams();
    h.set('w', { shape: [2, 2], data: f32ToF16(new Float32Array([1, -2, 0.5, 3])), dtype: 'float16' });
    const u = h.upload('w');
    expect(u.dtype).to.equal('float32');
    expect(Array.from(u.dataSync())).to.deep.equal([1, -2, 0.5, 3]);
    u.dispose();
    expect(() => h.set('b', { shape: [3], data: new Float32Array(2), dtype: 'float32' })).to.throw(/b has 2 elements/);
    expect(() => h.upload('nope')).to.throw(/no weight nope/);
  });
});

describe('chooseWeightMode: resident when the weights fit the wasm heap, streamed otherwise', () => {
  const saved = process.env[WEIGHT_MODE_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[WEIGHT_MODE_ENV];
    else process.env[WEIGHT_MODE_ENV] = saved;
  });

  it('auto: small nets resident; on wasm the 256 px UNet (2.06 GiB) streamed; other backends resident', () => {
    delete process.env[WEIGHT_MODE_ENV];
    expect(chooseWeightMode(64 * 2 ** 20).mode).to.equal('resident');
    const big = chooseWeightMode(2.06 * 2 ** 30);
    expect(big.mode).to.equal(tf.getBackend() === 'wasm' ? 'streamed' : 'resident');
    expect(big.reason).to.be.a('string').and.not.equal('');
  });

  it(`${WEIGHT_MODE_ENV}=stream|resident forces the mode; anything else is refused naming the values`, () => {
    process.env[WEIGHT_MODE_ENV] = 'stream';
    expect(chooseWeightMode(1024).mode).to.equal('streamed');
    process.env[WEIGHT_MODE_ENV] = 'resident';
    expect(chooseWeightMode(2.06 * 2 ** 30).mode).to.equal('resident');
    process.env[WEIGHT_MODE_ENV] = 'sometimes';
    expect(() => chooseWeightMode(1024)).to.throw(/DIFFGUIDE_WEIGHTS must be auto, stream or resident/);
  });
});
