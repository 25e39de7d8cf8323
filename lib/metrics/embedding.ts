/**
 * Metrics through an extractor (CLIP, the judge, a user's network): CLIP score, the directional CLIP
 * similarity of an edit, diversity, category agreement, and FD / KID of two image sets. Each returns
 * a MetricReport naming the extractor.
 */
import * as tf from '@tensorflow/tfjs';
import { directionalScore, textDirection } from '../../guidance/encoders.js';
import { cosine } from '../ops/vectors.js';
import type { ImageEncoder, TextEncoder } from '../../nets/clip/types.js';
import {
  classify,
  extract,
  type CategoryExtractor,
  type ImageFeatureExtractor,
  type ImageTextExtractor,
} from './extractors.js';
import { hostRows, type FeatureSet } from './features-host.js';
import { frechetDistance } from './frechet.js';
import { kid, type KidOptions } from './kid.js';
import { pairwiseLpips, type LpipsNet } from './lpips.js';
import { report, type MetricReport } from './report.js';
import { matchRate } from './retrieval.js';

function textsFor(texts: string | string[], n: number, what: string): string[] {
  if (typeof texts === 'string') return new Array(n).fill(texts);
  if (texts.length === 1) return new Array(n).fill(texts[0]);
  if (texts.length !== n)
    throw new Error(`${what}: ${texts.length} texts for ${n} images; give one text, or one per image`);
  return texts;
}

/**
 * CLIP score: the cosine between each image's and its text's embedding (the "CLIP score" of Imagic
 * and most editing papers; Hessel et al.'s CLIPScore is 2.5 * max(cos, 0) of these values).
 * @param images [N, H, W, 3] in [-1, 1]; texts one for all or one per image
 */
export function clipScore(
  images: tf.Tensor4D,
  texts: string | string[],
  ext: ImageTextExtractor,
  opts: { batch?: number } = {},
): MetricReport {
  const t = textsFor(texts, images.shape[0], 'clipScore');
  const ei = extract(ext, images, opts.batch);
  const et = ext.texts(t);
  const c = cosine(ei, et);
  const values = Array.from(c.dataSync());
  tf.dispose([ei, et, c]);
  return report('clipScore', ext.name, values);
}

/** The extractor as the ImageEncoder / TextEncoder interfaces guidance/ uses. */
function asEncoders(ext: ImageTextExtractor): ImageEncoder & TextEncoder {
  return {
    embedDim: ext.dim,
    encodeImage: (x: tf.Tensor4D) => ({ embedding: ext.images(x), features: [] }),
    encodeText: (t: string[]) => ext.texts(t),
  };
}

/**
 * Directional CLIP similarity of edits (DiffusionCLIP, StyleGAN-NADA):
 * cos(E_I(edit) - E_I(src), E_T(target) - E_T(source)), embeddings L2-normalised before the
 * differences (as both papers' code); with several `templates` the text direction is their mean
 * (guidance/encoders textDirection). 1 when the image moved along the text direction.
 * @param src [N or 1, H, W, 3] the inputs; edit [N, H, W, 3] their edits, in [-1, 1]
 */
export function directionalClipSimilarity(
  src: tf.Tensor4D,
  edit: tf.Tensor4D,
  sourceText: string,
  targetText: string,
  ext: ImageTextExtractor,
  opts: { templates?: readonly string[]; batch?: number } = {},
): MetricReport {
  const n = edit.shape[0];
  if (src.shape[0] !== n && src.shape[0] !== 1)
    throw new Error(
      `directionalClipSimilarity: ${src.shape[0]} source images for ${n} edits; give one source or one per edit`,
    );
  const enc = asEncoders(ext);
  const dir = textDirection(enc, sourceText, targetText, opts.templates ?? ['{}']);
  const batch = opts.batch ?? 64;
  const values: number[] = [];
  try {
    for (let i = 0; i < n; i += batch) {
      const size = Math.min(batch, n - i);
      const s = tf.tidy(() => {
        const e = edit.slice([i, 0, 0, 0], [size, -1, -1, -1]);
        const x0 = src.shape[0] === 1 ? src : src.slice([i, 0, 0, 0], [size, -1, -1, -1]);
        return directionalScore(enc, e, x0, dir).add(1);
      });
      values.push(...s.dataSync());
      s.dispose();
    }
  } finally {
    dir.dispose();
  }
  return report('directionalClipSimilarity', ext.name, values);
}

/**
 * Mean pairwise distance over all pairs i < j (diversity):
 * - of a feature set [N, D] ('l2': Euclidean, default; 'cosine': 1 - cosine similarity) -> a number;
 * - of an image batch [N, H, W, 3] through an LPIPS net (e.g. judge-LPIPS) -> a report naming the net.
 */
export function meanPairwiseDistance(x: FeatureSet, metric?: 'l2' | 'cosine'): number;
export function meanPairwiseDistance(x: tf.Tensor4D, net: LpipsNet): MetricReport;
export function meanPairwiseDistance(
  x: FeatureSet | tf.Tensor4D,
  how: 'l2' | 'cosine' | LpipsNet = 'l2',
): number | MetricReport {
  if (x instanceof tf.Tensor && x.rank === 4) {
    if (typeof how === 'string')
      throw new Error(
        `meanPairwiseDistance: an image batch needs an LPIPS net (e.g. judgeLpips(judge)); for '${how}' pass features [N, D] (extract(ext, images))`,
      );
    const d = pairwiseLpips(x as tf.Tensor4D, how);
    return report('lpips-diversity', how.name, d);
  }
  if (typeof how !== 'string')
    throw new Error(
      'meanPairwiseDistance: an LPIPS net compares images [N, H, W, 3]; features [N, D] take "l2" or "cosine"',
    );
  const { data, n, d } = hostRows(x as FeatureSet, 'meanPairwiseDistance');
  if (n < 2) throw new Error(`meanPairwiseDistance: needs at least 2 rows, got ${n}`);
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += data[i * d + k] ** 2;
    norms[i] = Math.sqrt(s);
  }
  let total = 0;
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      if (how === 'l2') {
        for (let k = 0; k < d; k++) s += (data[i * d + k] - data[j * d + k]) ** 2;
        total += Math.sqrt(s);
      } else {
        for (let k = 0; k < d; k++) s += data[i * d + k] * data[j * d + k];
        total += 1 - s / (norms[i] * norms[j] + 1e-12);
      }
    }
  return total / ((n * (n - 1)) / 2);
}

/**
 * Category agreement: the fraction of images the classifier (the judge) puts in the expected
 * category: given as indices, as category names, or as reference images (the i-th image agrees
 * with the i-th reference's predicted category; one reference serves all).
 * @param images [N, H, W, 3] in [-1, 1]
 */
export function categoryAgreement(
  images: tf.Tensor4D,
  expected: number[] | string[] | tf.Tensor4D,
  ext: CategoryExtractor,
): MetricReport & { predicted: number[]; expected: number[] } {
  const n = images.shape[0];
  const predicted = classify(ext, images);
  let want: number[];
  if (expected instanceof tf.Tensor) {
    if (expected.shape[0] !== n && expected.shape[0] !== 1)
      throw new Error(
        `categoryAgreement: ${expected.shape[0]} reference images for ${n} images; give one reference or one per image`,
      );
    const ref = classify(ext, expected);
    want = ref.length === 1 ? new Array(n).fill(ref[0]) : ref;
  } else {
    want = (expected as (number | string)[]).map((e) => {
      if (typeof e === 'number') return e;
      const k = ext.categories.indexOf(e);
      if (k < 0)
        throw new Error(`categoryAgreement: '${e}' is not a category of ${ext.name} (${ext.categories.join(', ')})`);
      return k;
    });
    if (want.length === 1 && n > 1) want = new Array(n).fill(want[0]);
  }
  const values = predicted.map((p, i) => (p === want[i] ? 1 : 0));
  return {
    ...report('categoryAgreement', ext.name, values),
    value: matchRate(want, predicted),
    predicted,
    expected: want,
  };
}

/** Fréchet distance between two image sets in an extractor's feature space (FID with the judge / CLIP / ...). */
export function frechetDistanceOf(a: tf.Tensor4D, b: tf.Tensor4D, ext: ImageFeatureExtractor): MetricReport {
  const fa = extract(ext, a);
  const fb = extract(ext, b);
  try {
    return { metric: 'fd', extractor: ext.name, value: frechetDistance(fa, fb), n: a.shape[0] };
  } finally {
    tf.dispose([fa, fb]);
  }
}

/** KID between two image sets in an extractor's feature space (value = mean, std over subsets). */
export function kidOf(
  a: tf.Tensor4D,
  b: tf.Tensor4D,
  ext: ImageFeatureExtractor,
  opts: KidOptions = {},
): MetricReport & { subsets: number; subsetSize: number } {
  const fa = extract(ext, a);
  const fb = extract(ext, b);
  try {
    const r = kid(fa, fb, opts);
    return {
      metric: 'kid',
      extractor: ext.name,
      value: r.mean,
      std: r.std,
      n: r.subsets,
      values: r.values,
      subsets: r.subsets,
      subsetSize: r.subsetSize,
    };
  } finally {
    tf.dispose([fa, fb]);
  }
}
