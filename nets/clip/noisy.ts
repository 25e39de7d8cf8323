/**
 * Time-conditioned ("noisy") CLIP image encoder for Semantic Diffusion Guidance: CLIP's image tower
 * (ViT or ModifiedResNet) plus a timestep-embedding MLP whose output modulates every normalisation
 * layer with FiLM: `y = norm(x) * (1 + scale(t)) + shift(t)`.
 *
 * Extra parameters (all under `visual.`, PyTorch layout on disk):
 *   visual.time_embed.0.{weight,bias}   Linear(timeEmbedChannels -> timeEmbedDim), SiLU,
 *   visual.time_embed.2.{weight,bias}   Linear(timeEmbedDim -> timeEmbedDim)
 *   visual.film.<norm>.{weight,bias}    SiLU, Linear(timeEmbedDim -> 2 C): [scale | shift] for the
 *                                       norm at `visual.<norm>` (ln_pre, transformer.resblocks.i.ln_1, ...)
 * The FiLM linears start at zero, so a fresh encoder computes exactly the plain CLIP tower for every t.
 */
import * as tf from '@tensorflow/tfjs';
import { type CLIPVisionConfig, inferVisionConfig, type ParamSpec, validateVisionConfig, visionParamSpecs } from './config.js';
import { type FilmHook, type ParamGetter, visionForward } from './layers.js';
import { clipInitialiser } from './model.js';
import { ClipParamModule, type Initialiser, initParams, ourShape, type LoadReport, loadParams, type StateDictLike, stateDictEntries, torchDefaultInit } from './params.js';
import { clipPreprocess, type PreprocessOptions } from './preprocess.js';
import type { EncodeImageOptions, ImageEncoder, ImageEncoding } from './types.js';
import { silu, linear } from '../../lib/ops/nn.js';

export interface NoisyCLIPOptions {
  /** Width of the sinusoidal timestep features (default 128). */
  timeEmbedChannels?: number;
  /**
   * Width of the timestep MLP (default 256). Each norm's FiLM layer has timeEmbedDim x 2C weights,
   * so this sets the size of the extra parameters (ViT-B/32 at 256: 25 norms, 9.8 M).
   */
  timeEmbedDim?: number;
  /**
   * Image preprocessing for `encodeImage`. Default `{clip: false}`: noisy x_t leaves [-1, 1], and
   * clipping after the resize would block its gradient.
   */
  preprocess?: PreprocessOptions;
}

/**
 * Sinusoidal timestep features as guided-diffusion's `timestep_embedding`: [cos, sin] of
 * t * exp(-ln(10000) i / half), zero-padded when `dim` is odd.
 * @param t [N] (raw timesteps, float or int) -> [N, dim]
 */
export function noisyClipTimestepFeatures(t: tf.Tensor1D, dim: number, maxPeriod = 10000): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = tf.exp(tf.range(0, half, 1, 'float32').mul(-Math.log(maxPeriod) / half));
    const args = t.toFloat().reshape([-1, 1]).mul(freqs.reshape([1, half]));
    let emb = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2 === 1) emb = tf.pad(emb, [[0, 0], [0, 1]]);
    return emb as tf.Tensor2D;
  });
}

/** Module paths (without `visual.`) and channel counts of the tower's normalisation layers. */
export function normLayers(c: CLIPVisionConfig): { name: string; channels: number }[] {
  const out: { name: string; channels: number }[] = [];
  for (const [k, spec] of visionParamSpecs(c)) {
    const m = /^visual\.(.*(?:ln_\w+|bn\d|downsample\.1))\.weight$/.exec(k);
    if (m) out.push({ name: m[1], channels: spec.shape[0] });
  }
  return out;
}

/** Specs of the extra (time-conditioning) parameters. */
export function noisyExtraSpecs(c: CLIPVisionConfig, channels: number, dim: number): Map<string, ParamSpec> {
  const out = new Map<string, ParamSpec>();
  const lin = (k: string, o: number, i: number) => {
    out.set(k + '.weight', { shape: [o, i], kind: 'linear', dtype: 'float32' });
    out.set(k + '.bias', { shape: [o], kind: 'vector', dtype: 'float32' });
  };
  lin('visual.time_embed.0', dim, channels);
  lin('visual.time_embed.2', dim, dim);
  for (const n of normLayers(c)) lin(`visual.film.${n.name}`, 2 * n.channels, dim);
  return out;
}

export const NOISY_CLIP_DEFAULT_TIME_CHANNELS = 128;
export const NOISY_CLIP_DEFAULT_TIME_DIM = 256;

/** Time-embedding MLP: PyTorch's default Linear init; FiLM layers: zero (identity modulation). */
function extraInitialiser(channels: number, dim: number): Initialiser {
  return (key, spec, rng) => {
    if (key.startsWith('visual.film.')) return tf.zeros(ourShape(spec.kind, spec.shape));
    return torchDefaultInit(spec, rng, key.startsWith('visual.time_embed.0.') ? channels : dim);
  };
}

export class NoisyCLIPImageEncoder extends ClipParamModule implements ImageEncoder {
  readonly config: CLIPVisionConfig;
  readonly timeEmbedChannels: number;
  readonly timeEmbedDim: number;
  /** Extra keys that were not in the loaded state_dict and were created fresh (zero FiLM => plain CLIP). */
  readonly created: string[];
  /** Missing / unexpected keys of the loaded state_dict (text-tower keys of a full CLIP file are not unexpected). */
  readonly loadReport: LoadReport;
  private readonly preprocessOptions: PreprocessOptions;

  /** `params` hold the tower's `visual.*` keys plus the extra (time embedding, FiLM) keys. */
  private constructor(config: CLIPVisionConfig, channels: number, dim: number, params: Map<string, tf.Variable>, specs: Map<string, ParamSpec>, created: string[], report: LoadReport, opts: NoisyCLIPOptions) {
    super(params, specs);
    this.config = config;
    this.timeEmbedChannels = channels;
    this.timeEmbedDim = dim;
    this.created = created;
    this.loadReport = report;
    this.preprocessOptions = { clip: false, ...opts.preprocess };
  }

  /**
   * Load from a plain CLIP state_dict (extra keys created fresh, listed in `created`) or from a saved
   * noisy encoder (all keys present). Text-tower keys are ignored. The config is inferred from the
   * `visual.*` keys unless given; the time-MLP widths from `visual.time_embed.*` when present.
   * @param seed seeds the fresh time-embedding MLP (default 0)
   */
  static fromStateDict(sd: StateDictLike, config?: CLIPVisionConfig, opts: NoisyCLIPOptions & { seed?: number } = {}): NoisyCLIPImageEncoder {
    const entries = stateDictEntries(sd);
    const shapes = new Map(entries.map(([k, v]) => [k, { shape: v.shape }]));
    const c = config ?? inferVisionConfig(shapes);
    validateVisionConfig(c);
    const te0 = shapes.get('visual.time_embed.0.weight');
    const channels = opts.timeEmbedChannels ?? te0?.shape[1] ?? NOISY_CLIP_DEFAULT_TIME_CHANNELS;
    const dim = opts.timeEmbedDim ?? te0?.shape[0] ?? NOISY_CLIP_DEFAULT_TIME_DIM;
    const tower = visionParamSpecs(c);
    const extra = noisyExtraSpecs(c, channels, dim);
    const specs = new Map([...tower, ...extra]);
    const { params, report } = loadParams(specs, sd, {
      ignore: (k) => !k.startsWith('visual.'),
      allowMissing: true,
      what: 'noisy CLIP image encoder',
    });
    const missingTower = report.missing.filter((k) => tower.has(k));
    if (missingTower.length) {
      for (const v of params.values()) v.dispose();
      throw new Error(`noisy CLIP: the state_dict lacks ${missingTower.length} image-tower keys (${missingTower.slice(0, 5).join(', ')}${missingTower.length > 5 ? ', ...' : ''}); pass an openai/CLIP state_dict or a saved noisy CLIP encoder`);
    }
    const created = report.missing.filter((k) => extra.has(k));
    const fresh = new Map(created.map((k) => [k, extra.get(k) as ParamSpec]));
    for (const [k, v] of initParams(fresh, opts.seed ?? 0, extraInitialiser(channels, dim))) params.set(k, v);
    const ordered = new Map([...specs.keys()].map((k) => [k, params.get(k) as tf.Variable]));
    return new NoisyCLIPImageEncoder(c, channels, dim, ordered, specs, created, { missing: [], unexpected: report.unexpected }, opts);
  }

  /** A random tower (CLIP's init) with identity FiLM. */
  static random(config: CLIPVisionConfig, seed: number, opts: NoisyCLIPOptions = {}): NoisyCLIPImageEncoder {
    validateVisionConfig(config);
    const channels = opts.timeEmbedChannels ?? NOISY_CLIP_DEFAULT_TIME_CHANNELS;
    const dim = opts.timeEmbedDim ?? NOISY_CLIP_DEFAULT_TIME_DIM;
    const tower = visionParamSpecs(config);
    const extra = noisyExtraSpecs(config, channels, dim);
    // clipInitialiser needs text widths only for text keys, which the tower has none of.
    const init = clipInitialiser({ ...config, contextLength: 1, vocabSize: 1, transformerWidth: 1, transformerHeads: 1, transformerLayers: 1 });
    const params = initParams(tower, seed, init);
    for (const [k, v] of initParams(extra, seed + 1, extraInitialiser(channels, dim))) params.set(k, v);
    return new NoisyCLIPImageEncoder(config, channels, dim, params, new Map([...tower, ...extra]), [...extra.keys()], { missing: [], unexpected: [] }, opts);
  }

  get embedDim(): number {
    return this.config.embedDim;
  }

  get imageResolution(): number {
    return this.config.imageResolution;
  }

  private get getter(): ParamGetter {
    if (this.disposed) throw new Error('NoisyCLIPImageEncoder: this model was disposed');
    return (key: string) => {
      const v = this.params.get(key);
      if (!v) throw new Error(`NoisyCLIPImageEncoder: no parameter '${key}'`);
      return v;
    };
  }

  /**
   * The tower on normalised pixels, conditioned on t.
   * @param pixels [N, R, R, 3] normalised; t [N] or [1] timesteps (default 0)
   */
  encodeImagePixels(pixels: tf.Tensor4D, t?: tf.Tensor1D, opts: { features?: boolean; intermediates?: boolean } = {}): ImageEncoding & { intermediates: Record<string, tf.Tensor> } {
    const p = this.getter;
    const n = pixels.shape[0];
    if (t && t.shape[0] !== n && t.shape[0] !== 1) throw new Error(`NoisyCLIPImageEncoder: t has ${t.shape[0]} timesteps for ${n} images (give [N] or [1])`);
    const act = tf.tidy(() => {
      const tt = t ? tf.broadcastTo(t.toFloat(), [n]) : tf.zeros([n]);
      const feats = noisyClipTimestepFeatures(tt as tf.Tensor1D, this.timeEmbedChannels);
      const h = linear(silu(linear(feats, p('visual.time_embed.0.weight') as tf.Tensor2D, p('visual.time_embed.0.bias') as tf.Tensor1D)), p('visual.time_embed.2.weight') as tf.Tensor2D, p('visual.time_embed.2.bias') as tf.Tensor1D);
      return silu(h);
    });
    const film: FilmHook = (name, x) =>
      tf.tidy(() => {
        const key = 'visual.film.' + name.slice('visual.'.length);
        const ss = linear(act, p(key + '.weight') as tf.Tensor2D, p(key + '.bias') as tf.Tensor1D);
        const c = x.shape[x.shape.length - 1];
        const bshape = [n, ...new Array(x.rank - 2).fill(1), c];
        const scale = ss.slice([0, 0], [n, c]).reshape(bshape);
        const shift = ss.slice([0, c], [n, c]).reshape(bshape);
        return x.mul(scale.add(1)).add(shift);
      });
    try {
      return visionForward(p, this.config, pixels, { ...opts, film });
    } finally {
      act.dispose();
    }
  }

  /**
   * `ImageEncoder.encodeImage` with `opts.t` (default t = 0).
   * @param x [N, H, W, 3] in [-1, 1], any size
   */
  encodeImage(x: tf.Tensor4D, opts: EncodeImageOptions = {}): ImageEncoding {
    const pixels = clipPreprocess(x, this.config.imageResolution, this.preprocessOptions);
    try {
      const { embedding, features } = this.encodeImagePixels(pixels, opts.t, { features: opts.features });
      return { embedding, features };
    } finally {
      pixels.dispose();
    }
  }

  protected saveMetadata(): { arch: string; config: object } {
    return { arch: 'noisy-clip-image-encoder', config: { ...this.config, timeEmbedChannels: this.timeEmbedChannels, timeEmbedDim: this.timeEmbedDim } };
  }
}
