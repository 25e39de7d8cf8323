/**
 * Sample grids of experiments. A cell cannot write files (its result travels as JSON, maybe through
 * a queue), so it returns its images as one small PNG (base64, `samplesPng`: lib/image makeGrid +
 * encodePng); `merge` stacks the cells' rows into one labelled sheet (`stackRows`) and returns it as a
 * file for the engine to write.
 */
import * as tf from '@tensorflow/tfjs';
import { makeGrid } from '../image/grid.js';
import { decodePng, encodePng, tensorToImage, type RgbImage } from '../image/png.js';
import { drawText } from '../image/labels.js';

/** Images [N, H, W, 3] in [-1, 1] as one row (or `cols` columns) of tiles, PNG bytes in base64. */
export function samplesPng(images: tf.Tensor4D, cols?: number): string {
  const g = makeGrid(images, { cols: cols ?? images.shape[0], pad: 1 });
  try {
    const img = tensorToImage(g);
    return encodePng(img.data, img.width, img.height, 3).toString('base64');
  } finally {
    g.dispose();
  }
}

/** A base64 PNG back to 8-bit RGB. */
export function decodeSamples(b64: string, what = 'samples'): RgbImage {
  return decodePng(new Uint8Array(Buffer.from(b64, 'base64')), what);
}

export interface SheetRow {
  /** Caption drawn above the row (3x5 pixel font, upper case). */
  label: string;
  /** The row's PNG (base64), e.g. a cell's `samplesPng`. */
  png: string;
}

/**
 * Stack rows into one sheet: each row's caption, then its image upscaled by `zoom` (nearest,
 * default 2), left-aligned on white; an optional title on top. Returns PNG bytes.
 */
export function stackRows(rows: SheetRow[], opts: { zoom?: number; title?: string } = {}): Uint8Array {
  const zoom = Math.max(1, Math.round(opts.zoom ?? 2));
  const imgs = rows.map((r, i) => decodeSamples(r.png, `sheet row ${i} (${r.label})`));
  const pad = 4;
  const labelH = 9;
  const titleH = opts.title ? 12 : 0;
  const W =
    Math.max(
      80,
      ...imgs.map((m) => m.width * zoom),
      ...rows.map((r) => r.label.length * 4),
      (opts.title?.length ?? 0) * 4,
    ) +
    2 * pad;
  const H = titleH + imgs.reduce((h, m) => h + labelH + m.height * zoom + pad, pad);
  const sheet: RgbImage = { width: W, height: H, data: new Uint8Array(W * H * 3).fill(255) };
  if (opts.title) drawText(sheet, opts.title, pad, 4, [0, 0, 0], 1, W - 2 * pad);
  let y = titleH + pad;
  imgs.forEach((m, i) => {
    drawText(sheet, rows[i].label, pad, y + 1, [40, 40, 40], 1, W - 2 * pad);
    y += labelH;
    for (let yy = 0; yy < m.height * zoom; yy++)
      for (let xx = 0; xx < m.width * zoom; xx++) {
        const s = (Math.floor(yy / zoom) * m.width + Math.floor(xx / zoom)) * 3;
        const o = ((y + yy) * W + pad + xx) * 3;
        sheet.data[o] = m.data[s];
        sheet.data[o + 1] = m.data[s + 1];
        sheet.data[o + 2] = m.data[s + 2];
      }
    y += m.height * zoom + pad;
  });
  return new Uint8Array(encodePng(sheet.data, W, H, 3));
}
