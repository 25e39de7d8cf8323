import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { argmaxAccuracy, retrievalTopK, cosineMatrix } from '../lib/metrics/clip-dataset.js';
import { matchRate } from '../lib/eval/unclip.js';
import { softClipLoss, smallClipConfig } from '../lib/train/tasks/clip.js';
import { captionFits, sampleCaption, categoryPrompt } from '../lib/data/prompts.js';
import { CLIP, clipContrastiveLoss, inferClipConfig } from '../nets/clip/index.js';
import { Rng } from '../lib/random.js';
import type { DatasetItem } from '../lib/data/format.js';

describe('eval/clip metrics on hand-made similarities', () => {
  it('argmaxAccuracy counts rows whose argmax is the label', () => {
    // 3 rows x 3 cols: argmax = [2, 0, 1]
    const sim = [0.1, 0.2, 0.9, 0.8, 0.1, 0.0, 0.3, 0.4, 0.2];
    expect(argmaxAccuracy(sim, 3, 3, [2, 0, 1])).to.equal(1);
    expect(argmaxAccuracy(sim, 3, 3, [2, 1, 1])).to.be.closeTo(2 / 3, 1e-12);
    expect(argmaxAccuracy(sim, 3, 3, [0, 1, 2])).to.equal(0);
    expect(() => argmaxAccuracy(sim, 2, 3, [0, 1])).to.throw(/6 similarities|9 similarities/);
  });

  it('retrievalTopK: a hit when any relevant item is within the top k', () => {
    // 2 queries x 6 gallery items; query 0 ranks g = [5, 4, 3, 2, 1, 0]; query 1 ranks [0, 1, 2, 3, 4, 5]
    const sim = [0, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1];
    const rel0 = (q: number, g: number) => (q === 0 ? g === 1 : g === 5); // rank 5 for q0, rank 6 for q1
    expect(retrievalTopK(sim, 2, 6, rel0, 1)).to.equal(0);
    expect(retrievalTopK(sim, 2, 6, rel0, 5)).to.equal(0.5);
    expect(retrievalTopK(sim, 2, 6, rel0, 6)).to.equal(1);
    // several relevant items: q1 relevant {0, 5} -> hit at k = 1
    const rel1 = (q: number, g: number) => (q === 0 ? g === 0 : g === 0 || g === 5);
    expect(retrievalTopK(sim, 2, 6, rel1, 1)).to.equal(0.5);
    // ties broken by column order: all equal, relevant = column 3 -> needs k >= 4
    const flat = new Array(6).fill(1);
    expect(retrievalTopK(flat, 1, 6, (_q, g) => g === 3, 3)).to.equal(0);
    expect(retrievalTopK(flat, 1, 6, (_q, g) => g === 3, 4)).to.equal(1);
  });

  it('cosineMatrix normalises rows', () => {
    const a = tf.tensor2d([
      [3, 0],
      [0, 2],
    ]);
    const b = tf.tensor2d([
      [1, 1],
      [0, 5],
    ]);
    const c = Array.from(cosineMatrix(a, b));
    expect(c[0]).to.be.closeTo(Math.SQRT1_2, 1e-6);
    expect(c[1]).to.be.closeTo(0, 1e-6);
    expect(c[2]).to.be.closeTo(Math.SQRT1_2, 1e-6);
    expect(c[3]).to.be.closeTo(1, 1e-6);
    tf.dispose([a, b]);
  });

  it('matchRate', () => {
    expect(matchRate([0, 1, 2, 3], [0, 1, 0, 0])).to.equal(0.5);
    expect(() => matchRate([0], [0, 1])).to.throw();
  });
});

describe('CLIP training objective pieces', () => {
  it('softClipLoss with identity positives equals clipContrastiveLoss', () => {
    const logits = tf.tensor2d([
      [3, 1, 0],
      [0.5, 2, -1],
      [1, 1, 4],
    ]);
    const a = softClipLoss(logits, tf.eye(3) as tf.Tensor2D).dataSync()[0];
    const b = clipContrastiveLoss(logits).dataSync()[0];
    expect(a).to.be.closeTo(b, 1e-5);
    // by hand for a 2x2: rows CE and column CE
    const l2 = tf.tensor2d([
      [2, 0],
      [1, 1],
    ]);
    const lse = (x: number[]) => Math.log(x.reduce((s, v) => s + Math.exp(v), 0));
    const row = (lse([2, 0]) - 2 + lse([1, 1]) - 1) / 2;
    const col = (lse([2, 1]) - 2 + lse([0, 1]) - 1) / 2;
    expect(softClipLoss(l2, tf.eye(2) as tf.Tensor2D).dataSync()[0]).to.be.closeTo((row + col) / 2, 1e-5);
    tf.dispose([logits, l2]);
  });

  it('softClipLoss spreads the target over several positives (by hand)', () => {
    // image 0 fits texts 0 and 1; image 1 fits text 1 only
    const logits = tf.tensor2d([
      [2, 0],
      [1, 3],
    ]);
    const pos = tf.tensor2d([
      [1, 1],
      [0, 1],
    ]);
    const lse = (x: number[]) => Math.log(x.reduce((s, v) => s + Math.exp(v), 0));
    const rows = (lse([2, 0]) - (2 + 0) / 2 + (lse([1, 3]) - 3)) / 2;
    const cols = (lse([2, 1]) - 2 + (lse([0, 3]) - (0 + 3) / 2)) / 2;
    expect(softClipLoss(logits, pos).dataSync()[0]).to.be.closeTo((rows + cols) / 2, 1e-5);
    tf.dispose([logits, pos]);
  });

  it('captions: sampled deterministically and matched to the right images', () => {
    const item: DatasetItem = {
      id: '1f436/google',
      group: '1f436',
      category: 'Animals & Nature',
      subcategory: 'animal-mammal',
      vendor: 'google',
      name: 'dog face',
      shortNames: ['dog'],
      caption: '',
      split: 'train',
    };
    const other: DatasetItem = { ...item, id: '1f431/google', group: '1f431', name: 'cat face', shortNames: ['cat'] };
    const a = Array.from({ length: 50 }, (_, i) => sampleCaption(item, new Rng(i)));
    const b = Array.from({ length: 50 }, (_, i) => sampleCaption(item, new Rng(i)));
    expect(a).to.deep.equal(b);
    const kinds = new Set(a.map((c) => c.kind));
    expect(kinds.has('name') && kinds.has('category')).to.equal(true);
    for (const c of a) {
      expect(captionFits(c, item)).to.equal(true);
      expect(captionFits(c, other)).to.equal(c.kind !== 'name');
    }
    expect(a.some((c) => c.text === categoryPrompt('Animals & Nature'))).to.equal(true);
  });
});

describe('the small CLIP configs', () => {
  it('vit and resnet towers build, embed 32x32 images to 128-d, and are recovered from their keys alone', () => {
    for (const vision of ['vit', 'resnet'] as const) {
      const cfg = smallClipConfig(32, vision);
      const clip = CLIP.random(cfg, 0);
      const x = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
      const e = clip.encodeImage(x).embedding;
      expect(e.shape).to.deep.equal([2, 128]);
      const sd = clip.toHostStateDict();
      const inferred = inferClipConfig(sd as never);
      expect(inferred.visionLayers).to.deep.equal(cfg.visionLayers);
      expect(inferred.visionWidth).to.equal(cfg.visionWidth);
      expect(inferred.visionPatchSize ?? null).to.equal(cfg.visionPatchSize);
      tf.dispose([x, e]);
      clip.dispose();
    }
    expect(() => smallClipConfig(32, 'convnext' as never)).to.throw(/use vit or resnet/);
  });
});

describe('eval/unclip runs end to end on tiny random models', function () {
  this.timeout(240000);
  it('category prompt -> prior -> decoder -> judge gives fractions of the right sample count', async () => {
    const { Dataset, testSubsetPath } = await import('../lib/data/index.js');
    const { packageRoot } = await import('../lib/paths.js');
    const { CLIP } = await import('../nets/clip/index.js');
    const { Prior } = await import('../nets/prior/index.js');
    const { UNet } = await import('../nets/unet/index.js');
    const { Judge } = await import('../nets/judge/model.js');
    const { judgeConfigFor } = await import('../lib/train/tasks/judge.js');
    const { makeDiffuser } = await import('../lib/methods/common.js');
    const { tinyClipConfig, tinyUNetConfig } = await import('../lib/models/load.js');
    const { makeSchedule } = await import('../samplers/schedule.js');
    const { evalUnclipPrompts, unclipBars } = await import('../lib/eval/unclip.js');
    const ds = Dataset.load(testSubsetPath(packageRoot()));
    const clip = CLIP.random(tinyClipConfig(), 0);
    const prior = Prior.random({ embedDim: 32, width: 32, depth: 1, hidden: 32, timesteps: 50 }, 0);
    const unet = UNet.random(tinyUNetConfig({}, 32), 0);
    const decoder = makeDiffuser(unet, makeSchedule('cosine', 50), { embScale: Math.sqrt(32) });
    const judge = Judge.random(judgeConfigFor(ds), 0);
    const n0 = tf.memory().numTensors;
    const r = await evalUnclipPrompts(decoder, prior, makeSchedule('cosine', 50), clip, judge, ds, {
      perCategory: 1,
      steps: 2,
      priorSteps: 2,
    });
    expect(r.samples).to.equal(ds.categoryNames.length);
    expect(r.promptCategoryRate).to.be.within(0, 1);
    expect(r.priorNearestCategory).to.be.within(0, 1);
    expect(tf.memory().numTensors).to.equal(n0);
    const bars = unclipBars(r);
    expect(bars.prompt_category_rate.pass).to.equal(r.promptCategoryRate >= 0.5);
    for (const m of [clip, prior, unet, judge]) m.dispose();
  });
});
