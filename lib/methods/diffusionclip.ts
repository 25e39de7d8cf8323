/**
 * DiffusionCLIP (Kim et al., "DiffusionCLIP: Text-Guided Diffusion Models for Robust Image
 * Manipulation"):
 *
 *   x_lat = DDIM-inverse(x0; theta, t0, n_inv steps)                       (deterministic inversion)
 *   fine-tune theta_hat (initialised to theta), for each iteration and image:
 *     full chain: x_hat = DDIM(x_lat; theta_hat, t0 -> 0, n_train steps), gradient through all steps
 *     per step (GPU-efficient): at each of the n_train steps, loss on the step's predicted x0, update, detach
 *     L = w_clip * -log((2 - L_dir)/2) + w_l1 * |x0 - x_hat| + w_id * (1 - cos(E_id(x_hat), E_id(x0)))
 *     L_dir = 1 - cos(E_I(x_hat) - E_I(x0), E_T(target) - E_T(source))      (directional CLIP loss)
 *   edit: x_edit = DDIM(x_lat; r * theta_hat + (1 - r) * theta, n_gen steps)  (modelRatio r)
 *   multi-attribute: mix several theta_hat's eps by time thresholds (noise mixing)
 *   latent optimisation: the same loss, optimising x_lat with theta frozen
 *
 * Fine-tuned weights are saved as a delta file: safetensors of theta_hat - theta (PyTorch layout,
 * reference key names), so base + delta == fine-tuned.
 */
import * as tf from '@tensorflow/tfjs';
import { Adam } from '../optim/adam.js';
import { optimize } from '../optim/optimize.js';
import { UNet } from '../../nets/unet/index.js';
import type { ImageEncoder, TextEncoder } from '../../nets/clip/types.js';
import { directionalScore, textDirection } from '../../guidance/encoders.js';
import { cosine as cosine } from '../ops/vectors.js';
import { ddimChainSync, ddimInvert, ddimStep, sampleDdim } from '../../samplers/ddim.js';
import type { StepCallback } from '../../samplers/core.js';
import { blendModels, mixByTime, type TimeSegment } from '../../samplers/combinators.js';
import type { DiffusionModel, NetFn } from '../../samplers/model.js';
import type { Schedule } from '../../samplers/schedule.js';
import { readStateDict, writeSafetensors } from '../io/index.js';
import type { HostTensor, StateDict } from '../io/types.js';
import {
  fitImage,
  imageSizeOf,
  indexOfFraction,
  subChain,
  checkFinite,
  type ProgressFn,
  stepProgress,
  lossProgress,
} from './common.js';
import { cloneUNet, diffusionModelOf, unetNet, withUNet, type Diffuser } from '../models/diffuser.js';

// ---------------------------------------------------------------------------------------------
// Inversion and regeneration.

export interface InvertOptions {
  /** Inversion depth as a fraction of the schedule. Default 0.5 (the reference's t0 = 500 of 1000; its configs use 300-600). */
  t0?: number;
  /** DDIM inversion steps from 0 to t0. Default 40 (the reference's n_inv_step). */
  nInv?: number;
  onProgress?: ProgressFn;
  onNote?: (msg: string) => void;
}

export interface Inversion {
  /** x_{t0} [N, H, W, C]. */
  latent: tf.Tensor4D;
  /** Index of t0 in the full schedule. */
  t0Index: number;
}

/** Deterministic DDIM inversion of images [N, H, W, 3] to t0 with the given model. */
export async function invert(d: Diffuser, images: tf.Tensor4D, opts: InvertOptions = {}): Promise<Inversion> {
  const t0Index = indexOfFraction(d.schedule, opts.t0 ?? 0.5);
  const sched = subChain(d.schedule, t0Index, opts.nInv ?? 40);
  const x = fitImage(images, imageSizeOf(d), 'input image', opts.onNote);
  try {
    const callback = stepProgress('invert', opts.onProgress);
    const latent = await ddimInvert(diffusionModelOf(d), x, sched, { callback });
    return { latent, t0Index };
  } finally {
    x.dispose();
  }
}

export interface RegenerateOptions {
  /** DDIM generative steps from t0 to 0. Default 40 (n_test_step; DiffusionCLIP's fast sampling uses ~6). */
  nGen?: number;
  /** DDIM eta. Default 0 (deterministic, pairs with the inversion). */
  eta?: number;
  /** Another net to generate with (a blend, a fine-tuned model, a time mix); default the Diffuser's UNet. */
  net?: NetFn;
  /** Keep each step's predicted x0 ([N, H, W, C] per step), DiffusionCLIP's return steps. Default false. */
  returnSteps?: boolean;
  seed?: number;
  onProgress?: ProgressFn;
}

/** DDIM from a latent at full-schedule index t0Index down to the image. Returns [N, H, W, C] (not clipped). */
export async function regenerate(
  d: Diffuser,
  inv: Inversion,
  opts: RegenerateOptions = {},
): Promise<{ images: tf.Tensor4D; steps?: tf.Tensor4D[] }> {
  const sched = subChain(d.schedule, inv.t0Index, opts.nGen ?? 40);
  const steps: tf.Tensor4D[] = [];
  const progress = stepProgress('generate', opts.onProgress);
  const callback: StepCallback = (s) => {
    if (opts.returnSteps && s.x0) steps.push(tf.clone(s.x0));
    return progress?.(s);
  };
  const images = await sampleDdim(diffusionModelOf(d, opts.net), inv.latent, sched, {
    eta: opts.eta ?? 0,
    seed: opts.seed ?? 0,
    callback,
  });
  return opts.returnSteps ? { images, steps } : { images };
}

// ---------------------------------------------------------------------------------------------
// Losses.

export interface DiffusionCLIPLossOptions {
  /** Weight of -log((2 - L_dir) / 2). Default 3 (the reference's clip_loss_w). */
  clipWeight?: number;
  /** Weight of the L1 to the input. Default 1 (the reference's scripts use 0-3). */
  l1Weight?: number;
  /** Weight of 1 - cos(E_id(x), E_id(x0)). Default 0 (the reference uses ArcFace for faces). */
  idWeight?: number;
  /** Encoder for the identity loss (any ImageEncoder). Required when idWeight > 0. */
  idEncoder?: ImageEncoder;
  /** Prompt templates for the text direction. Default: the two texts as given (['{}']). */
  templates?: readonly string[];
}

/** The DiffusionCLIP loss of outputs x [N,H,W,3] vs inputs x0 [N,H,W,3] (mean over the batch). */
function editLoss(
  encoder: ImageEncoder,
  direction: tf.Tensor2D,
  x: tf.Tensor4D,
  x0: tf.Tensor4D,
  o: DiffusionCLIPLossOptions,
): tf.Scalar {
  return tf.tidy(() => {
    const score = directionalScore(encoder, x, x0, direction); // cos - 1 = -L_dir, [N]
    const clipLoss = tf.mean(tf.neg(tf.log(score.add(2).div(2).add(1e-8))));
    let loss = clipLoss.mul(o.clipWeight ?? 3);
    const l1w = o.l1Weight ?? 1;
    if (l1w) loss = loss.add(tf.mean(tf.abs(x.sub(x0))).mul(l1w));
    const idw = o.idWeight ?? 0;
    if (idw) {
      if (!o.idEncoder) throw new Error('DiffusionCLIP: idWeight > 0 needs an idEncoder');
      const c = cosine(o.idEncoder.encodeImage(x).embedding, o.idEncoder.encodeImage(x0).embedding);
      loss = loss.add(tf.mean(tf.scalar(1).sub(c)).mul(idw));
    }
    return loss as tf.Scalar;
  });
}

// ---------------------------------------------------------------------------------------------
// Fine-tuning.

export interface FinetuneOptions extends DiffusionCLIPLossOptions {
  /** Text describing the inputs, e.g. "smiling face". */
  source: string;
  /** Text describing the edit, e.g. "angry face". */
  target: string;
  /** Inversion depth (fraction). Default 0.5. */
  t0?: number;
  /** Inversion steps. Default 40. */
  nInv?: number;
  /** Generative steps used in training. Default 6 (the reference's n_train_step). */
  nTrain?: number;
  /** 'full': gradient through the whole generative chain; 'perstep': the GPU-efficient per-step updates. Default 'full'. */
  mode?: 'full' | 'perstep';
  /** Passes over the images (the reference's n_iter). Default 5. */
  iters?: number;
  /**
   * Adam learning rate. Default 3e-4. The reference's 2e-6..8e-6 is for 256x256 pre-trained nets; our
   * small nets need more. Measured on the shipped UNet ("grinning face" -> "cat face", 5 passes): the
   * judge's P(Animals & Nature) went 0.008 -> 0.008 at 1e-4 and 0.008 -> 0.026 at 3e-4.
   */
  lr?: number;
  /** Images per optimisation step. Default 1 (as the reference). */
  batch?: number;
  onProgress?: ProgressFn;
  onNote?: (msg: string) => void;
}

export interface FinetuneResult {
  /** The fine-tuned model (a new UNet; dispose it). */
  model: Diffuser;
  /** Loss of each optimisation step. */
  losses: number[];
  settings: Record<string, string | number>;
}

/** Moved to lib/models (Imagic uses it too). */
export { cloneUNet } from '../models/diffuser.js';

/** Fine-tune a copy of the model so that regenerating the inverted inputs moves them from `source` to `target`. */
export async function finetune(
  d: Diffuser,
  clip: ImageEncoder & TextEncoder,
  images: tf.Tensor4D,
  opts: FinetuneOptions,
): Promise<FinetuneResult> {
  const t0 = opts.t0 ?? 0.5;
  const nInv = opts.nInv ?? 40;
  const nTrain = opts.nTrain ?? 6;
  const mode = opts.mode ?? 'full';
  const iters = opts.iters ?? 5;
  const lr = opts.lr ?? 3e-4;
  const batch = opts.batch ?? 1;
  const x0all = fitImage(images, imageSizeOf(d), 'input image', opts.onNote);
  const inv = await invert(d, x0all, { t0, nInv, onProgress: opts.onProgress });
  const direction = textDirection(clip, opts.source, opts.target, opts.templates ?? ['{}']);
  const ft = withUNet(d, cloneUNet(d.unet), `${d.source} (DiffusionCLIP fine-tune)`);
  const adam = new Adam(ft.unet.params);
  const model = diffusionModelOf(ft);
  const sched = subChain(d.schedule, inv.t0Index, nTrain);
  const losses: number[] = [];
  const N = x0all.shape[0];
  const perIter = Math.ceil(N / batch);
  const totalSteps = iters * perIter * (mode === 'full' ? 1 : sched.length);
  const onStep = (_: number, loss: number) => {
    losses.push(loss);
    opts.onProgress?.({ stage: 'finetune', step: losses.length, total: totalSteps, loss });
  };
  try {
    for (let it = 0; it < iters; it++) {
      for (let b = 0; b < N; b += batch) {
        const m = Math.min(batch, N - b);
        const x0 = x0all.slice(b, m);
        const lat = inv.latent.slice(b, m);
        const what = `DiffusionCLIP fine-tune (iteration ${it + 1})`;
        try {
          if (mode === 'full') {
            // one update per batch: the loss of the whole regenerated chain
            optimize(ft.unet.params, () => editLoss(clip, direction, ddimChainSync(model, lat, sched), x0, opts), {
              steps: 1,
              lr,
              adam,
              what,
              onStep,
            });
          } else {
            // one update per chain step: the loss of that step's x0 prediction; the chain moves on with the step's x
            let x = tf.clone(lat);
            let next: tf.Tensor4D | null = null;
            try {
              optimize(
                ft.unet.params,
                (k) => {
                  const s = ddimStep(model, x, sched, sched.length - 1 - k);
                  next = tf.keep(s.x);
                  return editLoss(clip, direction, s.x0, x0, opts);
                },
                {
                  steps: sched.length,
                  lr,
                  adam,
                  what,
                  onStep: (k, loss) => {
                    x.dispose();
                    x = next!;
                    next = null;
                    onStep(k, loss);
                  },
                },
              );
            } finally {
              x.dispose();
              (next as tf.Tensor4D | null)?.dispose();
            }
          }
        } finally {
          x0.dispose();
          lat.dispose();
        }
      }
    }
  } catch (e) {
    ft.unet.dispose();
    throw e;
  } finally {
    adam.dispose();
    direction.dispose();
    inv.latent.dispose();
    x0all.dispose();
  }
  return {
    model: ft,
    losses,
    settings: {
      source: opts.source,
      target: opts.target,
      t0,
      nInv,
      nTrain,
      mode,
      iters,
      lr,
      clipWeight: opts.clipWeight ?? 3,
      l1Weight: opts.l1Weight ?? 1,
      idWeight: opts.idWeight ?? 0,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Editing with fine-tuned models.

export interface EditOptions extends RegenerateOptions {
  t0?: number;
  nInv?: number;
  /** r in r * fine-tuned + (1 - r) * original (DiffusionCLIP's model_ratio). Default 1. */
  modelRatio?: number;
  onNote?: (msg: string) => void;
}

/** Invert with the original model and regenerate with the (blended) fine-tuned one. Returns [N, H, W, 3] in [-1, 1]. */
export async function edit(
  original: Diffuser,
  finetuned: Diffuser,
  images: tf.Tensor4D,
  opts: EditOptions = {},
): Promise<{ images: tf.Tensor4D; steps?: tf.Tensor4D[]; settings: Record<string, number> }> {
  const ratio = opts.modelRatio ?? 1;
  const inv = await invert(original, images, {
    t0: opts.t0,
    nInv: opts.nInv,
    onProgress: opts.onProgress,
    onNote: opts.onNote,
  });
  try {
    const net = blendModels(unetNet(original.unet), unetNet(finetuned.unet), ratio);
    const r = await regenerate(original, inv, { ...opts, net });
    const out = tf.tidy(() => tf.clipByValue(r.images, -1, 1)) as tf.Tensor4D;
    r.images.dispose();
    return {
      images: out,
      steps: r.steps,
      settings: { t0: opts.t0 ?? 0.5, nInv: opts.nInv ?? 40, nGen: opts.nGen ?? 40, modelRatio: ratio },
    };
  } finally {
    inv.latent.dispose();
  }
}

export interface MixSegment {
  /** Applies while the timestep t >= minT (as a fraction of the schedule, 0..1). */
  minT: number;
  /** Weight of each fine-tuned model (same order as `models`); normalised. */
  weights: number[];
}

/**
 * Multi-attribute editing by noise mixing (DiffusionCLIP's hybrid_config): at each step the eps of
 * several fine-tuned models is mixed with the weights of the segment that covers the timestep.
 */
export async function mixEdit(
  original: Diffuser,
  models: Diffuser[],
  segments: MixSegment[],
  images: tf.Tensor4D,
  opts: Omit<EditOptions, 'modelRatio' | 'net'> = {},
): Promise<{ images: tf.Tensor4D }> {
  if (!segments.some((s) => s.minT <= 0))
    throw new Error('mixEdit: one segment must have minT: 0 (cover the last steps)');
  const T = original.schedule.originalLength;
  const segs: TimeSegment[] = segments.map((s) => {
    if (s.weights.length !== models.length)
      throw new Error(`mixEdit: a segment has ${s.weights.length} weights for ${models.length} models`);
    return { minT: s.minT * T, nets: models.map((m) => unetNet(m.unet)), weights: s.weights };
  });
  const inv = await invert(original, images, {
    t0: opts.t0,
    nInv: opts.nInv,
    onProgress: opts.onProgress,
    onNote: opts.onNote,
  });
  try {
    const r = await regenerate(original, inv, { ...opts, net: mixByTime(segs) });
    const out = tf.tidy(() => tf.clipByValue(r.images, -1, 1)) as tf.Tensor4D;
    r.images.dispose();
    return { images: out };
  } finally {
    inv.latent.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Latent optimisation.

export interface LatentOptimOptions extends DiffusionCLIPLossOptions {
  source: string;
  target: string;
  t0?: number;
  nInv?: number;
  /** Generative steps the gradient flows through. Default 6. */
  nGen?: number;
  /** Adam steps on x_lat. Default 20. */
  iters?: number;
  /** Default 2e-2 (the reference's lr_clip_lat_opt). */
  lr?: number;
  onProgress?: ProgressFn;
  onNote?: (msg: string) => void;
}

/** Optimise the inverted latent x_lat (model frozen) with the DiffusionCLIP loss; returns the edited images. */
export async function latentOptimize(
  d: Diffuser,
  clip: ImageEncoder & TextEncoder,
  images: tf.Tensor4D,
  opts: LatentOptimOptions,
): Promise<{ images: tf.Tensor4D; losses: number[] }> {
  const x0 = fitImage(images, imageSizeOf(d), 'input image', opts.onNote);
  const inv = await invert(d, x0, { t0: opts.t0, nInv: opts.nInv, onProgress: opts.onProgress });
  const direction = textDirection(clip, opts.source, opts.target, opts.templates ?? ['{}']);
  const lat = tf.variable(inv.latent, true);
  inv.latent.dispose();
  const model = diffusionModelOf(d);
  const sched = subChain(d.schedule, inv.t0Index, opts.nGen ?? 6);
  const iters = opts.iters ?? 20;
  const generate = () => ddimChainSync(model, lat as unknown as tf.Tensor4D, sched);
  try {
    const losses = optimize(new Map([['latent', lat]]), () => editLoss(clip, direction, generate(), x0, opts), {
      steps: iters,
      lr: opts.lr ?? 2e-2,
      what: 'latent optimisation',
      onStep: lossProgress('latent-optim', iters, opts.onProgress),
    });
    const out = tf.tidy(() => tf.clipByValue(generate(), -1, 1)) as tf.Tensor4D;
    checkFinite(out, 'latent optimisation output');
    return { images: out, losses };
  } finally {
    lat.dispose();
    direction.dispose();
    x0.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Delta files.

/** theta_hat - theta per key (PyTorch layout, reference names). */
export function deltaStateDict(base: UNet, finetuned: UNet): StateDict {
  const a = base.toStateDict();
  const b = finetuned.toStateDict();
  const out: StateDict = new Map();
  for (const [k, tb] of b) {
    const ta = a.get(k);
    if (!ta || ta.shape.join() !== tb.shape.join())
      throw new Error(
        `delta: key ${k} is not in the base model with shape [${tb.shape}]; the two UNets have different configs`,
      );
    const da = ta.data as Float32Array;
    const db = tb.data as Float32Array;
    const d = new Float32Array(db.length);
    for (let i = 0; i < d.length; i++) d[i] = db[i] - da[i];
    out.set(k, { shape: tb.shape, dtype: 'float32', data: d, sourceDtype: 'float32' } as HostTensor);
  }
  return out;
}

/** Save fine-tuned weights as a delta (safetensors of theta_hat - theta). */
export async function saveDelta(
  path: string,
  base: UNet,
  finetuned: UNet,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeSafetensors(path, deltaStateDict(base, finetuned), {
    format: 'diffguide-delta',
    kind: 'DiffusionCLIP fine-tune delta (fine-tuned - base)',
    ...metadata,
  });
}

/** base + delta as a new UNet. Throws naming the keys when the delta does not fit the base. */
export async function applyDelta(base: UNet, path: string): Promise<UNet> {
  const delta = await readStateDict(path);
  const sd = base.toStateDict();
  const missing = [...sd.keys()].filter((k) => !delta.has(k));
  const extra = [...delta.keys()].filter((k) => !sd.has(k));
  if (missing.length || extra.length) {
    throw new Error(
      `${path}: not a delta for this UNet (${missing.length} keys missing, e.g. ${missing.slice(0, 3).join(', ')}; ${extra.length} unexpected, e.g. ${extra.slice(0, 3).join(', ')}); make it with: diffguide diffusionclip --save-delta FILE on the same base weights`,
    );
  }
  for (const [k, t] of sd) {
    const dt = delta.get(k)!;
    if (dt.shape.join() !== t.shape.join())
      throw new Error(`${path}: delta ${k} has shape [${dt.shape}], the base [${t.shape}]`);
    const a = t.data as Float32Array;
    const dd = dt.data;
    for (let i = 0; i < a.length; i++) a[i] += dd[i];
  }
  return UNet.fromStateDict(sd, base.config);
}
