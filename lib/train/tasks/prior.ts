/**
 * Training task for the unCLIP prior (nets/prior): text embedding -> image embedding, x0 prediction
 * on a cosine schedule, the text dropped 10% of the time for classifier-free guidance. Targets are
 * the frozen trained CLIP's clean-image embeddings; texts are the caption variants the CLIP was trained
 * on (names, category and subcategory prompts), sampled per step, embedded by the frozen text tower
 * (cached per caption).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../random.js';
import { BatchSampler, type Dataset, type SamplerState } from '../../data/dataset.js';
import type { CLIP } from '../../../nets/clip/index.js';
import type { Prior } from '../../../nets/prior/index.js';
import type { Schedule } from '../../../samplers/schedule.js';
import { TokenCache } from './clip.js';
import { sampleCaption, categoryPrompt } from '../../data/prompts.js';
import { cleanImageEmbeddings } from './noisy-clip.js';
import type { TrainTask } from '../loop.js';

export interface PriorTaskOptions {
  batch: number;
  seed: number;
  /** Probability of dropping the text (default 0.1). */
  pDrop?: number;
}

interface PriorBatch {
  x0: tf.Tensor2D;
  text: tf.Tensor2D;
}

/** Frozen CLIP text embeddings (unit norm) with a per-caption cache. */
export class TextEmbeddingCache {
  private cache = new Map<string, Float32Array>();
  private tokens: TokenCache;
  constructor(readonly clip: CLIP) {
    this.tokens = new TokenCache(clip);
  }
  /** [N, D] unit-norm embeddings of `texts`. */
  embed(texts: string[]): tf.Tensor2D {
    const D = this.clip.embedDim;
    const missing = [...new Set(texts.filter((t) => !this.cache.has(t)))];
    if (missing.length) {
      const e = tf.tidy(() => {
        const ids = this.tokens.ids(missing);
        const f = this.clip.encodeTokens(ids);
        return f.div(tf.norm(f, 'euclidean', 1, true));
      });
      const data = e.dataSync() as Float32Array;
      e.dispose();
      missing.forEach((t, i) => this.cache.set(t, data.slice(i * D, (i + 1) * D)));
    }
    const out = new Float32Array(texts.length * D);
    texts.forEach((t, i) => out.set(this.cache.get(t)!, i * D));
    return tf.tensor2d(out, [texts.length, D]);
  }
}

export class PriorTask implements TrainTask<PriorBatch> {
  readonly params: Map<string, tf.Variable>;
  private sampler: BatchSampler;
  readonly targets: tf.Tensor2D;
  readonly texts: TextEmbeddingCache;
  private readonly alphas: Float64Array;

  constructor(
    readonly prior: Prior,
    readonly clip: CLIP,
    readonly schedule: Schedule,
    readonly data: Dataset,
    readonly opts: PriorTaskOptions,
  ) {
    this.params = prior.params;
    this.sampler = new BatchSampler(data.indicesOf('train'), opts.batch, opts.seed);
    this.targets = cleanImageEmbeddings(clip, data);
    this.texts = new TextEmbeddingCache(clip);
    if (schedule.length !== prior.config.timesteps)
      throw new Error(`PriorTask: schedule has ${schedule.length} steps, prior config ${prior.config.timesteps}`);
    this.alphas = Float64Array.from({ length: schedule.length }, (_, i) => schedule.alphaBar(i));
  }

  nextBatch(_step: number, rng: Rng): PriorBatch {
    const idx = this.sampler.next();
    const caps = idx.map((i) => sampleCaption(this.data.items[i], rng).text);
    const text = this.texts.embed(caps);
    const x0 = tf.tidy(() => tf.gather(this.targets, tf.tensor1d(idx, 'int32')) as tf.Tensor2D);
    return { x0, text };
  }

  loss(b: PriorBatch, rng: Rng): tf.Scalar {
    return this.prior.loss(b.x0, b.text, this.alphas, rng, this.opts.pDrop ?? 0.1);
  }

  disposeBatch(b: PriorBatch): void {
    tf.dispose([b.x0, b.text]);
  }

  getState(): SamplerState {
    return this.sampler.getState();
  }

  setState(s: unknown): void {
    this.sampler = new BatchSampler(this.data.indicesOf('train'), this.opts.batch, this.opts.seed, s as SamplerState);
  }

  /**
   * One-step check with the EMA weights: from pure noise at the last timestep, the predicted x0 for
   * each category prompt; its nearest held-out image embedding's category (accuracy over categories).
   */
  evaluate(): Record<string, number> {
    const cats = this.data.categoryNames;
    const test = this.data.indicesOf('test');
    const T = this.schedule.length;
    const acc = tf.tidy(() => {
      const text = this.texts.embed(cats.map(categoryPrompt));
      const reps = 8;
      const tx = tf.tile(text, [reps, 1]) as tf.Tensor2D;
      const x = tf.randomNormal([cats.length * reps, this.prior.config.embedDim], 0, 1, 'float32', 1234) as tf.Tensor2D;
      const pred = this.prior.fromDataSpace(
        this.prior.apply(x, tf.fill([cats.length * reps], this.schedule.modelT(T - 1)) as tf.Tensor1D, tx),
      );
      const gal = tf.gather(this.targets, tf.tensor1d(test, 'int32'));
      const nn = tf.argMax(tf.matMul(pred, gal, false, true), 1).dataSync();
      let hit = 0;
      nn.forEach((j, r) => {
        if (this.data.categoryIds[test[j]] === r % cats.length) hit++;
      });
      return hit / nn.length;
    });
    return { category_nn_acc_onestep: acc };
  }
}
