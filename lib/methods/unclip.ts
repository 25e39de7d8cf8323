/**
 * unCLIP (Ramesh et al., "Hierarchical Text-Conditional Image Generation with CLIP Latents"):
 *
 *   text -> z_t = E_T(text)
 *   prior:   z_i ~ P(z_i | z_t)   (diffusion over embeddings, x0-prediction, classifier-free scale s_p;
 *                                   best of 2: draw two, keep the one with the higher cos(z_i, z_t))
 *   decoder: x ~ P(x | z_i)       (UNet with z_i added to its time embedding, classifier-free scale s_d)
 *
 * and the manipulations of section 3: variations (decode an image's z_i with DDIM eta > 0, from its
 * DDIM-inverted x_T with `invert`, as unCLIP: the bipartite latent (z_i, x_T)),
 * interpolation (decode slerp(z_1, z_2, theta) from one fixed x_T), and text diffs (decode
 * slerp(z_i, z_d, theta) with z_d = normalise(z_t(target) - z_t(source)), from the image's DDIM-inverted x_T).
 *
 * Conventions: the decoder receives `cond.emb = normalise(z) * embScale`, the unconditional branch a
 * zero embedding; the prior's null condition is its learned `null_cond` (cond.y = 0).
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageEncoder, TextEncoder } from '../../nets/clip/types.js';
import type { Prior } from '../../nets/prior/index.js';
import { classifierFree } from '../../samplers/combinators.js';
import { DiffusionModel, type NetFn } from '../../samplers/model.js';
import { sampleDdim, ddimInvert } from '../../samplers/ddim.js';
import { sampleDdpm } from '../../samplers/ddpm.js';
import type { Schedule } from '../../samplers/schedule.js';
import { Rng } from '../random.js';
import { OptionError, checkCount, checkNumber, checkSeed } from '../options.js';
import {
  DEFAULT_SEED,
  checkEta,
  fitFirst,
  fullChain,
  imageSizeOf,
  slerp,
  type ProgressFn,
  stepProgress,
  checkStepsFor,
  type WithDefaults,
} from './common.js';
import { cosine, l2normalize } from '../ops/vectors.js';
import { diffusionModelOf, unetNet, type Diffuser } from '../models/diffuser.js';
import { startNoise } from './sample.js';

export interface UnclipModels {
  /** The embedding-conditioned UNet. */
  decoder: Diffuser;
  prior: Prior;
  /** The prior's (cosine) training schedule. */
  priorSchedule: Schedule;
  /** CLIP: text and image towers in one space. */
  clip: ImageEncoder & TextEncoder;
}

/**
 * unCLIP's defaults, by entry point: the one definition the API, the CLI (and its help), the demo,
 * the notebooks and the playground use. `decode` and `prior` hold the shared decoder and prior
 * settings; each entry point adds its own.
 */
export const UNCLIP_DEFAULTS = {
  /** The decoder (every entry point). */
  decode: {
    /**
     * Decoder classifier-free guidance scale (unCLIP used 3-4 for its 64x64 decoder). `eval methods
     * --only unclip`, scale 3 / 4: prompts judged their category 0.75 / 0.72 (36), variations keep the
     * source's 0.40 / 0.46 (72); prior scale 4 (for 2): prompts 0.67.
     */
    decoderScale: 3,
    /** Decoder DDIM steps, evenly respaced over its schedule. */
    steps: 50,
    /** DDIM eta: 0 deterministic; > 0 for variations. */
    eta: 0,
    /** Seed of the decoder's x_T and its DDIM noise (`DEFAULT_SEED`). */
    seed: DEFAULT_SEED,
  },
  /** The prior (`samplePrior`, `textToImage`). */
  prior: {
    /** Prior classifier-free guidance scale. */
    priorScale: 2,
    /** Prior sampling steps on its respaced (cosine) schedule (unCLIP's strided sampling). */
    priorSteps: 64,
    /** Candidates per prompt; the one with the highest cos to the text is kept (unCLIP's best of 2). */
    bestOf: 2,
    /** Seed of the prior's draws (`DEFAULT_SEED`). */
    seed: DEFAULT_SEED,
  },
  /** `textToImage`: images per prompt. */
  textToImage: { n: 1 },
  /**
   * `variations`: how many, the decoder's eta (> 0, so that they differ), and whether they start
   * from the image's DDIM-inverted x_T (unCLIP's (z_i, x_T): eta 0 reconstructs) or from noise of `seed`.
   * `eval methods` (72 variations; the judge gets 13 of the 18 sources themselves right, 0.72): keep
   * the source's category 0.40 from noise, 0.40 / 0.44 / 0.61 inverted at eta 1 / 0.5 / 0.
   */
  variations: { n: 4, eta: 1, invert: false },
  /** `interpolate`: frames including both ends (DDIM eta 0, one fixed x_T). */
  interpolate: { frames: 5 },
  /** `textDiff`: fractions toward z_d (unCLIP used theta up to ~0.5); start from the DDIM-inverted x_T (as unCLIP). */
  textDiff: { thetas: [0, 0.125, 0.25, 0.375, 0.5], invert: true },
} as const;

export interface DecodeOptions {
  /** Decoder classifier-free guidance scale. Default `UNCLIP_DEFAULTS.decode.decoderScale`. */
  decoderScale?: number;
  /** Decoder steps. Default `UNCLIP_DEFAULTS.decode.steps`. */
  steps?: number;
  /** DDIM eta: 0 deterministic; > 0 for variations. Default `UNCLIP_DEFAULTS.decode.eta`. */
  eta?: number;
  /** Starting noise x_T [N, H, W, C] (default from the seed). */
  noise?: tf.Tensor4D;
  seed?: number;
  onProgress?: ProgressFn;
}

/** `DecodeOptions` with every default filled in and every value checked. */
export type ResolvedDecodeOptions = WithDefaults<DecodeOptions, keyof typeof UNCLIP_DEFAULTS.decode>;

/**
 * The decoder's options: defaults from `UNCLIP_DEFAULTS.decode`, every value checked before any work
 * (a refused call allocates nothing). With the decoder `d`, steps are checked against its schedule.
 */
export function resolveDecodeOptions<T extends DecodeOptions>(
  opts: T,
  d?: Diffuser,
): Omit<T, keyof ResolvedDecodeOptions> & ResolvedDecodeOptions {
  const D = UNCLIP_DEFAULTS.decode;
  const steps = checkStepsFor(d?.schedule, opts.steps ?? D.steps);
  const eta = checkEta(opts.eta ?? D.eta);
  const decoderScale = checkNumber('decoderScale', opts.decoderScale ?? D.decoderScale);
  const seed = checkSeed('seed', opts.seed ?? D.seed);
  return { ...opts, steps, eta, decoderScale, seed };
}

/** The decoder's conditioning embedding: normalise(z) * embScale. */
export function decoderEmb(d: Diffuser, z: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => l2normalize(z).mul(d.embScale) as tf.Tensor2D);
}

/** The decoder as a DiffusionModel with classifier-free guidance at `scale` for embeddings z [N, D] (returns the cond to pass). */
function guidedDecoder(
  d: Diffuser,
  z: tf.Tensor2D,
  scale: number,
): { model: DiffusionModel; emb: tf.Tensor2D; zero: tf.Tensor2D } {
  const emb = decoderEmb(d, z);
  const zero = tf.zerosLike(emb);
  const net: NetFn =
    scale === 1
      ? unetNet(d.unet)
      : classifierFree(unetNet(d.unet), { scale, uncond: { emb: zero }, guidedChannels: d.unet.config.inChannels });
  return { model: diffusionModelOf(d, net), emb, zero };
}

/**
 * Decode image embeddings z [N, D] (any norm) into images [N, H, W, 3] in [-1, 1].
 */
export async function decode(d: Diffuser, z: tf.Tensor2D, opts: DecodeOptions = {}): Promise<tf.Tensor4D> {
  const n = z.shape[0];
  const o = resolveDecodeOptions(opts, d);
  const g = guidedDecoder(d, z, o.decoderScale);
  const x = o.noise ? tf.clone(o.noise) : startNoise(d, n, o.seed);
  const callback = stepProgress('decoder', o.onProgress);
  try {
    const out = await sampleDdim(g.model, x, fullChain(d.schedule, o.steps), {
      eta: o.eta,
      cond: { emb: g.emb },
      seed: o.seed + 1,
      clipDenoised: true,
      callback,
    });
    const img = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
    out.dispose();
    return img;
  } finally {
    tf.dispose([x, g.emb, g.zero]);
  }
}

export interface PriorOptions {
  /** Prior classifier-free guidance scale. Default `UNCLIP_DEFAULTS.prior.priorScale`. */
  priorScale?: number;
  /** Prior sampling steps (respaced cosine schedule). Default `UNCLIP_DEFAULTS.prior.priorSteps`. */
  priorSteps?: number;
  /** Candidates per prompt; the one with the highest cos to the text is kept. Default `UNCLIP_DEFAULTS.prior.bestOf`. */
  bestOf?: number;
  seed?: number;
  onProgress?: ProgressFn;
}

/** `PriorOptions` with every default filled in and every value checked. */
export type ResolvedPriorOptions = WithDefaults<PriorOptions, keyof typeof UNCLIP_DEFAULTS.prior>;

/**
 * The prior's options: defaults from `UNCLIP_DEFAULTS.prior`, every value checked. With the prior's
 * schedule, priorSteps are checked against its length.
 */
export function resolvePriorOptions<T extends PriorOptions>(
  opts: T,
  priorSchedule?: Schedule,
): Omit<T, keyof ResolvedPriorOptions> & ResolvedPriorOptions {
  const D = UNCLIP_DEFAULTS.prior;
  const bestOf = checkCount('bestOf', opts.bestOf ?? D.bestOf);
  const priorSteps = checkStepsFor(priorSchedule, opts.priorSteps ?? D.priorSteps, 'priorSteps');
  const priorScale = checkNumber('priorScale', opts.priorScale ?? D.priorScale);
  const seed = checkSeed('seed', opts.seed ?? D.seed);
  return { ...opts, bestOf, priorSteps, priorScale, seed };
}

/**
 * Sample image embeddings for text embeddings zt [N, D]. Returns unit-norm [N, D] and each pick's
 * similarity to its text.
 */
export async function samplePrior(
  prior: Prior,
  priorSchedule: Schedule,
  zt: tf.Tensor2D,
  opts: PriorOptions = {},
): Promise<{ embeddings: tf.Tensor2D; similarity: number[] }> {
  const n = zt.shape[0];
  const D = prior.config.embedDim;
  if (zt.shape[1] !== D)
    throw new Error(`prior takes ${D}-dim text embeddings, got [${zt.shape}] (CLIP and prior from different models?)`);
  const o = resolvePriorOptions(opts, priorSchedule);
  const k = o.bestOf;
  const scale = o.priorScale;
  const rng = new Rng(o.seed);
  // the prior as a NetFn on [M, 1, 1, D]: cond.emb = text, cond.y = 1 (use the text) or 0 (null)
  const net: NetFn = (x, t, cond) =>
    tf.tidy(() => {
      const m = x.shape[0];
      const keep = cond?.y ?? tf.ones([m], 'int32');
      return prior.apply(x.reshape([m, D]), t, cond!.emb!, keep as tf.Tensor1D).reshape([m, 1, 1, D]) as tf.Tensor4D;
    });
  const textRep = tf.tidy(() => tf.tile(zt.expandDims(1), [1, k, 1]).reshape([n * k, D])) as tf.Tensor2D;
  const ones = tf.ones([n * k], 'int32') as tf.Tensor1D;
  const zeros = tf.zeros([n * k], 'int32') as tf.Tensor1D;
  const guided = scale === 1 ? net : classifierFree(net, { scale, uncond: { emb: textRep, y: zeros } });
  const model = new DiffusionModel(guided, { prediction: 'x0', variance: 'fixedSmall' });
  const x = rng.normal<tf.Rank.R4>([n * k, 1, 1, D]);
  const callback = stepProgress('prior', o.onProgress);
  let out: tf.Tensor4D;
  try {
    out = await sampleDdpm(model, x, fullChain(priorSchedule, o.priorSteps, 'priorSteps'), {
      cond: { emb: textRep, y: ones },
      seed: rng.nextSeed(),
      callback,
    });
  } finally {
    tf.dispose([x, ones, zeros]);
  }
  const cand = tf.tidy(() => prior.fromDataSpace(out.reshape([n * k, D]))) as tf.Tensor2D;
  out.dispose();
  const sims = cosine(cand, textRep);
  const s = Array.from(sims.dataSync());
  tf.dispose([sims, textRep]);
  const pick: number[] = [];
  const similarity: number[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (s[i * k + j] > s[i * k + best]) best = j;
    pick.push(i * k + best);
    similarity.push(s[i * k + best]);
  }
  const idx = tf.tensor1d(pick, 'int32');
  const embeddings = tf.gather(cand, idx) as tf.Tensor2D;
  tf.dispose([idx, cand]);
  return { embeddings, similarity };
}

export interface TextToImageOptions extends PriorOptions, Omit<DecodeOptions, 'noise'> {
  /** Images per prompt. Default `UNCLIP_DEFAULTS.textToImage.n`. */
  n?: number;
}

/** The options `textToImage` runs with (prior, decoder and n), every default filled in and checked. */
export function resolveTextToImageOptions(
  opts: TextToImageOptions = {},
  m?: Pick<UnclipModels, 'decoder' | 'priorSchedule'>,
): ResolvedPriorOptions & ResolvedDecodeOptions & { n: number } {
  const n = checkCount('n', opts.n ?? UNCLIP_DEFAULTS.textToImage.n);
  const dec = resolveDecodeOptions(opts, m?.decoder);
  return { ...resolvePriorOptions(dec, m?.priorSchedule), n };
}

export interface TextToImageResult {
  /** [P * n, H, W, 3]: prompt 0's n images, then prompt 1's, ... */
  images: tf.Tensor4D;
  /** The sampled image embeddings [P * n, D] (unit norm). */
  imageEmbeddings: tf.Tensor2D;
  /** Cosine of each picked embedding with its prompt. */
  similarity: number[];
  settings: Record<string, number | string>;
}

/** text -> prior -> image embedding -> decoder -> image. */
export async function textToImage(
  m: UnclipModels,
  prompts: string[],
  opts: TextToImageOptions = {},
): Promise<TextToImageResult> {
  const o = resolveTextToImageOptions(opts, m);
  const { n, seed } = o;
  const texts = prompts.flatMap((p) => new Array<string>(n).fill(p));
  const zt = m.clip.encodeText(texts);
  let pr: { embeddings: tf.Tensor2D; similarity: number[] };
  try {
    pr = await samplePrior(m.prior, m.priorSchedule, zt, o);
  } finally {
    zt.dispose();
  }
  const images = await decode(m.decoder, pr.embeddings, { ...o, seed: seed + 100 });
  return {
    images,
    imageEmbeddings: pr.embeddings,
    similarity: pr.similarity,
    settings: {
      prompts: prompts.join(' | '),
      n,
      priorScale: o.priorScale,
      priorSteps: o.priorSteps,
      bestOf: o.bestOf,
      decoderScale: o.decoderScale,
      steps: o.steps,
      eta: o.eta,
      seed,
    },
  };
}

/** Unit-norm CLIP image embeddings [N, D] of images [N, H, W, 3]. */
export function imageEmbedding(clip: ImageEncoder, images: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => l2normalize(clip.encodeImage(images).embedding));
}

export interface VariationsOptions extends Omit<DecodeOptions, 'noise'> {
  /** Variations of the image. Default `UNCLIP_DEFAULTS.variations.n`. */
  n?: number;
  /** Start from the image's DDIM-inverted x_T (true, as unCLIP) or from noise of `seed` (false). Default `UNCLIP_DEFAULTS.variations.invert`. */
  invert?: boolean;
  onNote?: (msg: string) => void;
}

/** The options `variations` runs with (eta defaults to `UNCLIP_DEFAULTS.variations.eta`), checked. */
export function resolveVariationsOptions(
  opts: VariationsOptions = {},
  d?: Diffuser,
): ResolvedDecodeOptions & { n: number; invert: boolean; onNote?: (msg: string) => void } {
  const V = UNCLIP_DEFAULTS.variations;
  const n = checkCount('n', opts.n ?? V.n);
  return { ...resolveDecodeOptions({ ...opts, eta: opts.eta ?? V.eta }, d), n, invert: opts.invert ?? V.invert };
}

/**
 * unCLIP's x_T of an image x [1, H, W, 3]: DDIM inversion (`steps` respaced steps) of the decoder
 * conditioned on the image's embedding z [1, D], tiled to `count` rows.
 */
async function invertedStart(
  d: Diffuser,
  x: tf.Tensor4D,
  z: tf.Tensor2D,
  steps: number,
  count: number,
): Promise<tf.Tensor4D> {
  const emb = decoderEmb(d, z);
  let inv: tf.Tensor4D;
  try {
    inv = await ddimInvert(diffusionModelOf(d), x, fullChain(d.schedule, steps), { cond: { emb } });
  } finally {
    emb.dispose();
  }
  const xT = tf.tile(inv, [count, 1, 1, 1]) as tf.Tensor4D;
  inv.dispose();
  return xT;
}

/**
 * Image variations: decode the image's CLIP embedding n times with DDIM eta > 0 (default
 * `UNCLIP_DEFAULTS.variations.eta`), from its DDIM-inverted x_T with `invert`.
 */
export async function variations(
  m: UnclipModels,
  image: tf.Tensor4D,
  opts: VariationsOptions = {},
): Promise<{
  images: tf.Tensor4D;
  embedding: tf.Tensor2D;
  settings: { n: number; eta: number; invert: boolean; steps: number; decoderScale: number; seed: number };
}> {
  const o = resolveVariationsOptions(opts, m.decoder);
  const x = fitFirst(image, imageSizeOf(m.decoder), 'input image', o.onNote);
  const z = imageEmbedding(m.clip, x);
  const zr = tf.tidy(() => tf.tile(z, [o.n, 1])) as tf.Tensor2D;
  let xT: tf.Tensor4D | undefined;
  try {
    if (o.invert) xT = await invertedStart(m.decoder, x, z, o.steps, o.n);
    const images = await decode(m.decoder, zr, { ...o, noise: xT });
    const settings = {
      n: o.n,
      eta: o.eta,
      invert: o.invert,
      steps: o.steps,
      decoderScale: o.decoderScale,
      seed: o.seed,
    };
    return { images, embedding: z, settings };
  } catch (e) {
    z.dispose();
    throw e;
  } finally {
    tf.dispose([x, zr]);
    xT?.dispose();
  }
}

export interface InterpolateOptions extends Omit<DecodeOptions, 'noise' | 'eta'> {
  /** Frames including both ends. Default `UNCLIP_DEFAULTS.interpolate.frames`. */
  frames?: number;
  onNote?: (msg: string) => void;
}

/** The options `interpolate` runs with (DDIM eta 0), checked. */
export function resolveInterpolateOptions(
  opts: InterpolateOptions = {},
  d?: Diffuser,
): ResolvedDecodeOptions & { frames: number; onNote?: (msg: string) => void } {
  const frames = checkCount('frames', opts.frames ?? UNCLIP_DEFAULTS.interpolate.frames, {
    min: 2,
    why: 'both ends are frames',
  });
  return { ...resolveDecodeOptions({ ...opts, eta: 0 }, d), frames };
}

/** Interpolation: decode slerp(z_a, z_b, theta) for theta in linspace(0, 1, frames) from one fixed x_T (DDIM eta 0). */
export async function interpolate(
  m: UnclipModels,
  a: tf.Tensor4D,
  b: tf.Tensor4D,
  opts: InterpolateOptions = {},
): Promise<{
  images: tf.Tensor4D;
  embeddings: tf.Tensor2D;
  endpoints: tf.Tensor2D;
  thetas: number[];
  settings: Record<string, number>;
}> {
  const o = resolveInterpolateOptions(opts, m.decoder);
  const { frames } = o;
  const size = imageSizeOf(m.decoder);
  const xa = fitFirst(a, size, 'first image', o.onNote);
  const xb = fitFirst(b, size, 'second image', o.onNote);
  const xab = tf.concat([xa, xb]) as tf.Tensor4D;
  const endpoints = imageEmbedding(m.clip, xab);
  tf.dispose([xa, xb, xab]);
  const za = endpoints.slice(0, 1) as tf.Tensor2D;
  const zb = endpoints.slice(1, 1) as tf.Tensor2D;
  const thetas = Array.from({ length: frames }, (_, i) => i / (frames - 1));
  const parts = thetas.map((th) => slerp(za, zb, th));
  const embeddings = tf.concat(parts) as tf.Tensor2D;
  tf.dispose([...parts, za, zb]);
  const x1 = startNoise(m.decoder, 1, o.seed);
  const xT = tf.tile(x1, [frames, 1, 1, 1]) as tf.Tensor4D;
  x1.dispose();
  try {
    const images = await decode(m.decoder, embeddings, { ...o, noise: xT });
    const settings = { frames, steps: o.steps, decoderScale: o.decoderScale, seed: o.seed };
    return { images, embeddings, endpoints, thetas, settings };
  } finally {
    xT.dispose();
  }
}

export interface TextDiffOptions extends Omit<DecodeOptions, 'noise' | 'eta'> {
  /** Text describing the image now ("a photo of a cat"). */
  source: string;
  /** Text describing the wanted change ("an anime drawing of a super saiyan cat"). */
  target: string;
  /** Interpolation fractions toward z_d. Default `UNCLIP_DEFAULTS.textDiff.thetas`. */
  thetas?: readonly number[];
  /** Start from the image's DDIM-inverted x_T (true, as unCLIP) or from noise of `seed` (false). Default `UNCLIP_DEFAULTS.textDiff.invert`. */
  invert?: boolean;
  onNote?: (msg: string) => void;
}

/** The options `textDiff` runs with (DDIM eta 0), checked. */
export function resolveTextDiffOptions(
  opts: TextDiffOptions,
  d?: Diffuser,
): ResolvedDecodeOptions & {
  source: string;
  target: string;
  thetas: number[];
  invert: boolean;
  onNote?: (msg: string) => void;
} {
  const T = UNCLIP_DEFAULTS.textDiff;
  const thetas = (opts.thetas ?? T.thetas).map((th) => checkNumber('thetas', th));
  if (thetas.length === 0)
    throw new OptionError('thetas', 'thetas is empty; give at least one fraction toward the target text');
  return { ...resolveDecodeOptions({ ...opts, eta: 0 }, d), thetas, invert: opts.invert ?? T.invert };
}

/**
 * Text diffs: z_d = normalise(E_T(target) - E_T(source)); decode slerp(z_i, z_d, theta) for each theta,
 * from the x_T that DDIM inversion of the image (conditioned on z_i) gives.
 */
export async function textDiff(
  m: UnclipModels,
  image: tf.Tensor4D,
  opts: TextDiffOptions,
): Promise<{
  images: tf.Tensor4D;
  embeddings: tf.Tensor2D;
  thetas: number[];
  settings: Record<string, number | string | boolean>;
}> {
  const o = resolveTextDiffOptions(opts, m.decoder);
  const { thetas } = o;
  const x = fitFirst(image, imageSizeOf(m.decoder), 'input image', o.onNote);
  const zi = imageEmbedding(m.clip, x);
  const zd = tf.tidy(() => {
    const e = l2normalize(m.clip.encodeText([o.source, o.target]));
    return l2normalize(e.slice(1, 1).sub(e.slice(0, 1)) as tf.Tensor2D);
  });
  const parts = thetas.map((th) => slerp(zi, zd, th));
  const embeddings = tf.concat(parts) as tf.Tensor2D;
  tf.dispose(parts);
  let xT: tf.Tensor4D;
  try {
    if (o.invert) xT = await invertedStart(m.decoder, x, zi, o.steps, thetas.length);
    else {
      const x1 = startNoise(m.decoder, 1, o.seed);
      xT = tf.tile(x1, [thetas.length, 1, 1, 1]) as tf.Tensor4D;
      x1.dispose();
    }
  } finally {
    tf.dispose([x, zi, zd]);
  }
  try {
    const images = await decode(m.decoder, embeddings, { ...o, noise: xT });
    const settings = {
      source: o.source,
      target: o.target,
      thetas: thetas.join(','),
      invert: o.invert,
      steps: o.steps,
      decoderScale: o.decoderScale,
      seed: o.seed,
    };
    return { images, embeddings, thetas, settings };
  } finally {
    xT.dispose();
  }
}
