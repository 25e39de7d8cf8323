/** The in-memory dataset every trainer consumes, and a seeded batch sampler. */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../random.js';
import { readDataset, type DatasetIndex, type DatasetItem, type Split } from './format.js';

export class Dataset {
  /** Number of items. */
  readonly size: number;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  /** Per item: caption, category name, category id (index into `categoryNames`), vendor, split. */
  readonly captions: string[];
  readonly categories: string[];
  readonly categoryIds: number[];
  readonly vendors: string[];
  readonly vendorIds: number[];
  readonly split: Split[];
  /** Sorted list of category names (the judge's classes). */
  readonly categoryNames: string[];
  readonly vendorNames: string[];

  constructor(
    readonly name: string,
    readonly items: DatasetItem[],
    /** uint8 pixels, N x H x W x C. */
    readonly pixels: Uint8Array,
    shape: { height: number; width: number; channels: 1 | 3 },
    names?: { categories?: string[]; vendors?: string[] },
  ) {
    this.size = items.length;
    this.height = shape.height;
    this.width = shape.width;
    this.channels = shape.channels;
    if (pixels.length !== this.size * this.height * this.width * this.channels) {
      throw new Error(
        `Dataset ${name}: ${pixels.length} pixel bytes for ${this.size} items of ${this.height}x${this.width}x${this.channels}`,
      );
    }
    this.captions = items.map((i) => i.caption);
    this.categories = items.map((i) => i.category);
    this.vendors = items.map((i) => i.vendor ?? '');
    this.split = items.map((i) => i.split);
    this.categoryNames = names?.categories ?? [...new Set(this.categories)].sort();
    this.vendorNames = names?.vendors ?? [...new Set(this.vendors)].sort();
    this.categoryIds = this.categories.map((c) => this.categoryNames.indexOf(c));
    this.vendorIds = this.vendors.map((v) => this.vendorNames.indexOf(v));
  }

  /** Load a prepared dataset from its index file. */
  static load(indexPath: string): Dataset {
    const { index, pixels } = readDataset(indexPath);
    return Dataset.fromIndex(index, pixels);
  }

  static fromIndex(index: DatasetIndex, pixels: Uint8Array): Dataset {
    return new Dataset(index.name, index.items, pixels, index, {
      categories: index.categories,
      vendors: index.vendors,
    });
  }

  private get pixelsPer(): number {
    return this.height * this.width * this.channels;
  }

  /** Raw 8-bit pixels of one item (a view, H*W*C bytes). */
  pixelsOf(i: number): Uint8Array {
    if (!(i >= 0 && i < this.size)) throw new Error(`Dataset ${this.name}: index ${i} out of range [0, ${this.size})`);
    return this.pixels.subarray(i * this.pixelsPer, (i + 1) * this.pixelsPer);
  }

  /**
   * Images as float32 in [-1, 1].
   * @param indices item indices (default: all)
   * @param opts.rgb tile gray images to 3 channels (default false)
   * @returns [B, H, W, C]
   */
  images(indices?: ArrayLike<number>, opts: { rgb?: boolean } = {}): tf.Tensor4D {
    const idx = indices ?? Array.from({ length: this.size }, (_, i) => i);
    const per = this.pixelsPer;
    const out = new Float32Array(idx.length * per);
    for (let k = 0; k < idx.length; k++) {
      const src = this.pixelsOf(idx[k]);
      const o = k * per;
      for (let j = 0; j < per; j++) out[o + j] = src[j] / 127.5 - 1;
    }
    const t = tf.tensor4d(out, [idx.length, this.height, this.width, this.channels]);
    if (opts.rgb && this.channels === 1) {
      const r = tf.tile(t, [1, 1, 1, 3]) as tf.Tensor4D;
      t.dispose();
      return r;
    }
    return t;
  }

  /** Indices of the items in a split. */
  indicesOf(split: Split): number[] {
    const r: number[] = [];
    this.split.forEach((s, i) => s === split && r.push(i));
    return r;
  }

  /** A new Dataset of the chosen items (pixels copied), keeping the category/vendor name lists. */
  subset(which: Split | ArrayLike<number>): Dataset {
    const idx = typeof which === 'string' ? this.indicesOf(which) : Array.from(which);
    const per = this.pixelsPer;
    const px = new Uint8Array(idx.length * per);
    idx.forEach((i, k) => px.set(this.pixelsOf(i), k * per));
    return new Dataset(
      typeof which === 'string' ? `${this.name}:${which}` : this.name,
      idx.map((i) => this.items[i]),
      px,
      this,
      { categories: this.categoryNames, vendors: this.vendorNames },
    );
  }

  /** Per-pixel mean and variance over the chosen items, in [-1, 1] units. [H*W*C] each. */
  pixelStats(indices?: number[]): { mean: Float64Array; variance: Float64Array } {
    const idx = indices ?? Array.from({ length: this.size }, (_, i) => i);
    const per = this.pixelsPer;
    const s = new Float64Array(per);
    const s2 = new Float64Array(per);
    for (const i of idx) {
      const p = this.pixelsOf(i);
      for (let j = 0; j < per; j++) {
        const v = p[j] / 127.5 - 1;
        s[j] += v;
        s2[j] += v * v;
      }
    }
    const n = idx.length;
    const mean = s.map((v) => v / n);
    const variance = s2.map((v, j) => Math.max(0, v / n - mean[j] * mean[j]));
    return { mean, variance };
  }
}

/** Serializable sampler position (for resumable training). */
export interface SamplerState {
  seed: number;
  epoch: number;
  pos: number;
}

/**
 * Seeded batch sampler: shuffles `indices` anew each epoch (permutation derived from seed and epoch),
 * so the sequence of batches is a pure function of (seed, epoch, pos) and resumes exactly.
 */
export class BatchSampler {
  private perm: number[] = [];
  private state: SamplerState;

  constructor(
    readonly indices: number[],
    readonly batchSize: number,
    seed: number,
    state?: SamplerState,
  ) {
    if (indices.length === 0) throw new Error('BatchSampler: no items to sample from (empty split?)');
    if (!(batchSize >= 1)) throw new Error(`BatchSampler: batch size must be >= 1, got ${batchSize}`);
    this.state = state ? { ...state } : { seed, epoch: 0, pos: 0 };
    this.perm = this.permutation(this.state.epoch);
  }

  private permutation(epoch: number): number[] {
    const rng = new Rng(this.state.seed * 1000003 + epoch);
    const p = this.indices.slice();
    for (let i = p.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }

  /** The next batch of item indices (crosses epoch boundaries; always `batchSize` long). */
  next(): number[] {
    const out: number[] = [];
    while (out.length < this.batchSize) {
      if (this.state.pos >= this.perm.length) {
        this.state.epoch++;
        this.state.pos = 0;
        this.perm = this.permutation(this.state.epoch);
      }
      out.push(this.perm[this.state.pos++]);
    }
    return out;
  }

  getState(): SamplerState {
    return { ...this.state };
  }
}
