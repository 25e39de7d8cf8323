/**
 * Feature extractors: what turns images (and texts) into the feature sets the metrics compare.
 * Every extractor has a `name`, and every report a metric returns carries it, so a number is never
 * separated from the network that produced it.
 *
 * Built in: the shipped judge (`judge`: its pooled features [N, 128] and its category head) and the
 * shipped CLIP (`clip`: image and text embeddings). `loadExtractor({ kind, path })` loads either
 * from any checkpoint lib/io reads (safetensors, torch zip / legacy, TorchScript) with the config
 * JSON beside it; `registerExtractor(kind, loader)` adds other networks (e.g. a user's Inception),
 * which `loadExtractor` then loads by config the same way.
 */
import * as tf from '@tensorflow/tfjs';
import { readStateDict } from '../io/index.js';
import { Judge, type JudgeConfig } from '../../nets/judge/model.js';
import type { CLIP } from '../../nets/clip/index.js';
import { loadClipModel, readConfigBeside, resolveWeights } from '../models/load.js';

export interface ImageFeatureExtractor {
  /** What reports call it: the kind for shipped weights ("judge", "clip"), else "kind:path" or a given name. */
  readonly name: string;
  /** The weights it was built from (a path, "in-memory", ...). */
  readonly source: string;
  /** Feature width D. */
  readonly dim: number;
  /** [N, H, W, 3] in [-1, 1] -> features [N, D] (a new tensor). */
  images(x: tf.Tensor4D): tf.Tensor2D;
  /** Free the network when the extractor owns it (loaded by `loadExtractor`); otherwise nothing. */
  dispose(): void;
}

/** An extractor with a text tower in the same space (CLIP). */
export interface ImageTextExtractor extends ImageFeatureExtractor {
  /** texts -> embeddings [N, D] (a new tensor). */
  texts(texts: string[]): tf.Tensor2D;
}

/** An extractor with a category head (the judge). */
export interface CategoryExtractor extends ImageFeatureExtractor {
  readonly categories: string[];
  /** Predicted category index per image. */
  classify(x: tf.Tensor4D): number[];
}

export interface WrapOptions {
  name?: string;
  source?: string;
  /** Whether `dispose()` frees the model (default false: the caller keeps owning it). */
  owned?: boolean;
}

/** The judge as an extractor: pooled features [N, 128] and its category head. */
export function judgeExtractor(judge: Judge, opts: WrapOptions = {}): CategoryExtractor & { readonly judge: Judge } {
  return {
    name: opts.name ?? 'judge',
    source: opts.source ?? 'in-memory',
    dim: judge.featureDim,
    judge,
    categories: judge.config.categories,
    images: (x) => judge.features(x),
    classify: (x) => judge.predict(x).category,
    dispose: () => {
      if (opts.owned) judge.dispose();
    },
  };
}

/** CLIP as an extractor: image and text embeddings (projected, not normalised) [N, embedDim]. */
export function clipExtractor(clip: CLIP, opts: WrapOptions = {}): ImageTextExtractor & { readonly clip: CLIP } {
  return {
    name: opts.name ?? 'clip',
    source: opts.source ?? 'in-memory',
    dim: clip.embedDim,
    clip,
    images: (x) => tf.tidy(() => clip.encodeImage(x).embedding),
    texts: (t) => clip.encodeText(t, { truncate: true }),
    dispose: () => {
      if (opts.owned) clip.dispose();
    },
  };
}

/** How to load an extractor: its kind, the weights (file or folder; default the shipped ones) and an optional name. */
export interface ExtractorConfig {
  kind: string;
  path?: string;
  name?: string;
  /** Anything a registered loader needs besides the path. */
  options?: Record<string, unknown>;
}

export type ExtractorLoader = (cfg: ExtractorConfig) => Promise<ImageFeatureExtractor>;

function defaultName(cfg: ExtractorConfig): string {
  return cfg.name ?? (cfg.path ? `${cfg.kind}:${cfg.path}` : cfg.kind);
}

/** The judge from a folder (judge.safetensors + config.json) or any checkpoint file with its config beside it. */
export async function loadJudgeExtractor(
  path?: string,
  name?: string,
): Promise<CategoryExtractor & { readonly judge: Judge }> {
  const file = resolveWeights('judge', path);
  const cfg = readConfigBeside(file, 'judge') as unknown as JudgeConfig | null;
  if (!cfg || !Array.isArray(cfg.widths))
    throw new Error(
      `${file}: no judge config JSON beside it (config.json with imageSize, widths, strides, groups, categories, vendors); copy weights/judge/config.json next to it`,
    );
  const judge = Judge.fromStateDict(cfg, await readStateDict(file), file);
  return judgeExtractor(judge, { name: defaultName({ kind: 'judge', path, name }), source: file, owned: true });
}

/** CLIP from a folder or any checkpoint lib/io reads (config beside it, or inferred). */
export async function loadClipExtractor(
  path?: string,
  name?: string,
): Promise<ImageTextExtractor & { readonly clip: CLIP }> {
  const file = resolveWeights('clip', path);
  const clip = await loadClipModel(file);
  return clipExtractor(clip, { name: defaultName({ kind: 'clip', path, name }), source: file, owned: true });
}

const LOADERS = new Map<string, ExtractorLoader>([
  ['judge', (cfg) => loadJudgeExtractor(cfg.path, cfg.name)],
  ['clip', (cfg) => loadClipExtractor(cfg.path, cfg.name)],
]);

/**
 * Add an extractor kind: `loader(cfg)` builds it from `cfg.path` (read it with lib/io's
 * `readStateDict`) and `cfg.options`. The extractor's name should be `cfg.name ?? "<kind>:<path>"`.
 */
export function registerExtractor(kind: string, loader: ExtractorLoader): void {
  if (!/^[a-z][a-z0-9._-]*$/i.test(kind))
    throw new Error(`registerExtractor: kind '${kind}' must be a word (letters, digits, . _ -)`);
  LOADERS.set(kind, loader);
}

/** The kinds `loadExtractor` knows. */
export function extractorKinds(): string[] {
  return [...LOADERS.keys()];
}

/** "judge", "clip", "clip:/path/to/ViT-B-32.pt", "inception:/path/pt_inception.pth" -> a config. */
export function parseExtractorSpec(spec: string): ExtractorConfig {
  const i = spec.indexOf(':');
  const kind = i < 0 ? spec : spec.slice(0, i);
  const path = i < 0 ? undefined : spec.slice(i + 1);
  if (!kind)
    throw new Error(`extractor spec '${spec}': expected KIND or KIND:PATH (kinds: ${extractorKinds().join(', ')})`);
  return path ? { kind, path } : { kind };
}

/** Load an extractor by config (or a "kind[:path]" spec); the caller disposes it. */
export async function loadExtractor(cfg: ExtractorConfig | string): Promise<ImageFeatureExtractor> {
  const c = typeof cfg === 'string' ? parseExtractorSpec(cfg) : cfg;
  const loader = LOADERS.get(c.kind);
  if (!loader)
    throw new Error(
      `no feature extractor of kind '${c.kind}'; known kinds: ${extractorKinds().join(', ')} (add one with registerExtractor(kind, loader))`,
    );
  return loader(c);
}

/** Features [N, D] of an image batch through `ext`, `batch` images at a time (a new tensor). */
export function extract(ext: ImageFeatureExtractor, x: tf.Tensor4D, batch = 128): tf.Tensor2D {
  if (x.rank !== 4)
    throw new Error(`${ext.name}: expected an image batch [N, H, W, 3] in [-1, 1], got shape [${x.shape}]`);
  const n = x.shape[0];
  if (n <= batch) return ext.images(x);
  const parts: tf.Tensor2D[] = [];
  for (let i = 0; i < n; i += batch)
    parts.push(tf.tidy(() => ext.images(x.slice([i, 0, 0, 0], [Math.min(batch, n - i), -1, -1, -1]))));
  const out = tf.concat(parts) as tf.Tensor2D;
  tf.dispose(parts);
  return out;
}

/** Category predictions of a batch through a classifying extractor, `batch` at a time. */
export function classify(ext: CategoryExtractor, x: tf.Tensor4D, batch = 128): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.shape[0]; i += batch) {
    const xb = x.slice([i, 0, 0, 0], [Math.min(batch, x.shape[0] - i), -1, -1, -1]);
    out.push(...ext.classify(xb));
    xb.dispose();
  }
  return out;
}
