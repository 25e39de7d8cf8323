import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStateDict, detectArchitecture, type HostTensor } from '../lib/io/index.js';
import {
  CLIP,
  NoisyCLIPImageEncoder,
  loadCLIP,
  loadNoisyCLIP,
  clipContrastiveLoss,
  type CLIPConfig,
  clipConfigFromJson,
  clipParamSpecs,
  clipPreprocess,
  clipReferenceOutputs,
  inferClipConfig,
  inferVisionConfig,
  resampleMatrix,
  resizeShorterAndCenterCrop,
  CLIP_MEAN,
  CLIP_STD,
  normLayers,
} from '../nets/clip/index.js';
import { BENCH, HAVE_PARITY, parity } from './fixtures.js';

/** Named tensors of a reference io file (json index + little-endian bin), PyTorch layout. */
function readIo(jsonPath: string): Map<string, HostTensor> {
  const meta = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<
    string,
    { dtype: string; shape: number[]; offset: number; nbytes: number }
  >;
  const bin = readFileSync(jsonPath.replace(/\.json$/, '.bin'));
  const out = new Map<string, HostTensor>();
  for (const [k, m] of Object.entries(meta)) {
    const ab = bin.buffer.slice(bin.byteOffset + m.offset, bin.byteOffset + m.offset + m.nbytes);
    let data: Float32Array | Int32Array;
    if (m.dtype === 'float32') data = new Float32Array(ab);
    else if (m.dtype === 'int64') data = Int32Array.from(new BigInt64Array(ab), (v) => Number(v));
    else if (m.dtype === 'int32') data = new Int32Array(ab);
    else throw new Error(`io dtype ${m.dtype}`);
    out.set(k, { shape: m.shape, dtype: m.dtype === 'float32' ? 'float32' : 'int32', data, sourceDtype: m.dtype });
  }
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const TINY: CLIPConfig = {
  embedDim: 64,
  imageResolution: 32,
  visionLayers: 2,
  visionWidth: 128,
  visionPatchSize: 8,
  contextLength: 77,
  vocabSize: 1000,
  transformerWidth: 128,
  transformerHeads: 2,
  transformerLayers: 2,
};

const RN_TINY: CLIPConfig = {
  embedDim: 24,
  imageResolution: 64,
  visionLayers: [1, 2, 1, 1],
  visionWidth: 16,
  visionPatchSize: null,
  visionHeads: 4,
  contextLength: 16,
  vocabSize: 600,
  transformerWidth: 32,
  transformerHeads: 2,
  transformerLayers: 1,
};

const OUTPUTS = [
  'image_features',
  'text_features',
  'logits_per_image',
  'logits_per_text',
  'visual_after_ln_pre',
  'visual_block0_out',
];

(HAVE_PARITY ? describe : describe.skip)('CLIP parity (clip_tiny fixtures)', () => {
  const io = HAVE_PARITY ? readIo(parity('clip_tiny_io.json')) : new Map<string, HostTensor>();
  const files: [string, 'fp32' | 'fp16'][] = [
    ['clip_tiny.pt', 'fp32'],
    ['clip_tiny_fp16.pt', 'fp16'],
    ['clip_tiny_fp16.safetensors', 'fp16'],
  ];
  for (const [file, kind] of files) {
    it(`${file}: every output and intermediate within ${kind === 'fp32' ? '1e-4 x max(1, max|ref|)' : '2e-3 relative'}`, async () => {
      const sd = await readStateDict(parity(file));
      const model = CLIP.fromStateDict(sd);
      expect(model.config).to.deep.equal(TINY);
      expect(model.loadReport).to.deep.equal({ missing: [], unexpected: [] });
      const out = clipReferenceOutputs(model, io);
      for (const name of OUTPUTS) {
        const ref = io.get(name);
        expect(ref, name).to.not.equal(undefined);
        const got = out.get(name)!;
        expect(got.shape, name).to.deep.equal(ref!.shape);
        const err = maxErr(got.dataSync(), ref!.data);
        const scale = maxAbs(ref!.data);
        const tol = kind === 'fp32' ? 1e-4 * Math.max(1, scale) : 2e-3 * scale;
        expect(err, `${file} ${name}: max|err| ${err} > ${tol}`).to.be.at.most(tol);
      }
      tf.dispose([...out.values()]);
      model.dispose();
    });
  }

  it('the pooled-only last block (no features/intermediates asked) gives the reference image features too', async () => {
    const model = CLIP.fromStateDict(await readStateDict(parity('clip_tiny.pt')));
    const img = io.get('image')!;
    const px = tf.tidy(
      () =>
        tf
          .tensor4d(img.data as Float32Array, img.shape as [number, number, number, number])
          .transpose([0, 2, 3, 1]) as tf.Tensor4D,
    );
    const pooled = model.encodeImagePixels(px).embedding;
    const full = model.encodeImagePixels(px, { features: true });
    const ref = io.get('image_features')!;
    expect(maxErr(pooled.dataSync(), ref.data)).to.be.at.most(1e-4 * Math.max(1, maxAbs(ref.data)));
    expect(maxErr(pooled.dataSync(), full.embedding.dataSync())).to.be.at.most(1e-5);
    tf.dispose([px, pooled, full.embedding, ...full.features]);
    model.dispose();
  });

  it('key set and shapes equal clip_tiny.keys.json; toStateDict round-trips the file exactly', async () => {
    const keys = JSON.parse(readFileSync(parity('clip_tiny.keys.json'), 'utf8')) as Record<string, { shape: number[] }>;
    const specs = clipParamSpecs(inferClipConfig(keys));
    expect([...specs.keys()].sort()).to.deep.equal(Object.keys(keys).sort());
    for (const [k, s] of specs) expect(s.shape, k).to.deep.equal(keys[k].shape);
    const sd = await readStateDict(parity('clip_tiny.pt'));
    const model = CLIP.fromStateDict(sd);
    const back = model.toStateDict();
    expect([...back.keys()].sort()).to.deep.equal([...sd.keys()].sort());
    for (const [k, t] of back) {
      expect(t.shape, k).to.deep.equal(sd.get(k)!.shape);
      expect(maxErr(t.dataSync(), sd.get(k)!.data), k).to.equal(0);
    }
    tf.dispose([...back.values()]);
    model.dispose();
  });

  it('is recognised by the architecture detector with the inferred config', async () => {
    const sd = await readStateDict(parity('clip_tiny.pt'));
    const shapes = new Map([...sd].map(([k, v]) => [k, { shape: v.shape }]));
    const det = detectArchitecture(shapes);
    expect(det?.name).to.equal('openai-clip');
    expect(det?.config).to.deep.equal(TINY);
  });

  it('encodeText with the small-vocab tokenizer gives ids below vocab 1000 (SOT 998, EOT 999)', async () => {
    const model = CLIP.fromStateDict(await readStateDict(parity('clip_tiny.pt')));
    expect([model.tokenizer.sot, model.tokenizer.eot]).to.deep.equal([998, 999]);
    const ids = model.tokenizer.tokenizeTensor(['a photo of a cat', 'an emoji']);
    const viaIds = model.encodeTokens(ids);
    const viaText = model.encodeText(['a photo of a cat', 'an emoji']);
    expect(viaText.shape).to.deep.equal([2, 64]);
    expect(maxErr(viaText.dataSync(), viaIds.dataSync())).to.equal(0);
    tf.dispose([ids, viaIds, viaText]);
    model.dispose();
  });

  it('text features do not depend on padding after EOT (trailing positions are dropped exactly)', async () => {
    const model = CLIP.fromStateDict(await readStateDict(parity('clip_tiny.pt')));
    const full = tf.tensor2d([[998, 5, 6, 7, 999, ...new Array(72).fill(0)]], [1, 77], 'int32');
    const short = tf.tensor2d([[998, 5, 6, 7, 999]], [1, 5], 'int32');
    const a = model.encodeTokens(full);
    const b = model.encodeTokens(short);
    expect(maxErr(a.dataSync(), b.dataSync())).to.be.below(1e-5);
    tf.dispose([full, short, a, b]);
    model.dispose();
  });
});

(HAVE_PARITY ? describe : describe.skip)('CLIP ViT-B/32 architecture (from shapes only)', () => {
  it('infers ViT-B/32 from clip_vit_b32.full.keys.json and reproduces its exact key set and shapes', () => {
    const keys = JSON.parse(readFileSync(parity('clip_vit_b32.full.keys.json'), 'utf8')) as Record<
      string,
      { shape: number[] }
    >;
    const cfg = inferClipConfig(keys);
    expect(cfg).to.deep.equal({
      embedDim: 512,
      imageResolution: 224,
      visionLayers: 12,
      visionWidth: 768,
      visionPatchSize: 32,
      contextLength: 77,
      vocabSize: 49408,
      transformerWidth: 512,
      transformerHeads: 8,
      transformerLayers: 12,
    });
    // clipParamSpecs is what CLIP.random / fromStateDict allocate: same keys and shapes, nothing allocated here.
    const specs = clipParamSpecs(cfg);
    expect(specs.size).to.equal(Object.keys(keys).length);
    for (const [k, v] of Object.entries(keys)) {
      expect(specs.has(k), `missing ${k}`).to.equal(true);
      expect(specs.get(k)!.shape, k).to.deep.equal(v.shape);
    }
  });
});

(existsSync(join(BENCH, 'clip_bench_io.json')) ? describe : describe.skip)(
  'CLIP bench model (config.json with 4 text heads)',
  () => {
    it('matches image/text features and d sum(image_features)/d image of the reference', async () => {
      const cfg = clipConfigFromJson(JSON.parse(readFileSync(join(BENCH, 'clip_bench.config.json'), 'utf8')));
      expect(cfg.transformerHeads).to.equal(4);
      const model = CLIP.fromStateDict(await readStateDict(join(BENCH, 'clip_bench.pt')), cfg);
      const io = readIo(join(BENCH, 'clip_bench_io.json'));
      const out = clipReferenceOutputs(model, io);
      for (const name of ['image_features', 'text_features']) {
        const ref = io.get(name)!;
        const err = maxErr(out.get(name)!.dataSync(), ref.data);
        expect(err, name).to.be.at.most(1e-4 * Math.max(1, maxAbs(ref.data)));
      }
      const img = io.get('image')!;
      const x = tf.tensor4d(img.data as Float32Array, img.shape as [number, number, number, number]);
      const grad = tf.grad((im: tf.Tensor) =>
        model.encodeImagePixels(im.transpose([0, 2, 3, 1]) as tf.Tensor4D).embedding.sum(),
      )(x);
      const gref = io.get('grad_image')!;
      const gerr = maxErr(grad.dataSync(), gref.data);
      expect(gerr, 'grad_image').to.be.at.most(1e-4 * Math.max(1, maxAbs(gref.data)));
      tf.dispose([...out.values(), x, grad]);
      model.dispose();
    });

    it('the traced one-tower files (clip_bench_image/text.jit.pt, TorchScript) load as image-/text-only CLIPs and match', async () => {
      const cfg = clipConfigFromJson(JSON.parse(readFileSync(join(BENCH, 'clip_bench.config.json'), 'utf8')));
      const io = readIo(join(BENCH, 'clip_bench_io.json'));
      for (const [file, name] of [
        ['clip_bench_image.jit.pt', 'image_features'],
        ['clip_bench_text.jit.pt', 'text_features'],
      ]) {
        const model = CLIP.fromStateDict(await readStateDict(join(BENCH, file)), cfg);
        const out = clipReferenceOutputs(model, io);
        expect([...out.keys()].filter((k) => k.endsWith('_features'))).to.deep.equal([name]);
        const ref = io.get(name)!;
        expect(maxErr(out.get(name)!.dataSync(), ref.data), file).to.be.at.most(1e-4 * Math.max(1, maxAbs(ref.data)));
        tf.dispose([...out.values()]);
        model.dispose();
      }
    });
  },
);

describe('CLIP (no fixtures needed)', () => {
  it('random init allocates exactly the spec keys/shapes and round-trips through toStateDict/fromStateDict', () => {
    const a = CLIP.random(TINY, 3);
    const sd = a.toStateDict();
    const specs = clipParamSpecs(TINY);
    expect([...sd.keys()]).to.deep.equal([...specs.keys()]);
    for (const [k, t] of sd) expect(t.shape, k).to.deep.equal(specs.get(k)!.shape);
    const b = CLIP.fromStateDict(sd);
    const px = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const ids = tf.tensor2d(
      [
        [998, 3, 999, 0],
        [998, 999, 0, 0],
      ],
      [2, 4],
      'int32',
    );
    const fa = a.forward(px, ids);
    const fb = b.forward(px, ids);
    expect(maxErr(fa.logitsPerImage.dataSync(), fb.logitsPerImage.dataSync())).to.equal(0);
    expect(Math.abs(a.params.get('logit_scale')!.dataSync()[0] - Math.log(1 / 0.07))).to.be.below(1e-6);
    tf.dispose([...sd.values(), px, ids, ...Object.values(fa), ...Object.values(fb)]);
    a.dispose();
    b.dispose();
  });

  it('loads one-tower files (image-only / text-only state_dicts) and says clearly what is missing', () => {
    const full = CLIP.random(TINY, 8);
    const sd = full.toStateDict();
    const vis = new Map([...sd].filter(([k]) => k.startsWith('visual.')));
    const txt = new Map([...sd].filter(([k]) => !k.startsWith('visual.') && k !== 'logit_scale'));
    const img = CLIP.fromStateDict(vis, TINY);
    const text = CLIP.fromStateDict(txt);
    expect(img.towers).to.deep.equal({ image: true, text: false });
    expect(text.towers).to.deep.equal({ image: false, text: true });
    expect(text.config.transformerWidth).to.equal(128);
    const px = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const ids = tf.tensor2d([[998, 7, 999]], [1, 3], 'int32');
    const [a, b, c, d] = [
      full.encodeImagePixels(px).embedding,
      img.encodeImagePixels(px).embedding,
      full.encodeTokens(ids),
      text.encodeTokens(ids),
    ];
    expect(maxErr(a.dataSync(), b.dataSync())).to.equal(0);
    expect(maxErr(c.dataSync(), d.dataSync())).to.equal(0);
    expect(() => img.encodeText(['x'])).to.throw(/no text tower/);
    expect(() => text.encodeImagePixels(px)).to.throw(/no image tower/);
    expect(() => img.logits(a, c)).to.throw(/no logit_scale/);
    expect(() => CLIP.fromStateDict(vis, TINY, { towers: 'both' })).to.throw(/missing/);
    tf.dispose([...sd.values(), px, ids, a, b, c, d]);
    for (const m of [full, img, text]) m.dispose();
  });

  it('logits are exp(logit_scale) * cosine similarity; logits_per_text is the transpose', () => {
    const m = CLIP.random(TINY, 1);
    const img = tf.tensor2d([
      [3, 4],
      [1, 0],
    ]);
    const txt = tf.tensor2d([
      [0, 2],
      [-1, 0],
      [1, 1],
    ]);
    const { logitsPerImage, logitsPerText } = m.logits(img, txt);
    const s = 1 / 0.07;
    const expected = [0.8 * s, -0.6 * s, (1.4 / Math.SQRT2) * s, 0, -s, Math.SQRT1_2 * s];
    expect(maxErr(logitsPerImage.dataSync(), expected)).to.be.below(1e-4);
    expect(logitsPerText.shape).to.deep.equal([3, 2]);
    expect(logitsPerText.arraySync()[2][0]).to.be.closeTo((1.4 / Math.SQRT2) * s, 1e-4);
    tf.dispose([img, txt, logitsPerImage, logitsPerText]);
    m.dispose();
  });

  it('contrastive loss: log(N) for uniform logits, small for a confident diagonal; a training step lowers it', () => {
    const u = clipContrastiveLoss(tf.zeros([4, 4]) as tf.Tensor2D);
    expect(u.dataSync()[0]).to.be.closeTo(Math.log(4), 1e-5);
    const d = clipContrastiveLoss(tf.eye(4).mul(50) as tf.Tensor2D);
    expect(d.dataSync()[0]).to.be.below(1e-6);
    const m = CLIP.random({ ...TINY, visionLayers: 1, transformerLayers: 1 }, 12);
    const px = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 8) as tf.Tensor4D;
    const ids = tf.tensor2d(
      [
        [998, 1, 999],
        [998, 2, 999],
        [998, 3, 999],
        [998, 4, 999],
      ],
      [4, 3],
      'int32',
    );
    const lossOf = () => {
      const f = m.forward(px, ids);
      const l = clipContrastiveLoss(f.logitsPerImage);
      tf.dispose([f.imageFeatures, f.textFeatures, f.logitsPerImage, f.logitsPerText]);
      return l;
    };
    const opt = tf.train.adam(1e-3);
    const before = lossOf();
    for (let i = 0; i < 5; i++) opt.minimize(lossOf, false, m.trainableVariables());
    const after = lossOf();
    expect(after.dataSync()[0]).to.be.below(before.dataSync()[0]);
    tf.dispose([u, d, px, ids, before, after]);
    opt.dispose();
    m.dispose();
  });

  it('gives a clear error for a state_dict that is not CLIP and for mismatched shapes', () => {
    expect(() => CLIP.fromStateDict(new Map([['foo', { shape: [1], data: new Float32Array(1) }]]))).to.throw(
      /not a CLIP state_dict.*text_projection/,
    );
    const m = CLIP.random(TINY, 0);
    const sd = m.toStateDict();
    expect(() => CLIP.fromStateDict(sd, { ...TINY, transformerWidth: 64 })).to.throw(/shape mismatch/);
    sd.get('ln_final.bias')!.dispose();
    sd.delete('ln_final.bias');
    expect(() => CLIP.fromStateDict(sd)).to.throw(/missing 1 keys: ln_final.bias/);
    tf.dispose([...sd.values()]);
    m.dispose();
  });

  it('encodeImage accepts any size in [-1, 1]; gradient w.r.t. the input is finite and non-zero on this backend', () => {
    const m = CLIP.random(TINY, 2);
    const x = tf.randomUniform([2, 40, 52, 3], -1, 1, 'float32', 4) as tf.Tensor4D;
    const text = m.encodeText(['a red circle', 'a blue square']);
    const g = tf.grad((im: tf.Tensor) => {
      const e = m.encodeImage(im as tf.Tensor4D).embedding;
      return m.logits(e, text).logitsPerImage.sum();
    })(x);
    expect(g.shape).to.deep.equal([2, 40, 52, 3]);
    const d = g.dataSync();
    expect(d.every((v) => Number.isFinite(v))).to.equal(true);
    expect(maxAbs(d)).to.be.greaterThan(0);
    tf.dispose([x, text, g]);
    m.dispose();
  });

  it('encodeImage with features returns each block output [N, L, C]', () => {
    const m = CLIP.random(TINY, 2);
    const x = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    const { embedding, features } = m.encodeImage(x, { features: true });
    expect(embedding.shape).to.deep.equal([1, 64]);
    expect(features.map((f) => f.shape)).to.deep.equal([
      [1, 17, 128],
      [1, 17, 128],
    ]);
    tf.dispose([x, embedding, ...features]);
    m.dispose();
  });

  it('does not grow the tensor count over repeated calls', () => {
    const m = CLIP.random(TINY, 5);
    const x = tf.randomUniform([1, 36, 36, 3], -1, 1) as tf.Tensor4D;
    const run = () => {
      const e = m.encodeImage(x, { features: true });
      const t = m.encodeText(['a cat']);
      const l = m.logits(e.embedding, t);
      const g = tf.grad((im: tf.Tensor) => m.encodeImage(im as tf.Tensor4D).embedding.sum())(x);
      tf.dispose([e.embedding, ...e.features, t, l.logitsPerImage, l.logitsPerText, g]);
    };
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
    m.dispose();
  });

  it('config JSON in the reference snake_case form parses; impossible configs are rejected', () => {
    const c = clipConfigFromJson({
      embed_dim: 64,
      image_resolution: 32,
      vision_layers: 2,
      vision_width: 128,
      vision_patch_size: 8,
      context_length: 77,
      vocab_size: 1000,
      transformer_width: 128,
      transformer_heads: 2,
      transformer_layers: 2,
    });
    expect(c).to.deep.equal(TINY);
    expect(() => clipConfigFromJson({ ...c, imageResolution: 30 })).to.throw(/not a multiple of visionPatchSize/);
  });

  it('config JSON nested under one key is accepted; without one object holding the arguments the error says how to give them', () => {
    const args = {
      embed_dim: 64,
      image_resolution: 32,
      vision_layers: 2,
      vision_width: 128,
      vision_patch_size: 8,
      context_length: 77,
      vocab_size: 1000,
      transformer_width: 128,
      transformer_heads: 2,
      transformer_layers: 2,
    };
    expect(clipConfigFromJson({ constructor: args })).to.deep.equal(TINY);
    expect(clipConfigFromJson({ model: 'clip', step: 3, clip: { ...TINY } })).to.deep.equal(TINY); // the shipped config.json's shape
    expect(clipConfigFromJson({ model: { kwargs: args } })).to.deep.equal(TINY);
    expect(() => clipConfigFromJson({ a: args, b: args })).to.throw(
      /none of CLIP's constructor arguments \(embed_dim, .*\) found, and 2 nested objects \(a, b\) could hold them; give them at the top level or nested under one key/,
    );
    expect(() => clipConfigFromJson({ name: 'clip' })).to.throw(
      /none of CLIP's constructor arguments .* found; give them/,
    );
    expect(() => clipConfigFromJson({ constructor: { ...args, transformer_heads: '4' } })).to.throw(
      /'transformer_heads' must be a positive integer, got "4"/,
    );
  });

  it('a head count inferred rather than read is reported (stderr by default), and says when the guess is likely wrong', () => {
    // text width 96 with 4 heads: no shape shows the head count, and 96 / 64 rounds down to 1 head
    const cfg: CLIPConfig = { ...TINY, transformerWidth: 96, transformerHeads: 4 };
    const m = CLIP.random(cfg, 3);
    const sd = m.toHostStateDict();
    const notes: string[] = [];
    const guessed = CLIP.fromStateDict(sd as never, undefined, { onInferred: (l) => notes.push(l) });
    expect(notes).to.have.length(1);
    expect(notes[0]).to.match(
      /^no CLIP config was given: transformer_heads = 1 was inferred as transformer_width 96 \/ 64 .*; 96 is not a multiple of 64, so the guess is probably wrong and the text features with it: give a config JSON with transformer_heads/,
    );
    expect(guessed.config.transformerHeads).to.equal(1);
    const ids = tf.tensor2d([[998, 5, 7, 999, ...new Array(73).fill(0)]], [1, 77], 'int32');
    const [right, wrong] = [m.encodeTokens(ids), guessed.encodeTokens(ids)];
    expect(maxErr(right.dataSync(), wrong.dataSync())).to.be.greaterThan(1e-3); // the guess really computes other features
    tf.dispose([ids, right, wrong]);
    guessed.dispose();
    // by default the note is a warning on stderr
    const warned: string[] = [];
    const orig = console.warn;
    console.warn = (...a: unknown[]) => void warned.push(a.join(' '));
    try {
      CLIP.fromStateDict(sd as never).dispose();
      CLIP.fromStateDict(sd as never, cfg).dispose(); // read from a config: nothing to say
      clipConfigFromJson({
        constructor: {
          embed_dim: 64,
          image_resolution: 32,
          vision_layers: 2,
          vision_width: 128,
          vision_patch_size: 8,
          context_length: 77,
          vocab_size: 1000,
          transformer_width: 128,
          transformer_layers: 2,
        },
      });
    } finally {
      console.warn = orig;
    }
    expect(warned).to.have.length(2);
    expect(warned[0]).to.match(/^diffguide: no CLIP config was given: transformer_heads = 1 was inferred/);
    expect(warned[1]).to.match(
      /^diffguide: the CLIP config JSON has no transformer_heads: transformer_heads = 2 was inferred as transformer_width 128 \/ 64 .*; give a config JSON with transformer_heads if the model was built with another head count/,
    );
    m.dispose();
  });
});

describe('CLIP ModifiedResNet tower', () => {
  it('config inference from its own keys round-trips; init/save/load gives identical outputs', () => {
    const specs = clipParamSpecs(RN_TINY);
    const inferred = inferClipConfig(Object.fromEntries([...specs].map(([k, s]) => [k, { shape: s.shape }])));
    const { visionHeads: _vh, ...rest } = RN_TINY;
    // build_model derives heads from widths: vision width*32/64 = 8 here, text 32/64 -> 0 (the reference rule).
    expect({ ...inferred, transformerHeads: RN_TINY.transformerHeads }).to.deep.equal(rest);
    expect(specs.has('visual.layer1.0.downsample.0.weight')).to.equal(true);
    expect(specs.has('visual.layer2.1.downsample.0.weight')).to.equal(false);
    expect(specs.get('visual.layer1.0.bn1.num_batches_tracked')!.dtype).to.equal('int64');
    const a = CLIP.random(RN_TINY, 7);
    const sd = a.toStateDict();
    const b = CLIP.fromStateDict(sd, RN_TINY);
    const px = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const ea = a.encodeImagePixels(px, { features: true });
    const eb = b.encodeImagePixels(px);
    expect(ea.embedding.shape).to.deep.equal([2, 24]);
    expect(ea.features.map((f) => f.shape)).to.deep.equal([
      [2, 16, 16, 64],
      [2, 8, 8, 128],
      [2, 4, 4, 256],
      [2, 2, 2, 512],
    ]);
    expect(maxErr(ea.embedding.dataSync(), eb.embedding.dataSync())).to.equal(0);
    // running stats are buffers, not trainable
    expect(a.params.get('visual.bn1.running_mean')!.trainable).to.equal(false);
    expect(a.trainableVariables().length).to.be.below(a.params.size);
    tf.dispose([...sd.values(), px, ea.embedding, ...ea.features, eb.embedding]);
    a.dispose();
    b.dispose();
  });

  it('training-mode BatchNorm normalises by the batch and moves running statistics as torch (momentum 0.1, unbiased variance)', () => {
    const clip = CLIP.random(RN_TINY, 3);
    const px = tf.randomNormal([3, 64, 64, 3], 0.5, 2, 'float32', 4) as tf.Tensor4D;
    const given = new Map<string, { mean: number[]; variance: number[]; count: number }>();
    const normalised = new Map<string, { mean: number[]; variance: number[] }>();
    const before = tf.memory().numTensors;
    const out = clip.encodeImagePixels(px, {
      batchStats: (name, mean, variance, count) =>
        void given.set(name, { mean: mean.arraySync(), variance: variance.arraySync(), count }),
      film: (name, y) => {
        const m = tf.moments(y, [0, 1, 2]);
        normalised.set(name, { mean: m.mean.arraySync() as number[], variance: m.variance.arraySync() as number[] });
        tf.dispose([m.mean, m.variance]);
        return y;
      },
    });
    out.embedding.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    // the stem's first BatchNorm (weight 1, bias 0 at init): zero mean, unit variance over the batch
    const stem = normalised.get('visual.bn1')!;
    for (const m of stem.mean) expect(Math.abs(m)).to.be.below(1e-4);
    for (const v of stem.variance) expect(v).to.be.closeTo(1, 1e-3);
    expect(given.get('visual.bn1')!.count).to.equal(3 * 32 * 32);
    expect(given.size).to.equal(normalised.size);
    // the update rule, through encodeImage({training: true}): running = 0.9 running + 0.1 batch (var unbiased)
    const hook = (
      clip as unknown as { runningStatsHook(): (n: string, m: tf.Tensor1D, v: tf.Tensor1D, c: number) => void }
    ).runningStatsHook();
    const g = given.get('visual.layer1.0.bn2')!;
    const rm0 = clip.params.get('visual.layer1.0.bn2.running_mean')!.arraySync() as number[];
    const rv0 = clip.params.get('visual.layer1.0.bn2.running_var')!.arraySync() as number[];
    tf.tidy(() => hook('visual.layer1.0.bn2', tf.tensor1d(g.mean), tf.tensor1d(g.variance), g.count));
    const rm1 = clip.params.get('visual.layer1.0.bn2.running_mean')!.arraySync() as number[];
    const rv1 = clip.params.get('visual.layer1.0.bn2.running_var')!.arraySync() as number[];
    rm1.forEach((v, i) => expect(v).to.be.closeTo(0.9 * rm0[i] + 0.1 * g.mean[i], 1e-6));
    rv1.forEach((v, i) =>
      expect(v).to.be.closeTo(0.9 * rv0[i] + (0.1 * g.variance[i] * g.count) / (g.count - 1), 1e-5),
    );
    // eval mode is the default and uses (and leaves) the running statistics
    const x = tf.randomUniform([2, 64, 64, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    const e0 = clip.encodeImage(x).embedding;
    const stats0 = clip.params.get('visual.bn1.running_mean')!.arraySync() as number[];
    const e1 = clip.encodeImage(x).embedding;
    expect(maxErr(e0.dataSync(), e1.dataSync())).to.equal(0);
    const et = clip.encodeImage(x, { training: true }).embedding;
    expect(clip.params.get('visual.bn1.running_mean')!.arraySync()).to.not.deep.equal(stats0);
    expect(maxErr(et.dataSync(), e0.dataSync())).to.be.greaterThan(1e-4);
    tf.dispose([px, x, e0, e1, et]);
    clip.dispose();
  });
});

describe('CLIP preprocessing', () => {
  it('resampling rows sum to 1 and a same-size resize is the identity', () => {
    for (const [i, o] of [
      [7, 3],
      [224, 224],
      [32, 77],
      [100, 33],
    ]) {
      const m = resampleMatrix(i, o);
      for (let r = 0; r < o; r++) {
        let s = 0;
        for (let c = 0; c < i; c++) s += m[r * i + c];
        expect(s).to.be.closeTo(1, 1e-5);
      }
    }
    const id = resampleMatrix(5, 5);
    for (let r = 0; r < 5; r++) for (let c = 0; c < 5; c++) expect(id[r * 5 + c]).to.be.closeTo(r === c ? 1 : 0, 1e-7);
  });

  it('shorter side to R then center crop: a 2:1 image keeps its middle', () => {
    // columns hold their own index; a 2x downscale of a 8x16 image to 4x8, then crop columns 2..5
    const x = tf.tidy(() => tf.range(0, 16).reshape([1, 1, 16, 1]).tile([1, 8, 1, 3]) as tf.Tensor4D);
    const y = resizeShorterAndCenterCrop(x, 4);
    expect(y.shape).to.deep.equal([1, 4, 4, 3]);
    const row = (y.arraySync() as number[][][][])[0][1].map((p) => p[0]);
    // output column j of the 8-wide resize centres on input 2j + 0.5; crop offset 2
    for (let j = 0; j < 4; j++) expect(row[j]).to.be.closeTo(2 * (j + 2) + 0.5, 0.2);
    tf.dispose([x, y]);
  });

  it('normalises [-1, 1] with the CLIP mean/std', () => {
    const x = tf.fill([1, 8, 8, 3], 1) as tf.Tensor4D;
    const y = clipPreprocess(x, 8);
    const d = y.dataSync();
    for (let c = 0; c < 3; c++) expect(d[c]).to.be.closeTo((1 - CLIP_MEAN[c]) / CLIP_STD[c], 1e-5);
    tf.dispose([x, y]);
  });
});

describe('noisy (time-conditioned) CLIP image encoder', () => {
  it('lists its norm layers: ln_pre, ln_1/ln_2 per block, ln_post', () => {
    expect(normLayers(TINY).map((n) => n.name)).to.deep.equal([
      'ln_pre',
      'transformer.resblocks.0.ln_1',
      'transformer.resblocks.0.ln_2',
      'transformer.resblocks.1.ln_1',
      'transformer.resblocks.1.ln_2',
      'ln_post',
    ]);
  });

  it('loaded from plain CLIP weights it equals plain CLIP exactly for any t; FiLM weights then change it', async () => {
    const plain = CLIP.random(TINY, 11);
    const sd = plain.toStateDict();
    const noisy = NoisyCLIPImageEncoder.fromStateDict(sd, undefined, { seed: 3, preprocess: { clip: true } });
    expect(noisy.created).to.include('visual.time_embed.0.weight');
    expect(noisy.created).to.include('visual.film.ln_pre.weight');
    expect(noisy.loadReport.unexpected).to.deep.equal([]);
    const x = tf.randomUniform([2, 48, 48, 3], -1, 1, 'float32', 9) as tf.Tensor4D;
    const ref = plain.encodeImage(x).embedding;
    for (const t of [0, 1, 500, 999]) {
      const e = noisy.encodeImage(x, { t: tf.tensor1d([t, 999 - t]) }).embedding;
      expect(maxErr(e.dataSync(), ref.dataSync()), `t=${t}`).to.equal(0);
      e.dispose();
    }
    const w = noisy.params.get('visual.film.transformer.resblocks.0.ln_2.weight')!;
    w.assign(tf.randomNormal(w.shape, 0, 0.5, 'float32', 1));
    const t = tf.tensor1d([10, 900]);
    const a = noisy.encodeImage(x, { t }).embedding;
    const b = noisy.encodeImage(x, { t: tf.tensor1d([900, 10]) }).embedding;
    expect(maxErr(a.dataSync(), ref.dataSync())).to.be.greaterThan(1e-3);
    expect(maxErr(a.dataSync(), b.dataSync())).to.be.greaterThan(1e-3);
    tf.dispose([...sd.values(), x, ref, t, a, b]);
    plain.dispose();
    noisy.dispose();
  });

  it('saves its extra keys and reloads identically; the detector names it', () => {
    const n = NoisyCLIPImageEncoder.random(TINY, 4);
    const w = n.params.get('visual.film.ln_post.bias')!;
    w.assign(tf.randomNormal(w.shape, 0, 0.5, 'float32', 2));
    const sd = n.toStateDict();
    expect(sd.has('visual.time_embed.2.weight')).to.equal(true);
    expect([...sd.keys()].every((k) => k.startsWith('visual.'))).to.equal(true);
    const m = NoisyCLIPImageEncoder.fromStateDict(sd);
    expect(m.created).to.deep.equal([]);
    expect(m.config).to.deep.equal(inferVisionConfig(sd));
    const det = detectArchitecture(new Map([...sd].map(([k, v]) => [k, { shape: v.shape }])));
    expect(det?.name).to.equal('noisy-clip-image-encoder');
    const x = tf.randomUniform([1, 32, 32, 3], -1, 1) as tf.Tensor4D;
    const t = tf.tensor1d([250]);
    const a = n.encodeImage(x, { t }).embedding;
    const b = m.encodeImage(x, { t }).embedding;
    expect(maxErr(a.dataSync(), b.dataSync())).to.equal(0);
    tf.dispose([...sd.values(), x, t, a, b]);
    n.dispose();
    m.dispose();
  });

  it('works on the ModifiedResNet tower (FiLM after every BatchNorm) and trains: gradients reach the FiLM weights', () => {
    const n = NoisyCLIPImageEncoder.random(RN_TINY, 1);
    const x = tf.randomUniform([2, 64, 64, 3], -1, 1) as tf.Tensor4D;
    const t = tf.tensor1d([3, 700]);
    const { value, grads } = tf.variableGrads(
      () => n.encodeImage(x, { t }).embedding.square().sum() as tf.Scalar,
      n.trainableVariables(),
    );
    const gFilm = grads[n.params.get('visual.film.layer2.0.bn3.weight')!.name];
    expect(gFilm).to.not.equal(undefined);
    expect(maxAbs(gFilm.dataSync())).to.be.greaterThan(0);
    expect(Object.values(grads).every((g) => g.dataSync().every((v) => Number.isFinite(v)))).to.equal(true);
    tf.dispose([x, t, value, ...Object.values(grads)]);
    n.dispose();
  });

  it('saves to safetensors (with num_batches_tracked as I64 for the ResNet tower) and loads back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-clip-'));
    const n = NoisyCLIPImageEncoder.random(RN_TINY, 6);
    const w = n.params.get('visual.film.bn1.weight')!;
    w.assign(tf.randomNormal(w.shape, 0, 0.5, 'float32', 3));
    await n.save(join(dir, 'noisy.safetensors'));
    const sd = await readStateDict(join(dir, 'noisy.safetensors'));
    expect(sd.get('visual.bn1.num_batches_tracked')!.sourceDtype).to.equal('int64');
    const m = await loadNoisyCLIP(join(dir, 'noisy.safetensors'));
    expect(m.created).to.deep.equal([]);
    const x = tf.randomUniform([1, 64, 64, 3], -1, 1) as tf.Tensor4D;
    const t = tf.tensor1d([100]);
    const a = n.encodeImage(x, { t }).embedding;
    const b = m.encodeImage(x, { t }).embedding;
    expect(maxErr(a.dataSync(), b.dataSync())).to.equal(0);
    const c = CLIP.random(TINY, 9);
    await c.save(join(dir, 'clip16.safetensors'), { dtype: 'float16' });
    const c16 = await loadCLIP(join(dir, 'clip16.safetensors'));
    const px = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const e1 = c.encodeImagePixels(px).embedding;
    const e2 = c16.encodeImagePixels(px).embedding;
    const err = maxErr(e1.dataSync(), e2.dataSync());
    expect(err).to.be.above(0);
    expect(err).to.be.below(2e-3 * maxAbs(e1.dataSync()));
    tf.dispose([x, t, a, b, px, e1, e2]);
    for (const mm of [n, m, c, c16]) mm.dispose();
  });

  it('does not grow the tensor count over repeated calls', () => {
    const n = NoisyCLIPImageEncoder.random(TINY, 2);
    const x = tf.randomUniform([1, 32, 32, 3], -1, 1) as tf.Tensor4D;
    const t = tf.tensor1d([5]);
    const run = () => {
      const e = n.encodeImage(x, { t, features: true });
      tf.dispose([e.embedding, ...e.features]);
    };
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([x, t]);
    n.dispose();
  });
});
