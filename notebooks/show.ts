/**
 * Notebook helpers (Deno Jupyter kernel): show image batches inline as PNG display data, and load
 * the showcase emoji as real input images. Built only from diffguide's public API.
 */
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { Dataset, SHOWCASE_EMOJI, makeGrid, packageRoot, tensorToImage, testSubsetPath } from 'diffguide';

type Jupyter = { display(bundle: unknown, opts: { raw: boolean }): Promise<void> };
/** Deno.jupyter: present inside `deno jupyter` (the kernel); under `deno run` reading it throws. */
function jupyter(): Jupyter | undefined {
  try {
    return (globalThis as { Deno?: { jupyter?: Jupyter } }).Deno?.jupyter;
  } catch {
    return undefined;
  }
}
const inKernel = (): boolean => jupyter() !== undefined;

/**
 * Display a bundle, then give the kernel a moment to send it. Deno's kernel can report a cell as
 * finished before its last display messages have gone out, and nbconvert / nbclient stop collecting
 * a cell's outputs at that point: seen here as the last one or two pictures of a cell missing from
 * the executed notebook (no error). Yielding to the event loop after each display lets them go first.
 */
async function displayed(bundle: Record<string, string>): Promise<void> {
  await jupyter()!.display(bundle, { raw: true });
  await new Promise((resolve) => setTimeout(resolve, 100));
}

export interface ShowOptions {
  /** Columns of the grid (default: all images in one row). */
  cols?: number;
  /** Integer upscaling (nearest neighbour) so 32x32 images are visible. Default 2. */
  scale?: number;
  /** A caption printed above the images (and the PNG's text/plain fallback). */
  title?: string;
}

/** Show (await it) images [N, H, W, 3] in [-1, 1] (or a list of batches, concatenated) as one PNG grid. The input is not disposed. */
export async function show(images: tf.Tensor4D | tf.Tensor4D[], opts: ShowOptions = {}): Promise<void> {
  const list = Array.isArray(images) ? images : [images];
  const n = list.reduce((s, x) => s + x.shape[0], 0);
  const scale = opts.scale ?? 2;
  const img = tf.tidy(() => {
    const all = list.length === 1 ? list[0] : (tf.concat(list) as tf.Tensor4D);
    const grid = makeGrid(tf.clipByValue(all, -1, 1) as tf.Tensor4D, { cols: opts.cols ?? n, pad: 1 });
    const [, h, w] = grid.shape;
    return tf.image.resizeNearestNeighbor(grid, [h * scale, w * scale]);
  });
  const rgb = tensorToImage(img);
  img.dispose();
  // RGB (no alpha) at the highest deflate level: these PNGs are committed inside the notebooks
  const out = new PNG({ width: rgb.width, height: rgb.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  out.data = Buffer.from(rgb.data);
  const png = PNG.sync.write(out, { colorType: 2, inputColorType: 2, inputHasAlpha: false, deflateLevel: 9 });
  if (opts.title) await note(opts.title);
  const bundle = { 'image/png': png.toString('base64'), 'text/plain': opts.title ?? `[${n} images]` };
  // display() is async: awaiting it keeps the picture in its cell, in order with the text around it
  if (inKernel()) await displayed(bundle);
  else console.log(`(image ${rgb.width}x${rgb.height}: run in the Deno Jupyter kernel to see it)`);
}

/**
 * Real input images: the Noto image of each named showcase emoji (SHOWCASE_EMOJI) from the
 * committed test subset. Returns [N, 32, 32, 3] in [-1, 1], in the order of `names`.
 */
export function emoji(...names: string[]): tf.Tensor4D {
  const ds = Dataset.load(testSubsetPath(packageRoot()));
  const idx = names.map((name) => {
    const code = SHOWCASE_EMOJI[name];
    if (code === undefined)
      throw new Error(`'${name}' is not a showcase emoji; use one of: ${Object.keys(SHOWCASE_EMOJI).join(', ')}`);
    const i = ds.items.findIndex((it) => it.group === code && it.vendor === 'google');
    return i >= 0 ? i : ds.items.findIndex((it) => it.group === code);
  });
  return ds.images(idx);
}

/**
 * Print lines in the notebook (await it). Text goes out the same way as the pictures (display data,
 * awaited), because the Deno kernel forwards console.log asynchronously: under load, lines logged
 * right after a picture were sometimes missing from the executed notebook. Outside the kernel: console.log.
 */
export async function note(...lines: unknown[]): Promise<void> {
  const text = lines.map(String).join(' ');
  if (inKernel()) await displayed({ 'text/plain': text });
  else console.log(text);
}

/** Seconds since `start` (Date.now()), for the timing notes in the notebooks. */
export function seconds(start: number): string {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}
