/**
 * unCLIP prior: a small diffusion model over CLIP image embeddings, conditioned on a CLIP text
 * embedding, predicting x0 (DALL-E 2 predicts the clean embedding too), on a cosine schedule.
 * There is no reference checkpoint; this is diffguide's own design, with PyTorch-style names and
 * layouts on disk ([out, in] linear weights) so a PyTorch port is one nn.Module away.
 *
 * Data space: embeddings are L2-normalised and multiplied by `sqrt(embedDim)` (per-component scale ~1,
 * comparable to the unit-variance noise); `toDataSpace` / `fromDataSpace` convert.
 *
 * Architecture (residual MLP with adaptive LayerNorm):
 *   e = time_embed(sinusoid(t)) + cond_proj(c),   c = keep ? text : null_cond
 *   h = x_proj(x_t)
 *   for each block:  (scale, shift) = blocks.i.emb(silu(e));  h += fc2(silu(fc1(LN(h) * (1 + scale) + shift)))
 *   x0 = out_proj(out_norm(h))
 * Keys: time_embed.0 / time_embed.2 [W, W]; x_proj, cond_proj [W, D]; null_cond [D];
 *   blocks.{i}.norm (LN, W), blocks.{i}.emb [2W, W], blocks.{i}.fc1 [hidden, W], blocks.{i}.fc2 [W, hidden];
 *   out_norm (LN, W); out_proj [D, W].
 */
import * as tf from '@tensorflow/tfjs';
import { ParamOwner } from '../param-owner.js';
import { layerNorm, linear, silu } from '../../lib/ops/nn.js';
import { Rng } from '../../lib/random.js';
import type { StateDict } from '../../lib/io/types.js';
import { fromTorchLayout, toTorchLayout, type TorchLayout } from '../layout.js';

export interface PriorConfig {
  /** CLIP embedding width D. */
  embedDim: number;
  /** Hidden width W. Default 256. */
  width: number;
  /** Residual blocks. Default 4. */
  depth: number;
  /** MLP hidden width in each block. Default 2W. */
  hidden: number;
  /** Diffusion steps of the training schedule (cosine). Default 1000. */
  timesteps: number;
}

export function priorConfig(partial: Partial<PriorConfig> & { embedDim: number }): PriorConfig {
  const width = partial.width ?? 256;
  const c: PriorConfig = {
    embedDim: partial.embedDim,
    width,
    depth: partial.depth ?? 4,
    hidden: partial.hidden ?? 2 * width,
    timesteps: partial.timesteps ?? 1000,
  };
  for (const k of ['embedDim', 'width', 'depth', 'hidden', 'timesteps'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1)
      throw new Error(`Prior config: ${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
  }
  return c;
}

type Layout = Extract<TorchLayout, 'linear' | 'plain'>;
/** Reference key -> PyTorch shape and layout. */
export function priorParamSpecs(c: PriorConfig): Map<string, { shape: number[]; layout: Layout }> {
  const m = new Map<string, { shape: number[]; layout: Layout }>();
  const lin = (name: string, out: number, inp: number) => {
    m.set(`${name}.weight`, { shape: [out, inp], layout: 'linear' });
    m.set(`${name}.bias`, { shape: [out], layout: 'plain' });
  };
  const ln = (name: string, w: number) => {
    m.set(`${name}.weight`, { shape: [w], layout: 'plain' });
    m.set(`${name}.bias`, { shape: [w], layout: 'plain' });
  };
  const W = c.width;
  lin('time_embed.0', W, W);
  lin('time_embed.2', W, W);
  lin('x_proj', W, c.embedDim);
  lin('cond_proj', W, c.embedDim);
  m.set('null_cond', { shape: [c.embedDim], layout: 'plain' });
  for (let i = 0; i < c.depth; i++) {
    ln(`blocks.${i}.norm`, W);
    lin(`blocks.${i}.emb`, 2 * W, W);
    lin(`blocks.${i}.fc1`, c.hidden, W);
    lin(`blocks.${i}.fc2`, W, c.hidden);
  }
  ln('out_norm', W);
  lin('out_proj', c.embedDim, W);
  return m;
}

/** Sinusoidal embedding [N, dim] of timesteps t [N] (guided-diffusion's [cos, sin] convention). */
function sinusoid(t: tf.Tensor1D, dim: number): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = tf
      .range(0, half, 1, 'float32')
      .mul(-Math.log(10000) / half)
      .exp();
    const args = t
      .cast('float32')
      .reshape([-1, 1])
      .mul(freqs.reshape([1, half]));
    let e = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2)
      e = tf.pad(e, [
        [0, 0],
        [0, 1],
      ]);
    return e as tf.Tensor2D;
  });
}

/** Parameters (`params`): reference key -> variable in our layout (linear weights [in, out]). */
export class Prior extends ParamOwner {
  readonly config: PriorConfig;

  private constructor(config: PriorConfig, params: Map<string, tf.Variable>) {
    super(params);
    this.config = config;
  }

  /** Random init: PyTorch Linear default U(+-1/sqrt(in)), LayerNorm 1/0, null_cond N(0, 1); out_proj and the per-block fc2 zeroed (residual starts as identity). */
  static random(config: Partial<PriorConfig> & { embedDim: number }, seed = 0): Prior {
    const c = priorConfig(config);
    const rng = new Rng(seed);
    const params = new Map<string, tf.Variable>();
    for (const [k, spec] of priorParamSpecs(c)) {
      const ours = spec.layout === 'linear' ? [spec.shape[1], spec.shape[0]] : spec.shape;
      let v: tf.Tensor;
      const isNorm = /norm\.(weight|bias)$/.test(k);
      if (isNorm) v = k.endsWith('weight') ? tf.ones(ours) : tf.zeros(ours);
      else if (k === 'null_cond') v = rng.normal(ours);
      else if (/^(out_proj|blocks\.\d+\.fc2)\./.test(k)) v = tf.zeros(ours);
      else {
        const fanIn =
          spec.layout === 'linear' ? spec.shape[1] : priorParamSpecs(c).get(k.replace(/bias$/, 'weight'))!.shape[1];
        const b = 1 / Math.sqrt(fanIn);
        v = rng.uniform(ours, -b, b);
      }
      params.set(k, tf.variable(v, true));
      v.dispose();
    }
    return new Prior(c, params);
  }

  /**
   * From a PyTorch-layout state_dict (our own format: see the module comment).
   * @param config the saved config (`prior.config.json`); embedDim/width/depth/hidden are inferred from shapes when omitted.
   */
  static fromStateDict(
    sd: Map<string, { shape: number[]; data: ArrayLike<number> }>,
    config?: Partial<PriorConfig>,
  ): Prior {
    const xp = sd.get('x_proj.weight');
    const fc1 = sd.get('blocks.0.fc1.weight');
    if (!xp || !fc1) {
      throw new Error(
        `not an unCLIP prior checkpoint: no key ${xp ? 'blocks.0.fc1.weight' : 'x_proj.weight'}; expected a diffguide prior (weights/prior/prior.safetensors, made by: diffguide train prior)`,
      );
    }
    let depth = 0;
    while (sd.has(`blocks.${depth}.fc1.weight`)) depth++;
    const c = priorConfig({ ...config, embedDim: xp.shape[1], width: xp.shape[0], hidden: fc1.shape[0], depth });
    const specs = priorParamSpecs(c);
    const missing = [...specs.keys()].filter((k) => !sd.has(k));
    const bad = [...specs]
      .filter(([k, s]) => sd.has(k) && sd.get(k)!.shape.join() !== s.shape.join())
      .map(([k, s]) => `${k}: file [${sd.get(k)!.shape}] vs expected [${s.shape}]`);
    if (missing.length || bad.length) {
      throw new Error(
        `prior checkpoint does not match (${JSON.stringify(c)}): ${missing.length ? `missing ${missing.slice(0, 8).join(', ')}` : ''}${bad.length ? ` shape mismatch ${bad.slice(0, 8).join('; ')}` : ''}`,
      );
    }
    const params = new Map<string, tf.Variable>();
    for (const [k, spec] of specs) {
      const src = sd.get(k)!;
      const data = src.data instanceof Float32Array ? src.data : Float32Array.from(src.data);
      const v = tf.tidy(() => {
        return tf.variable(fromTorchLayout(tf.tensor(data, spec.shape, 'float32'), spec.layout), true);
      });
      params.set(k, v);
    }
    return new Prior(c, params);
  }

  /** PyTorch-layout state_dict (float32). */
  toStateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [k, spec] of priorParamSpecs(this.config)) {
      const v = this.params.get(k)!;
      const t = toTorchLayout(v, spec.layout, spec.shape);
      out.set(k, { shape: spec.shape, dtype: 'float32', data: t.dataSync() as Float32Array, sourceDtype: 'float32' });
      t.dispose();
    }
    return out;
  }

  /** Scale of the data space: normalised embeddings times this. */
  get dataScale(): number {
    return Math.sqrt(this.config.embedDim);
  }

  /** Embedding [N, D] (any norm) -> data space (unit norm * sqrt(D)). */
  toDataSpace(e: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => e.div(tf.norm(e, 2, 1, true).add(1e-8)).mul(this.dataScale));
  }

  /** Data space -> unit-norm embedding [N, D]. */
  fromDataSpace(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => x.div(tf.norm(x, 2, 1, true).add(1e-8)));
  }

  private p(k: string): tf.Tensor {
    if (this.disposed) throw new Error('Prior was disposed; load it again');
    const v = this.params.get(k);
    if (!v) throw new Error(`Prior: no parameter ${k}`);
    return v;
  }

  /**
   * Predict x0 (data space).
   * @param x [N, D] noisy embedding x_t (data space)
   * @param t [N] timesteps (original schedule's scale)
   * @param text [N, D] text embedding (any norm; normalised inside)
   * @param keep [N] 1 = use the text, 0 = the learned null condition (classifier-free guidance / condition dropout). Default all 1.
   * @returns [N, D] predicted x0 (data space)
   */
  apply(x: tf.Tensor2D, t: tf.Tensor1D, text: tf.Tensor2D, keep?: tf.Tensor1D): tf.Tensor2D {
    return tf.tidy(() => {
      const c = this.config;
      const n = x.shape[0];
      if (x.rank !== 2 || x.shape[1] !== c.embedDim)
        throw new Error(`Prior.apply: x must be [N, ${c.embedDim}], got [${x.shape}]`);
      if (text.shape[0] !== n || text.shape[1] !== c.embedDim)
        throw new Error(`Prior.apply: text must be [${n}, ${c.embedDim}], got [${text.shape}]`);
      const L = (name: string, v: tf.Tensor2D) =>
        linear(v, this.p(`${name}.weight`) as tf.Tensor2D, this.p(`${name}.bias`) as tf.Tensor1D);
      const LN = (name: string, v: tf.Tensor2D) =>
        layerNorm(v, this.p(`${name}.weight`) as tf.Tensor1D, this.p(`${name}.bias`) as tf.Tensor1D, 1e-5);
      let cv = this.toDataSpace(text);
      if (keep) {
        const k = keep.cast('float32').reshape([n, 1]);
        cv = cv.mul(k).add(this.p('null_cond').reshape([1, c.embedDim]).mul(tf.scalar(1).sub(k)));
      }
      const temb = L('time_embed.2', silu(L('time_embed.0', sinusoid(t, c.width))));
      const e = silu(temb.add(L('cond_proj', cv)) as tf.Tensor2D);
      let h = L('x_proj', x);
      for (let i = 0; i < c.depth; i++) {
        const ss = L(`blocks.${i}.emb`, e);
        const scale = ss.slice([0, 0], [n, c.width]);
        const shift = ss.slice([0, c.width], [n, c.width]);
        const hn = LN(`blocks.${i}.norm`, h).mul(scale.add(1)).add(shift) as tf.Tensor2D;
        h = h.add(L(`blocks.${i}.fc2`, silu(L(`blocks.${i}.fc1`, hn)))) as tf.Tensor2D;
      }
      return L('out_proj', LN('out_norm', h));
    });
  }

  /**
   * The training loss (for `diffguide train prior` and tests): MSE between the predicted and true x0
   * at uniformly drawn timesteps, with the text dropped with probability `pDrop`.
   * @param x0 [N, D] target image embeddings (any norm); text [N, D]
   * @param alphasCumprod the cosine schedule's alpha_bar (length = config.timesteps)
   */
  loss(x0: tf.Tensor2D, text: tf.Tensor2D, alphasCumprod: ArrayLike<number>, rng: Rng, pDrop = 0.1): tf.Scalar {
    return tf.tidy(() => {
      const n = x0.shape[0];
      const T = alphasCumprod.length;
      const ts = Array.from({ length: n }, () => rng.int(T));
      const keep = tf.tensor1d(
        Array.from({ length: n }, () => (rng.float() < pDrop ? 0 : 1)),
        'float32',
      );
      const a = tf.tensor2d(
        ts.map((i) => alphasCumprod[i]),
        [n, 1],
      );
      const xd = this.toDataSpace(x0);
      const z = rng.normal<tf.Rank.R2>([n, this.config.embedDim]);
      const xt = xd.mul(a.sqrt()).add(z.mul(tf.scalar(1).sub(a).sqrt())) as tf.Tensor2D;
      const pred = this.apply(xt, tf.tensor1d(ts, 'float32'), text, keep);
      return tf.mean(tf.square(pred.sub(xd))) as tf.Scalar;
    });
  }
}
