/**
 * The shipped models from the TF.js weights-manifest format (`diffguide convert --to tfjs`), through
 * `tf.io` handlers: a URL (`tf.io.http`; in a browser also relative), `indexeddb://` (cache), or any
 * `tf.io.IOHandler` (in Node, `tfjsFileHandler(folder)` from lib/io/tfjs-file.ts). Runs in Node, in
 * browsers and in workers; builds the same nets as `models.ts` does from safetensors.
 */
import type * as tf from '@tensorflow/tfjs';
import type { CLIP } from '../../nets/clip/model.js';
import type { NoisyCLIPImageEncoder } from '../../nets/clip/noisy.js';
import type { Prior } from '../../nets/prior/model.js';
import type { Schedule } from '../../samplers/schedule.js';
import { loadTfjsWeights, type LoadTfjsOptions, type TfjsWeights } from '../io/tfjs.js';
import type { Diffuser } from './diffuser.js';
import {
  WeightsError,
  clipFromStateDict,
  diffuserFromStateDict,
  noisyClipFromStateDict,
  priorFromStateDict,
  type ModelName,
} from './weights-config.js';

type Source = string | tf.io.IOHandler;

function where(source: Source): string {
  return typeof source === 'string' ? source : 'tf.io handler';
}

async function loadAs(name: ModelName, source: Source, opts: LoadTfjsOptions): Promise<TfjsWeights> {
  const w = await loadTfjsWeights(source, opts);
  if (w.model !== name)
    throw new WeightsError(
      `${where(source)}: holds the '${w.model}' weights, expected '${name}'; convert weights/${name} with: diffguide convert --to tfjs weights/${name} OUT`,
    );
  return w;
}

/** The unconditional UNet (or, with name 'cond-unet', the embedding-conditioned one) with its diffusion. */
export async function loadDiffuserTfjs(
  source: Source,
  opts: LoadTfjsOptions & { name?: 'unet' | 'cond-unet' } = {},
): Promise<Diffuser> {
  const name = opts.name ?? 'unet';
  const w = await loadAs(name, source, opts);
  return diffuserFromStateDict(name, w.stateDict, w.config, where(source));
}

/** CLIP (image + text towers). Its text tokenizer needs the BPE merges (browser: `setMergesText`). */
export async function loadClipTfjs(source: Source, opts: LoadTfjsOptions = {}): Promise<CLIP> {
  const w = await loadAs('clip', source, opts);
  return clipFromStateDict(w.stateDict, w.config, where(source));
}

/** The noisy (time-conditioned) CLIP image encoder (SDG). */
export async function loadNoisyClipTfjs(source: Source, opts: LoadTfjsOptions = {}): Promise<NoisyCLIPImageEncoder> {
  const w = await loadAs('noisy-clip', source, opts);
  return noisyClipFromStateDict(w.stateDict, where(source));
}

/** The unCLIP prior and its schedule. */
export async function loadPriorTfjs(
  source: Source,
  opts: LoadTfjsOptions = {},
): Promise<{ prior: Prior; schedule: Schedule }> {
  const w = await loadAs('prior', source, opts);
  return priorFromStateDict(w.stateDict, w.config, where(source));
}
