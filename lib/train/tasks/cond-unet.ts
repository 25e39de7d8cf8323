/**
 * Training task for the CLIP-embedding-conditioned UNet (unCLIP's decoder; the model Imagic optimises
 * an embedding for): eps- or v-prediction MSE, cond.emb = normalise(CLIP image embedding of the training
 * image) * embScale, replaced by zeros with probability `pDrop` (the unconditional branch of
 * classifier-free guidance, as lib/methods/unclip.ts samples it).
 *
 * `condition: 'text'` trains the GLIDE-like baseline of unCLIP's comparison instead: cond.emb =
 * normalise(CLIP text embedding of a caption of the training image) * embScale, the caption drawn anew
 * every step from the same templates (`sampleCaption`) the CLIP and the prior are trained on.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../random.js';
import { BatchSampler, type Dataset, type SamplerState } from '../../data/dataset.js';
import type { CLIP } from '../../../nets/clip/index.js';
import { UNet, type UNetConfig } from '../../../nets/unet/index.js';
import { makeSchedule, respaceEven, type Schedule } from '../../../samplers/schedule.js';
import { diffusionModel } from '../../../samplers/model.js';
import { diffusionTarget, qSample } from '../../../samplers/core.js';
import { TRAIN_SCHEDULE } from '../../models/weights-config.js';
import { makeGrid } from '../../image/grid.js';
import { categoryPrompt, sampleCaption } from '../../data/prompts.js';
import { cleanImageEmbeddings } from './noisy-clip.js';
import { TextEmbeddingCache } from './prior.js';
import { ddimChainSync, smallUNetConfig } from './unet.js';
import type { TrainTask } from '../loop.js';

/** The config keys that make a UNet's layout (widths, levels, attention): what an init UNet passes on. */
const UNET_LAYOUT_KEYS = [
  'modelChannels',
  'channelMult',
  'numResBlocks',
  'attentionDs',
  'numHeads',
  'numHeadChannels',
  'numHeadsUpsample',
  'useScaleShiftNorm',
  'resblockUpdown',
  'convResample',
  'useNewAttentionOrder',
] as const;

/**
 * The conditional UNet: the small emoji UNet (width 32) with an `embDim`-wide embedding input, or,
 * given the config of the UNet it is initialised from, that UNet's layout with the embedding input.
 */
export function condUNetConfig(imageSize: number, embDim: number, init?: Partial<UNetConfig>): Partial<UNetConfig> {
  const layout = Object.fromEntries(UNET_LAYOUT_KEYS.filter((k) => init?.[k] !== undefined).map((k) => [k, init![k]]));
  return { ...smallUNetConfig(imageSize), modelChannels: 32, ...layout, embCondDim: embDim };
}

export interface CondUNetTaskOptions {
  batch: number;
  seed: number;
  /** Condition dropout probability (default 0.15). */
  pDrop?: number;
  /** Multiplier of the unit-norm embedding (default sqrt(D)). */
  embScale?: number;
  /** Classifier-free guidance scale of the sample grid (default 3). */
  gridScale?: number;
  /** What the net predicts: 'eps' (default) or 'v'. */
  prediction?: 'eps' | 'v';
  /** What conditions it: the CLIP 'image' embedding of the training image (default) or the 'text' embedding of one of its captions. */
  condition?: CondUNetCondition;
}

/** The two conditionings of the cond-unet task (unCLIP's decoder vs the GLIDE-like text-conditioned decoder). */
export const COND_UNET_CONDITIONS = ['image', 'text'] as const;
export type CondUNetCondition = (typeof COND_UNET_CONDITIONS)[number];

export interface CondBatch {
  x0: tf.Tensor4D;
  emb: tf.Tensor2D;
  /** condition 'text': the caption drawn for each item (its condition unless dropped). */
  captions?: string[];
  /** 1 where the condition was kept, 0 where dropped (zeros). */
  keep: number[];
}

/** UNet tensors to initialise from, in the reference layout (exported files) or ours (training checkpoints). */
export interface UNetWeights {
  layout: 'reference' | 'ours';
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  /** Where they came from (for messages). */
  source: string;
  /** The UNet config they were trained with, where it was found beside them (config.json, state.json). */
  netConfig?: Partial<UNetConfig>;
}

/**
 * Copy every tensor of `w` whose key `net` has into `net` (e.g. an unconditional UNet into a
 * conditional one of the same layout: `transformer_proj` stays as initialised). Returns the number
 * of tensors copied. Throws when a shared key has another shape: the two UNets' layouts differ, and a
 * partial copy would train a net that is neither.
 */
export function initFromUnconditional(net: UNet, w: UNetWeights): number {
  const sd = w.layout === 'ours' ? null : net.toStateDict();
  const target = new Map<string, readonly number[]>(
    sd ? [...sd].map(([k, v]) => [k, v.shape]) : [...net.params].map(([k, v]) => [k, v.shape]),
  );
  const clash = [...target].filter(([k, shape]) => w.tensors.has(k) && w.tensors.get(k)!.shape.join() !== shape.join());
  if (clash.length) {
    const [k, shape] = clash[0];
    throw new Error(
      `${w.source}: ${clash.length} tensors do not fit this UNet (e.g. ${k}: [${w.tensors.get(k)!.shape}] there, [${shape}] here): ` +
        "its layout differs; give the run the init UNet's layout (the same --model-channels / --channel-mult / --res-blocks), or use an init of this layout",
    );
  }
  let n = 0;
  if (w.layout === 'ours') {
    for (const [k, v] of net.params) {
      const src = w.tensors.get(k);
      if (src) {
        tf.tidy(() => v.assign(tf.tensor(src.data, src.shape)));
        n++;
      }
    }
    return n;
  }
  const fresh = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of sd!) {
    const src = w.tensors.get(k);
    if (src) {
      fresh.set(k, src);
      n++;
    } else fresh.set(k, { shape: v.shape, data: v.data as Float32Array });
  }
  const loaded = UNet.fromStateDict(fresh as never, net.config);
  for (const [k, v] of net.params) v.assign(loaded.params.get(k)!);
  loaded.dispose();
  return n;
}

export class CondUNetTask implements TrainTask<CondBatch> {
  readonly params: Map<string, tf.Variable>;
  readonly schedule: Schedule;
  readonly embScale: number;
  readonly condition: CondUNetCondition;
  /** Unit-norm CLIP image embeddings of every item (condition 'image'; null for 'text'). [N, D] */
  readonly embeddings: tf.Tensor2D | null;
  /** Unit-norm CLIP text embeddings, cached per caption (condition 'text'; null for 'image'). */
  readonly texts: TextEmbeddingCache | null;
  private sampler: BatchSampler;

  constructor(
    readonly net: UNet,
    clip: CLIP,
    readonly data: Dataset,
    readonly opts: CondUNetTaskOptions,
  ) {
    this.params = net.params;
    this.schedule = makeSchedule(TRAIN_SCHEDULE.schedule, TRAIN_SCHEDULE.timesteps);
    this.embScale = opts.embScale ?? Math.sqrt(clip.embedDim);
    this.condition = opts.condition ?? 'image';
    if (!COND_UNET_CONDITIONS.includes(this.condition))
      throw new Error(
        `cond-unet: condition must be one of ${COND_UNET_CONDITIONS.join(', ')}, got '${this.condition}'`,
      );
    this.embeddings = this.condition === 'image' ? cleanImageEmbeddings(clip, data) : null;
    this.texts = this.condition === 'text' ? new TextEmbeddingCache(clip) : null;
    this.sampler = new BatchSampler(data.indicesOf('train'), opts.batch, opts.seed);
  }

  nextBatch(_step: number, rng: Rng): CondBatch {
    const idx = this.sampler.next();
    const keep = idx.map(() => (rng.float() < (this.opts.pDrop ?? 0.15) ? 0 : 1));
    const captions = this.texts ? idx.map((i) => sampleCaption(this.data.items[i], rng).text) : undefined;
    return tf.tidy(() => ({
      x0: this.data.images(idx, { rgb: true }),
      emb: this.unitEmbeddings(idx, captions)
        .mul(tf.tensor2d(keep, [idx.length, 1]))
        .mul(this.embScale) as tf.Tensor2D,
      ...(captions ? { captions } : {}),
      keep,
    }));
  }

  /** Unit-norm conditions of items `idx`: their image embeddings, or the text embeddings of `captions`. [n, D] */
  private unitEmbeddings(idx: number[], captions?: string[]): tf.Tensor2D {
    if (this.texts) return this.texts.embed(captions ?? idx.map((i) => categoryPrompt(this.data.categories[i])));
    return tf.gather(this.embeddings!, tf.tensor1d(idx, 'int32')) as tf.Tensor2D;
  }

  loss(b: CondBatch, rng: Rng): tf.Scalar {
    const n = b.x0.shape[0];
    const idx = Array.from({ length: n }, () => rng.int(this.schedule.length));
    const noise = rng.normal<tf.Rank.R4>(b.x0.shape);
    const xt = qSample(b.x0, this.schedule, idx, noise);
    const t = tf.tensor1d(
      idx.map((i) => this.schedule.modelT(i)),
      'float32',
    );
    const out = this.net.apply(xt, t, { emb: b.emb }, { training: true, seed: rng.nextSeed() });
    return tf.losses.meanSquaredError(
      diffusionTarget(this.opts.prediction ?? 'eps', b.x0, this.schedule, idx, noise),
      out,
    ) as tf.Scalar;
  }

  disposeBatch(b: CondBatch): void {
    tf.dispose([b.x0, b.emb]);
  }

  getState(): SamplerState {
    return this.sampler.getState();
  }

  setState(s: unknown): void {
    this.sampler = new BatchSampler(this.data.indicesOf('train'), this.opts.batch, this.opts.seed, s as SamplerState);
  }

  /**
   * Top row: 8 held-out images; bottom row: DDIM (25 steps, guidance 3) decodes of their embeddings
   * (condition 'text': of their category prompt, "an emoji of <category>").
   */
  sampleGrid(seed: number): tf.Tensor4D {
    const test = this.data.indicesOf('test');
    const pick = Array.from({ length: 8 }, (_, i) => test[Math.floor((i * test.length) / 8)]);
    const s = this.opts.gridScale ?? 3;
    const sched = respaceEven(this.schedule, 25);
    const emb = tf.tidy(() => this.unitEmbeddings(pick).mul(this.embScale) as tf.Tensor2D);
    const zero = tf.zerosLike(emb);
    const net = (x: tf.Tensor4D, t: tf.Tensor1D) =>
      tf.tidy(() => {
        const c = this.net.apply(x, t, { emb });
        const u = this.net.apply(x, t, { emb: zero });
        return u.add(c.sub(u).mul(s)) as tf.Tensor4D;
      });
    const model = diffusionModel(net, { prediction: this.opts.prediction ?? 'eps', variance: 'fixedSmall' });
    const x = ddimChainSync(
      model,
      tf.randomNormal([8, this.data.height, this.data.width, 3], 0, 1, 'float32', seed) as tf.Tensor4D,
      sched,
    );
    const real = this.data.images(pick, { rgb: true });
    const g = tf.tidy(() => makeGrid(tf.concat([real, x.clipByValue(-1, 1)]) as tf.Tensor4D, 8));
    tf.dispose([x, real, emb, zero]);
    return g;
  }
}
