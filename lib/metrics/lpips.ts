/**
 * LPIPS (Zhang et al. 2018, v0.1) over a feature trunk the caller supplies:
 *
 *   d(a, b) = Σ_l  mean_{h,w}  Σ_c  w_{l,c} (â_{l,hwc} - b̂_{l,hwc})²,   f̂ = f / (sqrt(Σ_c f²) + 1e-10)
 *
 * (lpips.py: normalize_tensor over channels, squared difference, the learned 1x1 linear head
 * `lin{l}.model.1` with non-negative weights and no bias, spatial average, sum over layers).
 * The trunk maps an image batch to its NHWC feature maps, one per compared layer. A real AlexNet /
 * VGG / SqueezeNet trunk (with LPIPS's input scaling layer) plus `loadLpipsHeads` of the released
 * heads gives LPIPS itself; no such trunk ships here.
 *
 * judge-LPIPS (`judgeLpips`) is the stand-in the experiments use: the same formula over the six
 * block outputs of the shipped judge with unit weights (LPIPS's own `lpips=False` baseline: the
 * channel sum of squared differences of unit-normalised features). It is a perceptual distance
 * in the judge's feature space, not LPIPS: its numbers are not comparable with published LPIPS.
 */
import * as tf from '@tensorflow/tfjs';
import { basename } from 'node:path';
import { readStateDict } from '../io/index.js';
import type { Judge } from '../../nets/judge/model.js';

/** Image batch [N, H, W, 3] in [-1, 1] -> its feature maps [N, h_l, w_l, C_l], one per layer. */
export type FeatureTrunk = (x: tf.Tensor4D) => tf.Tensor4D[];

/** Per-layer channel weights (the linear heads): layer l has C_l non-negative weights. */
export interface LpipsHeads {
  /** Where they came from (a file path, 'unit', ...). */
  source: string;
  weights: Float32Array[];
}

export interface LpipsNet {
  /** What reports call it ("judge-LPIPS", "LPIPS-alex", ...). */
  name: string;
  trunk: FeatureTrunk;
  /** Linear heads, or 'unit' (every weight 1: LPIPS's lpips=False baseline). */
  heads: LpipsHeads | 'unit';
  /** Largest batch the trunk is given at once (default 64). */
  batch?: number;
}

/**
 * Read LPIPS linear heads (`lin0.model.1.weight` ... each [1, C, 1, 1]) from a checkpoint any
 * lib/io reader opens, e.g. the released `lpips/weights/v0.1/{alex,vgg,squeeze}.pth` (legacy torch
 * format). Checks that the layers are numbered 0..L-1, shaped [1, C, 1, 1] and non-negative.
 */
export async function loadLpipsHeads(path: string): Promise<LpipsHeads> {
  const sd = await readStateDict(path);
  const layers = new Map<number, Float32Array>();
  for (const [key, t] of sd) {
    const m = /^lin(\d+)\.model\.1\.weight$/.exec(key);
    if (!m) continue;
    if (t.shape.length !== 4 || t.shape[0] !== 1 || t.shape[2] !== 1 || t.shape[3] !== 1) {
      throw new Error(`${path}: ${key} has shape [${t.shape}]; LPIPS heads are 1x1 convs of shape [1, C, 1, 1]`);
    }
    const w = Float32Array.from(t.data as ArrayLike<number>);
    const neg = w.findIndex((v) => v < 0);
    if (neg >= 0)
      throw new Error(
        `${path}: ${key}[${neg}] = ${w[neg]} is negative; LPIPS heads are non-negative (trained with clamped weights)`,
      );
    layers.set(Number(m[1]), w);
  }
  if (layers.size === 0) {
    throw new Error(
      `${path} has no key lin0.model.1.weight; expected LPIPS v0.1 linear heads (lpips/weights/v0.1/alex.pth, vgg.pth or squeeze.pth); its keys: ${[...sd.keys()].slice(0, 8).join(', ')}`,
    );
  }
  const weights: Float32Array[] = [];
  for (let l = 0; l < layers.size; l++) {
    const w = layers.get(l);
    if (!w)
      throw new Error(`${path}: LPIPS heads lin0..lin${layers.size - 1} expected, lin${l}.model.1.weight is missing`);
    weights.push(w);
  }
  return { source: path, weights };
}

/** An LpipsNet from a trunk and released heads, named "LPIPS-<file stem>" unless `name` is given. */
export function lpipsNet(trunk: FeatureTrunk, heads: LpipsHeads, name?: string): LpipsNet {
  return { name: name ?? `LPIPS-${basename(heads.source).replace(/\.[^.]*$/, '')}`, trunk, heads };
}

/**
 * judge-LPIPS: the LPIPS formula over the judge's six block outputs (after SiLU; 32, 16, 16, 8, 8
 * and 4 pixels square for 32x32 inputs) with unit weights. Not LPIPS (no ImageNet trunk, no learned
 * heads); reports name it "judge-LPIPS".
 */
export function judgeLpips(judge: Judge, opts: { name?: string; batch?: number } = {}): LpipsNet {
  return { name: opts.name ?? 'judge-LPIPS', trunk: (x) => judge.featureMaps(x), heads: 'unit', batch: opts.batch };
}

/** f / (sqrt(Σ_c f²) + eps) over the last (channel) axis. */
export function normalizeChannels(f: tf.Tensor4D, eps = 1e-10): tf.Tensor4D {
  return tf.tidy(() => f.div(tf.sqrt(tf.sum(f.square(), -1, true)).add(eps)));
}

function headOf(heads: LpipsHeads | 'unit', l: number, channels: number): tf.Tensor1D | null {
  if (heads === 'unit') return null;
  const w = heads.weights[l];
  if (!w)
    throw new Error(
      `lpips: the trunk gave layer ${l}, but the heads (${heads.source}) have ${heads.weights.length} layers; use heads made for this trunk`,
    );
  if (w.length !== channels)
    throw new Error(
      `lpips: layer ${l} has ${channels} channels, its head (${heads.source}) has ${w.length}; use heads made for this trunk`,
    );
  return tf.tensor1d(w);
}

/**
 * The LPIPS distance [N] between two lists of feature maps (one per layer, [N, h, w, C] each; the
 * i-th rows are compared).
 */
export function lpipsOfFeatures(fa: tf.Tensor4D[], fb: tf.Tensor4D[], heads: LpipsHeads | 'unit'): tf.Tensor1D {
  if (fa.length !== fb.length) throw new Error(`lpips: ${fa.length} vs ${fb.length} feature layers`);
  if (heads !== 'unit' && heads.weights.length !== fa.length)
    throw new Error(
      `lpips: the trunk gives ${fa.length} layers, the heads (${heads.source}) have ${heads.weights.length}; use heads made for this trunk`,
    );
  return tf.tidy(() => {
    let total: tf.Tensor1D | null = null;
    fa.forEach((a, l) => {
      const b = fb[l];
      if (a.shape.join(',') !== b.shape.join(','))
        throw new Error(`lpips: layer ${l} maps differ in shape ([${a.shape}] vs [${b.shape}])`);
      const d2 = normalizeChannels(a).sub(normalizeChannels(b)).square() as tf.Tensor4D;
      const w = headOf(heads, l, a.shape[3]);
      const perPixel = w ? tf.sum(d2.mul(w), -1) : tf.sum(d2, -1); // [N, h, w]
      const layer = tf.mean(perPixel, [1, 2]) as tf.Tensor1D;
      total = total ? (total.add(layer) as tf.Tensor1D) : layer;
    });
    if (!total) throw new Error('lpips: the trunk gave no feature maps');
    return total;
  });
}

function checkImages(a: tf.Tensor4D, b: tf.Tensor4D): void {
  if (a.rank !== 4 || b.rank !== 4 || a.shape.join(',') !== b.shape.join(',')) {
    throw new Error(`lpips: expected two image batches of one shape [N, H, W, 3], got [${a.shape}] and [${b.shape}]`);
  }
}

/**
 * LPIPS per image pair: d(a_i, b_i) through `net` (its trunk and heads).
 * @param a [N, H, W, 3] in [-1, 1]; b the same shape
 * @returns [N] distances (0 for identical images)
 */
export function lpips(a: tf.Tensor4D, b: tf.Tensor4D, net: LpipsNet): number[] {
  checkImages(a, b);
  const n = a.shape[0];
  const batch = net.batch ?? 64;
  const out: number[] = [];
  for (let i = 0; i < n; i += batch) {
    const d = tf.tidy(() => {
      const size = Math.min(batch, n - i);
      const xa = a.slice([i, 0, 0, 0], [size, -1, -1, -1]);
      const xb = b.slice([i, 0, 0, 0], [size, -1, -1, -1]);
      return lpipsOfFeatures(net.trunk(xa), net.trunk(xb), net.heads);
    });
    out.push(...d.dataSync());
    d.dispose();
  }
  return out;
}

/**
 * LPIPS of every pair i < j of one batch (the diversity measure): the trunk runs once per image.
 * @param x [N, H, W, 3] in [-1, 1], N >= 2
 * @returns the N(N-1)/2 distances in order (0,1), (0,2), ..., (1,2), ...
 */
export function pairwiseLpips(x: tf.Tensor4D, net: LpipsNet, opts: { pairBatch?: number } = {}): number[] {
  const n = x.shape[0];
  if (x.rank !== 4 || n < 2)
    throw new Error(`pairwiseLpips: expected a batch [N, H, W, 3] with N >= 2, got [${x.shape}]`);
  const batch = net.batch ?? 64;
  // normalised maps of all images, per layer (kept until the end)
  const parts: tf.Tensor4D[][] = [];
  for (let i = 0; i < n; i += batch) {
    parts.push(
      tf.tidy(() =>
        net.trunk(x.slice([i, 0, 0, 0], [Math.min(batch, n - i), -1, -1, -1])).map((f) => normalizeChannels(f)),
      ),
    );
  }
  const layers = parts[0].map((_, l) =>
    parts.length === 1 ? parts[0][l] : (tf.concat(parts.map((p) => p[l])) as tf.Tensor4D),
  );
  if (parts.length > 1) tf.dispose(parts);
  if (net.heads !== 'unit' && net.heads.weights.length !== layers.length) {
    const msg = `pairwiseLpips: the trunk gives ${layers.length} layers, the heads (${net.heads.source}) have ${net.heads.weights.length}; use heads made for this trunk`;
    tf.dispose(layers);
    throw new Error(msg);
  }
  const ii: number[] = [];
  const jj: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      ii.push(i);
      jj.push(j);
    }
  const pairBatch = opts.pairBatch ?? 256;
  const out: number[] = [];
  try {
    for (let p = 0; p < ii.length; p += pairBatch) {
      const d = tf.tidy(() => {
        const gi = tf.tensor1d(ii.slice(p, p + pairBatch), 'int32');
        const gj = tf.tensor1d(jj.slice(p, p + pairBatch), 'int32');
        let total: tf.Tensor1D | null = null;
        layers.forEach((f, l) => {
          const d2 = tf.gather(f, gi).sub(tf.gather(f, gj)).square() as tf.Tensor4D;
          const w = headOf(net.heads, l, f.shape[3]);
          const layer = tf.mean(w ? tf.sum(d2.mul(w), -1) : tf.sum(d2, -1), [1, 2]) as tf.Tensor1D;
          total = total ? (total.add(layer) as tf.Tensor1D) : layer;
        });
        return total as unknown as tf.Tensor1D;
      });
      out.push(...d.dataSync());
      d.dispose();
    }
  } finally {
    tf.dispose(layers);
  }
  return out;
}
