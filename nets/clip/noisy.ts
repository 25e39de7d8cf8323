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
import {
  type CLIPVisionConfig,
  inferVisionConfig,
  type ParamSpec,
  validateVisionConfig,
  visionParamSpecs,
} from './config.js';
import { type FilmHook, type ParamGetter, type VisionForwardOptions, visionForward } from './layers.js';
import { clipInitialiser } from './model.js';
import {
  ClipParamModule,
  type Initialiser,
  initParams,
  ourShape,
  type LoadReport,
  loadParams,
  type StateDictLike,
  stateDictEntries,
  torchDefaultInit,
} from './params.js';
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
    const args = t
      .toFloat()
      .reshape([-1, 1])
      .mul(freqs.reshape([1, half]));
    let emb = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2 === 1)
      emb = tf.pad(emb, [
        [0, 0],
        [0, 1],
      ]);
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
  private constructor(
    config: CLIPVisionConfig,
    channels: number,
    dim: number,
    params: Map<string, tf.Variable>,
    specs: Map<string, ParamSpec>,
    created: string[],
    report: LoadReport,
    opts: NoisyCLIPOptions,
  ) {
    super(params, specs);
    this.config = config;
    this.timeEmbedChannels = channels;
    this.timeEmbedDim = dim;
    this.created = created;
    this.loadReport = report;
    this.preprocessOptions = { clip: false, ...opts.preprocess };
    this.jointFilm();
  }

  /**
   * All FiLM linears side by side: w [timeEmbedDim, Σ 2C], b [Σ 2C] with 1 folded into each scale half's
   * bias (so the product gives 1 + scale). Kept while the FiLM parameters are the same tensors (a
   * training step's assign replaces them; then it is rebuilt); built with the encoder so a forward
   * never adds tensors; only while small (≤ 4M floats).
   */
  private joint: {
    w: tf.Tensor2D;
    b: tf.Tensor1D;
    names: string[];
    sizes: number[];
    src: tf.Variable[];
    ids: object[];
  } | null = null;
  private jointFilm(): { w: tf.Tensor2D; b: tf.Tensor1D; names: string[]; sizes: number[]; src: tf.Variable[] } | null {
    const names = normLayers(this.config).map((l) => l.name);
    const src = names.flatMap((n) => [
      this.params.get(`visual.film.${n}.weight`),
      this.params.get(`visual.film.${n}.bias`),
    ]);
    if (!names.length || src.some((v) => !v)) return null;
    const vars = src as tf.Variable[];
    if (this.joint && this.joint.ids.every((id, i) => id === vars[i].dataId)) return this.joint;
    if (this.joint) {
      tf.dispose([this.joint.w, this.joint.b]);
      this.joint = null;
    }
    const total = vars.reduce((a, v, i) => a + (i % 2 === 0 ? v.size : 0), 0);
    if (total > 4 * 2 ** 20) return null;
    const sizes: number[] = [];
    const ones: number[] = [];
    for (let i = 0; i < vars.length; i += 2) {
      const c = vars[i + 1].size / 2;
      sizes.push(c, c);
      for (let j = 0; j < 2 * c; j++) ones.push(j < c ? 1 : 0);
    }
    const { w, b } = tf.tidy(() => ({
      w: tf.concat(
        vars.filter((_, i) => i % 2 === 0),
        1,
      ) as tf.Tensor2D,
      b: tf
        .concat(
          vars.filter((_, i) => i % 2 === 1),
          0,
        )
        .add(tf.tensor1d(ones, 'float32')) as tf.Tensor1D,
    }));
    this.joint = { w: tf.keep(w), b: tf.keep(b), names, sizes, src: vars, ids: vars.map((v) => v.dataId) };
    return this.joint;
  }

  override dispose(): void {
    if (this.joint) tf.dispose([this.joint.w, this.joint.b]);
    this.joint = null;
    super.dispose();
  }

  /**
   * Every norm's (1 + scale, shift) [N, C] from one product with the joint FiLM weights. A custom
   * gradient hands the FiLM parameters their own gradients (training), and a guidance gradient with
   * respect to the image never reaches it (it depends on t only).
   */
  private filmParts(act: tf.Tensor2D): { names: string[]; parts: tf.Tensor2D[] } {
    const j = this.jointFilm();
    if (!j) return { names: [], parts: [] };
    const k = j.src.length;
    const f = tf.customGrad(((...args: unknown[]) => {
      const a = args[0] as tf.Tensor2D;
      const save = args[k + 1] as tf.GradSaveFunc;
      save([a]);
      return {
        value: linear(a, j.w, j.b),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const dy2 = dy as tf.Tensor2D;
          const da = tf.matMul(dy2, j.w, false, true);
          const dws = tf.split(
            tf.matMul(saved[0] as tf.Tensor2D, dy2, true, false),
            j.sizes.map((_, i) => (i % 2 === 0 ? 2 * j.sizes[i] : 0)).filter((v) => v > 0),
            1,
          );
          const dbs = tf.split(
            dy2.sum(0),
            j.sizes.map((_, i) => (i % 2 === 0 ? 2 * j.sizes[i] : 0)).filter((v) => v > 0),
            0,
          );
          const grads: tf.Tensor[] = [da];
          for (let i = 0; i < dws.length; i++) grads.push(dws[i], dbs[i]);
          return grads;
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    const ss = f(act, ...j.src) as tf.Tensor2D;
    return { names: j.names, parts: tf.split(ss, j.sizes, 1) as tf.Tensor2D[] };
  }

  /**
   * Load from a plain CLIP state_dict (extra keys created fresh, listed in `created`) or from a saved
   * noisy encoder (all keys present). Text-tower keys are ignored. The config is inferred from the
   * `visual.*` keys unless given; the time-MLP widths from `visual.time_embed.*` when present.
   * @param seed seeds the fresh time-embedding MLP (default 0)
   */
  static fromStateDict(
    sd: StateDictLike,
    config?: CLIPVisionConfig,
    opts: NoisyCLIPOptions & { seed?: number } = {},
  ): NoisyCLIPImageEncoder {
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
      throw new Error(
        `noisy CLIP: the state_dict lacks ${missingTower.length} image-tower keys (${missingTower.slice(0, 5).join(', ')}${missingTower.length > 5 ? ', ...' : ''}); pass an openai/CLIP state_dict or a saved noisy CLIP encoder`,
      );
    }
    const created = report.missing.filter((k) => extra.has(k));
    const fresh = new Map(created.map((k) => [k, extra.get(k) as ParamSpec]));
    for (const [k, v] of initParams(fresh, opts.seed ?? 0, extraInitialiser(channels, dim))) params.set(k, v);
    const ordered = new Map([...specs.keys()].map((k) => [k, params.get(k) as tf.Variable]));
    return new NoisyCLIPImageEncoder(
      c,
      channels,
      dim,
      ordered,
      specs,
      created,
      { missing: [], unexpected: report.unexpected },
      opts,
    );
  }

  /** A random tower (CLIP's init) with identity FiLM. */
  static random(config: CLIPVisionConfig, seed: number, opts: NoisyCLIPOptions = {}): NoisyCLIPImageEncoder {
    validateVisionConfig(config);
    const channels = opts.timeEmbedChannels ?? NOISY_CLIP_DEFAULT_TIME_CHANNELS;
    const dim = opts.timeEmbedDim ?? NOISY_CLIP_DEFAULT_TIME_DIM;
    const tower = visionParamSpecs(config);
    const extra = noisyExtraSpecs(config, channels, dim);
    // clipInitialiser needs text widths only for text keys, which the tower has none of.
    const init = clipInitialiser({
      ...config,
      contextLength: 1,
      vocabSize: 1,
      transformerWidth: 1,
      transformerHeads: 1,
      transformerLayers: 1,
    });
    const params = initParams(tower, seed, init);
    for (const [k, v] of initParams(extra, seed + 1, extraInitialiser(channels, dim))) params.set(k, v);
    return new NoisyCLIPImageEncoder(
      config,
      channels,
      dim,
      params,
      new Map([...tower, ...extra]),
      [...extra.keys()],
      { missing: [], unexpected: [] },
      opts,
    );
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
  encodeImagePixels(
    pixels: tf.Tensor4D,
    t?: tf.Tensor1D,
    opts: Omit<VisionForwardOptions, 'film'> = {},
  ): ImageEncoding & { intermediates: Record<string, tf.Tensor> } {
    const p = this.getter;
    const n = pixels.shape[0];
    if (t && t.shape[0] !== n && t.shape[0] !== 1)
      throw new Error(`NoisyCLIPImageEncoder: t has ${t.shape[0]} timesteps for ${n} images (give [N] or [1])`);
    let names: string[] = [];
    const { act, parts: flat } = tf.tidy(() => {
      const tt = t ? tf.broadcastTo(t.toFloat(), [n]) : tf.zeros([n]);
      const feats = noisyClipTimestepFeatures(tt as tf.Tensor1D, this.timeEmbedChannels);
      const h = linear(
        silu(
          linear(feats, p('visual.time_embed.0.weight') as tf.Tensor2D, p('visual.time_embed.0.bias') as tf.Tensor1D),
        ),
        p('visual.time_embed.2.weight') as tf.Tensor2D,
        p('visual.time_embed.2.bias') as tf.Tensor1D,
      );
      const a = silu(h) as tf.Tensor2D;
      const fp = this.filmParts(a);
      names = fp.names;
      return { act: a, parts: fp.parts };
    }) as { act: tf.Tensor2D; parts: tf.Tensor2D[] };
    /** (1 + scale, shift) [N, C] by norm name (without `visual.`). */
    const parts = new Map<string, [tf.Tensor2D, tf.Tensor2D]>(
      names.map((nm, i) => [nm, [flat[2 * i], flat[2 * i + 1]]]),
    );
    const film: FilmHook = (name, x) =>
      tf.tidy(() => {
        const c = x.shape[x.shape.length - 1];
        const bshape = [n, ...new Array(x.rank - 2).fill(1), c];
        const pre = parts.get(name.slice('visual.'.length));
        if (pre) return x.mul(pre[0].reshape(bshape)).add(pre[1].reshape(bshape));
        const key = 'visual.film.' + name.slice('visual.'.length);
        const ss = linear(act, p(key + '.weight') as tf.Tensor2D, p(key + '.bias') as tf.Tensor1D);
        const scale = ss.slice([0, 0], [n, c]).reshape(bshape);
        const shift = ss.slice([0, c], [n, c]).reshape(bshape);
        return x.mul(scale.add(1)).add(shift);
      });
    try {
      return visionForward(p, this.config, pixels, { ...opts, film });
    } finally {
      act.dispose();
      tf.dispose(flat);
    }
  }

  /**
   * `ImageEncoder.encodeImage` with `opts.t` (default t = 0).
   * @param x [N, H, W, 3] in [-1, 1], any size
   */
  encodeImage(x: tf.Tensor4D, opts: EncodeImageOptions = {}): ImageEncoding {
    const pixels = clipPreprocess(x, this.config.imageResolution, this.preprocessOptions);
    try {
      const { embedding, features } = this.encodeImagePixels(pixels, opts.t, {
        features: opts.features,
        batchStats: opts.training ? this.runningStatsHook() : undefined,
      });
      return { embedding, features };
    } finally {
      pixels.dispose();
    }
  }

  protected saveMetadata(): { arch: string; config: object } {
    return {
      arch: 'noisy-clip-image-encoder',
      config: { ...this.config, timeEmbedChannels: this.timeEmbedChannels, timeEmbedDim: this.timeEmbedDim },
    };
  }
}
