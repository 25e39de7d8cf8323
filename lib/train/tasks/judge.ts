/** Training task for the judge: category + vendor cross-entropy on real images, shift augmentation. */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../random.js';
import { BatchSampler, type Dataset, type SamplerState } from '../../data/dataset.js';
import { Judge, DEFAULT_JUDGE_CONFIG, type JudgeConfig } from '../../../nets/judge/model.js';
import type { TrainTask } from '../loop.js';

export interface JudgeTaskOptions {
  batch: number;
  seed: number;
  /** Max random shift in pixels (white fill). Default 2. */
  shift?: number;
  /** Label smoothing for the category head. Default 0.1. */
  labelSmoothing?: number;
  /** Weight of the vendor loss. Default 0.5. */
  vendorWeight?: number;
}

export function judgeConfigFor(ds: Dataset): JudgeConfig {
  return { ...DEFAULT_JUDGE_CONFIG, imageSize: ds.height, categories: ds.categoryNames, vendors: ds.vendorNames };
}

/** Held-out accuracy of a judge on a dataset's test split (or given indices). */
export function judgeAccuracy(
  judge: Judge,
  ds: Dataset,
  indices = ds.indicesOf('test'),
): { category: number; vendor: number; n: number } {
  let c = 0;
  let v = 0;
  for (let i = 0; i < indices.length; i += 128) {
    const idx = indices.slice(i, i + 128);
    const x = ds.images(idx, { rgb: true });
    const p = judge.predict(x);
    x.dispose();
    idx.forEach((j, k) => {
      if (p.category[k] === ds.categoryIds[j]) c++;
      if (p.vendor[k] === ds.vendorIds[j]) v++;
    });
  }
  return { category: c / indices.length, vendor: v / indices.length, n: indices.length };
}

interface JudgeBatch {
  x: tf.Tensor4D;
  cat: tf.Tensor2D;
  ven: tf.Tensor2D;
}

export class JudgeTask implements TrainTask<JudgeBatch> {
  readonly params: Map<string, tf.Variable>;
  private sampler: BatchSampler;

  constructor(
    readonly judge: Judge,
    readonly data: Dataset,
    readonly opts: JudgeTaskOptions,
  ) {
    this.params = judge.params;
    this.sampler = new BatchSampler(data.indicesOf('train'), opts.batch, opts.seed);
  }

  nextBatch(_step: number, rng: Rng): JudgeBatch {
    const idx = this.sampler.next();
    const s = this.opts.shift ?? 2;
    const K = this.judge.config.categories.length;
    const V = this.judge.config.vendors.length;
    return tf.tidy(() => {
      let x = this.data.images(idx, { rgb: true });
      if (s > 0) {
        const [n, h, w] = x.shape;
        const padded = tf.pad(
          x,
          [
            [0, 0],
            [s, s],
            [s, s],
            [0, 0],
          ],
          1,
        );
        const parts: tf.Tensor4D[] = [];
        for (let i = 0; i < n; i++)
          parts.push(padded.slice([i, rng.int(2 * s + 1), rng.int(2 * s + 1), 0], [1, h, w, 3]));
        x = tf.concat(parts) as tf.Tensor4D;
      }
      const cat = tf
        .oneHot(
          tf.tensor1d(
            idx.map((i) => this.data.categoryIds[i]),
            'int32',
          ),
          K,
        )
        .toFloat() as tf.Tensor2D;
      const ven = tf
        .oneHot(
          tf.tensor1d(
            idx.map((i) => Math.max(0, this.data.vendorIds[i])),
            'int32',
          ),
          V,
        )
        .toFloat() as tf.Tensor2D;
      return { x, cat, ven };
    });
  }

  loss(b: JudgeBatch): tf.Scalar {
    const o = this.judge.apply(b.x);
    const l = tf.tidy(() => {
      const lc = tf.losses.softmaxCrossEntropy(b.cat, o.category, undefined, this.opts.labelSmoothing ?? 0.1);
      const lv = tf.losses.softmaxCrossEntropy(b.ven, o.vendor);
      return lc.add(lv.mul(this.opts.vendorWeight ?? 0.5)) as tf.Scalar;
    });
    return l;
  }

  disposeBatch(b: JudgeBatch): void {
    tf.dispose([b.x, b.cat, b.ven]);
  }

  getState(): SamplerState {
    return this.sampler.getState();
  }

  setState(s: unknown): void {
    this.sampler = new BatchSampler(this.data.indicesOf('train'), this.opts.batch, this.opts.seed, s as SamplerState);
  }

  evaluate(): Record<string, number> {
    const a = judgeAccuracy(this.judge, this.data);
    return { test_category_acc: a.category, test_vendor_acc: a.vendor };
  }
}
