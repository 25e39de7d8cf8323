/**
 * Net combinators: each takes NetFns and returns a NetFn, so they compose with every sampler.
 * Combining raw outputs linearly is parameterisation-agnostic (eps, x0 and v are affine in one
 * another at fixed x_t, and the weights sum to 1).
 */
import * as tf from '@tensorflow/tfjs';
import type { Cond, NetFn } from './model.js';

/** uncond entries with batch 1 are tiled to the batch of the conditional entries. */
function matchBatch(u: Cond, c: Cond | undefined): Cond {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(u)) {
    if (!(v instanceof tf.Tensor)) continue;
    const ref = (c as Record<string, tf.Tensor> | undefined)?.[k];
    const n = ref ? ref.shape[0] : v.shape[0];
    out[k] = v.shape[0] === 1 && n > 1 ? tf.tile(v, [n, ...new Array(v.rank - 1).fill(1)]) : v;
  }
  return out as Cond;
}

function concatCond(a: Cond | undefined, b: Cond | undefined): Cond | undefined | null {
  const ka = Object.keys(a ?? {})
    .filter((k) => (a as Record<string, unknown>)[k] !== undefined)
    .sort();
  const kb = Object.keys(b ?? {})
    .filter((k) => (b as Record<string, unknown>)[k] !== undefined)
    .sort();
  if (ka.join() !== kb.join()) return null; // cannot batch: different keys
  if (ka.length === 0) return undefined;
  const out: Record<string, tf.Tensor> = {};
  for (const k of ka) out[k] = tf.concat([(a as Record<string, tf.Tensor>)[k], (b as Record<string, tf.Tensor>)[k]], 0);
  return out as Cond;
}

export interface ClassifierFreeOptions {
  /** Guidance scale w: out = uncond + w (cond - uncond). w = 1 is the conditional model, 0 the unconditional. */
  scale: number;
  /** The "null" conditioning (same keys as the conditional one; batch N or 1): a null class, zero embedding, empty-text tokens. */
  uncond: Cond;
  /**
   * Guide only the first `guidedChannels` output channels (the eps/x0/v part of a 2C-channel
   * learned-variance output); the rest come from the conditional call, as GLIDE does. Default: all.
   */
  guidedChannels?: number;
}

/**
 * Classifier-free guidance (Ho & Salimans): one batched net call on [x; x] with [cond; uncond].
 * Returns a NetFn that takes the conditional `cond` at call time. Falls back to two calls when cond
 * and uncond carry different keys.
 */
export function classifierFree(net: NetFn, opts: ClassifierFreeOptions): NetFn {
  const { scale, uncond } = opts;
  return (x, t, cond) =>
    tf.tidy(() => {
      const n = x.shape[0];
      let outC: tf.Tensor4D;
      let outU: tf.Tensor4D;
      const unc = matchBatch(uncond, cond);
      const both = concatCond(cond, unc);
      if (both === null) {
        outC = net(x, t, cond);
        outU = net(x, t, unc);
      } else {
        const out = net(tf.concat([x, x], 0), tf.concat([t, t], 0), both);
        outC = out.slice([0, 0, 0, 0], [n, -1, -1, -1]);
        outU = out.slice([n, 0, 0, 0], [n, -1, -1, -1]);
      }
      const c = outC.shape[3];
      const g = opts.guidedChannels ?? c;
      if (g >= c) return outU.add(outC.sub(outU).mul(scale)) as tf.Tensor4D;
      const gc = outC.slice([0, 0, 0, 0], [-1, -1, -1, g]);
      const gu = outU.slice([0, 0, 0, 0], [-1, -1, -1, g]);
      const rest = outC.slice([0, 0, 0, g], [-1, -1, -1, c - g]);
      return tf.concat([gu.add(gc.sub(gu).mul(scale)), rest], 3) as tf.Tensor4D;
    });
}

/** Weighted sum of several nets' raw outputs (weights normalised to sum 1). */
export function blendNets(nets: NetFn[], weights: number[]): NetFn {
  if (nets.length === 0 || nets.length !== weights.length)
    throw new Error(`blendNets: ${nets.length} nets and ${weights.length} weights`);
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(Math.abs(total) > 0)) throw new Error('blendNets: weights sum to 0');
  const w = weights.map((v) => v / total);
  return (x, t, cond) =>
    tf.tidy(() => {
      let acc: tf.Tensor4D | null = null;
      nets.forEach((net, i) => {
        if (w[i] === 0) return;
        const o = net(x, t, cond).mul(w[i]) as tf.Tensor4D;
        acc = acc ? (acc.add(o) as tf.Tensor4D) : o;
      });
      return acc as unknown as tf.Tensor4D;
    });
}

/**
 * DiffusionCLIP's `model_ratio`: ratio * finetuned + (1 - ratio) * original (ratio 1 = fine-tuned only).
 */
export function blendModels(original: NetFn, finetuned: NetFn, ratio: number): NetFn {
  if (ratio === 1) return finetuned;
  if (ratio === 0) return original;
  return blendNets([original, finetuned], [1 - ratio, ratio]);
}

export interface TimeSegment {
  /** This segment applies when the (model-scale) timestep t >= minT. */
  minT: number;
  nets: NetFn[];
  /** Mixing weights (normalised). */
  weights: number[];
}

/**
 * DiffusionCLIP's multi-attribute noise mixing (`hybrid_config`): for each call the first segment,
 * in order of decreasing minT, with t >= minT decides which nets are mixed with which weights. The
 * batch must share one timestep (read from t[0]).
 */
export function mixByTime(segments: TimeSegment[]): NetFn {
  const segs = [...segments]
    .sort((a, b) => b.minT - a.minT)
    .map((s) => ({ minT: s.minT, net: blendNets(s.nets, s.weights) }));
  return (x, t, cond) => {
    const t0 = t.dataSync()[0];
    const seg = segs.find((s) => t0 >= s.minT);
    if (!seg) throw new Error(`mixByTime: no segment covers t = ${t0}; add one with minT: 0`);
    return seg.net(x, t, cond);
  };
}
