/**
 * Datasets: emoji (Noto + Twemoji), MNIST, folders of PNGs; a compact cached format; a seeded
 * batch sampler. See lib/data/README.md for sources and licences.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cacheDir, type EnsurePackageOptions } from './cache.js';
import { Dataset } from './dataset.js';
import { buildEmoji, type EmojiVendor } from './emoji.js';
import { writeDataset, type DatasetIndex } from './format.js';
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

/** Whether a prepared (uncompressed) dataset's index parses and its pixel file has every byte it names. */
function isCompleteDataset(path: string): boolean {
  try {
    const index = JSON.parse(readFileSync(path, 'utf8')) as DatasetIndex;
    const pix = join(dirname(path), index.pixels);
    if (index.pixels.endsWith('.gz')) return existsSync(pix);
    return statSync(pix).size === index.items.length * index.height * index.width * index.channels;
  } catch {
    return false;
  }
}

/** Build (once) and write a prepared dataset; returns its index path. */
export function prepareDataset(name: DatasetName, opts: PrepareOptions = {}): string {
  const size = opts.size ?? 32;
  const path = preparedPath(name, size, opts.out);
  if (existsSync(path) && !opts.force) {
    if (isCompleteDataset(path)) return path;
    (opts.log ?? ((l: string) => process.stderr.write(l + '\n')))(
      `diffguide: prepared dataset ${path} is incomplete (its pixels are missing or short); building it again`,
    );
  }
  if (name === 'emoji') {
    const { index, pixels } = buildEmoji({ ...opts, size });
    writeDataset(path, index, pixels);
  } else if (name === 'mnist') {
    const { index, pixels } = buildMnist(opts);
    writeDataset(path, index, pixels);
  } else {
    throw new Error(
      `unknown dataset '${name as string}'; use emoji, mnist, a folder of PNGs, or a prepared .json index`,
    );
  }
  return path;
}

/**
 * Load a dataset by name ('emoji', 'emoji32', 'emoji64', 'mnist'), by prepared index path (.json),
 * or from a folder of PNGs. Named datasets are prepared on first use.
 */
export function loadDataset(spec: string, opts: PrepareOptions = {}): Dataset {
  const m = /^emoji(32|64)?$/.exec(spec);
  if (m)
    return Dataset.load(
      prepareDataset('emoji', { ...opts, size: (m[1] ? Number(m[1]) : (opts.size ?? 32)) as 32 | 64 }),
    );
  if (spec === 'mnist') return Dataset.load(prepareDataset('mnist', opts));
  if (spec.endsWith('.json')) return Dataset.load(spec);
  if (existsSync(spec) && statSync(spec).isDirectory()) return loadFolder(spec, { size: opts.size });
  throw new Error(
    `unknown dataset '${spec}': use emoji32, emoji64, mnist, a prepared .json index, or a folder of PNGs`,
  );
}

/**
 * The emoji the demo, the method tests, the notebooks and the experiments use as inputs, by name
 * (both vendors). The committed test subset always holds them, so a fresh clone needs no download.
 */
export const SHOWCASE_EMOJI: Readonly<Record<string, string>> = {
  // label -> unified code (the dataset's `group`); emoji.json names U+2764 "heavy black heart"
  'grinning face': '1f600',
  'cat face': '1f431',
  'dog face': '1f436',
  'red heart': '2764-fe0f',
  'blue heart': '1f499',
  'angry face': '1f620',
  hamburger: '1f354',
  'red apple': '1f34e',
};

/** The committed test subset (64 emoji x 2 vendors at 32x32, plus SHOWCASE_EMOJI), path relative to the package. */
export function testSubsetPath(root: string): string {
  return join(root, 'test', 'data', 'emoji32-subset.json');
}
