/** Combinators over guidance functions (all keep the maximise / sum-over-batch conventions). */
import * as tf from '@tensorflow/tfjs';
import type { GuidanceFn } from './types.js';

/** The zero guidance (kept connected to x so gradients are defined). */
export const zero: GuidanceFn = (x) => tf.tidy(() => x.sum().mul(0) as tf.Scalar);

/** G = sum_i G_i. */
export function sum(...fns: GuidanceFn[]): GuidanceFn {
  if (fns.length === 0) throw new Error('guidance sum: give at least one function');
  return (x, t, ctx) => tf.tidy(() => tf.addN(fns.map((f) => f(x, t, ctx))) as tf.Scalar);
}

/** G = sum_i w_i G_i; terms with weight 0 are skipped (not evaluated). */
export function weighted(terms: Array<[GuidanceFn, number]>): GuidanceFn {
  const live = terms.filter(([, w]) => w !== 0);
  if (live.length === 0) return zero;
  return (x, t, ctx) => tf.tidy(() => tf.addN(live.map(([f, w]) => f(x, t, ctx).mul(w))) as tf.Scalar);
}

/** G = s * G_0. */
export function scale(fn: GuidanceFn, s: number): GuidanceFn {
  return (x, t, ctx) => tf.tidy(() => fn(x, t, ctx).mul(s) as tf.Scalar);
}

/** Active only for steps whose schedule index is in [fromIndex, toIndex] (inclusive); 0 elsewhere. */
export function duringIndices(fn: GuidanceFn, fromIndex: number, toIndex: number): GuidanceFn {
  return (x, t, ctx) => (ctx.index >= fromIndex && ctx.index <= toIndex ? fn(x, t, ctx) : zero(x, t, ctx));
}

/** A loss to minimise from a guidance function: -G. */
export function asLoss(fn: GuidanceFn): GuidanceFn {
  return scale(fn, -1);
}
