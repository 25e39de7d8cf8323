/**
 * Similarity-matrix metrics (plain arrays, checkable by hand): argmax accuracy, top-k retrieval,
 * label agreement, and the cosine matrix they are usually computed from.
 */
import * as tf from '@tensorflow/tfjs';
import { asTensor2D, type FeatureSet } from './features-host.js';

/**
 * Fraction of rows whose argmax column equals the label.
 * @param sim row-major [rows, cols] similarities; labels [rows] column indices
 */
export function argmaxAccuracy(sim: ArrayLike<number>, rows: number, cols: number, labels: ArrayLike<number>): number {
  if (sim.length !== rows * cols)
    throw new Error(`argmaxAccuracy: ${sim.length} similarities for a ${rows}x${cols} matrix`);
  let hit = 0;
  for (let i = 0; i < rows; i++) {
    let best = 0;
    for (let j = 1; j < cols; j++) if (sim[i * cols + j] > sim[i * cols + best]) best = j;
    if (best === labels[i]) hit++;
  }
  return rows ? hit / rows : NaN;
}

/**
 * Top-k retrieval: the fraction of queries (rows) with at least one relevant item among the k
 * highest-scoring gallery items (columns). Ties are broken by column order.
 * @param sim row-major [queries, gallery]; relevant(q, g) says whether gallery item g answers query q
 */
export function retrievalTopK(
  sim: ArrayLike<number>,
  queries: number,
  gallery: number,
  relevant: (q: number, g: number) => boolean,
  k: number,
): number {
  if (sim.length !== queries * gallery)
    throw new Error(`retrievalTopK: ${sim.length} similarities for a ${queries}x${gallery} matrix`);
  let hit = 0;
  for (let q = 0; q < queries; q++) {
    const order = Array.from({ length: gallery }, (_, g) => g).sort(
      (a, b) => sim[q * gallery + b] - sim[q * gallery + a] || a - b,
    );
    if (order.slice(0, k).some((g) => relevant(q, g))) hit++;
  }
  return queries ? hit / queries : NaN;
}

/** Row-normalised a @ b^T on the host. a [N, D], b [M, D] -> Float32Array [N*M]. */
export function cosineMatrix(a: tf.Tensor2D, b: tf.Tensor2D): Float32Array {
  return tf.tidy(() => {
    const na = a.div(tf.norm(a, 'euclidean', 1, true).add(1e-12));
    const nb = b.div(tf.norm(b, 'euclidean', 1, true).add(1e-12));
    return tf.matMul(na, nb, false, true).dataSync() as Float32Array;
  });
}

/** Fraction of `labels[i] === predicted[i]`. */
export function matchRate(labels: ArrayLike<number>, predicted: ArrayLike<number>): number {
  if (labels.length !== predicted.length)
    throw new Error(`matchRate: ${labels.length} labels vs ${predicted.length} predictions`);
  let h = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === predicted[i]) h++;
  return labels.length ? h / labels.length : NaN;
}

/** Which gallery items answer which query: a predicate, or a label per query and per gallery item (equal labels match). */
export type Relevance =
  | ((q: number, g: number) => boolean)
  | { queryLabels: ArrayLike<number | string>; galleryLabels: ArrayLike<number | string> };

/**
 * Top-k retrieval by cosine similarity between feature sets: the fraction of queries with a
 * relevant gallery item among their k nearest (ties by gallery order).
 * E.g. SDG's reference retrieval: queries = the guiding references' features, gallery = the
 * samples of all references, relevance = { queryLabels: reference index, galleryLabels: the
 * reference each sample was guided by }.
 * @param queries [Q, D]; gallery [G, D] (same extractor); k one value or several (one fraction each)
 */
export function topKRetrieval(queries: FeatureSet, gallery: FeatureSet, relevant: Relevance, k: number): number;
export function topKRetrieval(queries: FeatureSet, gallery: FeatureSet, relevant: Relevance, k: number[]): number[];
export function topKRetrieval(
  queries: FeatureSet,
  gallery: FeatureSet,
  relevant: Relevance,
  k: number | number[],
): number | number[] {
  const q = asTensor2D(queries, 'topKRetrieval: queries');
  const g = asTensor2D(gallery, 'topKRetrieval: gallery');
  try {
    if (q.t.shape[1] !== g.t.shape[1])
      throw new Error(
        `topKRetrieval: query features have width ${q.t.shape[1]}, gallery ${g.t.shape[1]}; use one extractor for both`,
      );
    const nq = q.t.shape[0];
    const ng = g.t.shape[0];
    let rel: (qi: number, gi: number) => boolean;
    if (typeof relevant === 'function') rel = relevant;
    else {
      const { queryLabels, galleryLabels } = relevant;
      if (queryLabels.length !== nq || galleryLabels.length !== ng)
        throw new Error(
          `topKRetrieval: ${queryLabels.length} query labels for ${nq} queries, ${galleryLabels.length} gallery labels for ${ng} items`,
        );
      rel = (qi, gi) => queryLabels[qi] === galleryLabels[gi];
    }
    const sim = cosineMatrix(q.t, g.t);
    const ks = Array.isArray(k) ? k : [k];
    for (const kk of ks)
      if (!(Number.isInteger(kk) && kk >= 1)) throw new Error(`topKRetrieval: k must be a positive integer, got ${kk}`);
    const r = ks.map((kk) => retrievalTopK(sim, nq, ng, rel, kk));
    return Array.isArray(k) ? r : r[0];
  } finally {
    if (q.owned) q.t.dispose();
    if (g.owned) g.t.dispose();
  }
}
