/**
 * openai/CLIP in diffguide: ViT / ModifiedResNet image towers, text transformer, BPE tokenizer,
 * differentiable preprocessing, and the time-conditioned (noisy) image encoder for SDG.
 *
 * Importing this module registers the 'openai-clip' and 'noisy-clip-image-encoder' architecture
 * detectors with lib/io (used by `diffguide inspect`).
 */
import { readStateDict, registerArchitectureDetector, type ReadOptions } from '../../lib/io/index.js';
import { type CLIPConfig, type CLIPVisionConfig, inferClipConfig, inferVisionConfig } from './config.js';
import { CLIP, type CLIPLoadOptions } from './model.js';
import { NoisyCLIPImageEncoder, type NoisyCLIPOptions } from './noisy.js';

export * from './types.js';
export * from './config.js';
export * from './tokenizer.js';
export * from './preprocess.js';
export * from './model.js';
export * from './noisy.js';
export * from './reference-io.js';
export { causalMask, residualAttentionBlock, textForward, transformer, visionForward, type FilmHook, type ParamGetter, type VisionOutput } from './layers.js';
export { type LoadReport as CLIPLoadReport, type StateDictLike as CLIPStateDictLike, type StateTensor as CLIPStateTensor } from './params.js';

/**
 * Read a CLIP checkpoint (torch.save zip / legacy, TorchScript `ViT-B-32.pt`, safetensors; fp16 becomes
 * fp32) and build the model, config inferred from the keys unless given.
 */
export async function loadCLIP(path: string, opts: CLIPLoadOptions & { config?: CLIPConfig; read?: ReadOptions } = {}): Promise<CLIP> {
  const sd = await readStateDict(path, opts.read);
  try {
    return CLIP.fromStateDict(sd, opts.config, opts);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** Read a plain CLIP or a saved noisy CLIP encoder checkpoint as a `NoisyCLIPImageEncoder` (text keys never read). */
export async function loadNoisyCLIP(path: string, opts: NoisyCLIPOptions & { config?: CLIPVisionConfig; seed?: number } = {}): Promise<NoisyCLIPImageEncoder> {
  const sd = await readStateDict(path, { filter: (k) => k.startsWith('visual.') });
  try {
    return NoisyCLIPImageEncoder.fromStateDict(sd, opts.config, opts);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

registerArchitectureDetector('openai-clip', (sd) => {
  if (!sd.has('text_projection') || !sd.has('token_embedding.weight')) return null;
  return { config: inferClipConfig(sd) };
});

registerArchitectureDetector('noisy-clip-image-encoder', (sd) => {
  if (!sd.has('visual.time_embed.0.weight')) return null;
  const w = sd.get('visual.time_embed.0.weight')!.shape;
  return { config: { ...inferVisionConfig(sd), timeEmbedChannels: w[1], timeEmbedDim: w[0] } };
});
