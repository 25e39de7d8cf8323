/**
 * ModifiedResNet (CLIP RN-family image tower) parity against a tiny reference fixture made by
 * test/fixtures/clip_rn/make_fixture.py (openai/CLIP `ModifiedResNet` semantics in PyTorch, every
 * parameter and BatchNorm statistic random): the embedding, the stem and the four stage outputs,
 * and d sum(embedding) / d image.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { readStateDict } from '../lib/io/index.js';
import { readIoFile, verify, type IoTensor } from '../lib/cli/commands/verify.js';
import { CLIP, clipReferenceOutputs, visionHeads } from '../nets/clip/index.js';

const DIR = join(packageRoot(), 'test', 'fixtures', 'clip_rn');
const WEIGHTS = join(DIR, 'clip_rn_tiny.pt');
const IO = join(DIR, 'clip_rn_tiny_io.json');
const NAMES = [
  'image_features',
  'visual_stem_out',
  'visual_layer1_out',
  'visual_layer2_out',
  'visual_layer3_out',
  'visual_layer4_out',
];

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max|ours - ref| / max(1, max|ref|), shapes checked. */
function relErr(ours: tf.Tensor, ref: IoTensor): number {
  expect(ours.shape).to.deep.equal(ref.shape);
  const a = ours.dataSync();
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - ref.data[i]));
  return m / Math.max(1, maxAbs(ref.data));
}

describe('CLIP ModifiedResNet parity (test/fixtures/clip_rn, openai/CLIP semantics)', () => {
  let io: Map<string, IoTensor>;
  let model: CLIP;
  before(async () => {
    io = await readIoFile(IO);
    model = CLIP.fromStateDict(await readStateDict(WEIGHTS));
  });
  after(() => model?.dispose());

  it('loads the image-only state_dict and infers the tower the fixture was built with', () => {
    const args = JSON.parse(readFileSync(join(DIR, 'clip_rn_tiny.vision_args.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(model.towers).to.deep.equal({ image: true, text: false });
    expect(model.loadReport).to.deep.equal({ missing: [], unexpected: [] });
    const c = model.config;
    expect([c.embedDim, c.imageResolution, c.visionWidth, c.visionLayers, visionHeads(c)]).to.deep.equal([
      args.embed_dim,
      args.image_resolution,
      args.vision_width,
      args.vision_layers,
      args.vision_heads,
    ]);
  });

  it('embedding, stem and every stage output within 1e-4 x max(1, max|ref|)', () => {
    const out = clipReferenceOutputs(model, io);
    try {
      for (const name of NAMES) {
        const err = relErr(out.get(name)!, io.get(name)!);
        expect(err, `${name}: rel err ${err}`).to.be.at.most(1e-4);
      }
    } finally {
      tf.dispose([...out.values()]);
    }
  });

  it('stage features (opts.features) are the stage outputs; the gradient w.r.t. the image matches', () => {
    const img = io.get('image')!;
    const x = tf.tensor4d(img.data as Float32Array, img.shape as [number, number, number, number]);
    const enc = model.encodeImagePixels(x.transpose([0, 2, 3, 1]) as tf.Tensor4D, { features: true });
    const grad = tf.grad((im: tf.Tensor) =>
      model.encodeImagePixels(im.transpose([0, 2, 3, 1]) as tf.Tensor4D).embedding.sum(),
    )(x);
    try {
      expect(enc.features.length).to.equal(4);
      enc.features.forEach((f, i) => {
        const nchw = f.transpose([0, 3, 1, 2]);
        expect(relErr(nchw, io.get(`visual_layer${i + 1}_out`)!)).to.be.at.most(1e-4);
        nchw.dispose();
      });
      const gerr = relErr(grad, io.get('grad_image')!);
      expect(gerr, `grad_image rel err ${gerr}`).to.be.at.most(1e-4);
    } finally {
      tf.dispose([x, enc.embedding, ...enc.features, grad]);
    }
  });

  it('`verify` passes on the fixture; a wrong head count fails it', async () => {
    const ok = await verify({ weights: WEIGHTS, io: IO });
    expect(ok.pass).to.equal(true);
    expect(ok.outputs.map((o) => o.name).sort()).to.deep.equal([...NAMES].sort());
    expect(ok.unchecked).to.deep.equal(['grad_image']);
    // attention pooling with 4 heads of 32 instead of 2 of 64 computes another function
    const wrong = CLIP.fromStateDict(await readStateDict(WEIGHTS), { ...model.config, visionHeads: 4 });
    const out = clipReferenceOutputs(wrong, io);
    try {
      expect(relErr(out.get('visual_layer4_out')!, io.get('visual_layer4_out')!)).to.be.at.most(1e-4);
      expect(relErr(out.get('image_features')!, io.get('image_features')!)).to.be.above(1e-3);
    } finally {
      tf.dispose([...out.values()]);
      wrong.dispose();
    }
  });
});
