/**
 * One place that loads the models the methods need: the shipped defaults in `weights/<name>/`
 * (`<name>.safetensors` + `<name>.config.json`, or `config.json`), or a user's converted checkpoint
 * by path; and, for development and tests only, tiny random-weight stand-ins.
 *
 * Config JSON beside a UNet checkpoint: the UNet config (our camelCase `UNetConfig` fields or the
 * reference constructor arguments, top level or under `unet`/`model`) plus the diffusion it was
 * trained with: `schedule` ('linear' | 'scaled-linear' | 'cosine'), `timesteps`, `prediction`
 * ('eps' | 'x0' | 'v'), `embScale` (see `Diffuser.embScale`), all optionally under `diffusion`; what
 * an absent one means is `DIFFUSION_DEFAULTS` (lib/models/weights-config.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UNet, type UNetConfig } from '../../nets/unet/index.js';
import { CLIP, NoisyCLIPImageEncoder, type CLIPConfig, type CLIPVisionConfig } from '../../nets/clip/index.js';
import { Prior } from '../../nets/prior/index.js';
import { readStateDict } from '../io/index.js';
import { weightsPath } from '../paths.js';
import { makeSchedule, type Schedule } from '../../samplers/schedule.js';
import { makeDiffuser, type Diffuser } from './diffuser.js';
import {
  DIFFUSION_DEFAULTS,
  MAKE_COMMAND,
  MODEL_DESCRIPTION,
  WeightsError,
  clipFromStateDict,
  diffuserFromStateDict,
  noisyClipFromStateDict,
  priorFromStateDict,
  type ModelName,
} from './weights-config.js';

export {
  DIFFUSION_DEFAULTS,
  MAKE_COMMAND,
  WeightsError,
  scheduleFromConfig,
  scheduleSpecFromConfig,
  type ModelName,
} from './weights-config.js';

function missingMessage(name: ModelName, where: string): string {
  return (
    `no weights for '${name}' at ${where}: expected ${MODEL_DESCRIPTION[name]} as safetensors (+ config JSON).\n` +
    `Make it with: ${MAKE_COMMAND[name]}   (or pass --weights PATH to a converted checkpoint, e.g. made by 'diffguide convert ...';\n` +
    `for development only, --random-weights runs with tiny random models)`
  );
}

/**
 * Resolve a weights file: `path` may be a file, a folder (holding `<name>.safetensors` or exactly one
 * checkpoint), or undefined (the shipped `weights/<name>/`). Throws `WeightsError` naming the fix.
 */
export function resolveWeights(name: ModelName, path?: string): string {
  const where = path ?? weightsPath(name);
  if (!existsSync(where)) throw new WeightsError(missingMessage(name, where));
  if (statSync(where).isFile()) return where;
  const preferred = [`${name}.safetensors`, 'model.safetensors', `${name}.pt`, `${name}.pth`];
  for (const f of preferred) if (existsSync(join(where, f))) return join(where, f);
  const ckpts = readdirSync(where).filter((f) => /\.(safetensors|pt|pth|bin|ckpt)$/.test(f));
  if (ckpts.length === 1) return join(where, ckpts[0]);
  throw new WeightsError(
    missingMessage(name, where) +
      (ckpts.length > 1 ? `\n(${where} holds several checkpoints: ${ckpts.join(', ')}; pass one)` : ''),
  );
}

/** The config JSON beside a weights file (`X.config.json`, `<folder>/config.json`, `<folder>/<name>.config.json`), or null. */
export function readConfigBeside(file: string, name?: string): Record<string, unknown> | null {
  const dir = dirname(file);
  const stem = basename(file).replace(/\.(safetensors|pt|pth|bin|ckpt)$/, '');
  const cands = [join(dir, `${stem}.config.json`), join(dir, `${stem}.json`), join(dir, 'config.json')];
  if (name) cands.push(join(dir, `${name}.config.json`));
  for (const c of cands) {
    if (existsSync(c)) {
      try {
        return JSON.parse(readFileSync(c, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new WeightsError(`config ${c} is not valid JSON: ${(e as Error).message}`);
      }
    }
  }
  return null;
}

async function loadUNetFile(name: 'unet' | 'cond-unet', path: string | undefined, needEmb: boolean): Promise<Diffuser> {
  const file = resolveWeights(name, path);
  const json = readConfigBeside(file, name);
  let sd;
  try {
    sd = await readStateDict(file);
  } catch (e) {
    throw new WeightsError(
      `${file}: not ${MODEL_DESCRIPTION[name]} this build can load:\n${(e as Error).message}\nMake it with: ${MAKE_COMMAND[name]}`,
    );
  }
  return diffuserFromStateDict(name, sd, json, file, needEmb);
}

/** The unconditional UNet (SDG, SDEdit, DiffusionCLIP): shipped `weights/unet/` or a path. */
export function loadUNetDiffuser(path?: string): Promise<Diffuser> {
  return loadUNetFile('unet', path, false);
}

/** The embedding-conditioned UNet (unCLIP decoder, Imagic): shipped `weights/cond-unet/` or a path. */
export function loadCondDiffuser(path?: string): Promise<Diffuser> {
  return loadUNetFile('cond-unet', path, true);
}

/** CLIP (image + text): shipped `weights/clip/` or a path (any format lib/io reads). */
export async function loadClipModel(path?: string): Promise<CLIP> {
  const file = resolveWeights('clip', path);
  const json = readConfigBeside(file, 'clip');
  return clipFromStateDict(await readOrExplain('clip', file), json, file);
}

/** The noisy CLIP image encoder (SDG): shipped `weights/noisy-clip/` or a path. */
export async function loadNoisyClipModel(path?: string): Promise<NoisyCLIPImageEncoder> {
  const file = resolveWeights('noisy-clip', path);
  return noisyClipFromStateDict(await readOrExplain('noisy-clip', file, (k) => k.startsWith('visual.')), file);
}

/** The unCLIP prior and its (cosine) schedule: shipped `weights/prior/` or a path. */
export async function loadPriorModel(path?: string): Promise<{ prior: Prior; schedule: Schedule }> {
  const file = resolveWeights('prior', path);
  const json = readConfigBeside(file, 'prior');
  return priorFromStateDict(await readOrExplain('prior', file), json, file);
}

async function readOrExplain(name: ModelName, file: string, filter?: (k: string) => boolean) {
  try {
    return await readStateDict(file, filter ? { filter } : undefined);
  } catch (e) {
    throw new WeightsError(
      `${file}: not ${MODEL_DESCRIPTION[name]}:\n${(e as Error).message}\nMake it with: ${MAKE_COMMAND[name]}`,
    );
  }
}

// -------------------------------------------------------------------------------------------------
// Tiny random models (development and tests only: they produce noise-like images).

/** Options for the tiny random stand-ins. */
export interface RandomModelOptions {
  /** Image size (default 32). */
  imageSize?: number;
  /** UNet base width (default 32; GroupNorm(32) needs a multiple of 32). */
  modelChannels?: number;
  /** CLIP embedding width (default 32). */
  embedDim?: number;
}

export function tinyUNetConfig(o: RandomModelOptions = {}, embCondDim: number | null = null): Partial<UNetConfig> {
  return {
    kind: 'guided-diffusion',
    imageSize: o.imageSize ?? 32,
    inChannels: 3,
    outChannels: 3,
    modelChannels: o.modelChannels ?? 32,
    channelMult: [1, 2],
    numResBlocks: 1,
    attentionDs: [2],
    numHeadChannels: -1,
    numHeads: 2,
    embCondDim,
  };
}

export function tinyClipConfig(o: RandomModelOptions = {}): CLIPConfig {
  const D = o.embedDim ?? 32;
  return {
    embedDim: D,
    imageResolution: o.imageSize ?? 32,
    visionLayers: 2,
    visionWidth: 32,
    visionPatchSize: 8,
    visionHeads: 2,
    contextLength: 32,
    vocabSize: 1000,
    transformerWidth: 32,
    transformerHeads: 2,
    transformerLayers: 2,
  };
}

/** Everything the five methods use, with tiny random weights. Dispose with `disposeModels`. */
export interface ModelSet {
  unet?: Diffuser;
  cond?: Diffuser;
  clip?: CLIP;
  noisy?: NoisyCLIPImageEncoder;
  prior?: { prior: Prior; schedule: Schedule };
}

export function randomModels(seed = 0, o: RandomModelOptions = {}): Required<ModelSet> {
  // the stand-ins run what a config naming no diffusion means
  const { schedule, timesteps: T } = DIFFUSION_DEFAULTS.unet;
  const clipCfg = tinyClipConfig(o);
  const vision: CLIPVisionConfig = { ...clipCfg };
  return {
    unet: makeDiffuser(UNet.random(tinyUNetConfig(o), seed, { referenceInit: false }), makeSchedule(schedule, T), {
      source: 'random',
    }),
    cond: makeDiffuser(
      UNet.random(tinyUNetConfig(o, clipCfg.embedDim), seed + 1, { referenceInit: false }),
      makeSchedule(schedule, T),
      { source: 'random' },
    ),
    clip: CLIP.random(clipCfg, seed + 2),
    noisy: NoisyCLIPImageEncoder.random(vision, seed + 3),
    prior: {
      prior: Prior.random({ embedDim: clipCfg.embedDim, width: 64, depth: 2 }, seed + 4),
      schedule: makeSchedule(DIFFUSION_DEFAULTS.prior.schedule, T),
    },
  };
}

export function disposeModels(m: ModelSet): void {
  m.unet?.unet.dispose();
  m.cond?.unet.dispose();
  m.clip?.dispose();
  m.noisy?.dispose();
  m.prior?.prior.dispose();
}

/** Which shipped models exist (each folder with a resolvable checkpoint). */
export function shippedModels(): Record<ModelName, boolean> {
  const out = {} as Record<ModelName, boolean>;
  for (const n of Object.keys(MAKE_COMMAND) as ModelName[]) {
    try {
      resolveWeights(n);
      out[n] = true;
    } catch {
      out[n] = false;
    }
  }
  return out;
}

/**
 * Whether a shipped model has reached its quality bars: `config.json`'s `quality` field, which is
 * set to 'meets-bars' only after `diffguide eval <model>` passes every bar (see the model card).
 * Anything else (absent, 'work-in-progress') means the weights run but miss a bar. `diffguide info`
 * lists it per model.
 */
export function shippedQuality(name: ModelName): 'meets-bars' | 'work-in-progress' {
  try {
    const json = readConfigBeside(resolveWeights(name), name);
    return json?.quality === 'meets-bars' ? 'meets-bars' : 'work-in-progress';
  } catch {
    return 'work-in-progress';
  }
}
