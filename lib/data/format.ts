/**
 * The compact prepared-dataset format: `<name>.json` (index: shape, per-item metadata, split) and
 * `<name>.bin` or `<name>.bin.gz` (uint8 pixels, N x H x W x C, row-major, RGB or gray).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { makeDirs } from '../output.js';

export type Split = 'train' | 'test';

export interface DatasetItem {
  /** Stable id (emoji: the unified code point string + vendor; MNIST: digit/index). */
  id: string;
  /** Groups items that must share a split (emoji: the unified code, both vendors). */
  group: string;
  category: string;
  subcategory?: string;
  /** Style attribute, e.g. 'google' / 'twitter'. */
  vendor?: string;
  name?: string;
  shortNames?: string[];
  /** A one-line caption. */
  caption: string;
  split: Split;
}

export interface DatasetIndex {
  format: 'diffguide-dataset';
  version: 1;
  name: string;
  height: number;
  width: number;
  channels: 1 | 3;
  /** Pixel file name relative to the index (`.bin`, or `.bin.gz` when gzipped). */
  pixels: string;
  categories: string[];
  vendors: string[];
  source: string;
  license: string;
  items: DatasetItem[];
}

/** Write an index + pixel file atomically. `path` is the index path (ends in .json). */
export function writeDataset(
  path: string,
  index: Omit<DatasetIndex, 'pixels' | 'format' | 'version'>,
  pixels: Uint8Array,
  gzip = false,
): void {
  const n = index.items.length;
  const per = index.height * index.width * index.channels;
  if (pixels.length !== n * per)
    throw new Error(
      `writeDataset: ${pixels.length} bytes for ${n} items of ${index.height}x${index.width}x${index.channels}`,
    );
  makeDirs(dirname(path));
  const stem = basename(path).replace(/\.json$/, '');
  const pixName = `${stem}.bin${gzip ? '.gz' : ''}`;
  const pixPath = join(dirname(path), pixName);
  const tmpPix = `${pixPath}.tmp-${process.pid}`;
  writeFileSync(tmpPix, gzip ? gzipSync(pixels, { level: 9 }) : pixels);
  renameSync(tmpPix, pixPath);
  const full: DatasetIndex = { format: 'diffguide-dataset', version: 1, ...index, pixels: pixName };
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(full));
  renameSync(tmp, path);
}

/** Read an index and its pixels, checking sizes. */
export function readDataset(path: string): { index: DatasetIndex; pixels: Uint8Array } {
  if (!existsSync(path)) throw new Error(`dataset index ${path} does not exist; build it with: diffguide data prepare`);
  let index: DatasetIndex;
  try {
    index = JSON.parse(readFileSync(path, 'utf8')) as DatasetIndex;
  } catch (e) {
    throw new Error(
      `dataset index ${path} is not valid JSON (${e instanceof Error ? e.message : e}); rebuild it with: diffguide data prepare`,
    );
  }
  if (index.format !== 'diffguide-dataset')
    throw new Error(`${path} is not a diffguide dataset index (format ${JSON.stringify(index.format)})`);
  const pixPath = join(dirname(path), index.pixels);
  if (!existsSync(pixPath))
    throw new Error(`dataset pixels ${pixPath} (named by ${path}) are missing; rebuild with: diffguide data prepare`);
  let raw: Uint8Array = readFileSync(pixPath);
  if (index.pixels.endsWith('.gz')) raw = gunzipSync(raw);
  const want = index.items.length * index.height * index.width * index.channels;
  if (raw.length !== want) {
    throw new Error(
      `dataset pixels ${pixPath}: ${raw.length} bytes, expected ${want} (${index.items.length} x ${index.height}x${index.width}x${index.channels}); the file is truncated or stale, rebuild with: diffguide data prepare`,
    );
  }
  return { index, pixels: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) };
}
