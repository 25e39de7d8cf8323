/**
 * Training task for diffguide's small CLIP on emoji captions: ViT image tower + causal text
 * transformer (CLIP's BPE truncated to a small vocabulary), symmetric InfoNCE with multi-positive
 * targets (a caption that fits several images of the batch, e.g. a category word, is a positive for
 * all of them), captions sampled per step from the emoji's caption variants, random white-filled
 * shifts as augmentation (no flips: arrows, hands and text have a handedness).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../random.js';
import { BatchSampler, type Dataset, type SamplerState } from '../../data/dataset.js';
import type { DatasetItem } from '../../data/format.js';
import { CLIP, type CLIPConfig } from '../../../nets/clip/index.js';
import type { TrainTask } from '../loop.js';
import { captionFits, sampleCaption } from '../../data/prompts.js';
import { evalClipOnDataset } from '../../metrics/clip-dataset.js';

/** The image tower of the small CLIP: openai/CLIP's ModifiedResNet (shipped) or a ViT. */
export type SmallClipVision = 'vit' | 'resnet';

/**
 * The small emoji CLIP (~2M parameters). Text: width 128, 3 layers, 2 heads, vocab 4000, context 20
 * (longer captions are truncated); embedding 128. Image tower:
 * - 'vit': 32x32 ViT with patch 8 (16 tokens + class), width 128, 4 layers, 2 heads;
 * - 'resnet': ModifiedResNet, stem width 16, one bottleneck per stage (stage outputs 64-128-256-512
 *   channels, 1x1 at the end for 32x32 input), attention pool with 8 heads, training-mode BatchNorm:
 *   on held-out emoji it reached 0.707 zero-shot against the ViT's 0.584 (linear probe 0.60).
 * Head counts follow the reference's width rules, so the config can also be inferred from the keys alone.
 */
export function smallClipConfig(imageSize = 32, vision: SmallClipVision = 'resnet'): CLIPConfig {
  const text = {
    embedDim: 128,
    imageResolution: imageSize,
    contextLength: 20,
    vocabSize: 4000,
    transformerWidth: 128,
    transformerHeads: 2,
    transformerLayers: 3,
  };
  if (vision === 'resnet') return { ...text, visionLayers: [1, 1, 1, 1], visionWidth: 16, visionPatchSize: null };
  if (vision !== 'vit') throw new Error(`unknown CLIP image tower '${vision as string}': use vit or resnet`);
  return { ...text, visionLayers: 4, visionWidth: 128, visionPatchSize: 8, visionHeads: 2 };
}

// The caption and prompt templates live in lib/data/prompts.ts (evaluation uses them too); re-exported here.
export {
  captionFits,
  categoryPhrase,
  categoryPrompt,
  namePrompt,
  sampleCaption,
  subcategoryPhrase,
  type Caption,
  type CaptionKind,
} from '../../data/prompts.js';

/**
 * Symmetric InfoNCE with soft (multi-positive) targets.
 * @param logitsPerImage [N, M] scaled cosine similarities (image rows, text columns)
 * @param positives [N, M] 1 where text j describes image i (each row and column has at least one 1)
 * @returns mean of image->text and text->image cross-entropies against the row-/column-normalised targets
 */
export function softClipLoss(logitsPerImage: tf.Tensor2D, positives: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const rowT = positives.div(positives.sum(1, true).maximum(1e-9));
    const colT = positives.div(positives.sum(0, true).maximum(1e-9));
    const li = tf.neg(tf.sum(rowT.mul(tf.logSoftmax(logitsPerImage, 1)), 1)).mean();
    const lt = tf.neg(tf.sum(colT.transpose().mul(tf.logSoftmax(logitsPerImage.transpose(), 1)), 1)).mean();
    return li.add(lt).div(2) as tf.Scalar;
  });
}

/** Random integer shifts of up to `s` pixels, white fill. [N, H, W, C] -> same. */
export function randomShift(x: tf.Tensor4D, s: number, rng: Rng): tf.Tensor4D {
  if (s <= 0) return x.clone();
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
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
    for (let i = 0; i < n; i++) parts.push(padded.slice([i, rng.int(2 * s + 1), rng.int(2 * s + 1), 0], [1, h, w, c]));
    return tf.concat(parts) as tf.Tensor4D;
  });
}

/** Token ids of texts at a CLIP's context length (truncated), with a per-text cache. */
export class TokenCache {
  private cache = new Map<string, Int32Array>();
  constructor(readonly clip: CLIP) {}
  ids(texts: string[]): tf.Tensor2D {
    const ctx = this.clip.config.contextLength;
    const out = new Int32Array(texts.length * ctx);
    texts.forEach((t, i) => {
      let row = this.cache.get(t);
      if (!row) {
        const tt = this.clip.tokenizer.tokenizeTensor([t], { contextLength: ctx, truncate: true });
        row = Int32Array.from(tt.dataSync());
        tt.dispose();
        this.cache.set(t, row);
      }
      out.set(row, i * ctx);
    });
    return tf.tensor2d(out, [texts.length, ctx], 'int32');
  }
}

export interface ClipTaskOptions {
  batch: number;
  seed: number;
  /** Max random shift in pixels (default 2). */
  shift?: number;
  /** Held-out items evaluated every sample interval (default: all of the test split). */
  evalIndices?: number[];
}

interface ClipBatch {
  x: tf.Tensor4D;
  ids: tf.Tensor2D;
  pos: tf.Tensor2D;
}

export class ClipTask implements TrainTask<ClipBatch> {
  readonly params: Map<string, tf.Variable>;
  /** BatchNorm running statistics (ModifiedResNet tower), updated by training-mode BatchNorm. */
  readonly buffers: Map<string, tf.Variable>;
  readonly tokens: TokenCache;
  private sampler: BatchSampler;

  constructor(
    readonly clip: CLIP,
    readonly data: Dataset,
    readonly opts: ClipTaskOptions,
  ) {
    this.params = new Map([...clip.params].filter(([, v]) => v.trainable));
    this.buffers = new Map([...clip.params].filter(([, v]) => !v.trainable));
    this.tokens = new TokenCache(clip);
    this.sampler = new BatchSampler(data.indicesOf('train'), opts.batch, opts.seed);
  }

  nextBatch(_step: number, rng: Rng): ClipBatch {
    const idx = this.sampler.next();
    const items = idx.map((i) => this.data.items[i]);
    const caps = items.map((it) => sampleCaption(it, rng));
    const pos = new Float32Array(idx.length * idx.length);
    items.forEach((it, i) => caps.forEach((c, j) => (pos[i * idx.length + j] = captionFits(c, it) ? 1 : 0)));
    const raw = this.data.images(idx, { rgb: true });
    const x = randomShift(raw, this.opts.shift ?? 2, rng);
    raw.dispose();
    return { x, ids: this.tokens.ids(caps.map((c) => c.text)), pos: tf.tensor2d(pos, [idx.length, idx.length]) };
  }

  loss(b: ClipBatch): tf.Scalar {
    return tf.tidy(() => {
      const img = this.clip.encodeImage(b.x, { training: true }).embedding;
      const txt = this.clip.encodeTokens(b.ids);
      // logit scale clamped at 100 as the reference does.
      const scale = tf.exp(tf.minimum(this.clip.params.get('logit_scale') as tf.Variable, Math.log(100)));
      const ni = img.div(tf.norm(img, 'euclidean', 1, true));
      const nt = txt.div(tf.norm(txt, 'euclidean', 1, true));
      const logits = tf.matMul(ni, nt, false, true).mul(scale) as tf.Tensor2D;
      return softClipLoss(logits, b.pos);
    });
  }

  disposeBatch(b: ClipBatch): void {
    tf.dispose([b.x, b.ids, b.pos]);
  }

  getState(): SamplerState {
    return this.sampler.getState();
  }

  setState(s: unknown): void {
    this.sampler = new BatchSampler(this.data.indicesOf('train'), this.opts.batch, this.opts.seed, s as SamplerState);
  }

  evaluate(): Record<string, number> {
    const r = evalClipOnDataset(this.clip, this.data, { indices: this.opts.evalIndices, tokens: this.tokens });
    return {
      zero_shot_category_acc: r.zeroShotCategoryAccuracy,
      name_retrieval_top5: r.nameRetrievalTop5,
      logit_scale: Math.exp((this.clip.params.get('logit_scale') as tf.Variable).dataSync()[0]),
    };
  }
}
