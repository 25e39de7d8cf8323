/**
 * Parameter storage for the CLIP nets: `tf.Variable`s keyed by the reference state_dict key, in
 * our layout (linear [in, out], conv HWIO). PyTorch layout exists only in `loadParams` /
 * `paramsToStateDict`.
 */
import * as tf from '@tensorflow/tfjs';
import { ParamOwner } from '../param-owner.js';
import { fromTorchLayout, ourShape as layoutShape, toTorchLayout as torchLayout, type TorchLayout } from '../layout.js';
import type { ParamKind, ParamSpec } from './config.js';
import type { BatchStatsHook } from './layers.js';
import { Rng } from '../../lib/random.js';

/**
 * A state_dict entry: a tensor from `lib/io` (`HostTensor`: shape + typed data), or a tf.Tensor,
 * in PyTorch layout.
 */
export type StateTensor = tf.Tensor | { shape: readonly number[]; data: ArrayLike<number | bigint>; dtype?: string };

export type StateDictLike = Map<string, StateTensor> | Record<string, StateTensor>;

export function stateDictEntries(sd: StateDictLike): [string, StateTensor][] {
  return sd instanceof Map ? [...sd.entries()] : Object.entries(sd);
}

/** CLIP's parameter kinds as storage layouts (nets/layout.ts). */
function layoutOf(kind: ParamKind): TorchLayout {
  return kind === 'linear' || kind === 'conv' ? kind : 'plain';
}

/** Our layout shape of a PyTorch-layout shape. */
export function ourShape(kind: ParamKind, shape: readonly number[]): number[] {
  return layoutShape(shape, layoutOf(kind));
}

function hostToTensor(v: StateTensor, spec: ParamSpec): tf.Tensor {
  if (v instanceof tf.Tensor) {
    if (spec.dtype === 'int64') return v.dtype === 'int32' ? v.clone() : v.toInt();
    return v.dtype === 'float32' ? v.clone() : v.toFloat();
  }
  const n = v.shape.reduce((a, b) => a * b, 1);
  if (v.data.length !== n) throw new Error(`state_dict tensor has ${v.data.length} values for shape [${v.shape}]`);
  if (spec.dtype === 'int64') {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = Number(v.data[i]);
    return tf.tensor(out, v.shape.slice(), 'int32');
  }
  if (v.data instanceof Float32Array) return tf.tensor(v.data, v.shape.slice(), 'float32');
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(v.data[i]);
  return tf.tensor(out, v.shape.slice(), 'float32');
}

/** PyTorch layout -> ours. Returns a new tensor. */
export function toOurLayout(kind: ParamKind, t: tf.Tensor): tf.Tensor {
  return fromTorchLayout(t, layoutOf(kind));
}

/** Ours -> PyTorch layout. Returns a new tensor. */
export function toTorchLayout(kind: ParamKind, t: tf.Tensor): tf.Tensor {
  return torchLayout(
    t,
    layoutOf(kind),
    layoutOf(kind) === 'conv' ? [t.shape[3]!, t.shape[2]!, t.shape[0]!, t.shape[1]!] : [...t.shape].reverse(),
  );
}

export interface LoadReport {
  /** Expected keys the state_dict lacks. */
  missing: string[];
  /** State_dict keys the net does not use. */
  unexpected: string[];
}

/**
 * Build variables for `specs` from a PyTorch-layout state_dict.
 * @param ignore keys to skip silently (e.g. non-parameter entries)
 * @param allowMissing missing keys are reported instead of thrown (the caller creates them)
 * @throws on shape mismatches, and on missing keys unless `allowMissing`
 */
export function loadParams(
  specs: Map<string, ParamSpec>,
  sd: StateDictLike,
  opts: { ignore?: (key: string) => boolean; allowMissing?: boolean; what?: string } = {},
): { params: Map<string, tf.Variable>; report: LoadReport } {
  const what = opts.what ?? 'CLIP';
  const given = new Map(stateDictEntries(sd));
  const missing = [...specs.keys()].filter((k) => !given.has(k));
  const unexpected = [...given.keys()].filter((k) => !specs.has(k) && !(opts.ignore?.(k) ?? false));
  const mismatched: string[] = [];
  for (const [k, spec] of specs) {
    const v = given.get(k);
    if (v && (v.shape.length !== spec.shape.length || v.shape.some((d, i) => d !== spec.shape[i]))) {
      mismatched.push(`${k}: file [${v.shape.join(', ')}], expected [${spec.shape.join(', ')}]`);
    }
  }
  if (mismatched.length) {
    throw new Error(
      `${what} weights do not match the configuration (${mismatched.length} shape mismatches):\n  ${mismatched.slice(0, 20).join('\n  ')}\nInfer the config from the file (omit the config) or pass the config the file was trained with.`,
    );
  }
  if (missing.length && !opts.allowMissing) {
    throw new Error(
      `${what} weights are missing ${missing.length} keys: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}; is this an openai/CLIP state_dict of the same architecture?`,
    );
  }
  const params = new Map<string, tf.Variable>();
  for (const [k, spec] of specs) {
    const v = given.get(k);
    if (!v) continue;
    const t = tf.tidy(() => toOurLayout(spec.kind, hostToTensor(v, spec)));
    params.set(k, tf.variable(t, spec.kind !== 'buffer'));
    t.dispose();
  }
  return { params, report: { missing, unexpected } };
}

/** Our variables -> PyTorch-layout tensors under the reference keys (caller disposes). */
export function paramsToStateDict(
  specs: Map<string, ParamSpec>,
  params: Map<string, tf.Variable>,
): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [k, spec] of specs) {
    const v = params.get(k);
    if (!v) throw new Error(`internal: parameter ${k} is not allocated`);
    out.set(k, toTorchLayout(spec.kind, v));
  }
  return out;
}

/** Initialiser of one parameter (PyTorch layout shape in, our-layout tensor out). */
export type Initialiser = (key: string, spec: ParamSpec, rng: Rng) => tf.Tensor;

/** PyTorch's default Linear / Conv2d init: kaiming_uniform(a=sqrt(5)) => U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases likewise. */
export function torchDefaultInit(spec: ParamSpec, rng: Rng, fanIn: number): tf.Tensor {
  const bound = 1 / Math.sqrt(Math.max(1, fanIn));
  return rng.uniform(ourShape(spec.kind, spec.shape), -bound, bound);
}

/** Allocate variables for `specs` with `init` (keys it returns null for are skipped). */
export function initParams(specs: Map<string, ParamSpec>, seed: number, init: Initialiser): Map<string, tf.Variable> {
  const rng = new Rng(seed);
  const params = new Map<string, tf.Variable>();
  for (const [k, spec] of specs) {
    const t = tf.tidy(() => init(k, spec, rng));
    const want = ourShape(spec.kind, spec.shape);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new Error(`internal: initialiser for ${k} gave [${t.shape}], expected [${want}]`);
    }
    params.set(k, tf.variable(t, spec.kind !== 'buffer'));
    t.dispose();
  }
  return params;
}

/** A state_dict entry in host memory (structurally lib/io's `HostTensor`). */
export interface HostStateTensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
  /** 'float32', or 'int64' for BatchNorm's num_batches_tracked (written as I64 by lib/io). */
  sourceDtype: string;
}

/** Our variables -> host tensors in PyTorch layout under the reference keys (for lib/io's writers). */
export function paramsToHostStateDict(
  specs: Map<string, ParamSpec>,
  params: Map<string, tf.Variable>,
): Map<string, HostStateTensor> {
  const out = new Map<string, HostStateTensor>();
  for (const [k, spec] of specs) {
    const v = params.get(k);
    if (!v) throw new Error(`internal: parameter ${k} is not allocated`);
    const t = toTorchLayout(spec.kind, v);
    const data = t.dataSync() as Float32Array | Int32Array;
    out.set(k, {
      shape: spec.shape.slice(),
      dtype: spec.dtype === 'int64' ? 'int32' : 'float32',
      data: data.slice(),
      sourceDtype: spec.dtype,
    });
    t.dispose();
  }
  return out;
}

/**
 * What every CLIP-family module shares: reference-keyed variables, their PyTorch-layout specs, and
 * saving/disposing them. Subclasses add the forward passes.
 */
export abstract class ClipParamModule extends ParamOwner {
  /**
   * @param params reference key -> variable (our layout); trainable except BatchNorm buffers
   * @param specs key -> PyTorch-layout spec, in state_dict order
   */
  protected constructor(
    params: Map<string, tf.Variable>,
    readonly specs: Map<string, ParamSpec>,
  ) {
    super(params);
  }

  /** Trainable variables (everything but BatchNorm running statistics). */
  trainableVariables(): tf.Variable[] {
    return [...this.params.values()].filter((v) => v.trainable);
  }

  /** PyTorch-layout tensors under the reference keys (caller disposes). */
  toStateDict(): Map<string, tf.Tensor> {
    return paramsToStateDict(this.specs, this.params);
  }

  /** The same state_dict in host memory (`HostTensor`s for lib/io's `writeSafetensors`). */
  toHostStateDict(): Map<string, HostStateTensor> {
    return paramsToHostStateDict(this.specs, this.params);
  }

  /**
   * The hook of training-mode BatchNorm: move a layer's running statistics toward the batch's, as
   * torch does (momentum 0.1; running_var from the unbiased variance, count / (count - 1) times the
   * biased one used for normalising).
   */
  protected runningStatsHook(momentum = 0.1): BatchStatsHook {
    return (name, mean, variance, count) => {
      const rm = this.params.get(name + '.running_mean');
      const rv = this.params.get(name + '.running_var');
      if (!rm || !rv) throw new Error(`no running statistics for BatchNorm '${name}'`);
      tf.tidy(() => {
        rm.assign(rm.mul(1 - momentum).add(mean.mul(momentum)));
        rv.assign(rv.mul(1 - momentum).add(variance.mul((momentum * count) / Math.max(1, count - 1))));
      });
    };
  }

  /** `diffguide_arch` and `diffguide_config` recorded in a saved file's metadata. */
  protected abstract saveMetadata(): { arch: string; config: object };

  /**
   * Save as safetensors (PyTorch layout, reference key names; atomic write). The config goes into
   * the metadata (`diffguide_config`), so head counts that the keys cannot tell survive a reload.
   * @param opts.dtype 'float16' halves the file (as CLIP's released weights)
   */
  async save(
    path: string,
    opts: { dtype?: 'float32' | 'float16'; metadata?: Record<string, string> } = {},
  ): Promise<void> {
    const { writeSafetensors } = await import('../../lib/io/index.js');
    const { arch, config } = this.saveMetadata();
    const meta = { format: 'pt', diffguide_arch: arch, diffguide_config: JSON.stringify(config), ...opts.metadata };
    await writeSafetensors(
      path,
      this.toHostStateDict(),
      meta,
      opts.dtype === 'float16' ? { dtype: 'float16' } : undefined,
    );
  }
}
