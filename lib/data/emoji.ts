/**
 * Emoji from the `emoji-datasource-google` (Noto Emoji, Apache-2.0) and `emoji-datasource-twitter`
 * (Twemoji, CC-BY 4.0) npm packages: 64x64 RGBA PNGs composited on white, with captions built from
 * the package's `emoji.json` (name, short_names, category, subcategory; the package has no keyword
 * field) and the vendor as a style attribute. The Apple and Facebook sets are refused (not licensed
 * for this use).
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { decodePng } from '../image/png.js';
import { areaDownsampleBytes } from '../image/resize.js';
import { ensurePackages, type DataPackage, type EnsurePackageOptions } from './cache.js';
import type { DatasetIndex, DatasetItem, Split } from './format.js';

export type EmojiVendor = 'google' | 'twitter';
export const EMOJI_VENDORS: readonly EmojiVendor[] = ['google', 'twitter'];
export const EMOJI_PACKAGE_VERSION = '16';
/** Style words used in captions. */
export const VENDOR_STYLE: Record<EmojiVendor, string> = { google: 'noto', twitter: 'twemoji' };
/** Categories left out: 'Component' holds 5 skin-tone swatches, not pictures. */
export const EXCLUDED_CATEGORIES = ['Component'];
/** Fraction of emoji (both vendors together) held out. */
export const EMOJI_TEST_FRACTION = 0.1;

export const EMOJI_LICENSE =
  'Noto Emoji (emoji-datasource-google): Apache License 2.0, Google. ' +
  'Twemoji (emoji-datasource-twitter): graphics CC-BY 4.0, Copyright Twitter, Inc and other contributors (https://github.com/twitter/twemoji). ' +
  'Metadata: emoji-datasource (MIT, iamcal/emoji-data).';

interface EmojiRecord {
  name: string | null;
  unified: string;
  image: string;
  short_name: string;
  short_names: string[];
  category: string;
  subcategory: string;
  sort_order: number;
  [k: `has_img_${string}`]: boolean;
}

/** The npm package of one vendor's images, with the files a complete install has. */
export function emojiPackage(vendor: EmojiVendor): DataPackage {
  return {
    name: `emoji-datasource-${vendor}`,
    range: EMOJI_PACKAGE_VERSION,
    verify: ['emoji.json', `img/${vendor}/64/1f600.png`, `img/${vendor}/64/2764-fe0f.png`],
  };
}

/** FNV-1a 32-bit hash of a string. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Deterministic split of a group key: ~`testFraction` of keys go to 'test'. */
export function splitOf(group: string, testFraction = EMOJI_TEST_FRACTION): Split {
  return fnv1a(`diffguide-split:${group}`) % 10000 < testFraction * 10000 ? 'test' : 'train';
}

/** The caption of one emoji image. */
export function emojiCaption(
  e: { name: string; shortNames: string[]; category: string; subcategory: string },
  vendor: EmojiVendor,
): string {
  const shorts = e.shortNames.map((s) => s.replace(/_/g, ' ')).filter((s) => s !== e.name.toLowerCase());
  return `${e.name.toLowerCase()}${shorts.length ? ` (${shorts.join(', ')})` : ''}, ${e.category.toLowerCase()}, ${e.subcategory.replace(/-/g, ' ')}, ${VENDOR_STYLE[vendor]} style`;
}

export interface PrepareEmojiOptions extends EnsurePackageOptions {
  /** 32 or 64 (area downsampled from the 64x64 files). Default 32. */
  size?: 32 | 64;
  vendors?: EmojiVendor[];
  onProgress?: (done: number, total: number) => void;
}

/** Build the emoji dataset in memory: index + uint8 RGB pixels. */
export function buildEmoji(opts: PrepareEmojiOptions = {}): {
  index: Omit<DatasetIndex, 'pixels' | 'format' | 'version'>;
  pixels: Uint8Array;
} {
  const size = opts.size ?? 32;
  if (size !== 32 && size !== 64) throw new Error(`emoji size must be 32 or 64, got ${size}`);
  const vendors = opts.vendors ?? [...EMOJI_VENDORS];
  for (const v of vendors) {
    if (!EMOJI_VENDORS.includes(v)) {
      throw new Error(
        `emoji vendor '${v}' is not supported: use ${EMOJI_VENDORS.join(' or ')} (Apple's images are not licensed for this use and Facebook's have no clear licence)`,
      );
    }
  }
  const recs: { vendor: EmojiVendor; dir: string; e: EmojiRecord }[] = [];
  const dirs = ensurePackages(vendors.map(emojiPackage), opts);
  for (const [v, vendor] of vendors.entries()) {
    const dir = dirs[v];
    const list = JSON.parse(readFileSync(join(dir, 'emoji.json'), 'utf8')) as EmojiRecord[];
    list.sort((a, b) => a.sort_order - b.sort_order);
    for (const e of list) {
      if (!e[`has_img_${vendor}`] || EXCLUDED_CATEGORIES.includes(e.category)) continue;
      recs.push({ vendor, dir, e });
    }
  }
  const per = size * size * 3;
  const pixels = new Uint8Array(recs.length * per);
  const items: DatasetItem[] = [];
  recs.forEach(({ vendor, dir, e }, k) => {
    const file = join(dir, 'img', vendor, '64', e.image);
    if (!existsSync(file))
      throw new Error(
        `emoji image ${file} is missing; the package install is incomplete (delete ${dir}; the next run installs it again)`,
      );
    const img = decodePng(readFileSync(file), file, 'white');
    if (img.width !== 64 || img.height !== 64)
      throw new Error(`${file}: expected 64x64, got ${img.width}x${img.height}`);
    pixels.set(size === 64 ? img.data : areaDownsampleBytes(img.data, 64, 64, 3, 64 / size), k * per);
    const name = (e.name ?? e.short_name.replace(/_/g, ' ')).toLowerCase();
    const meta = { name, shortNames: e.short_names, category: e.category, subcategory: e.subcategory };
    items.push({
      id: `${e.unified.toLowerCase()}/${vendor}`,
      group: e.unified.toLowerCase(),
      category: e.category,
      subcategory: e.subcategory,
      vendor,
      name,
      shortNames: e.short_names,
      caption: emojiCaption(meta, vendor),
      split: splitOf(e.unified.toLowerCase()),
    });
    opts.onProgress?.(k + 1, recs.length);
  });
  const categories = [...new Set(items.map((i) => i.category))].sort();
  return {
    index: {
      name: `emoji-${size}`,
      height: size,
      width: size,
      channels: 3,
      categories,
      vendors: [...vendors].sort(),
      source:
        vendors.map((v) => `emoji-datasource-${v}@${EMOJI_PACKAGE_VERSION} img/${v}/64`).join(', ') +
        (size !== 64 ? `, area-downsampled to ${size}x${size}` : ''),
      license: EMOJI_LICENSE,
      items,
    },
    pixels,
  };
}
