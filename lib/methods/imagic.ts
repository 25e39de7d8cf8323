/**
 * Imagic (Kawar et al., "Imagic: Text-Based Real Image Editing with Diffusion Models"):
 *
 *   input image x, target text -> e_tgt = E_T(text)
 *   stage 1: e_opt = argmin_e E_{t, eps} ||eps - eps_theta(x_t, t, e)||^2,  e initialised to e_tgt, theta frozen
 *   stage 2: theta_hat = argmin_theta  E_{t, eps} ||eps - eps_theta(x_t, t, e_opt)||^2,  e_opt frozen
 *   stage 3: for each eta: e = eta * e_tgt + (1 - eta) * e_opt;  sample with theta_hat conditioned on e
 *
 * eta = 0 reconstructs the input, eta = 1 follows the text; a sweep of etas reuses stages 1-2.
 * Our "text embedding" is the CLIP text embedding in the conditional UNet's `cond.emb` space
 * (normalise * embScale, the same space the unCLIP decoder is trained on, since CLIP's space is joint).
 * The input model is not modified: stage 2 fine-tunes a copy.
 */
import * as tf from '@tensorflow/tfjs';
import type { TextEncoder } from '../../nets/clip/types.js';
import { optimize } from '../optim/optimize.js';
import { diffusionTarget, qSample } from '../../samplers/core.js';
import { sampleDdim } from '../../samplers/ddim.js';
import { sampleDdpm } from '../../samplers/ddpm.js';
import { classifierFree } from '../../samplers/combinators.js';
import { Rng } from '../random.js';
import { fitFirst, fullChain, imageSizeOf, type ProgressFn, stepProgress, lossProgress } from './common.js';
import { cloneUNet, diffusionModelOf, unetNet, withUNet, type Diffuser } from '../models/diffuser.js';
import { decoderEmb } from './unclip.js';
import { startNoise } from './sample.js';

export interface ImagicOptions {
  /** Interpolation weights to sample. Default [0, 0.4, 0.6, 0.8, 1] (the paper's sweet spot is 0.6-0.8 on Imagen). */
  etas?: number[];
  /** Stage 1 steps (embedding optimisation). Default 100 (paper: 100). */
  embSteps?: number;
  /** Stage 1 Adam lr. Default 1e-3 (paper: 1e-3). */
  embLr?: number;
  /** Stage 2 steps (model fine-tuning). Default 120 (paper: 1500 at lr 5e-7 on Imagen; our small nets move faster, and this keeps Imagic under 5 min on 2 cores). */
  ftSteps?: number;
  /** Stage 2 Adam lr. Default 1e-4. */
  ftLr?: number;
  /** Noise draws per optimisation step (batch of timesteps). Default 1 (one t and eps per step, as the paper). */
  batch?: number;
  /** Sampling steps. Default 50. */
  steps?: number;
  /** 'ddim' (eta 0, default) or 'ddpm'. */
  sampler?: 'ddim' | 'ddpm';
  /** Classifier-free scale at sampling (unconditional = zero embedding). Default 1 (the conditional model; the paper used 3 on Imagen). */
  guidanceScale?: number;
  seed?: number;
  onProgress?: ProgressFn;
  onNote?: (msg: string) => void;
}

export interface ImagicResult {
  /** [etas.length, H, W, 3] in [-1, 1], one per eta, all from the same x_T. */
  images: tf.Tensor4D;
  etas: number[];
  /** The conditioning used for each eta [etas.length, D] (cond.emb space). */
  embeddings: tf.Tensor2D;
  /** e_tgt and e_opt [1, D] (cond.emb space). */
  eTarget: tf.Tensor2D;
  eOpt: tf.Tensor2D;
  /** Diffusion loss per step of stages 1 and 2. */
  losses: { embedding: number[]; finetune: number[] };
  settings: Record<string, number | string>;
}

/** e = eta * e_tgt + (1 - eta) * e_opt for each eta: [etas.length, D]. Exact at eta 0 and 1. */
export function interpolateEmbeddings(eTarget: tf.Tensor2D, eOpt: tf.Tensor2D, etas: number[]): tf.Tensor2D {
  return tf.tidy(
    () =>
      tf.concat(
        etas.map((eta) =>
          eta === 1 ? eTarget.clone() : eta === 0 ? eOpt.clone() : eTarget.mul(eta).add(eOpt.mul(1 - eta)),
        ),
      ) as tf.Tensor2D,
  );
}

/** The diffusion loss (in the model's parameterisation) of x at random timesteps/noise for conditioning emb [1, D]. */
function diffusionLoss(d: Diffuser, x: tf.Tensor4D, emb: tf.Tensor, rng: Rng, batch: number): tf.Scalar {
  const T = d.schedule.length;
  const idx = Array.from({ length: batch }, () => rng.int(T));
  return tf.tidy(() => {
    const noise = rng.normal<tf.Rank.R4>([batch, ...x.shape.slice(1)]);
    const xb = tf.tile(x, [batch, 1, 1, 1]) as tf.Tensor4D;
    const xt = qSample(xb, d.schedule, idx, noise);
    const t = tf.tensor1d(
      idx.map((i) => d.schedule.modelT(i)),
      'float32',
    );
    const e = tf.tile(emb, [batch, 1]) as tf.Tensor2D;
    const out = d.unet.apply(xt, t, { emb: e });
    const c = x.shape[3];
    const pred = out.shape[3] === c ? out : out.slice([0, 0, 0, 0], [-1, -1, -1, c]);
    return tf.mean(tf.square(pred.sub(diffusionTarget(d.prediction, xb, d.schedule, idx, noise)))) as tf.Scalar;
  });
}

/** Edit `image` toward `text`: stages 1-2 once, stage 3 for every eta. */
export async function imagic(
  d: Diffuser,
  text: TextEncoder,
  image: tf.Tensor4D,
  targetText: string,
  opts: ImagicOptions = {},
): Promise<ImagicResult> {
  if (d.unet.config.embCondDim === null)
    throw new Error('Imagic needs an embedding-conditioned UNet (cond-unet; make it with: diffguide train cond-unet)');
  const etas = opts.etas ?? [0, 0.4, 0.6, 0.8, 1];
  const embSteps = opts.embSteps ?? 100;
  const ftSteps = opts.ftSteps ?? 120;
  const batch = opts.batch ?? 1;
  const seed = opts.seed ?? 0;
  const rng = new Rng(seed);
  const x = fitFirst(image, imageSizeOf(d), 'input image', opts.onNote);
  const eTarget = tf.tidy(() => decoderEmb(d, text.encodeText([targetText])));
  if (eTarget.shape[1] !== d.unet.config.embCondDim) {
    tf.dispose([x, eTarget]);
    throw new Error(
      `text embedding width ${eTarget.shape[1]} != the UNet's embCondDim ${d.unet.config.embCondDim} (CLIP and cond-unet from different models?)`,
    );
  }
  const losses = { embedding: [] as number[], finetune: [] as number[] };
  // stage 1: optimise the embedding, model frozen
  const eVar = tf.tidy(() => tf.variable(eTarget.clone(), true));
  try {
    losses.embedding = optimize(new Map([['e', eVar]]), () => diffusionLoss(d, x, eVar, rng, batch), {
      steps: embSteps,
      lr: opts.embLr ?? 1e-3,
      what: 'Imagic stage 1',
      lrOption: 'embLr',
      onStep: lossProgress('imagic: optimise embedding', embSteps, opts.onProgress),
    });
  } catch (e) {
    tf.dispose([x, eTarget, eVar]);
    throw e;
  }
  const eOpt = tf.clone(eVar) as tf.Tensor2D;
  eVar.dispose();
  // stage 2: fine-tune a copy of the model on the input with e_opt
  const ft = withUNet(d, cloneUNet(d.unet), `${d.source} (Imagic fine-tune)`);
  try {
    losses.finetune = optimize(ft.unet.params, () => diffusionLoss(ft, x, eOpt, rng, batch), {
      steps: ftSteps,
      lr: opts.ftLr ?? 1e-4,
      what: 'Imagic stage 2',
      lrOption: 'ftLr',
      onStep: lossProgress('imagic: fine-tune model', ftSteps, opts.onProgress),
    });
    // stage 3: sample with the interpolated embeddings, one x_T for all etas
    const embeddings = interpolateEmbeddings(eTarget, eOpt, etas);
    const n = etas.length;
    const x1 = startNoise(ft, 1, seed + 7);
    const xT = tf.tile(x1, [n, 1, 1, 1]) as tf.Tensor4D;
    x1.dispose();
    const scale = opts.guidanceScale ?? 1;
    const zero = tf.zerosLike(embeddings);
    const net =
      scale === 1
        ? unetNet(ft.unet)
        : classifierFree(unetNet(ft.unet), { scale, uncond: { emb: zero }, guidedChannels: ft.unet.config.inChannels });
    const model = diffusionModelOf(ft, net);
    const sched = fullChain(d.schedule, opts.steps ?? 50);
    const callback = stepProgress('imagic: sample', opts.onProgress);
    const so = { cond: { emb: embeddings }, seed: seed + 8, clipDenoised: true, callback };
    let out: tf.Tensor4D;
    try {
      out =
        (opts.sampler ?? 'ddim') === 'ddpm'
          ? await sampleDdpm(model, xT, sched, so)
          : await sampleDdim(model, xT, sched, so);
    } finally {
      tf.dispose([xT, zero]);
    }
    const images = tf.tidy(() => tf.clipByValue(out, -1, 1)) as tf.Tensor4D;
    out.dispose();
    return {
      images,
      etas,
      embeddings,
      eTarget,
      eOpt,
      losses,
      settings: {
        text: targetText,
        etas: etas.join(','),
        embSteps,
        embLr: opts.embLr ?? 1e-3,
        ftSteps,
        ftLr: opts.ftLr ?? 1e-4,
        batch,
        steps: opts.steps ?? 50,
        sampler: opts.sampler ?? 'ddim',
        guidanceScale: scale,
        seed,
      },
    };
  } catch (e) {
    tf.dispose([eTarget, eOpt]);
    throw e;
  } finally {
    ft.unet.dispose();
    x.dispose();
  }
}
