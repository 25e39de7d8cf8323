/**
 * openai/CLIP (`clip/model.py`) in TensorFlow.js: ViT or ModifiedResNet image tower, causal text
 * transformer, projections and logit scale. Parameters are `tf.Variable`s keyed by the reference
 * state_dict names (trainable), channels-last inside.
 */
import * as tf from '@tensorflow/tfjs';
import {
  BOTH_TOWERS,
  type CLIPConfig,
  type CLIPTowers,
  CLIP_NON_PARAM_KEYS,
  clipParamSpecs,
  clipTowersIn,
  inferClipConfig,
  inferredHeadsNote,
  type InferredNote,
  isVitConfig,
  type ParamSpec,
  validateClipConfig,
  warnInferred,
} from './config.js';
import { type ParamGetter, type VisionForwardOptions, textForward, visionForward } from './layers.js';
import {
  ClipParamModule,
  initParams,
  type LoadReport,
  loadParams,
  ourShape,
  type StateDictLike,
  stateDictEntries,
  torchDefaultInit,
} from './params.js';
import { clipPreprocess, type PreprocessOptions } from './preprocess.js';
import { type TokenizeOptions, Tokenizer } from './tokenizer.js';
import type { EncodeImageOptions, ImageEncoder, ImageEncoding, TextEncoder } from './types.js';
import type { Rng } from '../../lib/random.js';

export interface CLIPLoadOptions {
  /**
   * Which towers to load. 'auto' (default): those the state_dict holds — a file with only `visual.*`
   * keys (e.g. a traced image encoder) gives an image-only model, one without them a text-only
   * model; 'both' requires both.
   */
  towers?: 'auto' | 'both' | 'image' | 'text';
  /** Tokenizer for `encodeText` (default: CLIP's BPE with vocabSize - 514 merges). */
  tokenizer?: Tokenizer;
  /** Image preprocessing options for `encodeImage`. */
  preprocess?: PreprocessOptions;
  /**
   * Receives one line for each config value inferred rather than read (no config given: the text head count).
   * Default: a warning on stderr (console.warn), each distinct line once per process.
   */
  onInferred?: InferredNote;
}

export interface CLIPLogits {
  /** [N_image, N_text] exp(logit_scale) * cos-similarity */
  logitsPerImage: tf.Tensor2D;
  /** [N_text, N_image] the transpose */
  logitsPerText: tf.Tensor2D;
}

export interface CLIPForward extends CLIPLogits {
  /** [N_image, D] un-normalised (`encode_image`) */
  imageFeatures: tf.Tensor2D;
  /** [N_text, D] un-normalised (`encode_text`) */
  textFeatures: tf.Tensor2D;
}

/** openai/CLIP's `initialize_parameters` (plus PyTorch defaults for the rest), in our layout. */
export function clipInitialiser(c: CLIPConfig) {
  return (key: string, spec: ParamSpec, rng: Rng): tf.Tensor => {
    const shape = ourShape(spec.kind, spec.shape);
    const normal = (std: number) => rng.normal(shape).mul(std);
    const last = key.split('.').pop() as string;
    if (spec.kind === 'buffer') {
      if (last === 'running_var') return tf.ones(shape);
      return tf.zeros(shape, spec.dtype === 'int64' ? 'int32' : 'float32');
    }
    if (key === 'logit_scale') return tf.scalar(Math.log(1 / 0.07));
    if (key === 'token_embedding.weight') return normal(0.02);
    if (key === 'positional_embedding') return normal(0.01);
    if (key === 'text_projection') return normal(c.transformerWidth ** -0.5);
    const vit = isVitConfig(c);
    if (vit && ['visual.class_embedding', 'visual.positional_embedding', 'visual.proj'].includes(key))
      return normal(c.visionWidth ** -0.5);
    if (/(^|\.)(ln_\w+|bn\d|downsample\.1)\.(weight|bias)$/.test(key)) {
      // LayerNorm / BatchNorm affine: ones / zeros (the reference zero-inits each Bottleneck's bn3.weight).
      if (last === 'bias') return tf.zeros(shape);
      return !vit && /layer\d\.\d+\.bn3\.weight$/.test(key) ? tf.zeros(shape) : tf.ones(shape);
    }
    const m = /^(visual\.)?transformer\.resblocks\.\d+\.(.*)$/.exec(key);
    if (m) {
      const visual = m[1] !== undefined;
      const width = visual ? c.visionWidth : c.transformerWidth;
      const layers = visual ? (c.visionLayers as number) : c.transformerLayers;
      const projStd = width ** -0.5 * (2 * layers) ** -0.5;
      switch (m[2]) {
        case 'attn.in_proj_weight':
          return normal(width ** -0.5);
        case 'attn.out_proj.weight':
          return normal(projStd);
        case 'mlp.c_fc.weight':
          return normal((2 * width) ** -0.5);
        case 'mlp.c_proj.weight':
          return normal(projStd);
        case 'attn.in_proj_bias':
        case 'attn.out_proj.bias':
          return tf.zeros(shape);
        case 'mlp.c_fc.bias':
          return torchDefaultInit(spec, rng, width);
        case 'mlp.c_proj.bias':
          return torchDefaultInit(spec, rng, 4 * width);
      }
    }
    if (key === 'visual.attnpool.positional_embedding') return normal(spec.shape[1] ** -0.5);
    const ap = /^visual\.attnpool\.(\w+)_proj\.(weight|bias)$/.exec(key);
    if (ap) {
      const inF = c.visionWidth * 32;
      if (ap[2] === 'weight') return normal(inF ** -0.5);
      return torchDefaultInit(spec, rng, inF);
    }
    if (spec.kind === 'conv') return torchDefaultInit(spec, rng, spec.shape[1] * spec.shape[2] * spec.shape[3]);
    throw new Error(`internal: no initialiser for CLIP parameter ${key}`);
  };
}

/**
 * CLIP's symmetric contrastive (InfoNCE) loss: mean of the cross-entropies of logits_per_image
 * and logits_per_text against the diagonal (pair i matches pair i).
 * @param logitsPerImage [N, N] from `CLIP.logits`
 */
export function clipContrastiveLoss(logitsPerImage: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const n = logitsPerImage.shape[0];
    if (logitsPerImage.shape[1] !== n)
      throw new Error(
        `clipContrastiveLoss: needs square [N, N] logits (N matched pairs), got [${logitsPerImage.shape}]`,
      );
    const labels = tf.oneHot(tf.range(0, n, 1, 'int32'), n);
    const ce = (l: tf.Tensor2D) => tf.neg(tf.sum(labels.mul(tf.logSoftmax(l, 1)))).div(n);
    return ce(logitsPerImage)
      .add(ce(logitsPerImage.transpose() as tf.Tensor2D))
      .div(2) as tf.Scalar;
  });
}

/** Keys ignored when loading a full CLIP state_dict. */
function isNonParamKey(k: string): boolean {
  return CLIP_NON_PARAM_KEYS.includes(k);
}

export class CLIP extends ClipParamModule implements ImageEncoder, TextEncoder {
  readonly config: CLIPConfig;
  /** Missing / unexpected keys of the state_dict this model was loaded from (empty for random init). */
  readonly loadReport: LoadReport;
  /** The towers this model has (both unless loaded from a one-tower file). */
  readonly towers: Readonly<CLIPTowers>;
  private tokenizerInstance: Tokenizer | undefined;
  private readonly preprocessOptions: PreprocessOptions;

  protected constructor(
    config: CLIPConfig,
    params: Map<string, tf.Variable>,
    specs: Map<string, ParamSpec>,
    report: LoadReport,
    opts: CLIPLoadOptions,
    towers: CLIPTowers = BOTH_TOWERS,
  ) {
    super(params, specs);
    this.config = config;
    this.towers = { ...towers };
    this.loadReport = report;
    this.tokenizerInstance = opts.tokenizer;
    this.preprocessOptions = opts.preprocess ?? {};
  }

  /**
   * Build from a PyTorch-layout state_dict (`readStateDict(path)` of lib/io, or any key -> tensor map).
   * The config is inferred from the keys/shapes as `build_model` does unless given. Non-parameter
   * entries of the released files (`input_resolution`, `context_length`, `vocab_size`) are ignored;
   * missing keys throw; unexpected keys are listed in `loadReport.unexpected`.
   */
  static fromStateDict(sd: StateDictLike, config?: CLIPConfig, opts: CLIPLoadOptions = {}): CLIP {
    const shapes = new Map(stateDictEntries(sd).map(([k, v]) => [k, { shape: v.shape }]));
    const mode = opts.towers ?? 'auto';
    let towers: CLIPTowers;
    if (mode === 'auto') {
      towers = clipTowersIn(shapes);
      if (!towers.image && !towers.text)
        throw new Error(
          `not a CLIP state_dict: no 'visual.*' (image tower) or 'token_embedding.weight' / 'text_projection' (text tower) keys; first keys: ${[...shapes.keys()].slice(0, 4).join(', ')}`,
        );
    } else {
      towers = { image: mode !== 'text', text: mode !== 'image' };
    }
    const c = config ?? inferClipConfig(shapes, towers);
    if (!config && towers.text)
      (opts.onInferred ?? warnInferred)(
        inferredHeadsNote('no CLIP config was given', c.transformerWidth, c.transformerHeads),
      );
    validateClipConfig(c, towers);
    const specs = clipParamSpecs(c, towers);
    // A one-tower file may still carry logit_scale; keep it when present.
    if (!(towers.image && towers.text) && shapes.has('logit_scale'))
      specs.set('logit_scale', { shape: [], kind: 'vector', dtype: 'float32' });
    const { params, report } = loadParams(specs, sd, {
      ignore: isNonParamKey,
      what: towers.image && towers.text ? 'CLIP' : towers.image ? 'CLIP image tower' : 'CLIP text tower',
    });
    return new CLIP(c, params, specs, report, opts, towers);
  }

  /** A randomly initialised CLIP (openai/CLIP's `initialize_parameters`), seeded. */
  static random(config: CLIPConfig, seed: number, opts: CLIPLoadOptions = {}): CLIP {
    validateClipConfig(config);
    const specs = clipParamSpecs(config);
    const params = initParams(specs, seed, clipInitialiser(config));
    return new CLIP(config, params, specs, { missing: [], unexpected: [] }, opts);
  }

  get embedDim(): number {
    return this.config.embedDim;
  }

  /** Square input resolution of the image tower. */
  get imageResolution(): number {
    return this.config.imageResolution;
  }

  /** The tokenizer `encodeText` uses (CLIP's BPE truncated to this model's vocabulary). */
  get tokenizer(): Tokenizer {
    if (!this.tokenizerInstance) this.tokenizerInstance = Tokenizer.forVocabSize(this.config.vocabSize);
    return this.tokenizerInstance;
  }

  private requireTower(t: 'image' | 'text'): void {
    if (!this.towers[t])
      throw new Error(
        `this CLIP has no ${t} tower (it was loaded from a file holding only the ${t === 'image' ? 'text' : 'image'} tower); load a full CLIP checkpoint`,
      );
  }

  protected get getter(): ParamGetter {
    if (this.disposed) throw new Error('CLIP: this model was disposed');
    return (key: string) => {
      const v = this.params.get(key);
      if (!v) throw new Error(`CLIP: no parameter '${key}' in this model`);
      return v;
    };
  }

  /**
   * Image tower on already-normalised pixels at the model resolution.
   * @param pixels [N, R, R, 3] (the reference's preprocessed image, NHWC)
   * @param opts.film internal hook (used by the time-conditioned encoder); opts.batchStats: training-mode BatchNorm
   */
  encodeImagePixels(
    pixels: tf.Tensor4D,
    opts: VisionForwardOptions = {},
  ): ImageEncoding & { intermediates: Record<string, tf.Tensor> } {
    this.requireTower('image');
    return visionForward(this.getter, this.config, pixels, opts);
  }

  /**
   * `ImageEncoder.encodeImage`: [-1, 1] images of any size -> CLIP preprocessing -> image tower.
   * @param x [N, H, W, 3] in [-1, 1]
   * @returns embedding [N, D] (un-normalised) and, with `features`, each block's tokens [N, L, C]
   */
  encodeImage(x: tf.Tensor4D, opts: EncodeImageOptions = {}): ImageEncoding {
    const pixels = clipPreprocess(x, this.config.imageResolution, this.preprocessOptions);
    try {
      const { embedding, features } = this.encodeImagePixels(pixels, {
        features: opts.features,
        batchStats: opts.training ? this.runningStatsHook() : undefined,
      });
      return { embedding, features };
    } finally {
      pixels.dispose();
    }
  }

  /**
   * `CLIP.encode_text` on token ids.
   * @param ids [N, ctx] int32 (ctx <= contextLength), each row [SOT, ..., EOT, 0...]
   * @returns [N, D] un-normalised
   */
  encodeTokens(ids: tf.Tensor2D): tf.Tensor2D {
    this.requireTower('text');
    return textForward(this.getter, this.config, ids);
  }

  /** Tokenise (context length of this model) and encode. @returns [N, D] un-normalised */
  encodeText(texts: string[], opts: Pick<TokenizeOptions, 'truncate'> = {}): tf.Tensor2D {
    this.requireTower('text');
    const ids = this.tokenizer.tokenizeTensor(texts, {
      contextLength: this.config.contextLength,
      truncate: opts.truncate,
    });
    try {
      return this.encodeTokens(ids);
    } finally {
      ids.dispose();
    }
  }

  /**
   * The logits of `CLIP.forward` from un-normalised features.
   * @param imageEmb [N_i, D]; textEmb [N_t, D]
   */
  logits(imageEmb: tf.Tensor2D, textEmb: tf.Tensor2D): CLIPLogits {
    if (!this.params.has('logit_scale'))
      throw new Error(
        'this CLIP has no logit_scale (loaded from a file holding only the image tower); load a full CLIP checkpoint',
      );
    return tf.tidy(() => {
      const scale = tf.exp(this.getter('logit_scale'));
      const img = imageEmb.div(tf.norm(imageEmb, 'euclidean', 1, true));
      const txt = textEmb.div(tf.norm(textEmb, 'euclidean', 1, true));
      const logitsPerImage = tf.matMul(img, txt, false, true).mul(scale) as tf.Tensor2D;
      return { logitsPerImage, logitsPerText: logitsPerImage.transpose() as tf.Tensor2D };
    });
  }

  /**
   * `CLIP.forward(image, text)`.
   * @param pixels [N_i, R, R, 3] normalised; ids [N_t, ctx] int32
   */
  forward(pixels: tf.Tensor4D, ids: tf.Tensor2D): CLIPForward {
    const imageFeatures = this.encodeImagePixels(pixels).embedding;
    const textFeatures = this.encodeTokens(ids);
    return { imageFeatures, textFeatures, ...this.logits(imageFeatures, textFeatures) };
  }

  protected saveMetadata(): { arch: string; config: object } {
    return { arch: 'clip', config: this.config };
  }
}
