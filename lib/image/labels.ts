/**
 * Labelled image grids for method outputs: tiles upscaled (nearest) with a caption above each,
 * drawn in a built-in 3x5 pixel font (A-Z, 0-9 and common punctuation; lower case is drawn upper case).
 */
import * as tf from '@tensorflow/tfjs';
import { tensorToImages, writeRgbPng, type RgbImage } from './png.js';

// 3x5 glyphs, rows top to bottom, '#' = ink.
export const GLYPHS: Record<string, string> = {
  A: '.#.#.#####.##.#',
  B: '##.#.###.#.###.',
  C: '.###..#..#...##',
  D: '##.#.##.##.###.',
  E: '####..##.#..###',
  F: '####..##.#..#..',
  G: '.###..#.##.#.##',
  H: '#.##.####.##.##',
  I: '###.#..#..#.###',
  J: '..#..#..##.#.#.',
  K: '#.##.###.#.##.#',
  L: '#..#..#..#..###',
  M: '#.#####.##.##.#',
  N: '##.#.##.##.##.#',
  O: '.#.#.##.##.#.#.',
  P: '##.#.###.#..#..',
  Q: '.#.#.##.##.#.##',
  R: '##.#.###.#.##.#',
  S: '.###...#...###.',
  T: '###.#..#..#..#.',
  U: '#.##.##.##.####',
  V: '#.##.##.##.#.#.',
  W: '#.##.########.#',
  X: '#.##.#.#.#.##.#',
  Y: '#.##.#.#..#..#.',
  Z: '###..#.#.#..###',
  '0': '####.##.##.####',
  '1': '.#.##..#..#.###',
  '2': '##...#.#.#..###',
  '3': '##...#.#...###.',
  '4': '#.##.####..#..#',
  '5': '####..##...###.',
  '6': '.#.#..##.#.#.#.',
  '7': '###..#.#..#..#.',
  '8': '.#.#.#.#.#.#.#.',
  '9': '.#.#.#.##..#.#.',
  ' ': '...............',
  '.': '.............#.',
  ',': '..........#.#..',
  '-': '......###......',
  '=': '...###...###...',
  ':': '....#.....#....',
  '/': '..#..#.#.#..#..',
  '(': '.#.#..#..#...#.',
  ')': '.#...#..#..#.#.',
  '+': '....#.###.#....',
  '%': '#.#..#.#.#..#.#',
  _: '............###',
  '?': '##...#.#.....#.',
  "'": '.#..#..........',
  '"': '#.##.#.........',
  '<': '..#.#.#...#...#',
  '>': '#...#...#.#.#..',
  '!': '.#..#..#.....#.',
  '*': '....#.#.#.#.#..',
  '#': '#.####.####.#.#',
  '&': '.#.#.#.#.#.#.##',
  '|': '.#..#..#..#..#.',
};

function glyph(ch: string): string {
  return GLYPHS[ch.toUpperCase()] ?? GLYPHS['?'];
}

/** Draw `text` into an RGB image at (x0, y0) with integer `scale`; characters past `maxWidth` pixels are cut. */
export function drawText(
  img: RgbImage,
  text: string,
  x0: number,
  y0: number,
  color: [number, number, number] = [0, 0, 0],
  scale = 1,
  maxWidth = Infinity,
): void {
  let x = x0;
  for (const ch of text) {
    if (x + 3 * scale - x0 > maxWidth) break;
    const g = glyph(ch);
    for (let r = 0; r < 5; r++)
      for (let c = 0; c < 3; c++) {
        if (g[r * 3 + c] !== '#') continue;
        for (let dy = 0; dy < scale; dy++)
          for (let dx = 0; dx < scale; dx++) {
            const px = x + c * scale + dx;
            const py = y0 + r * scale + dy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
            const o = (py * img.width + px) * 3;
            img.data[o] = color[0];
            img.data[o + 1] = color[1];
            img.data[o + 2] = color[2];
          }
      }
    x += 4 * scale;
  }
}

export interface LabelledGridOptions {
  /** Columns (default: all in one row up to 8). */
  cols?: number;
  /** Integer upscale of each tile (default 3: 32x32 tiles become 96x96). */
  zoom?: number;
  /** Optional title line above the grid. */
  title?: string;
}

/**
 * A labelled grid image: tile i of `images` [N, H, W, 3] in [-1, 1] with `labels[i]` above it.
 */
export function labelledGrid(images: tf.Tensor4D, labels: string[], opts: LabelledGridOptions = {}): RgbImage {
  const tiles = tensorToImages(images);
  const n = tiles.length;
  const zoom = Math.max(1, Math.round(opts.zoom ?? 3));
  const cols = Math.max(1, Math.min(n, opts.cols ?? Math.min(n, 8)));
  const rows = Math.ceil(n / cols);
  const th = tiles[0].height * zoom;
  const tw = tiles[0].width * zoom;
  const pad = 4;
  const labelH = 9;
  const titleH = opts.title ? 11 : 0;
  const W = cols * (tw + pad) + pad;
  const H = titleH + rows * (th + labelH + pad) + pad;
  const img: RgbImage = { width: W, height: H, data: new Uint8Array(W * H * 3).fill(255) };
  if (opts.title) drawText(img, opts.title, pad, 3, [0, 0, 0], 1, W - 2 * pad);
  tiles.forEach((t, i) => {
    const cx = pad + (i % cols) * (tw + pad);
    const cy = titleH + pad + Math.floor(i / cols) * (th + labelH + pad);
    drawText(img, labels[i] ?? '', cx, cy, [40, 40, 40], 1, tw);
    const y0 = cy + labelH;
    for (let y = 0; y < th; y++)
      for (let x = 0; x < tw; x++) {
        const s = (Math.floor(y / zoom) * t.width + Math.floor(x / zoom)) * 3;
        const o = ((y0 + y) * W + cx + x) * 3;
        img.data[o] = t.data[s];
        img.data[o + 1] = t.data[s + 1];
        img.data[o + 2] = t.data[s + 2];
      }
  });
  return img;
}

/** Write a labelled grid PNG. */
export function writeLabelledGrid(
  path: string,
  images: tf.Tensor4D,
  labels: string[],
  opts: LabelledGridOptions = {},
): void {
  writeRgbPng(path, labelledGrid(images, labels, opts));
}
