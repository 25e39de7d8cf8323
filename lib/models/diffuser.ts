/**
 * The model layer: a UNet with the diffusion it was trained for (`Diffuser`), the sampler's view of
 * it, and copying it for fine-tunes. Training (lib/train) and the methods (lib/methods) both build
 * on this; it knows neither.
 */
import { UNet } from '../../nets/unet/index.js';
import {
  DiffusionModel,
  type Cond,
  type NetFn,
  type Parameterization,
  type VarianceType,
} from '../../samplers/model.js';
import type { Schedule } from '../../samplers/schedule.js';

/** A UNet with the diffusion it was trained for. */
export interface Diffuser {
  unet: UNet;
  /** The full training schedule (e.g. linear, 1000 steps). Methods respace it. */
  schedule: Schedule;
  /** What the net predicts. Default 'eps'. */
  prediction: Parameterization;
  /** Sampling variance ('learnedRange' when the net has 2C output channels). */
  variance: VarianceType;
  /**
   * Embedding conditioning (unCLIP decoder / Imagic model): embeddings are L2-normalised and
   * multiplied by `embScale` before `cond.emb`; the unconditional ("null") embedding is zeros.
   */
  embScale: number;
  /** Where it came from (a path, "random", ...), for settings and errors. */
  source: string;
}

/** The sampling variance a UNet's output calls for: learned (guided-diffusion's range) when it has the channels. */
export function unetVariance(unet: UNet): 'learnedRange' | 'fixedSmall' {
  return unet.config.learnSigma ? 'learnedRange' : 'fixedSmall';
}

/** A Diffuser from a UNet and its schedule; variance inferred from the output channels. */
export function makeDiffuser(
  unet: UNet,
  schedule: Schedule,
  opts: Partial<Omit<Diffuser, 'unet' | 'schedule'>> = {},
): Diffuser {
  return {
    unet,
    schedule,
    prediction: opts.prediction ?? 'eps',
    variance: opts.variance ?? unetVariance(unet),
    embScale: opts.embScale ?? 1,
    source: opts.source ?? 'in-memory',
  };
}

/**
 * The same diffusion (schedule, parameterisation, variance, embScale) around another UNet with the
 * same architecture (a fine-tuned copy, a delta applied); `source` names where the new weights came from.
 */
export function withUNet(d: Diffuser, unet: UNet, source: string): Diffuser {
  return { ...d, unet, source };
}

/** Clone a UNet (new variables, same weights): the start of every fine-tune (DiffusionCLIP, Imagic). */
export function cloneUNet(u: UNet): UNet {
  return UNet.fromStateDict(u.toStateDict(), u.config);
}

/** The UNet as a sampler NetFn. */
export function unetNet(unet: UNet): NetFn {
  return (x, t, cond) => unet.apply(x, t, cond ?? {});
}

/** The sampler's model for a Diffuser (optionally another net with the same parameterisation, e.g. a blend); NaN/Inf outputs throw. */
export function diffusionModelOf(d: Diffuser, net?: NetFn, cond?: Cond): DiffusionModel {
  return new DiffusionModel(net ?? unetNet(d.unet), { prediction: d.prediction, variance: d.variance, cond });
}
