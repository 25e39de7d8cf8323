/**
 * The forward passes of openai/CLIP's towers (`clip/model.py`), channels-last, over a parameter
 * getter keyed by the reference state_dict names. Shared by `CLIP` and the noisy (time-conditioned)
 * image encoder: `film` is applied to the output of every normalisation layer.
 */
import * as tf from '@tensorflow/tfjs';
import { attention, attentionKT, layerNorm, linear, quickGelu } from '../../lib/ops/nn.js';
import { type CLIPConfig, type CLIPVisionConfig, isVitConfig, visionHeads } from './config.js';

/** Returns the parameter under a reference key (our layout). */
export type ParamGetter = (key: string) => tf.Tensor;

/**
 * Hook on a normalisation output. `name` is the norm's module path (`visual.ln_pre`,
 * `visual.transformer.resblocks.3.ln_1`, `visual.layer2.0.bn1`, ...).
 * @param x [N, L, C] (LayerNorm) or [N, H, W, C] (BatchNorm)
 */
export type FilmHook = (name: string, x: tf.Tensor) => tf.Tensor;

/**
 * Training-mode BatchNorm (torch's `model.train()`): normalise with the batch's moments and hand
 * them to this hook, which updates the running statistics. Without it BatchNorm uses its running
 * statistics (eval mode), as inference and the reference parity do.
 * @param mean [C] and variance [C] (biased, as used for normalising) over N·H·W = `count` values
 */
export type BatchStatsHook = (name: string, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number) => void;

/** Options of the image-tower forward passes. */
export interface VisionForwardOptions {
  film?: FilmHook;
  /** Training-mode BatchNorm (ModifiedResNet only; the ViT has none). */
  batchStats?: BatchStatsHook;
  features?: boolean;
  intermediates?: boolean;
}

export const LN_EPS = 1e-5;
export const BN_EPS = 1e-5;

function ln(p: ParamGetter, name: string, x: tf.Tensor, film?: FilmHook): tf.Tensor {
  const y = layerNorm(x, p(name + '.weight') as tf.Tensor1D, p(name + '.bias') as tf.Tensor1D, LN_EPS);
  return film ? film(name, y) : y;
}

/**
 * The last block of a tower whose output is pooled at one token per sample (the ViT's class token,
 * the text tower's EOT): keys and values still come from every token, but the query, out_proj, the
 * residual, ln_2 and the MLP run on the pooled rows only. Exact: no other row reaches the output.
 */
export interface QueryPick {
  /** [N, L, X] -> [N, 1, X]: the pooled row of each sample. */
  pick: (t: tf.Tensor3D) => tf.Tensor3D;
  /** Additive mask for the picked queries, broadcastable to [N, heads, 1, L] (text: causal row of each EOT). */
  mask?: tf.Tensor;
}

/**
 * torch.nn.MultiheadAttention (q, k, v rows of in_proj in that order), self-attention.
 * One product for q, k and v ([N·L, C] x [C, 3C]); the heads are split with rank-4 transposes
 * (k straight to [N, heads, d, L]).
 * @param x [N, L, C]; mask additive [L, L] or undefined
 * @returns [N, L, C], or [N, 1, C] with `q`
 */
function selfAttention(
  p: ParamGetter,
  prefix: string,
  x: tf.Tensor3D,
  heads: number,
  mask?: tf.Tensor,
  q?: QueryPick,
): tf.Tensor3D {
  const [n, l, c] = x.shape;
  const d = c / heads;
  const qkv = linear(x, p(prefix + 'in_proj_weight') as tf.Tensor2D, p(prefix + 'in_proj_bias') as tf.Tensor1D);
  const [qa, k, v] = tf.split(qkv, 3, 2) as tf.Tensor3D[];
  const qs = q ? q.pick(qa) : qa;
  const lq = qs.shape[1];
  const o = attentionKT(
    qs.reshape([n, lq, heads, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D,
    k.reshape([n, l, heads, d]).transpose([0, 2, 3, 1]) as tf.Tensor4D,
    v.reshape([n, l, heads, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D,
    q ? q.mask : mask,
  );
  const merged = (lq === 1 ? o.reshape([n, lq, c]) : o.transpose([0, 2, 1, 3]).reshape([n, lq, c])) as tf.Tensor3D;
  return linear(merged, p(prefix + 'out_proj.weight') as tf.Tensor2D, p(prefix + 'out_proj.bias') as tf.Tensor1D);
}

/**
 * One `ResidualAttentionBlock`: x + attn(ln_1(x)); x + mlp(ln_2(x)) with QuickGELU. x: [N, L, C].
 * @param q pool the output at one row per sample ([N, 1, C]); see `QueryPick`
 */
export function residualAttentionBlock(
  p: ParamGetter,
  prefix: string,
  x: tf.Tensor3D,
  heads: number,
  mask?: tf.Tensor2D,
  film?: FilmHook,
  q?: QueryPick,
): tf.Tensor3D {
  return tf.tidy(() => {
    const a = selfAttention(p, prefix + 'attn.', ln(p, prefix + 'ln_1', x, film) as tf.Tensor3D, heads, mask, q);
    const h = (q ? q.pick(x) : x).add(a) as tf.Tensor3D;
    const m = ln(p, prefix + 'ln_2', h, film);
    const fc = quickGelu(
      linear(m, p(prefix + 'mlp.c_fc.weight') as tf.Tensor2D, p(prefix + 'mlp.c_fc.bias') as tf.Tensor1D),
    );
    return h.add(
      linear(fc, p(prefix + 'mlp.c_proj.weight') as tf.Tensor2D, p(prefix + 'mlp.c_proj.bias') as tf.Tensor1D),
    ) as tf.Tensor3D;
  });
}

/**
 * `Transformer`: `layers` blocks under `prefix` (`visual.transformer.` / `transformer.`).
 * @param features when given, each block's output [N, L, C] is pushed to it
 * @param lastPick run the last block on the pooled rows only (its output is then [N, 1, C])
 */
export function transformer(
  p: ParamGetter,
  prefix: string,
  x: tf.Tensor3D,
  layers: number,
  heads: number,
  mask?: tf.Tensor2D,
  film?: FilmHook,
  features?: tf.Tensor[],
  lastPick?: QueryPick,
): tf.Tensor3D {
  let h = x;
  for (let i = 0; i < layers; i++) {
    h = residualAttentionBlock(
      p,
      `${prefix}resblocks.${i}.`,
      h,
      heads,
      mask,
      film,
      i === layers - 1 ? lastPick : undefined,
    );
    if (features) features.push(h);
  }
  return h;
}

/** Host-built additive causal mask values: row i is 0 up to column `upto[i]` (inclusive), -1e9 after. */
function causalRows(upto: number[], l: number): Float32Array {
  const m = new Float32Array(upto.length * l);
  upto.forEach((u, i) => m.fill(-1e9, i * l + u + 1, (i + 1) * l));
  return m;
}

/** Additive causal mask [L, L]: 0 on and below the diagonal, -1e9 above (the reference uses -inf; same softmax). */
export function causalMask(l: number): tf.Tensor2D {
  return tf.tensor2d(
    causalRows(
      Array.from({ length: l }, (_, i) => i),
      l,
    ),
    [l, l],
  );
}

export type VisionOutput = {
  /** [N, embedDim] */
  embedding: tf.Tensor2D;
  /** Per-block activations ([N, L, C] ViT tokens; [N, H, W, C] ResNet stage outputs). */
  features: tf.Tensor[];
  /**
   * Named intermediates, only when requested. ViT: `visual_after_ln_pre`, `visual_block0_out` [N, L, C];
   * ModifiedResNet: `visual_stem_out`, `visual_layer1_out` .. `visual_layer4_out` [N, H, W, C].
   */
  intermediates: Record<string, tf.Tensor>;
};

/**
 * `VisionTransformer.forward`.
 * @param pixels [N, R, R, 3] already normalised, R = config.imageResolution
 */
export function visionTransformer(
  p: ParamGetter,
  c: CLIPVisionConfig,
  pixels: tf.Tensor4D,
  opts: VisionForwardOptions = {},
): VisionOutput {
  const patch = c.visionPatchSize as number;
  const width = c.visionWidth;
  // Everything returned leaves the tidy as part of its result (never tf.keep: kept tensors would
  // escape the caller's tidy too and leak inside guidance loops).
  return tf.tidy((): VisionOutput => {
    const features: tf.Tensor[] = [];
    const intermediates: Record<string, tf.Tensor> = {};
    const n = pixels.shape[0];
    const conv = tf.conv2d(pixels, p('visual.conv1.weight') as tf.Tensor4D, patch, 'valid');
    const grid = conv.shape[1] * conv.shape[2];
    const tokens = conv.reshape([n, grid, width]);
    const cls = tf.broadcastTo(p('visual.class_embedding').reshape([1, 1, width]), [n, 1, width]);
    let x = tf.concat([cls, tokens], 1).add(p('visual.positional_embedding')) as tf.Tensor3D;
    x = ln(p, 'visual.ln_pre', x, opts.film) as tf.Tensor3D;
    if (opts.intermediates) intermediates.visual_after_ln_pre = x;
    const feats: tf.Tensor[] = [];
    const layers = c.visionLayers as number;
    // Only the class token of the last block reaches the output, unless every block's tokens are asked for.
    const pooledOnly = !opts.features && !opts.intermediates && layers > 0;
    const clsPick: QueryPick = { pick: (t) => t.slice([0, 0, 0], [n, 1, t.shape[2]]) };
    x = transformer(
      p,
      'visual.transformer.',
      x,
      layers,
      visionHeads(c),
      undefined,
      opts.film,
      feats,
      pooledOnly ? clsPick : undefined,
    );
    if (opts.features) features.push(...feats);
    if (opts.intermediates && feats.length) intermediates.visual_block0_out = feats[0];
    const cls0 = (pooledOnly ? x : clsPick.pick(x)).reshape([n, width]);
    const pooled = ln(p, 'visual.ln_post', cls0, opts.film) as tf.Tensor2D;
    return { embedding: tf.matMul(pooled, p('visual.proj') as tf.Tensor2D), features, intermediates };
  });
}

function batchNorm(p: ParamGetter, name: string, x: tf.Tensor4D, o: VisionForwardOptions): tf.Tensor4D {
  let mean = p(name + '.running_mean') as tf.Tensor1D;
  let variance = p(name + '.running_var') as tf.Tensor1D;
  if (o.batchStats) {
    ({ mean, variance } = tf.moments(x, [0, 1, 2]) as { mean: tf.Tensor1D; variance: tf.Tensor1D });
    o.batchStats(name, mean, variance, x.shape[0] * x.shape[1] * x.shape[2]);
  }
  const y = tf.batchNorm(
    x,
    mean,
    variance,
    p(name + '.bias') as tf.Tensor1D,
    p(name + '.weight') as tf.Tensor1D,
    BN_EPS,
  );
  return (o.film ? o.film(name, y) : y) as tf.Tensor4D;
}

/** Conv2d without bias, PyTorch padding semantics (explicit symmetric padding). */
function conv(p: ParamGetter, name: string, x: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  const w = p(name + '.weight') as tf.Tensor4D;
  return tf.conv2d(x, w, stride, pad === 0 ? 'valid' : (pad as never));
}

function avgPool(x: tf.Tensor4D, k: number): tf.Tensor4D {
  return k > 1 ? tf.avgPool(x, k, k, 'valid') : x;
}

/** `Bottleneck` (expansion 4, anti-aliased: stride via AvgPool2d after conv2 and in the downsample path). */
function bottleneck(
  p: ParamGetter,
  pre: string,
  x: tf.Tensor4D,
  stride: number,
  downsample: boolean,
  o: VisionForwardOptions,
): tf.Tensor4D {
  return tf.tidy(() => {
    let out = tf.relu(batchNorm(p, pre + 'bn1', conv(p, pre + 'conv1', x, 1, 0), o));
    out = tf.relu(batchNorm(p, pre + 'bn2', conv(p, pre + 'conv2', out, 1, 1), o));
    out = avgPool(out, stride);
    out = batchNorm(p, pre + 'bn3', conv(p, pre + 'conv3', out, 1, 0), o);
    let identity: tf.Tensor4D = x;
    if (downsample) {
      identity = batchNorm(p, pre + 'downsample.1', conv(p, pre + 'downsample.0', avgPool(x, stride), 1, 0), o);
    }
    return tf.relu(out.add(identity)) as tf.Tensor4D;
  });
}

/**
 * `AttentionPool2d`: mean token prepended, positional embedding, one multi-head attention query
 * (the mean token) over all tokens with separate q/k/v projections, then c_proj.
 * @param x [N, H, W, C] -> [N, outDim]
 */
function attentionPool(p: ParamGetter, x: tf.Tensor4D, heads: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const tokens = x.reshape([n, h * w, c]);
    const seq = tf
      .concat([tokens.mean(1, true), tokens], 1)
      .add(p('visual.attnpool.positional_embedding')) as tf.Tensor3D;
    const d = c / heads;
    const l = h * w + 1;
    const q = linear(
      seq.slice([0, 0, 0], [n, 1, c]),
      p('visual.attnpool.q_proj.weight') as tf.Tensor2D,
      p('visual.attnpool.q_proj.bias') as tf.Tensor1D,
    );
    const k = linear(
      seq,
      p('visual.attnpool.k_proj.weight') as tf.Tensor2D,
      p('visual.attnpool.k_proj.bias') as tf.Tensor1D,
    );
    const v = linear(
      seq,
      p('visual.attnpool.v_proj.weight') as tf.Tensor2D,
      p('visual.attnpool.v_proj.bias') as tf.Tensor1D,
    );
    const split = (t: tf.Tensor, len: number) => t.reshape([n, len, heads, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
    const o = attention(split(q, 1), split(k, l), split(v, l)).transpose([0, 2, 1, 3]).reshape([n, c]) as tf.Tensor2D;
    return linear(
      o,
      p('visual.attnpool.c_proj.weight') as tf.Tensor2D,
      p('visual.attnpool.c_proj.bias') as tf.Tensor1D,
    );
  });
}

/**
 * `ModifiedResNet.forward` (RN50 family).
 * @param pixels [N, R, R, 3] already normalised
 */
export function modifiedResNet(
  p: ParamGetter,
  c: CLIPVisionConfig,
  pixels: tf.Tensor4D,
  opts: VisionForwardOptions = {},
): VisionOutput {
  return tf.tidy((): VisionOutput => {
    const features: tf.Tensor[] = [];
    const intermediates: Record<string, tf.Tensor> = {};
    let x = tf.relu(batchNorm(p, 'visual.bn1', conv(p, 'visual.conv1', pixels, 2, 1), opts));
    x = tf.relu(batchNorm(p, 'visual.bn2', conv(p, 'visual.conv2', x, 1, 1), opts));
    x = tf.relu(batchNorm(p, 'visual.bn3', conv(p, 'visual.conv3', x, 1, 1), opts));
    x = avgPool(x, 2);
    if (opts.intermediates) intermediates.visual_stem_out = x;
    let inplanes = c.visionWidth;
    (c.visionLayers as number[]).forEach((blocks, s) => {
      const planes = c.visionWidth * 2 ** s;
      for (let b = 0; b < blocks; b++) {
        const stride = s > 0 && b === 0 ? 2 : 1;
        x = bottleneck(p, `visual.layer${s + 1}.${b}.`, x, stride, stride > 1 || inplanes !== planes * 4, opts);
        inplanes = planes * 4;
      }
      if (opts.features) features.push(x);
      if (opts.intermediates) intermediates[`visual_layer${s + 1}_out`] = x;
    });
    return { embedding: attentionPool(p, x, visionHeads(c)), features, intermediates };
  });
}

/** The image tower of `c` (ViT or ModifiedResNet) on normalised pixels [N, R, R, 3]. */
export function visionForward(
  p: ParamGetter,
  c: CLIPVisionConfig,
  pixels: tf.Tensor4D,
  opts: VisionForwardOptions = {},
): VisionOutput {
  const r = c.imageResolution;
  if (pixels.shape[1] !== r || pixels.shape[2] !== r || pixels.shape[3] !== 3) {
    throw new Error(
      `CLIP image tower expects normalised pixels [N, ${r}, ${r}, 3], got [${pixels.shape}]; use encodeImage (which resizes and normalises) for arbitrary [-1, 1] images`,
    );
  }
  return isVitConfig(c) ? visionTransformer(p, c, pixels, opts) : modifiedResNet(p, c, pixels, opts);
}

/**
 * `CLIP.encode_text`: token ids -> [N, embedDim], features at each row's argmax id (EOT).
 * Trailing positions after the last EOT are dropped before the transformer: with the causal mask
 * they cannot change the EOT features, so the result is the reference's, computed faster.
 * @param ids [N, ctx] int32, ctx <= contextLength
 */
export function textForward(p: ParamGetter, c: CLIPConfig, ids: tf.Tensor2D): tf.Tensor2D {
  const [n, ctx] = ids.shape;
  if (ctx > c.contextLength)
    throw new Error(`CLIP text tower: ${ctx} tokens per row, more than the context length ${c.contextLength}`);
  const host = ids.dataSync();
  const eot: number[] = [];
  let last = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < ctx; j++) if (host[i * ctx + j] > host[i * ctx + best]) best = j;
    eot.push(best);
    last = Math.max(last, best);
    for (let j = 0; j < ctx; j++) {
      const id = host[i * ctx + j];
      if (id < 0 || id >= c.vocabSize)
        throw new Error(
          `CLIP text tower: token id ${id} outside the vocabulary (size ${c.vocabSize}); was the text tokenised for another vocabulary?`,
        );
    }
  }
  const l = last + 1;
  const w = c.transformerWidth;
  return tf.tidy(() => {
    const used = (l === ctx ? ids : ids.slice([0, 0], [n, l])).toInt();
    let x = tf.gather(p('token_embedding.weight'), used.reshape([-1])).reshape([n, l, w]) as tf.Tensor3D;
    x = x.add(p('positional_embedding').slice([0, 0], [l, w])) as tf.Tensor3D;
    const mask = causalMask(l);
    // The last block runs on the EOT rows only (keys/values from all tokens, each EOT's causal row).
    const rows = tf.tensor1d(
      eot.map((e, i) => i * l + e),
      'int32',
    );
    const eotPick: QueryPick = {
      pick: (t) => tf.gather(t.reshape([n * l, t.shape[2]]), rows).reshape([n, 1, t.shape[2]]) as tf.Tensor3D,
      mask: tf.tensor4d(causalRows(eot, l), [n, 1, 1, l]),
    };
    const layers = c.transformerLayers;
    x = transformer(
      p,
      'transformer.',
      x,
      layers,
      c.transformerHeads,
      mask,
      undefined,
      undefined,
      layers > 0 ? eotPick : undefined,
    );
    if (layers === 0) x = eotPick.pick(x);
    x = layerNorm(x, p('ln_final.weight') as tf.Tensor1D, p('ln_final.bias') as tf.Tensor1D, LN_EPS);
    return tf.matMul(x.reshape([n, w]) as tf.Tensor2D, p('text_projection') as tf.Tensor2D);
  });
}
