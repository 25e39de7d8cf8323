/**
 * A folder of PNGs as a dataset (users' own data). Files are found recursively; an image's category
 * is its first sub-folder name (or 'none' for files at the top); ~10% are held out by a hash of the
 * relative path. Alpha is composited on `background`; images are resized to `size` (area).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { decodePng, type Background } from '../image/png.js';
import { resizeMatrix } from '../image/resize.js';
import { Dataset } from './dataset.js';
import { splitOf } from './emoji.js';
import type { DatasetItem } from './format.js';

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.png$/i.test(e)) out.push(p);
  }
  return out;
}

/** Resize 8-bit RGB with the area filter (exact for integer factors), in JS. */
function resizeBytes(data: Uint8Array, h: number, w: number, oh: number, ow: number): Uint8Array {
  if (h === oh && w === ow) return data;
  const mh = resizeMatrix(h, oh, 'area');
  const mw = resizeMatrix(w, ow, 'area');
  const tmp = new Float64Array(oh * w * 3);
  for (let o = 0; o < oh; o++)
    for (let i = 0; i < h; i++) {
      const f = mh[o * h + i];
      if (f) for (let j = 0; j < w * 3; j++) tmp[o * w * 3 + j] += f * data[i * w * 3 + j];
    }
  const out = new Uint8Array(oh * ow * 3);
  for (let y = 0; y < oh; y++)
    for (let o = 0; o < ow; o++)
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let i = 0; i < w; i++) s += mw[o * w + i] * tmp[(y * w + i) * 3 + c];
        out[(y * ow + o) * 3 + c] = Math.min(255, Math.max(0, Math.round(s)));
      }
  return out;
}

export interface FolderOptions {
  /** Output size (square). Default 32. */
  size?: number;
  background?: Background;
  testFraction?: number;
}

export function loadFolder(dir: string, opts: FolderOptions = {}): Dataset {
  const size = opts.size ?? 32;
  let files: string[];
  try {
    files = walk(dir);
  } catch (e) {
    throw new Error(`cannot read image folder ${dir}: ${e instanceof Error ? e.message : e}`);
  }
  if (files.length === 0) throw new Error(`image folder ${dir} has no .png files`);
  const per = size * size * 3;
  const pixels = new Uint8Array(files.length * per);
  const items: DatasetItem[] = files.map((f, k) => {
    const img = decodePng(readFileSync(f), f, opts.background ?? 'white');
    pixels.set(resizeBytes(img.data, img.height, img.width, size, size), k * per);
    const rel = relative(dir, f);
    const parts = rel.split(sep);
    const category = parts.length > 1 ? parts[0] : 'none';
    return {
      id: rel,
      group: rel,
      category,
      caption: parts[parts.length - 1].replace(/\.png$/i, '').replace(/[_-]+/g, ' '),
      split: splitOf(`folder:${rel}`, opts.testFraction ?? 0.1),
    };
  });
  return new Dataset(`folder:${dir}`, items, pixels, { height: size, width: size, channels: 3 });
}
