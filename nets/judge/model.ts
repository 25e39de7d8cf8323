/**
 * The judge: a small conv classifier of emoji category and vendor, trained on real images only.
 * Metrics use it (category accuracy of samples, Frechet distance in its feature space); guidance
 * never does, so results are not scored by the model that produced them.
 *
 * Architecture: 6 x [3x3 conv -> GroupNorm -> SiLU] (widths/strides from the config, stride 2
 * halves the size), global average pool -> features [N, F], two linear heads. Input [N, S, S, 3] in
 * [-1, 1] at the config's image size (larger inputs are area-downsampled by an integer factor).
 *
 * Parameter names (PyTorch module naming, as if written with nn.ModuleList):
 * `blocks.{i}.conv.weight` [O, I, 3, 3], `blocks.{i}.conv.bias`, `blocks.{i}.norm.weight|bias`,
 * `head_category.weight` [K, F], `head_category.bias`, `head_vendor.weight` [V, F], `head_vendor.bias`.
 */
import * as tf from '@tensorflow/tfjs';
import { ParamOwner } from '../param-owner.js';
import { conv2d } from '../../lib/ops/conv.js';
import { groupNorm, silu, linear } from '../../lib/ops/nn.js';
import type { HostTensor, StateDict } from '../../lib/io/types.js';
import { fromTorchLayout, ourShape, toTorchLayout, type TorchLayout } from '../layout.js';

export interface JudgeConfig {
  imageSize: number;
  widths: number[];
  strides: number[];
  groups: number;
  /** Class names, in head order. */
  categories: string[];
  vendors: string[];
}

export const DEFAULT_JUDGE_CONFIG: Omit<JudgeConfig, 'categories' | 'vendors'> = {
  imageSize: 32,
  widths: [32, 64, 64, 128, 128, 128],
  strides: [1, 2, 1, 2, 1, 2],
  groups: 8,
};

type Layout = Extract<TorchLayout, 'conv' | 'linear' | 'plain'>;

/** Parameter specs: reference name -> PyTorch shape and layout. */
export function judgeParamSpecs(cfg: JudgeConfig): Map<string, { shape: number[]; layout: Layout }> {
  const m = new Map<string, { shape: number[]; layout: Layout }>();
  let cin = 3;
  cfg.widths.forEach((w, i) => {
    m.set(`blocks.${i}.conv.weight`, { shape: [w, cin, 3, 3], layout: 'conv' });
    m.set(`blocks.${i}.conv.bias`, { shape: [w], layout: 'plain' });
    m.set(`blocks.${i}.norm.weight`, { shape: [w], layout: 'plain' });
    m.set(`blocks.${i}.norm.bias`, { shape: [w], layout: 'plain' });
    cin = w;
  });
  m.set('head_category.weight', { shape: [cfg.categories.length, cin], layout: 'linear' });
  m.set('head_category.bias', { shape: [cfg.categories.length], layout: 'plain' });
  m.set('head_vendor.weight', { shape: [cfg.vendors.length, cin], layout: 'linear' });
  m.set('head_vendor.bias', { shape: [cfg.vendors.length], layout: 'plain' });
  return m;
}

export class Judge extends ParamOwner {
  constructor(
    readonly config: JudgeConfig,
    params: Map<string, tf.Variable>,
  ) {
    super(params);
    if (config.widths.length !== config.strides.length)
      throw new Error('JudgeConfig: widths and strides must have the same length');
  }

  /** Fresh He-normal weights (seeded), zero biases, unit norms. */
  static random(config: JudgeConfig, seed = 0): Judge {
    const params = new Map<string, tf.Variable>();
    let k = 0;
    for (const [name, spec] of judgeParamSpecs(config)) {
      const shape = ourShape(spec.shape, spec.layout);
      const init = tf.tidy(() => {
        if (name.endsWith('norm.weight')) return tf.ones(shape);
        if (spec.layout === 'plain') return tf.zeros(shape);
        const fanIn = spec.layout === 'conv' ? shape[0] * shape[1] * shape[2] : shape[0];
        const std = name.startsWith('head') ? 0.01 : Math.sqrt(2 / fanIn);
        return tf.randomNormal(shape, 0, std, 'float32', seed * 7919 + k);
      });
      k++;
      params.set(name, tf.variable(init, true, `judge/${name}/${init.id}`));
      init.dispose();
    }
    return new Judge(config, params);
  }

  private p(name: string): tf.Tensor {
    const v = this.params.get(name);
    if (!v) throw new Error(`judge has no parameter ${name}`);
    return v;
  }

  /** Bring [N, S, S, 3] to the judge's size (integer area downsample) or fail clearly. */
  private prepare(x: tf.Tensor4D): tf.Tensor4D {
    const [, h, w, c] = x.shape;
    const s = this.config.imageSize;
    if (c !== 3) throw new Error(`judge: expected [N, H, W, 3] images in [-1, 1], got shape [${x.shape}]`);
    if (h === s && w === s) return x;
    if (h % s === 0 && w % s === 0 && h / s === w / s) return tf.avgPool(x, h / s, h / s, 'valid') as tf.Tensor4D;
    throw new Error(
      `judge: images must be ${s}x${s} or an integer multiple, got ${h}x${w}; resize them first (lib/image resize)`,
    );
  }

  /**
   * Pooled features (the space used for Frechet distance).
   * @param x [N, H, W, 3] in [-1, 1]
   * @returns [N, F]
   */
  features(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const maps = this.featureMaps(x);
      return maps[maps.length - 1].mean([1, 2]) as tf.Tensor2D;
    });
  }

  /**
   * The output of every block (after SiLU), first to last: the trunk judge-LPIPS compares.
   * @param x [N, H, W, 3] in [-1, 1]
   * @returns one [N, h_i, w_i, widths[i]] map per block
   */
  featureMaps(x: tf.Tensor4D): tf.Tensor4D[] {
    return tf.tidy(() => {
      let h = this.prepare(x);
      const maps: tf.Tensor4D[] = [];
      this.config.widths.forEach((_, i) => {
        h = conv2d(
          h,
          this.p(`blocks.${i}.conv.weight`) as tf.Tensor4D,
          this.p(`blocks.${i}.conv.bias`) as tf.Tensor1D,
          {
            stride: this.config.strides[i],
            pad:
              this.config.strides[i] === 2
                ? [
                    [0, 1],
                    [0, 1],
                  ]
                : 1,
          },
        );
        h = silu(
          groupNorm(
            h,
            this.config.groups,
            this.p(`blocks.${i}.norm.weight`) as tf.Tensor1D,
            this.p(`blocks.${i}.norm.bias`) as tf.Tensor1D,
            1e-5,
          ),
        );
        maps.push(h);
      });
      return maps;
    });
  }

  /**
   * Logits of both heads.
   * @param x [N, H, W, 3] in [-1, 1]
   * @returns category [N, K], vendor [N, V], features [N, F]
   */
  apply(x: tf.Tensor4D): { category: tf.Tensor2D; vendor: tf.Tensor2D; features: tf.Tensor2D } {
    const features = this.features(x);
    const [category, vendor] = tf.tidy(() => [
      linear(features, this.p('head_category.weight') as tf.Tensor2D, this.p('head_category.bias') as tf.Tensor1D),
      linear(features, this.p('head_vendor.weight') as tf.Tensor2D, this.p('head_vendor.bias') as tf.Tensor1D),
    ]);
    return { category, vendor, features };
  }

  /** Predicted class indices, batched to bound memory. */
  predict(x: tf.Tensor4D, batch = 128): { category: number[]; vendor: number[]; features: Float32Array } {
    const cat: number[] = [];
    const ven: number[] = [];
    const feats: Float32Array[] = [];
    for (let i = 0; i < x.shape[0]; i += batch) {
      const [c, v, f] = tf.tidy(() => {
        const xb = x.slice([i, 0, 0, 0], [Math.min(batch, x.shape[0] - i), -1, -1, -1]);
        const o = this.apply(xb);
        return [o.category.argMax(-1), o.vendor.argMax(-1), o.features];
      });
      cat.push(...c.dataSync());
      ven.push(...v.dataSync());
      feats.push(f.dataSync() as Float32Array);
      tf.dispose([c, v, f]);
    }
    const F = this.config.widths[this.config.widths.length - 1];
    const all = new Float32Array(x.shape[0] * F);
    let o = 0;
    for (const f of feats) {
      all.set(f, o);
      o += f.length;
    }
    return { category: cat, vendor: ven, features: all };
  }

  get featureDim(): number {
    return this.config.widths[this.config.widths.length - 1];
  }

  /** Weights in PyTorch layout under the reference names. */
  toStateDict(): StateDict {
    const sd: StateDict = new Map();
    for (const [name, spec] of judgeParamSpecs(this.config)) {
      const v = this.params.get(name)!;
      const t = toTorchLayout(v, spec.layout, spec.shape);
      sd.set(name, {
        shape: spec.shape,
        dtype: 'float32',
        data: t.dataSync() as Float32Array,
        sourceDtype: 'float32',
      } as HostTensor);
      t.dispose();
    }
    return sd;
  }

  /** Build from a PyTorch-layout state_dict (checks every key and shape). */
  static fromStateDict(config: JudgeConfig, sd: StateDict, source = 'state_dict'): Judge {
    const params = new Map<string, tf.Variable>();
    for (const [name, spec] of judgeParamSpecs(config)) {
      const e = sd.get(name);
      if (!e)
        throw new Error(
          `${source} has no key ${name}; expected a diffguide judge checkpoint (weights/judge/judge.safetensors)`,
        );
      if (e.shape.join(',') !== spec.shape.join(','))
        throw new Error(`${source}: ${name} has shape [${e.shape}], the config expects [${spec.shape}]`);
      const t = tf.tidy(() =>
        fromTorchLayout(tf.tensor(Float32Array.from(e.data as ArrayLike<number>), spec.shape), spec.layout),
      );
      params.set(name, tf.variable(t, true, `judge/${name}/${t.id}`));
      t.dispose();
    }
    return new Judge(config, params);
  }
}
