/** UNet: parity with the reference fixtures, config space, key sets, gradients, round-trips, memory. */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { readStateDict } from '../lib/io/index.js';
import { readIoFile, type IoTensor } from '../lib/cli/commands/verify.js';
import {
  UNet,
  configFromReference,
  inferUNetConfig,
  unetParamShapes,
  validateUNetConfig,
  type UNetConfig,
} from '../nets/unet/index.js';
import { BENCH, HAVE_PARITY, PARITY, parity } from './fixtures.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

type KeysJson = Record<string, { shape: number[]; dtype: string }>;

function readJson<T>(p: string): T {
  return JSON.parse(readFileSync(p, 'utf8')) as T;
}

/** max|ours - ref| and max|ref|; ours NHWC for 4-D, ref in PyTorch layout. */
function errVsRef(ours: tf.Tensor, ref: IoTensor): { err: number; max: number } {
  return tf.tidy(() => {
    const o = ours.rank === 4 ? ours.transpose([0, 3, 1, 2]) : ours;
    expect(o.shape).to.deep.equal(ref.shape);
    const r = tf.tensor(ref.data, ref.shape, 'float32');
    return { err: o.sub(r).abs().max().dataSync()[0], max: r.abs().max().dataSync()[0] };
  });
}

function inputsOf(io: Map<string, IoTensor>): { x: tf.Tensor4D; t: tf.Tensor1D } {
  const x = io.get('x')!;
  const t = io.get('t')!;
  return {
    x: tf.tidy(() => tf.tensor(x.data, x.shape, 'float32').transpose([0, 2, 3, 1]) as tf.Tensor4D),
    t: tf.tensor1d(Float32Array.from(t.data), 'float32'),
  };
}

describe('unet: parity with the reference fixtures', function () {
  before(function () {
    if (!HAVE_PARITY) {
      console.log(`    (skipping: no parity fixtures at ${PARITY})`);
      this.skip();
    }
  });

  const cases = [
    { weights: 'gd_tiny_a.pt', io: 'gd_tiny_a_io.json', config: 'gd_tiny_a.config.json' },
    { weights: 'ddpm_tiny.pt', io: 'ddpm_tiny_io.json', config: 'ddpm_tiny.config.json' },
    { weights: 'ddpm_tiny.safetensors', io: 'ddpm_tiny_io.json', config: 'ddpm_tiny.config.json' },
  ];
  for (const c of cases) {
    it(`${c.weights}: output and every intermediate in ${c.io} within 1e-4 x max(1, max|ref|)`, async () => {
      const sd = await readStateDict(parity(c.weights));
      const net = UNet.fromStateDict(sd, configFromReference(readJson(parity(c.config))));
      const io = await readIoFile(parity(c.io));
      const { x, t } = inputsOf(io);
      const { out, intermediates } = net.applyWithIntermediates(x, t);
      const all: Record<string, tf.Tensor> = { ...intermediates, out };
      let checked = 0;
      for (const [name, ref] of io) {
        if (name === 'x' || name === 't') continue;
        expect(all, `no intermediate named ${name}`).to.have.property(name);
        const { err, max } = errVsRef(all[name], ref);
        expect(err, `${name}: max|err| ${err} (max|ref| ${max})`).to.be.at.most(1e-4 * Math.max(1, max));
        checked++;
      }
      expect(checked).to.be.greaterThan(3);
      tf.dispose([x, t, out, ...Object.values(intermediates)]);
      net.dispose();
    });
  }

  it('infers the fixture structure from keys alone (gd needs only the head split as a hint)', async () => {
    const gd = await readStateDict(parity('gd_tiny_a.pt'));
    const ref = configFromReference(readJson(parity('gd_tiny_a.config.json')));
    const inferred = inferUNetConfig(gd, { numHeadChannels: 16 });
    for (const k of [
      'modelChannels',
      'channelMult',
      'numResBlocks',
      'attentionDs',
      'outChannels',
      'useScaleShiftNorm',
      'resblockUpdown',
      'numClasses',
      'learnSigma',
    ] as const)
      expect(inferred[k], k).to.deep.equal(ref[k]);
    const dd = await readStateDict(parity('ddpm_tiny.safetensors'));
    const dref = configFromReference(readJson(parity('ddpm_tiny.config.json')));
    const dinf = inferUNetConfig(dd);
    for (const k of [
      'kind',
      'modelChannels',
      'channelMult',
      'numResBlocks',
      'attentionDs',
      'outChannels',
      'convResample',
    ] as const)
      expect(dinf[k], k).to.deep.equal(dref[k]);
    // and the inferred (hinted) net reproduces the output
    const net = UNet.fromStateDict(gd, { numHeadChannels: 16 });
    const io = await readIoFile(parity('gd_tiny_a_io.json'));
    const { x, t } = inputsOf(io);
    const out = net.apply(x, t);
    const { err, max } = errVsRef(out, io.get('out')!);
    expect(err).to.be.at.most(1e-4 * Math.max(1, max));
    tf.dispose([x, t, out]);
    net.dispose();
  });

  it('fixture key sets equal what the config creates', () => {
    for (const [keys, cfg] of [
      ['gd_tiny_a.keys.json', 'gd_tiny_a.config.json'],
      ['ddpm_tiny.keys.json', 'ddpm_tiny.config.json'],
    ]) {
      const want = readJson<KeysJson>(parity(keys));
      const got = unetParamShapes(configFromReference(readJson(parity(cfg))));
      expect([...got.keys()].sort()).to.deep.equal(Object.keys(want).sort());
      for (const [k, s] of got) expect(s, k).to.deep.equal(want[k].shape);
      // reference order, too (state_dict order is module registration order)
      expect([...got.keys()]).to.deep.equal(Object.keys(want));
    }
  });

  it('released full-size architectures: the inferred config creates exactly their keys and shapes', () => {
    const released: { file: string; expect: Partial<UNetConfig>; flags?: Record<string, unknown> }[] = [
      {
        file: 'gd_256_uncond.full.keys.json',
        expect: {
          kind: 'guided-diffusion',
          modelChannels: 256,
          channelMult: [1, 1, 2, 2, 4, 4],
          numResBlocks: 2,
          attentionDs: [8, 16, 32],
          outChannels: 6,
          useScaleShiftNorm: true,
          resblockUpdown: true,
          numClasses: null,
          numHeadChannels: 64,
        },
        // the README flags of 256x256_diffusion_uncond.pt
        flags: {
          attention_resolutions: '32,16,8',
          class_cond: false,
          diffusion_steps: 1000,
          image_size: 256,
          learn_sigma: true,
          noise_schedule: 'linear',
          num_channels: 256,
          num_head_channels: 64,
          num_res_blocks: 2,
          resblock_updown: true,
          use_fp16: true,
          use_scale_shift_norm: true,
        },
      },
      {
        file: 'ddpm_celebahq_lsun_256.full.keys.json',
        expect: {
          kind: 'ddpm',
          modelChannels: 128,
          channelMult: [1, 1, 2, 2, 4, 4],
          numResBlocks: 2,
          attentionDs: [16],
          outChannels: 3,
          convResample: true,
        },
        flags: {
          resolution: 256,
          in_channels: 3,
          out_ch: 3,
          ch: 128,
          ch_mult: [1, 1, 2, 2, 4, 4],
          num_res_blocks: 2,
          attn_resolutions: [16],
          dropout: 0.0,
          resamp_with_conv: true,
        },
      },
      {
        file: 'ddpm_cifar10_32.full.keys.json',
        expect: {
          kind: 'ddpm',
          modelChannels: 128,
          channelMult: [1, 2, 2, 2],
          numResBlocks: 2,
          attentionDs: [2],
          outChannels: 3,
          convResample: true,
        },
        flags: {
          resolution: 32,
          in_channels: 3,
          out_ch: 3,
          ch: 128,
          ch_mult: [1, 2, 2, 2],
          num_res_blocks: 2,
          attn_resolutions: [16],
          dropout: 0.1,
          resamp_with_conv: true,
        },
      },
    ];
    for (const r of released) {
      const keys = readJson<KeysJson>(parity(r.file));
      const shapes = new Map(Object.entries(keys).map(([k, v]) => [k, v.shape]));
      const cfg = inferUNetConfig(shapes);
      for (const [k, v] of Object.entries(r.expect))
        expect(cfg[k as keyof UNetConfig], `${r.file}: ${k}`).to.deep.equal(v);
      for (const c of [cfg, configFromReference(r.flags!)]) {
        const got = unetParamShapes(c);
        expect([...got.keys()], r.file).to.deep.equal(Object.keys(keys));
        for (const [k, s] of got) expect(s, `${r.file}: ${k}`).to.deep.equal(keys[k].shape);
      }
    }
  });
});

describe('unet: config space (random init)', () => {
  /** Reference keys of a guided-diffusion ResBlock, enumerated from unet.py's ResBlock.__init__. */
  function resKeys(p: string, cin: number, cout: number, ted: number, scaleShift: boolean): [string, number[]][] {
    const k: [string, number[]][] = [
      [`${p}.in_layers.0.weight`, [cin]],
      [`${p}.in_layers.0.bias`, [cin]],
      [`${p}.in_layers.2.weight`, [cout, cin, 3, 3]],
      [`${p}.in_layers.2.bias`, [cout]],
      [`${p}.emb_layers.1.weight`, [scaleShift ? 2 * cout : cout, ted]],
      [`${p}.emb_layers.1.bias`, [scaleShift ? 2 * cout : cout]],
      [`${p}.out_layers.0.weight`, [cout]],
      [`${p}.out_layers.0.bias`, [cout]],
      [`${p}.out_layers.3.weight`, [cout, cout, 3, 3]],
      [`${p}.out_layers.3.bias`, [cout]],
    ];
    if (cin !== cout) k.push([`${p}.skip_connection.weight`, [cout, cin, 1, 1]], [`${p}.skip_connection.bias`, [cout]]);
    return k;
  }
  function attnKeys(p: string, c: number, enc?: number): [string, number[]][] {
    const k: [string, number[]][] = [
      [`${p}.norm.weight`, [c]],
      [`${p}.norm.bias`, [c]],
      [`${p}.qkv.weight`, [3 * c, c, 1]],
      [`${p}.qkv.bias`, [3 * c]],
    ];
    if (enc) k.push([`${p}.encoder_kv.weight`, [2 * c, enc, 1]], [`${p}.encoder_kv.bias`, [2 * c]]);
    k.push([`${p}.proj_out.weight`, [c, c, 1]], [`${p}.proj_out.bias`, [c]]);
    return k;
  }
  const conv = (p: string, cin: number, cout: number): [string, number[]][] => [
    [`${p}.weight`, [cout, cin, 3, 3]],
    [`${p}.bias`, [cout]],
  ];

  // mc 32, mult (1,2), 1 res block, attention at ds 2, conv resampling, 10 classes, no scale-shift, new order, 2 heads
  const small: Partial<UNetConfig> = {
    kind: 'guided-diffusion',
    modelChannels: 32,
    channelMult: [1, 2],
    numResBlocks: 1,
    attentionDs: [2],
    numHeads: 2,
    convResample: true,
    resblockUpdown: false,
    useScaleShiftNorm: false,
    useNewAttentionOrder: true,
    numClasses: 10,
  };

  it('key set of a conv-resampling, class-conditional, no-scale-shift config matches the reference enumeration', () => {
    const ted = 128;
    const want: [string, number[]][] = [
      ['time_embed.0.weight', [ted, 32]],
      ['time_embed.0.bias', [ted]],
      ['time_embed.2.weight', [ted, ted]],
      ['time_embed.2.bias', [ted]],
      ['label_emb.weight', [10, ted]],
      ...conv('input_blocks.0.0', 3, 32),
      ...resKeys('input_blocks.1.0', 32, 32, ted, false),
      ...conv('input_blocks.2.0.op', 32, 32),
      ...resKeys('input_blocks.3.0', 32, 64, ted, false),
      ...attnKeys('input_blocks.3.1', 64),
      ...resKeys('middle_block.0', 64, 64, ted, false),
      ...attnKeys('middle_block.1', 64),
      ...resKeys('middle_block.2', 64, 64, ted, false),
      ...resKeys('output_blocks.0.0', 128, 64, ted, false),
      ...attnKeys('output_blocks.0.1', 64),
      ...resKeys('output_blocks.1.0', 96, 64, ted, false),
      ...attnKeys('output_blocks.1.1', 64),
      ...conv('output_blocks.1.2.conv', 64, 64),
      ...resKeys('output_blocks.2.0', 96, 32, ted, false),
      ...resKeys('output_blocks.3.0', 64, 32, ted, false),
      ['out.0.weight', [32]],
      ['out.0.bias', [32]],
      ...conv('out.2', 32, 3),
    ];
    const got = unetParamShapes(validateUNetConfig(small));
    expect([...got.entries()]).to.deep.equal(want);
    const net = UNet.random(small, 1);
    for (const [k, s] of want) expect(net.paramSpecs.get(k)!.shape, k).to.deep.equal(s);
    expect(net.numParams()).to.equal(want.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0));
    net.dispose();
  });

  it('pool resampling (conv_resample false) has no resampling weights; token and embedding conditioning add encoder_kv / transformer_proj', () => {
    const got = unetParamShapes(
      validateUNetConfig({ ...small, convResample: false, numClasses: null, tokenCondDim: 24, embCondDim: 16 }),
    );
    expect([...got.keys()].some((k) => k.includes('.op.') || k.endsWith('.conv.weight'))).to.equal(false);
    expect(got.get('transformer_proj.weight')).to.deep.equal([128, 16]);
    expect(got.get('input_blocks.3.1.encoder_kv.weight')).to.deep.equal([128, 24, 1]);
    expect(got.get('middle_block.1.encoder_kv.weight')).to.deep.equal([128, 24, 1]);
    expect(got.has('label_emb.weight')).to.equal(false);
  });

  it('configFromReference mirrors create_model (resolutions -> rates, default channel_mult, learn_sigma, class_cond)', () => {
    const c = configFromReference({
      image_size: 64,
      num_channels: 192,
      num_res_blocks: 3,
      channel_mult: '',
      attention_resolutions: '32,16,8',
      learn_sigma: true,
      class_cond: true,
      num_head_channels: 64,
      resblock_updown: true,
      use_new_attention_order: true,
      use_scale_shift_norm: true,
    });
    expect(c.channelMult).to.deep.equal([1, 2, 3, 4]);
    expect(c.attentionDs).to.deep.equal([2, 4, 8]);
    expect(c.outChannels).to.equal(6);
    expect(c.numClasses).to.equal(1000);
    expect(c.useNewAttentionOrder).to.equal(true);
    // UNetModel kwargs: attention_resolutions are already rates
    const u = configFromReference({
      in_channels: 3,
      model_channels: 64,
      out_channels: 3,
      num_res_blocks: 2,
      attention_resolutions: [4],
      channel_mult: [1, 2],
      conv_resample: false,
      encoder_channels: 32,
    });
    expect(u.attentionDs).to.deep.equal([4]);
    expect(u.convResample).to.equal(false);
    expect(u.tokenCondDim).to.equal(32);
    // DDPM, nested yaml form
    const d = configFromReference({
      data: { image_size: 256 },
      model: {
        ch: 128,
        out_ch: 3,
        ch_mult: [1, 1, 2, 2, 4, 4],
        num_res_blocks: 2,
        attn_resolutions: [16],
        dropout: 0,
        in_channels: 3,
        resamp_with_conv: true,
      },
    });
    expect(d.kind).to.equal('ddpm');
    expect(d.attentionDs).to.deep.equal([16]);
  });

  it('every config in the space runs, keeps shapes, and round-trips through toStateDict', () => {
    const configs: Partial<UNetConfig>[] = [
      small,
      { ...small, convResample: false, useNewAttentionOrder: false, numHeads: 1, numClasses: null },
      {
        ...small,
        resblockUpdown: true,
        useScaleShiftNorm: true,
        numHeadChannels: 32,
        numHeadsUpsample: 1,
        numClasses: null,
        outChannels: 6,
      },
      { ...small, numClasses: null, tokenCondDim: 24, embCondDim: 16 },
      { kind: 'ddpm', modelChannels: 32, channelMult: [1, 2], numResBlocks: 1, attentionDs: [1], convResample: false },
      {
        kind: 'guided-diffusion',
        modelChannels: 64,
        channelMult: [0.5, 1],
        numResBlocks: 1,
        attentionDs: [1],
        numHeadChannels: 32,
      },
    ];
    for (const cfg of configs) {
      const net = UNet.random(cfg, 3, { referenceInit: false });
      const c = net.config;
      const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
      const t = tf.tensor1d([3, 700]);
      const cond = {
        ...(c.numClasses ? { y: tf.tensor1d([1, 7], 'int32') } : {}),
        ...(c.embCondDim ? { emb: tf.randomNormal([2, c.embCondDim], 0, 1, 'float32', 6) as tf.Tensor2D } : {}),
        ...(c.tokenCondDim
          ? { tokens: tf.randomNormal([2, 5, c.tokenCondDim], 0, 1, 'float32', 7) as tf.Tensor3D }
          : {}),
      };
      const out = net.apply(x, t, cond);
      expect(out.shape).to.deep.equal([2, 8, 8, c.outChannels]);
      expect(tf.all(tf.isFinite(out)).dataSync()[0]).to.equal(1);
      // the forward-only path (no tape) and the taped path (inside a gradient) compute the same function
      let taped: tf.Tensor | null = null;
      tf.dispose(
        tf.grad((xv: tf.Tensor) => {
          taped = tf.keep(net.apply(xv as tf.Tensor4D, t, cond));
          return taped.sum();
        })(x),
      );
      const gap = tf.tidy(
        () => tf.max(tf.abs(out.sub(taped!))).dataSync()[0] / Math.max(1, tf.max(tf.abs(out)).dataSync()[0]),
      );
      expect(gap, `forward-only vs taped, ${JSON.stringify(cfg)}`).to.be.below(1e-5);
      tf.dispose(taped!);
      const sd = net.toStateDict();
      expect([...sd.keys()]).to.deep.equal([...unetParamShapes(c).keys()]);
      const net2 = UNet.fromStateDict(sd, c);
      const out2 = net2.apply(x, t, cond);
      expect(tf.max(tf.abs(out.sub(out2))).dataSync()[0], JSON.stringify(cfg)).to.equal(0);
      // the round-tripped state_dict is bit-identical
      const sd2 = net2.toStateDict();
      for (const [k, v] of sd)
        expect(
          Buffer.from((sd2.get(k)!.data as Float32Array).buffer).equals(Buffer.from((v.data as Float32Array).buffer)),
          k,
        ).to.equal(true);
      tf.dispose([x, t, out, out2, ...Object.values(cond)]);
      net.dispose();
      net2.dispose();
    }
  });

  it('conditioning changes the output where it should and is validated', () => {
    const net = UNet.random({ ...small, tokenCondDim: 24, embCondDim: 16 }, 4, { referenceInit: false });
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const t = tf.tensor1d([10, 20]);
    const y = tf.tensor1d([1, 2], 'int32');
    const tokens = tf.randomNormal([2, 4, 24], 0, 1, 'float32', 2) as tf.Tensor3D;
    const emb = tf.randomNormal([2, 16], 0, 1, 'float32', 3) as tf.Tensor2D;
    const a = net.apply(x, t, { y });
    const b = net.apply(x, t, { y: tf.tensor1d([3, 2], 'int32') });
    const diff = tf.tidy(() => a.sub(b).abs().max([1, 2, 3]).dataSync());
    expect(diff[0]).to.be.greaterThan(1e-4); // label changed in sample 0
    expect(diff[1]).to.equal(0); // not in sample 1
    const c = net.apply(x, t, { y, tokens });
    const d = net.apply(x, t, { y, emb });
    expect(tf.tidy(() => c.sub(a).abs().max().dataSync()[0])).to.be.greaterThan(1e-4);
    expect(tf.tidy(() => d.sub(a).abs().max().dataSync()[0])).to.be.greaterThan(1e-4);
    expect(() => net.apply(x, t)).to.throw(/class-conditional.*cond\.y/);
    expect(() => net.apply(x, t, { y, tokens: tf.zeros([2, 4, 7]) as tf.Tensor3D })).to.throw(
      /cond\.tokens must be \[2, L, 24\]/,
    );
    expect(() =>
      net.apply(tf.zeros([1, 8, 8, 4]) as tf.Tensor4D, tf.tensor1d([1]), { y: tf.tensor1d([0], 'int32') }),
    ).to.throw(/4 channels.*takes 3/);
    tf.dispose([x, t, y, tokens, emb, a, b, c, d]);
    net.dispose();
  });

  it('legacy and new attention order are the same function up to the qkv channel permutation', () => {
    const legacy = UNet.random({ ...small, useNewAttentionOrder: false }, 9, { referenceInit: false });
    const sd = legacy.toStateDict();
    // legacy qkv rows are (head, part, ch); the new order wants (part, head, ch)
    const heads = 2;
    for (const [k, v] of sd) {
      if (!/\.qkv\.(weight|bias)$/.test(k)) continue;
      const rows = v.shape[0];
      const ch = rows / 3 / heads;
      const cols = v.data.length / rows;
      const src = v.data as Float32Array;
      const dst = new Float32Array(src.length);
      for (let h = 0; h < heads; h++)
        for (let p = 0; p < 3; p++)
          for (let i = 0; i < ch; i++) {
            const from = (h * 3 + p) * ch + i;
            const to = (p * heads + h) * ch + i;
            dst.set(src.subarray(from * cols, (from + 1) * cols), to * cols);
          }
      v.data = dst;
    }
    const newer = UNet.fromStateDict(sd, { ...legacy.config, useNewAttentionOrder: true });
    const x = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const t = tf.tensor1d([5]);
    const y = tf.tensor1d([0], 'int32');
    const a = legacy.apply(x, t, { y });
    const b = newer.apply(x, t, { y });
    expect(tf.tidy(() => a.sub(b).abs().max().dataSync()[0])).to.be.below(1e-5);
    // and without the permutation they differ (the order matters with 2 heads)
    const wrong = UNet.fromStateDict(legacy.toStateDict(), { ...legacy.config, useNewAttentionOrder: true });
    const w = wrong.apply(x, t, { y });
    expect(tf.tidy(() => a.sub(w).abs().max().dataSync()[0])).to.be.above(1e-4);
    tf.dispose([x, t, y, a, b, w]);
    [legacy, newer, wrong].forEach((n) => n.dispose());
  });

  it('dropout only in training, reproducible by seed', () => {
    const net = UNet.random({ ...small, dropout: 0.3 }, 2, { referenceInit: false });
    const x = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const t = tf.tensor1d([5]);
    const y = tf.tensor1d([0], 'int32');
    const e = net.apply(x, t, { y });
    const e2 = net.apply(x, t, { y });
    const a = net.apply(x, t, { y }, { training: true, seed: 1 });
    const b = net.apply(x, t, { y }, { training: true, seed: 1 });
    const c = net.apply(x, t, { y }, { training: true, seed: 2 });
    const d = (p: tf.Tensor, q: tf.Tensor) => tf.tidy(() => p.sub(q).abs().max().dataSync()[0]);
    expect(d(e, e2)).to.equal(0);
    expect(d(a, b)).to.equal(0);
    expect(d(a, c)).to.be.above(1e-4);
    expect(d(a, e)).to.be.above(1e-4);
    tf.dispose([x, t, y, e, e2, a, b, c]);
    net.dispose();
  });
});

describe('unet: input gradient matches the reference (shared bench models)', function () {
  before(function () {
    if (!existsSync(join(BENCH, 'README.md'))) {
      console.log(`    (skipping: no bench models at ${BENCH})`);
      this.skip();
    }
  });
  for (const name of ['gd_bench32', 'ddpm_bench32']) {
    it(`${name}: out and d sum(out)/dx within 1e-4 x max(1, max|ref|)`, async () => {
      const net = UNet.fromStateDict(
        await readStateDict(join(BENCH, `${name}.pt`)),
        configFromReference(readJson(join(BENCH, `${name}.config.json`))),
      );
      const io = await readIoFile(join(BENCH, `${name}_io.json`));
      const { x, t } = inputsOf(io);
      const out = net.apply(x, t);
      const g = tf.grad((xx: tf.Tensor) => net.apply(xx as tf.Tensor4D, t).sum())(x);
      for (const [ours, ref] of [
        [out, io.get('out')!],
        [g, io.get('grad_x')!],
      ] as const) {
        const { err, max } = errVsRef(ours, ref);
        expect(err).to.be.at.most(1e-4 * Math.max(1, max));
      }
      tf.dispose([x, t, out, g]);
      net.dispose();
    });
  }
});

describe('unet: loading errors, gradients, memory', () => {
  it('missing, unexpected and mis-shaped keys are reported by name', () => {
    const cfg: Partial<UNetConfig> = {
      kind: 'ddpm',
      modelChannels: 32,
      channelMult: [1, 2],
      numResBlocks: 1,
      attentionDs: [2],
    };
    const net = UNet.random(cfg, 1);
    const sd = net.toStateDict();
    sd.delete('mid.attn_1.q.weight');
    sd.set('extra.weight', { shape: [1], dtype: 'float32', data: new Float32Array(1), sourceDtype: 'float32' });
    const bad = sd.get('conv_in.weight')!;
    sd.set('conv_in.weight', { ...bad, shape: [32, 3, 1, 9] });
    expect(() => UNet.fromStateDict(sd, net.config)).to.throw(
      /mid\.attn_1\.q\.weight[\s\S]*extra\.weight[\s\S]*conv_in\.weight: expected \[32, 3, 3, 3\], got \[32, 3, 1, 9\]/,
    );
    sd.set('conv_in.weight', bad);
    sd.set('mid.attn_1.q.weight', net.toStateDict().get('mid.attn_1.q.weight')!);
    expect(() => UNet.fromStateDict(sd, net.config)).to.throw(/unexpected[\s\S]*extra\.weight/);
    const ok = UNet.fromStateDict(sd, net.config, { strict: false });
    expect(ok.numParams()).to.equal(net.numParams());
    ok.dispose();
    net.dispose();
    expect(() => inferUNetConfig(new Map([['foo.weight', [3]]]))).to.throw(/neither guided-diffusion keys/);
  });

  it('gradient w.r.t. x on the current backend: finite and matches finite differences', () => {
    for (const cfg of [
      {
        kind: 'guided-diffusion',
        modelChannels: 32,
        channelMult: [1, 2],
        numResBlocks: 1,
        attentionDs: [2],
        numHeads: 2,
        useScaleShiftNorm: true,
        resblockUpdown: true,
      },
      { kind: 'ddpm', modelChannels: 32, channelMult: [1, 2], numResBlocks: 1, attentionDs: [2] },
    ] as Partial<UNetConfig>[]) {
      const net = UNet.random(cfg, 11, { referenceInit: false });
      const x = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const t = tf.tensor1d([42]);
      const w = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 4);
      const loss = (xx: tf.Tensor4D) => net.apply(xx, t).mul(w).sum() as tf.Scalar;
      const g = tf.grad(loss)(x);
      const gd = g.dataSync();
      expect(gd.every((v) => Number.isFinite(v))).to.equal(true);
      expect(Math.max(...gd.map(Math.abs))).to.be.greaterThan(0);
      const xd = x.dataSync();
      for (const idx of [5, 97, 170]) {
        const eps = 1e-2;
        const f = (delta: number) =>
          tf.tidy(() => {
            const buf = Float32Array.from(xd);
            buf[idx] += delta;
            return loss(tf.tensor(buf, x.shape) as tf.Tensor4D).dataSync()[0];
          });
        const fd = (f(eps) - f(-eps)) / (2 * eps);
        expect(Math.abs(fd - gd[idx]), `${cfg.kind} element ${idx}: fd ${fd} vs grad ${gd[idx]}`).to.be.below(
          2e-2 * Math.max(1, Math.abs(gd[idx])),
        );
      }
      tf.dispose([x, t, w, g]);
      net.dispose();
    }
  });

  it('the forward-only path follows weight changes (Variable.assign) like the taped path', () => {
    const net = UNet.random(
      { modelChannels: 32, channelMult: [1, 2], numResBlocks: 1, attentionDs: [2], useScaleShiftNorm: true },
      9,
    );
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const t = tf.tensor1d([3, 700]);
    try {
      // guided-diffusion zero-initialises the output layers: give every weight a value
      let seed = 10;
      for (const p of net.params.values()) p.assign(tf.tidy(() => tf.randomNormal(p.shape, 0, 0.1, 'float32', seed++)));
      const before = net.apply(x, t);
      const [, v] = [...net.params].find(([k]) => k.includes('emb_layers') && k.endsWith('weight'))!;
      v.assign(tf.tidy(() => v.mul(3).add(0.05)));
      const after = net.apply(x, t); // forward-only path
      let taped: tf.Tensor | null = null; // the taped path projects block by block
      tf.grad((xx: tf.Tensor) => {
        taped = tf.keep(net.apply(xx as tf.Tensor4D, t));
        return taped.sum();
      })(x).dispose();
      const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
      expect(diff(after, taped!)).to.be.below(1e-4);
      expect(diff(after, before)).to.be.above(1e-3);
      tf.dispose([before, after, taped!]);
    } finally {
      net.dispose();
      tf.dispose([x, t]);
    }
  });

  it('no tensor growth over repeated apply + grad calls', () => {
    const net = UNet.random(
      {
        modelChannels: 32,
        channelMult: [1, 2],
        numResBlocks: 1,
        attentionDs: [2],
        numHeads: 2,
        numClasses: 3,
        tokenCondDim: 8,
      },
      5,
    );
    const x = tf.randomNormal([1, 8, 8, 3]) as tf.Tensor4D;
    const t = tf.tensor1d([1]);
    const y = tf.tensor1d([2], 'int32');
    const tokens = tf.randomNormal([1, 3, 8]) as tf.Tensor3D;
    const step = () => {
      net.apply(x, t, { y, tokens }).dispose();
      const { out, intermediates } = net.applyWithIntermediates(x, t, { y, tokens });
      tf.dispose([out, ...Object.values(intermediates)]);
      tf.grad((xx: tf.Tensor4D) => net.apply(xx, t, { y, tokens }).square().sum() as tf.Scalar)(x).dispose();
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([x, t, y, tokens]);
    net.dispose();
  });

  it('a forward holds the skips and one block at a time, not every intermediate (peak bytes)', async () => {
    // Without per-block scopes this net's forward peaked at ~11x its block outputs (31 MiB over 2.9 on wasm);
    // a 256 px net then fills the 4 GiB wasm heap.
    const net = UNet.random(
      {
        kind: 'guided-diffusion',
        modelChannels: 32,
        channelMult: [1, 2, 2],
        numResBlocks: 2,
        attentionDs: [4],
        numHeadChannels: 16,
        useScaleShiftNorm: true,
        resblockUpdown: true,
        learnSigma: true,
        outChannels: 6,
      },
      7,
      { referenceInit: false },
    );
    const x = tf.randomNormal([2, 32, 32, 3]) as tf.Tensor4D;
    const t = tf.tensor1d([10, 500]);
    const { out, intermediates } = net.applyWithIntermediates(x, t);
    const blocks = Object.values(intermediates).filter((v) => v.rank === 4);
    const blockBytes = blocks.reduce((a, v) => a + 4 * v.size, 0);
    const largest = Math.max(...blocks.map((v) => 4 * v.size));
    tf.dispose([out, ...Object.values(intermediates)]);
    const base = tf.memory().numBytes;
    const info = await tf.profile(() => net.apply(x, t));
    (info.result as tf.Tensor).dispose();
    expect(info.peakBytes - base).to.be.below(blockBytes + 20 * largest);
    tf.dispose([x, t]);
    net.dispose();
  });
});
