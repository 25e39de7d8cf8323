/** The judge's softmax over categories, the one definition the evals and the judge-based tests use. */
import * as tf from '@tensorflow/tfjs';
import type { Judge } from '../../nets/judge/model.js';

/** Judge category probabilities [N][K] of images [N, H, W, 3] in [-1, 1], `batch` images at a time. */
export function judgeProbs(judge: Judge, x: tf.Tensor4D, batch = 128): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < x.shape[0]; i += batch) {
    const p = tf.tidy(() =>
      tf.softmax(judge.apply(x.slice([i, 0, 0, 0], [Math.min(batch, x.shape[0] - i), -1, -1, -1])).category),
    );
    out.push(...(p.arraySync() as number[][]));
    p.dispose();
  }
  return out;
}
