/**
 * What guidance and methods need from an image/text encoder. CLIP, the time-conditioned (noisy)
 * CLIP and any user encoder implement these; guidance/ depends only on these interfaces.
 */
import type * as tf from '@tensorflow/tfjs';

export interface EncodeImageOptions {
  /** [N] diffusion timesteps for a time-conditioned encoder (ignored by plain CLIP). */
  t?: tf.Tensor1D;
  /** Also return intermediate features (for Gram-matrix style losses). Default false. */
  features?: boolean;
  /**
   * Training-mode BatchNorm, as torch's `model.train()`: normalise by the batch's moments and move the
   * running statistics toward them (momentum 0.1). Only the ModifiedResNet tower has BatchNorm.
   * Default false (running statistics, as inference).
   */
  training?: boolean;
}

export interface ImageEncoding {
  /** [N, D] projected embedding, not normalised. */
  embedding: tf.Tensor2D;
  /** Intermediate activations, one per block, channels-last ([N, L, C] tokens or [N, H, W, C] maps); empty unless requested. */
  features: tf.Tensor[];
}

export interface ImageEncoder {
  /** Embedding width D. */
  readonly embedDim: number;
  /**
   * @param x [N, H, W, 3] in [-1, 1], any size: resized to the encoder's input size and normalised inside.
   */
  encodeImage(x: tf.Tensor4D, opts?: EncodeImageOptions): ImageEncoding;
}

export interface TextEncoder {
  readonly embedDim: number;
  /** texts -> [N, D] projected embedding, not normalised (tokenised inside). */
  encodeText(texts: string[]): tf.Tensor2D;
}
