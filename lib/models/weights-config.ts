/**
 * Building the shipped models from tensors already in memory (a state_dict in the reference PyTorch
 * layout) plus the config JSON that ships beside them. No file access: `models.ts` reads safetensors
 * files in Node and `tfjs-models.ts` reads the TF.js weights-manifest format through `tf.io` handlers
 * (http, IndexedDB, files), in Node and in browsers; both end here.
 */
import { UNet, configFromReference, type UNetConfig } from '../../nets/unet/index.js';
import { CLIP, type CLIPLoadOptions } from '../../nets/clip/model.js';
import type { CLIPConfig } from '../../nets/clip/config.js';
import { NoisyCLIPImageEncoder } from '../../nets/clip/noisy.js';
import { Prior, type PriorConfig } from '../../nets/prior/model.js';
import type { StateDict } from '../io/types.js';
import { makeSchedule, type Schedule, type ScheduleName } from '../../samplers/schedule.js';
import type { Parameterization } from '../../samplers/model.js';
import { makeDiffuser, type Diffuser } from './diffuser.js';

/** The shipped models, by folder name under weights/. */
export type ModelName = 'unet' | 'clip' | 'noisy-clip' | 'cond-unet' | 'prior' | 'judge';

/** The command that makes each shipped model (for error messages). */
export const MAKE_COMMAND: Record<ModelName, string> = {
  unet: 'diffguide train unet',
  clip: 'diffguide train clip',
  'noisy-clip': 'diffguide train noisy-clip',
  'cond-unet': 'diffguide train cond-unet',
  prior: 'diffguide train prior',
  judge: 'diffguide train judge',
};

/** What each shipped model is (for error messages). */
export const MODEL_DESCRIPTION: Record<ModelName, string> = {
  unet: 'an unconditional UNet (eps prediction)',
  clip: 'a CLIP model (image + text towers)',
  'noisy-clip': 'a time-conditioned (noisy) CLIP image encoder',
  'cond-unet': 'a UNet conditioned on a CLIP embedding (cond.emb)',
  prior: 'an unCLIP prior (nets/prior)',
  judge: 'the judge classifier',
};

/** Thrown when weights are missing or do not fit; the message names what was expected and the fix. */
export class WeightsError extends Error {}

/** The config JSON shipped beside a model (`config.json`), as parsed. */
export type ModelConfigJson = Record<string, unknown>;

/**
 * What a model's config JSON means when it names no diffusion: the one definition of the model-level
 * defaults (every reader of a config, the tiny random stand-ins and the docs use these).
 *
 * The UNet's are the reference codes' own defaults (DDPM and guided-diffusion: a linear schedule of
 * 1000 steps, eps prediction), because a config without a schedule comes from a converted reference
 * checkpoint (theirs name none: e.g. the parity fixtures' `gd_tiny_a.config.json`,
 * `ddpm_tiny.config.json`). Every config diffguide writes names its schedule: the shipped
 * `weights/unet` and `weights/cond-unet` say `cosine`, 1000 steps, `v` prediction, which is what they
 * were trained with, and that is what they run with.
 */
export const DIFFUSION_DEFAULTS = {
  /** A UNet's (weights/unet, weights/cond-unet, converted checkpoints). */
  unet: {
    /** Noise schedule ('linear' | 'scaled-linear' | 'cosine'); the reference codes' default. */
    schedule: 'linear',
    /** Training timesteps T of the schedule. */
    timesteps: 1000,
    /** What the net predicts ('eps' | 'x0' | 'v'). */
    prediction: 'eps',
    /** Scale of the decoder's conditioning embedding (see `Diffuser.embScale`). */
    embScale: 1,
  },
  /** The unCLIP prior's (weights/prior). */
  prior: {
    /** The unCLIP prior's schedule (unCLIP's prior: cosine); its length is the prior's `timesteps`. */
    schedule: 'cosine',
  },
} as const;

/**
 * The schedule every model we train learns on (`train unet`, `cond-unet`, `noisy-clip`, `prior`):
 * Improved DDPM's cosine of 1000 steps. Training writes it into the run's config, so the weights it
 * ships name it; a config naming none still means `DIFFUSION_DEFAULTS.unet` (a converted checkpoint).
 */
export const TRAIN_SCHEDULE = {
  /** Noise schedule of training (and of the config it writes). */
  schedule: 'cosine',
  /** Training timesteps T. */
  timesteps: 1000,
} as const;

function pick<T>(json: ModelConfigJson | null, key: string, fallback: T): T {
  if (!json) return fallback;
  const d = json.diffusion as Record<string, unknown> | undefined;
  return ((d && d[key] !== undefined ? d[key] : json[key]) as T) ?? fallback;
}

/** The diffusion schedule name and length a UNet config names (defaults: `DIFFUSION_DEFAULTS.unet`). */
export function scheduleSpecFromConfig(json: ModelConfigJson | null): { schedule: ScheduleName; timesteps: number } {
  const D = DIFFUSION_DEFAULTS.unet;
  return {
    schedule: pick<ScheduleName>(json, 'schedule', D.schedule),
    timesteps: Number(pick<number>(json, 'timesteps', pick<number>(json, 'diffusion_steps', D.timesteps))),
  };
}

/** The diffusion schedule a UNet config names (defaults: `DIFFUSION_DEFAULTS.unet`). */
export function scheduleFromConfig(json: ModelConfigJson | null): Schedule {
  const { schedule, timesteps } = scheduleSpecFromConfig(json);
  return makeSchedule(schedule, timesteps);
}

function unetConfigFrom(json: ModelConfigJson | null): Partial<UNetConfig> | undefined {
  if (!json) return undefined;
  // a nested UNet config (`unet: {...}` or `model: {...}`); our own configs name the model in `model` ("unet")
  const nested = [json.unet, json.model].find((v) => v !== null && typeof v === 'object');
  const src = (nested ?? json) as Record<string, unknown>;
  try {
    return configFromReference(src);
  } catch {
    return undefined;
  }
}

/**
 * A UNet with its diffusion (schedule, prediction, embScale from `json`). `needEmb`: it must be
 * embedding-conditioned (cond-unet). `source` names the weights in errors and in `Diffuser.source`.
 */
export function diffuserFromStateDict(
  name: 'unet' | 'cond-unet',
  sd: StateDict,
  json: ModelConfigJson | null,
  source: string,
  needEmb = name === 'cond-unet',
): Diffuser {
  let unet: UNet;
  try {
    unet = UNet.fromStateDict(sd, unetConfigFrom(json));
  } catch (e) {
    throw new WeightsError(
      `${source}: not ${MODEL_DESCRIPTION[name]} this build can load:\n${(e as Error).message}\nMake it with: ${MAKE_COMMAND[name]}`,
    );
  }
  if (needEmb && unet.config.embCondDim === null) {
    unet.dispose();
    throw new WeightsError(
      `${source}: this UNet has no embedding conditioning (no transformer_proj); expected ${MODEL_DESCRIPTION[name]}. Make it with: ${MAKE_COMMAND[name]}`,
    );
  }
  return makeDiffuser(unet, scheduleFromConfig(json), {
    prediction: pick<Parameterization>(json, 'prediction', DIFFUSION_DEFAULTS.unet.prediction),
    embScale: Number(pick<number>(json, 'embScale', DIFFUSION_DEFAULTS.unet.embScale)),
    source,
  });
}

/** CLIP (image + text towers) from its state_dict and config (`json.clip`). */
export function clipFromStateDict(
  sd: StateDict,
  json: ModelConfigJson | null,
  source: string,
  opts: CLIPLoadOptions = {},
): CLIP {
  try {
    return CLIP.fromStateDict(sd, (json?.clip ?? json?.config ?? undefined) as CLIPConfig | undefined, opts);
  } catch (e) {
    throw new WeightsError(
      `${source}: not ${MODEL_DESCRIPTION.clip}:\n${(e as Error).message}\nMake it with: ${MAKE_COMMAND.clip}`,
    );
  }
}

/** The noisy CLIP image encoder from a state_dict (only the `visual.` keys are used). */
export function noisyClipFromStateDict(sd: StateDict, source: string): NoisyCLIPImageEncoder {
  const visual: StateDict = new Map([...sd].filter(([k]) => k.startsWith('visual.')));
  try {
    return NoisyCLIPImageEncoder.fromStateDict(visual);
  } catch (e) {
    throw new WeightsError(
      `${source}: not ${MODEL_DESCRIPTION['noisy-clip']}:\n${(e as Error).message}\nMake it with: ${MAKE_COMMAND['noisy-clip']}`,
    );
  }
}

/** The unCLIP prior and its schedule (default `DIFFUSION_DEFAULTS.prior.schedule`) from a state_dict and config. */
export function priorFromStateDict(
  sd: StateDict,
  json: ModelConfigJson | null,
  source: string,
): { prior: Prior; schedule: Schedule } {
  try {
    const prior = Prior.fromStateDict(sd, (json ?? undefined) as Partial<PriorConfig> | undefined);
    return {
      prior,
      schedule: makeSchedule(
        pick<ScheduleName>(json, 'schedule', DIFFUSION_DEFAULTS.prior.schedule),
        prior.config.timesteps,
      ),
    };
  } catch (e) {
    throw new WeightsError(
      `${source}: not ${MODEL_DESCRIPTION.prior}:\n${(e as Error).message}\nMake it with: ${MAKE_COMMAND.prior}`,
    );
  }
}
