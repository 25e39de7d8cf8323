/**
 * openai/CLIP in diffguide: ViT / ModifiedResNet image towers, text transformer, BPE tokenizer,
 * differentiable preprocessing, and the time-conditioned (noisy) image encoder for SDG.
 *
 * Importing this module registers the 'openai-clip' and 'noisy-clip-image-encoder' architecture
 * detectors with lib/io (used by `diffguide inspect`).
 */
import { readCheckpoint, registerArchitectureDetector, type ReadOptions } from '../../lib/io/index.js';
import {
  type CLIPConfig,
  type CLIPVisionConfig,
  clipTowersIn,
  inferClipConfig,
  inferTextConfig,
  inferVisionConfig,
} from './config.js';
import { CLIP, type CLIPLoadOptions } from './model.js';
import { NoisyCLIPImageEncoder, type NoisyCLIPOptions } from './noisy.js';

export * from './types.js';
export * from './config.js';
export * from './tokenizer.js';
export { readMergesFile } from './tokenizer-file.js'; // registers the Node merges-file reader
export * from './preprocess.js';
export * from './model.js';
export * from './noisy.js';
export * from './reference-io.js';
export {
  causalMask,
  residualAttentionBlock,
  textForward,
  transformer,
  visionForward,
  type BatchStatsHook,
  type FilmHook,
  type ParamGetter,
  type VisionForwardOptions,
  type VisionOutput,
} from './layers.js';
export {
  type LoadReport as CLIPLoadReport,
  type StateDictLike as CLIPStateDictLike,
  type StateTensor as CLIPStateTensor,
} from './params.js';

/** The config a diffguide `save` stored in the safetensors metadata, if any. */
function savedConfig(meta: Record<string, string>, arch: string): object | undefined {
  if (meta.diffguide_arch !== arch || !meta.diffguide_config) return undefined;
  try {
    return JSON.parse(meta.diffguide_config) as object;
  } catch {
    return undefined;
  }
}

/**
 * Read a CLIP checkpoint (torch.save zip / legacy, TorchScript `ViT-B-32.pt`, safetensors; fp16 becomes
 * fp32) and build the model, config inferred from the keys unless given.
 */
export async function loadCLIP(
  path: string,
  opts: CLIPLoadOptions & { config?: CLIPConfig; read?: ReadOptions } = {},
): Promise<CLIP> {
  const ck = await readCheckpoint(path, opts.read);
  try {
    return CLIP.fromStateDict(
      ck.tensors,
      opts.config ?? (savedConfig(ck.metadata, 'clip') as CLIPConfig | undefined),
      opts,
    );
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** Read a plain CLIP or a saved noisy CLIP encoder checkpoint as a `NoisyCLIPImageEncoder` (text keys never read). */
export async function loadNoisyCLIP(
  path: string,
  opts: NoisyCLIPOptions & { config?: CLIPVisionConfig; seed?: number } = {},
): Promise<NoisyCLIPImageEncoder> {
  const ck = await readCheckpoint(path, { filter: (k) => k.startsWith('visual.') });
  try {
    const saved = savedConfig(ck.metadata, 'noisy-clip-image-encoder') ?? savedConfig(ck.metadata, 'clip');
    return NoisyCLIPImageEncoder.fromStateDict(
      ck.tensors,
      opts.config ?? (saved as CLIPVisionConfig | undefined),
      opts,
    );
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

registerArchitectureDetector('openai-clip', (sd) => {
  if (!sd.has('text_projection') || !sd.has('token_embedding.weight')) return null;
  return { config: inferClipConfig(sd) };
});

registerArchitectureDetector('openai-clip-image-tower', (sd) => {
  const t = clipTowersIn(sd);
  if (!t.image || t.text || sd.has('visual.time_embed.0.weight')) return null;
  return { config: inferVisionConfig(sd) };
});

registerArchitectureDetector('openai-clip-text-tower', (sd) => {
  const t = clipTowersIn(sd);
  if (t.image || !t.text) return null;
  return { config: inferTextConfig(sd) };
});

registerArchitectureDetector('noisy-clip-image-encoder', (sd) => {
  if (!sd.has('visual.time_embed.0.weight')) return null;
  const w = sd.get('visual.time_embed.0.weight')!.shape;
  return { config: { ...inferVisionConfig(sd), timeEmbedChannels: w[1], timeEmbedDim: w[0] } };
});
