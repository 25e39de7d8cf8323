/**
 * Training task for the noisy (time-conditioned) CLIP image encoder of SDG: starting from the trained
 * CLIP's image tower with identity FiLM, the features of q_sample(x, t) (t uniform over the diffusion
 * schedule the UNet uses) are matched to the frozen clean-image features of the trained CLIP with a
 * symmetric InfoNCE over the batch (pair i = noisy image i and clean image i), at the CLIP's own
 * (fixed) logit scale.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../random.js';
import { BatchSampler, type Dataset, type SamplerState } from '../../data/dataset.js';
import { CLIP, NoisyCLIPImageEncoder, clipContrastiveLoss } from '../../../nets/clip/index.js';
import { qSample } from '../../../samplers/core.js';
import type { Schedule } from '../../../samplers/schedule.js';
import { embedImages, evalNoisyClipOnDataset } from '../../metrics/clip-dataset.js';
import { TokenCache } from './clip.js';
import type { TrainTask } from '../loop.js';

export interface NoisyClipTaskOptions {
  batch: number;
  seed: number;
  /** Timestep index (of `schedule`) used by `evaluate` (default 500). */
  evalT?: number;
}

interface NoisyBatch {
  xt: tf.Tensor4D;
  t: tf.Tensor1D;
  target: tf.Tensor2D;
}

/**
 * Frozen clean-image embeddings of all dataset items by the teacher CLIP, unit norm. [N, D]
 */
export function cleanImageEmbeddings(clip: CLIP, ds: Dataset): tf.Tensor2D {
  const all = Array.from({ length: ds.size }, (_, i) => i);
  const e = embedImages((x) => clip.encodeImage(x).embedding, ds, all);
  const n = tf.tidy(() => e.div(tf.norm(e, 'euclidean', 1, true)) as tf.Tensor2D);
  e.dispose();
  return n;
}

export class NoisyClipTask implements TrainTask<NoisyBatch> {
  readonly params: Map<string, tf.Variable>;
  private sampler: BatchSampler;
  /** Teacher's unit-norm clean embeddings of every item. [N, D] */
  readonly targets: tf.Tensor2D;
  readonly scale: number;
  private tokens: TokenCache;

  constructor(
    readonly noisy: NoisyCLIPImageEncoder,
    readonly teacher: CLIP,
    readonly schedule: Schedule,
    readonly data: Dataset,
    readonly opts: NoisyClipTaskOptions,
  ) {
    this.params = new Map([...noisy.params].filter(([, v]) => v.trainable));
    this.sampler = new BatchSampler(data.indicesOf('train'), opts.batch, opts.seed);
    this.targets = cleanImageEmbeddings(teacher, data);
    this.scale = Math.min(100, Math.exp((teacher.params.get('logit_scale') as tf.Variable).dataSync()[0]));
    this.tokens = new TokenCache(teacher);
  }

  nextBatch(_step: number, rng: Rng): NoisyBatch {
    const idx = this.sampler.next();
    const ts = idx.map(() => rng.int(this.schedule.length));
    return tf.tidy(() => {
      const x = this.data.images(idx, { rgb: true });
      const noise = rng.normal<tf.Rank.R4>(x.shape);
      const xt = qSample(x, this.schedule, ts, noise);
      const t = tf.tensor1d(
        ts.map((i) => this.schedule.modelT(i)),
        'float32',
      );
      const target = tf.gather(this.targets, tf.tensor1d(idx, 'int32')) as tf.Tensor2D;
      return { xt, t, target };
    });
  }

  loss(b: NoisyBatch): tf.Scalar {
    return tf.tidy(() => {
      const f = this.noisy.encodeImage(b.xt, { t: b.t }).embedding;
      const nf = f.div(tf.norm(f, 'euclidean', 1, true));
      return clipContrastiveLoss(tf.matMul(nf, b.target, false, true).mul(this.scale) as tf.Tensor2D);
    });
  }

  disposeBatch(b: NoisyBatch): void {
    tf.dispose([b.xt, b.t, b.target]);
  }

  getState(): SamplerState {
    return this.sampler.getState();
  }

  setState(s: unknown): void {
    this.sampler = new BatchSampler(this.data.indicesOf('train'), this.opts.batch, this.opts.seed, s as SamplerState);
  }

  evaluate(): Record<string, number> {
    const r = evalNoisyClipOnDataset(this.noisy, this.teacher, this.schedule, this.data, {
      t: this.opts.evalT ?? 500,
      tokens: this.tokens,
    });
    return { noisy_top5_t500: r.noisyTop5, plain_top5_t500: r.plainTop5, ratio: r.ratio };
  }
}
