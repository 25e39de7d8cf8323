/**
 * Running a CLIP on the inputs of a reference io file (the `../shared/parity` format: `image`
 * [N, 3, R, R] normalised pixels, `text` [N, ctx] int64 ids) and producing the outputs under the
 * reference names, in PyTorch layout — what `diffguide verify` compares.
 */
import * as tf from '@tensorflow/tfjs';
import type { CLIP } from './model.js';
import type { StateTensor } from './params.js';

/** Names of the outputs `clipReferenceOutputs` can produce. */
export const CLIP_IO_OUTPUTS = [
  'image_features',
  'text_features',
  'logits_per_image',
  'logits_per_text',
  'visual_after_ln_pre',
  'visual_block0_out',
  // ModifiedResNet towers (NCHW)
  'visual_stem_out',
  'visual_layer1_out',
  'visual_layer2_out',
  'visual_layer3_out',
  'visual_layer4_out',
] as const;

function toTensor(v: StateTensor, dtype: 'float32' | 'int32'): tf.Tensor {
  if (v instanceof tf.Tensor) return v.dtype === dtype ? v.clone() : v.cast(dtype);
  const n = v.shape.reduce((a, b) => a * b, 1);
  const data = dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Number(v.data[i]);
  return tf.tensor(data, v.shape.slice(), dtype);
}

/**
 * @param inputs must hold `image` (NCHW, already normalised) and/or `text` (token ids)
 * @returns name -> tensor (PyTorch layout; caller disposes): image_features / visual_* when `image`
 *   is given and the model has an image tower, text_features likewise, logits_per_* when both are
 *   produced
 */
export function clipReferenceOutputs(model: CLIP, inputs: Map<string, StateTensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const image = inputs.get('image');
  const text = inputs.get('text');
  if (!image && !text) throw new Error("CLIP io file has neither 'image' nor 'text' inputs");
  if (image && model.towers.image) {
    const pixels = tf.tidy(() => toTensor(image, 'float32').transpose([0, 2, 3, 1]) as tf.Tensor4D);
    const enc = model.encodeImagePixels(pixels, { intermediates: true });
    pixels.dispose();
    out.set('image_features', enc.embedding);
    for (const [k, v] of Object.entries(enc.intermediates)) {
      // ResNet stage outputs are NHWC here, NCHW in the reference; token intermediates share one layout.
      if (v.rank === 4) {
        out.set(k, v.transpose([0, 3, 1, 2]));
        v.dispose();
      } else out.set(k, v);
    }
  }
  if (text && model.towers.text) {
    const ids = toTensor(text, 'int32') as tf.Tensor2D;
    out.set('text_features', model.encodeTokens(ids));
    ids.dispose();
  }
  if (out.has('image_features') && out.has('text_features') && model.params.has('logit_scale')) {
    const { logitsPerImage, logitsPerText } = model.logits(
      out.get('image_features') as tf.Tensor2D,
      out.get('text_features') as tf.Tensor2D,
    );
    out.set('logits_per_image', logitsPerImage);
    out.set('logits_per_text', logitsPerText);
  }
  return out;
}
