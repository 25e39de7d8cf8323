/**
 * Datasets: emoji (Noto + Twemoji), MNIST, folders of PNGs; a compact cached format; a seeded
 * batch sampler. See lib/data/README.md for sources and licences.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, type EnsurePackageOptions } from './cache.js';
import { Dataset } from './dataset.js';
import { buildEmoji, type EmojiVendor } from './emoji.js';
import { writeDataset } from './format.js';
import { buildMnist } from './mnist.js';
import { loadFolder } from './folder.js';

export * from './cache.js';
export * from './dataset.js';
export * from './emoji.js';
export * from './format.js';
export * from './mnist.js';
export * from './folder.js';

export type DatasetName = 'emoji' | 'mnist';

export interface PrepareOptions extends EnsurePackageOptions {
  /** Emoji size 32 or 64 (default 32; MNIST is always 32). */
  size?: 32 | 64;
  /** Output folder (default `<cache>/datasets`). */
  out?: string;
  vendors?: EmojiVendor[];
  /** Rebuild even if present. */
  force?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** Index path a prepared dataset lives at. */
export function preparedPath(name: DatasetName, size: 32 | 64 = 32, out?: string): string {
  const dir = out ?? join(cacheDir(), 'datasets');
  return join(dir, name === 'mnist' ? 'mnist-32.json' : `emoji-${size}.json`);
}

/** Build (once) and write a prepared dataset; returns its index path. */
export function prepareDataset(name: DatasetName, opts: PrepareOptions = {}): string {
  const size = opts.size ?? 32;
  const path = preparedPath(name, size, opts.out);
  if (existsSync(path) && !opts.force) return path;
  if (name === 'emoji') {
    const { index, pixels } = buildEmoji({ ...opts, size });
    writeDataset(path, index, pixels);
  } else if (name === 'mnist') {
    const { index, pixels } = buildMnist(opts);
    writeDataset(path, index, pixels);
  } else {
    throw new Error(`unknown dataset '${name as string}'; use emoji, mnist, a folder of PNGs, or a prepared .json index`);
  }
  return path;
}

/**
 * Load a dataset by name ('emoji', 'emoji32', 'emoji64', 'mnist'), by prepared index path (.json),
 * or from a folder of PNGs. Named datasets are prepared on first use.
 */
export function loadDataset(spec: string, opts: PrepareOptions = {}): Dataset {
  const m = /^emoji(32|64)?$/.exec(spec);
  if (m) return Dataset.load(prepareDataset('emoji', { ...opts, size: (m[1] ? Number(m[1]) : opts.size ?? 32) as 32 | 64 }));
  if (spec === 'mnist') return Dataset.load(prepareDataset('mnist', opts));
  if (spec.endsWith('.json')) return Dataset.load(spec);
  if (existsSync(spec) && statSync(spec).isDirectory()) return loadFolder(spec, { size: opts.size });
  throw new Error(`unknown dataset '${spec}': use emoji32, emoji64, mnist, a prepared .json index, or a folder of PNGs`);
}

/** The committed test subset (64 emoji x 2 vendors at 32x32), path relative to the package. */
export function testSubsetPath(root: string): string {
  return join(root, 'test', 'data', 'emoji32-subset.json');
}
