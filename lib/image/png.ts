/**
 * PNG read/write (pngjs). Images inside diffguide are float32 NHWC tensors in [-1, 1] with 3
 * channels; alpha is composited onto a background colour (default white) when reading.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { resize, type ResizeMethod } from './resize.js';
import { makeDirs } from '../output.js';

/** An RGB colour, each channel in [0, 255]. */
export type Rgb = [number, number, number];

/** Named or explicit background for alpha compositing. */
export type Background = 'white' | 'black' | 'gray' | Rgb;

export function backgroundRgb(bg: Background = 'white'): Rgb {
  if (bg === 'white') return [255, 255, 255];
  if (bg === 'black') return [0, 0, 0];
  if (bg === 'gray') return [128, 128, 128];
  if (!Array.isArray(bg) || bg.length !== 3 || bg.some((v) => !(v >= 0 && v <= 255))) {
    throw new Error(`background must be 'white', 'black', 'gray' or [r, g, b] in 0..255, got ${JSON.stringify(bg)}`);
  }
  return bg;
}

/** An 8-bit RGB image in host memory: `data` is H*W*3 bytes, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Decode PNG bytes to 8-bit RGB, compositing alpha over `background` (gray, gray+alpha, RGB, RGBA,
 * palette and 16-bit inputs are all accepted). `name` is used in error messages.
 */
export function decodePng(bytes: Uint8Array, name = '<buffer>', background: Background = 'white'): RgbImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) {
    const head = buf.subarray(0, 8).toString('hex');
    throw new Error(
      `${name} is not a PNG file (first bytes ${head || 'none'}, expected the PNG signature 89504e470d0a1a0a)`,
    );
  }
  let png;
  try {
    png = PNG.sync.read(buf);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`${name}: cannot decode PNG (${msg}); the file is truncated or corrupt (${buf.length} bytes)`);
  }
  const { width, height } = png;
  const src = png.data;
  if (src.length < width * height * 4) {
    throw new Error(
      `${name}: decoded ${src.length} bytes for a ${width}x${height} image; the file is truncated or corrupt`,
    );
  }
  const [br, bgc, bb] = backgroundRgb(background);
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height * 4; i += 4, j += 3) {
    const a = src[i + 3];
    if (a === 255) {
      out[j] = src[i];
      out[j + 1] = src[i + 1];
      out[j + 2] = src[i + 2];
    } else {
      const f = a / 255;
      out[j] = Math.round(src[i] * f + br * (1 - f));
      out[j + 1] = Math.round(src[i + 1] * f + bgc * (1 - f));
      out[j + 2] = Math.round(src[i + 2] * f + bb * (1 - f));
    }
  }
  return { width, height, data: out };
}

/** Encode 8-bit pixels (channels 1, 3 or 4, row-major) as PNG bytes. */
export function encodePng(data: Uint8Array, width: number, height: number, channels: 1 | 3 | 4 = 3): Buffer {
  if (data.length !== width * height * channels) {
    throw new Error(`encodePng: ${data.length} bytes is not ${width}x${height}x${channels}`);
  }
  const png = new PNG({ width, height });
  const dst = png.data;
  for (let p = 0; p < width * height; p++) {
    const s = p * channels;
    const d = p * 4;
    if (channels === 1) {
      dst[d] = dst[d + 1] = dst[d + 2] = data[s];
      dst[d + 3] = 255;
    } else {
      dst[d] = data[s];
      dst[d + 1] = data[s + 1];
      dst[d + 2] = data[s + 2];
      dst[d + 3] = channels === 4 ? data[s + 3] : 255;
    }
  }
  return PNG.sync.write(png);
}

/** RGB bytes -> [1, H, W, 3] float32 in [-1, 1]. */
export function rgbToTensor(img: RgbImage): tf.Tensor4D {
  return tf.tidy(
    () => tf.tensor4d(img.data, [1, img.height, img.width, 3], 'int32').toFloat().div(127.5).sub(1) as tf.Tensor4D,
  );
}

/** Alias with the name used across the docs: 8-bit RGB image -> [1, H, W, 3] in [-1, 1]. */
export const imageToTensor = rgbToTensor;

function checkImageTensor(t: tf.Tensor, what: string): { n: number; h: number; w: number; c: number } {
  if (t.rank === 3) {
    const [h, w, c] = t.shape;
    if (c !== 1 && c !== 3)
      throw new Error(`${what}: expected [H, W, 3] or [N, H, W, 3], got shape [${t.shape}] (${c} channels)`);
    return { n: 1, h, w, c };
  }
  if (t.rank === 4) {
    const [n, h, w, c] = t.shape;
    if (c !== 1 && c !== 3)
      throw new Error(
        `${what}: expected [N, H, W, 3] (NHWC), got shape [${t.shape}] (${c} channels; NCHW input? transpose it)`,
      );
    return { n, h, w, c };
  }
  throw new Error(`${what}: expected an image tensor [N, H, W, 3] or [H, W, 3], got rank ${t.rank} shape [${t.shape}]`);
}

/**
 * [N, H, W, 3] (or [H, W, 3]) in [-1, 1] -> N 8-bit RGB images (clipped, rounded).
 */
export function tensorToImages(t: tf.Tensor): RgbImage[] {
  const { n, h, w, c } = checkImageTensor(t, 'tensorToImage');
  const vals = tf.tidy(() => {
    let x = t.reshape([n, h, w, c]);
    if (c === 1) x = tf.tile(x, [1, 1, 1, 3]);
    return x.add(1).mul(127.5).round().clipByValue(0, 255).toInt();
  });
  const data = new Uint8Array(vals.dataSync());
  vals.dispose();
  const per = h * w * 3;
  return Array.from({ length: n }, (_, i) => ({ width: w, height: h, data: data.subarray(i * per, (i + 1) * per) }));
}

/** [1, H, W, 3] or [H, W, 3] in [-1, 1] -> one 8-bit RGB image (first of the batch). */
export function tensorToImage(t: tf.Tensor): RgbImage {
  return tensorToImages(t)[0];
}

export interface ReadPngOptions {
  /** Resize to size x size (or [H, W]) after decoding. Default: keep the file's size. */
  size?: number | [number, number];
  /** Resize method when `size` differs from the file. Default 'area' (exact for integer factors). */
  method?: ResizeMethod;
  /** Background for alpha compositing. Default 'white'. */
  background?: Background;
}

/** Read a PNG file as [1, H, W, 3] float32 in [-1, 1]. */
export function readPng(path: string, opts: ReadPngOptions = {}): tf.Tensor4D {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read image ${path}: ${e instanceof Error ? e.message : e}`);
  }
  const img = decodePng(bytes, path, opts.background ?? 'white');
  const x = rgbToTensor(img);
  if (opts.size === undefined) return x;
  const [h, w] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
  if (h === img.height && w === img.width) return x;
  const y = resize(x, [h, w], opts.method ?? 'area');
  x.dispose();
  return y;
}

/**
 * Write an image tensor ([1, H, W, 3], [H, W, 3], or [N, H, W, 3] with N = 1; 1-channel is gray)
 * in [-1, 1] to a PNG file. Parent folders are created; the write is atomic (temp + rename).
 */
export function writePng(path: string, t: tf.Tensor): void {
  const { n } = checkImageTensor(t, `writePng ${path}`);
  if (n !== 1)
    throw new Error(`writePng ${path}: got a batch of ${n} images; write one at a time or makeGrid() them first`);
  const img = tensorToImage(t);
  writeRgbPng(path, img);
}

/** Write an 8-bit RGB image to a PNG file (atomic). */
export function writeRgbPng(path: string, img: RgbImage): void {
  makeDirs(dirname(path));
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, encodePng(img.data, img.width, img.height, 3));
  renameSync(tmp, path);
}
