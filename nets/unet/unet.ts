/**
 * The UNet: one executor for the guided-diffusion UNetModel and the DDPM Model (see config.ts).
 * Channels-last inside; parameters are tf.Variables keyed by the reference state_dict names, stored
 * in our layout (conv HWIO, 1x1 convs and linears [in, out]); `fromStateDict` / `toStateDict`
 * transpose at the boundary so weights round-trip with the reference code.
 * Two executions of the same math: under a gradient tape (or with dropout) the ops with closed-form
 * gradients (lib/ops/nn.ts); forward-only (sampling) a path with ~35% fewer kernels (GroupNorm as
 * pooling + a group-averaging product with the affine and scale-shift folded into one map, one qkv
 * split, no per-call weight slicing), which matters at batch 1 where per-kernel overhead is a large
 * share of a forward. Outputs agree to float32 rounding (~1e-6).
 */
import * as tf from '@tensorflow/tfjs';
import { ParamOwner } from '../param-owner.js';
import { HostParams } from '../host-params.js';
import { fromTorchLayout, toTorchLayout } from '../layout.js';
import { attention, groupNorm, linear, silu } from '../../lib/ops/nn.js';
import { conv2d } from '../../lib/ops/conv.js';
import { recordingGradients } from '../../lib/ops/tape.js';
import { deriveSeed } from '../../lib/random.js';
import type { HostTensor, StateDict } from '../../lib/io/types.js';
import { checkKeys, formatKeyReport } from '../../lib/io/keys.js';
import {
  buildPlan,
  describeConfig,
  diffKeys,
  inferUNetConfig,
  ourShape,
  validateConfig,
  type AttnLayer,
  type Block,
  type Layer,
  type ParamSpec,
  type ResLayer,
  type UNetConfig,
  type UNetPlan,
} from './config.js';

/** Conditioning inputs. Keys follow guided-diffusion / GLIDE where an equivalent exists. */
export interface UNetCond {
  /** [N] int32 class labels (guided-diffusion `y`, through `label_emb`). Required iff the model has numClasses. */
  y?: tf.Tensor1D;
  /** [N, embCondDim] vector added to the time embedding through `transformer_proj` (unCLIP-style decoder). */
  emb?: tf.Tensor2D;
  /**
   * [N, L, tokenCondDim] tokens prepended to every attention block's keys/values through `encoder_kv` (GLIDE's
   * AttentionBlock: `encoder_kv` rows are grouped per head as [k, v] in the legacy order; with
   * useNewAttentionOrder they are [all k heads, all v heads], mirroring QKVAttention's split).
   */
  tokens?: tf.Tensor3D;
}

export interface UNetApplyOptions {
  /** Apply dropout (default false). */
  training?: boolean;
  /** Seed for dropout masks (default 0). */
  seed?: number;
}

export interface UNetFromStateDictOptions {
  /** Refuse keys the config does not use (default true). */
  strict?: boolean;
  /**
   * Streamed weights: keep them in host (JS) memory and upload each block's weights just before it
   * runs, freeing them right after (see `UNet.streamed`). fp16 source tensors (`sourceDtype:
   * 'float16'`) stay fp16 in host memory. Default false (weights resident on the backend as variables).
   */
  stream?: boolean;
}

export interface UNetRandomOptions {
  /**
   * Zero the layers the reference zero-initialises (guided-diffusion `zero_module`: ResBlock out conv,
   * attention proj_out, final conv), as a model about to be trained would be. Default true; false draws
   * every layer at random (useful for tests, where zero layers would hide mistakes).
   */
  referenceInit?: boolean;
  /** Streamed weights (see `UNetFromStateDictOptions.stream`); the same values as resident. Default false. */
  stream?: boolean;
  /**
   * With `stream`: keep the weights as fp16 in host memory (half the bytes; each weight rounded to
   * the nearest fp16, so outputs differ from the float32 draw by that rounding). Default false.
   */
  streamF16?: boolean;
}

/** Anything state_dict-like: lib/io's StateDict, or a Map/record of {shape, data}. */
export type StateDictLike =
  | Map<string, { shape: number[]; data: ArrayLike<number> }>
  | Record<string, { shape: number[]; data: ArrayLike<number> }>;

function entriesOf(sd: StateDictLike): [string, { shape: number[]; data: ArrayLike<number> }][] {
  return sd instanceof Map ? [...sd.entries()] : Object.entries(sd);
}

/**
 * Sinusoidal timestep embedding.
 * guided-diffusion: [cos, sin] with freqs exp(-ln(10000) i / half); DDPM: [sin, cos] with exp(-ln(10000) i / (half - 1)).
 * @param t [N] timesteps (raw, not rescaled)
 * @returns [N, dim]
 */
export function timestepEmbedding(t: tf.Tensor1D, dim: number, kind: UNetConfig['kind']): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const idx = tf.range(0, half, 1, 'float32');
    const freqs =
      kind === 'guided-diffusion'
        ? idx.mul(-Math.log(10000)).div(half).exp()
        : idx.mul(-(Math.log(10000) / (half - 1))).exp();
    const args = t
      .cast('float32')
      .reshape([-1, 1])
      .mul(freqs.reshape([1, half]));
    let emb =
      kind === 'guided-diffusion'
        ? tf.concat([tf.cos(args), tf.sin(args)], 1)
        : tf.concat([tf.sin(args), tf.cos(args)], 1);
    if (dim % 2 === 1)
      emb = tf.pad(emb, [
        [0, 0],
        [0, 1],
      ]);
    return emb as tf.Tensor2D;
  });
}

/** Parameters (`params`) by reference state_dict key, in our layout (conv HWIO, 1x1 conv / linear [in, out]). */
export class UNet extends ParamOwner {
  readonly config: UNetConfig;
  private readonly plan: UNetPlan;
  /** Streamed mode: the weights in host memory (`params` is then empty). */
  private readonly host: HostParams | null;
  /** Streamed mode: tensors uploaded since the last `release()`. */
  private uploads: tf.Tensor[] = [];

  private constructor(plan: UNetPlan, params: Map<string, tf.Variable>, host: HostParams | null = null) {
    super(params);
    this.plan = plan;
    this.config = plan.config;
    this.host = host;
  }

  /**
   * Whether the weights are streamed: held in host (JS) memory, each block's uploaded just before it
   * runs and freed right after, so the backend holds one block's weights at a time (what lets the
   * 256 px guided-diffusion UNet run on the 4 GB wasm heap). Same outputs as resident weights; there
   * are no variables (`params` is empty), so a streamed net cannot be trained. Under a gradient
   * tape the tape keeps what the backward needs (tfjs saves its own references), so taped passes
   * hold the weights they touch until the gradient is taken.
   */
  get streamed(): boolean {
    return this.host !== null;
  }

  /** Scalars in all weights (resident or streamed). */
  override numParams(): number {
    return this.host ? this.host.numel() : super.numParams();
  }

  /** Host bytes of streamed weights (0 when resident). */
  hostBytes(): number {
    return this.host?.hostBytes() ?? 0;
  }

  override dispose(): void {
    this.release();
    this.host?.clear();
    super.dispose();
  }

  /** Reference key -> PyTorch shape and layout, for this net's config. */
  get paramSpecs(): ReadonlyMap<string, ParamSpec> {
    return this.plan.params;
  }

  /**
   * Build from a state_dict (PyTorch layout, reference key names).
   * @param config a full config (anything with `modelChannels`), or hints merged into the config inferred from the keys
   *   (e.g. `{numHeadChannels: 16}`; head split and attention order are not stored in weights).
   * @throws naming missing keys, unexpected keys (when strict) and shape mismatches.
   */
  static fromStateDict(sd: StateDictLike, config?: Partial<UNetConfig>, opts: UNetFromStateDictOptions = {}): UNet {
    const entries = entriesOf(sd);
    const shapes = new Map(entries.map(([k, v]) => [k, v.shape]));
    const cfg =
      config && config.modelChannels !== undefined ? validateConfig(config) : inferUNetConfig(shapes, config ?? {});
    const plan = buildPlan(cfg);
    const expected = new Map([...plan.params].map(([k, v]) => [k, v.shape]));
    const strict = opts.strict ?? true;
    const keys = checkKeys(expected.keys(), shapes.keys());
    const mismatched = diffKeys(expected, shapes).mismatched;
    if (!strict) keys.unexpected = [];
    if (keys.missing.length || keys.unexpected.length || mismatched.length) {
      const report = [formatKeyReport(keys, { limit: 20 })];
      if (mismatched.length)
        report.push(
          `${mismatched.length} shape mismatch(es):\n${mismatched
            .slice(0, 20)
            .map((m) => `  ${m}`)
            .join('\n')}`,
        );
      throw new Error(
        `UNet weights do not match the config (${describeConfig(cfg)}):\n${report.filter(Boolean).join('\n')}\n` +
          'Fix: check the config (a *.config.json beside the weights, or pass one), or load with {strict: false} to ignore extra keys.',
      );
    }
    const byName = new Map(entries);
    if (opts.stream) {
      const host = new HostParams();
      for (const [name, spec] of plan.params) {
        const src = byName.get(name)!;
        const data = src.data instanceof Float32Array ? src.data : Float32Array.from(src.data);
        const f16 = (src as { sourceDtype?: string }).sourceDtype === 'float16';
        tf.tidy(() =>
          host.setFromTensor(name, fromTorchLayout(tf.tensor(data, spec.shape, 'float32'), spec.layout), f16),
        );
      }
      return new UNet(plan, new Map(), host);
    }
    const params = new Map<string, tf.Variable>();
    try {
      for (const [name, spec] of plan.params) {
        const src = byName.get(name)!;
        const data = src.data instanceof Float32Array ? src.data : Float32Array.from(src.data);
        const v = tf.tidy(() =>
          tf.variable(fromTorchLayout(tf.tensor(data, spec.shape, 'float32'), spec.layout), true),
        );
        params.set(name, v);
      }
    } catch (e) {
      for (const v of params.values()) v.dispose();
      throw e;
    }
    return new UNet(plan, params);
  }

  /**
   * A randomly initialised net (PyTorch default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv/linear
   * weights and biases, GroupNorm 1/0, embeddings N(0, 1)).
   */
  static random(config: Partial<UNetConfig>, seed = 0, opts: UNetRandomOptions = {}): UNet {
    const plan = buildPlan(validateConfig(config));
    const zeroInit = (opts.referenceInit ?? true) && plan.config.kind === 'guided-diffusion';
    const zeroPrefixes = new Set<string>();
    if (zeroInit) {
      const visit = (b: Block) =>
        b.layers.forEach((l) => {
          if (l.type === 'res') zeroPrefixes.add(l.conv2);
          if (l.type === 'attn') zeroPrefixes.add(l.proj);
        });
      [...plan.input, plan.middle, ...plan.output].forEach(visit);
      zeroPrefixes.add(plan.outConv);
    }
    const params = new Map<string, tf.Variable>();
    const host = opts.stream ? new HostParams() : null;
    let i = 0;
    for (const [name, spec] of plan.params) {
      const prefix = name.slice(0, name.lastIndexOf('.'));
      const s = deriveSeed(seed, i++);
      const shape = ourShape(spec);
      const v = tf.tidy(() => {
        let t: tf.Tensor;
        if (zeroPrefixes.has(prefix)) t = tf.zeros(shape);
        else if (spec.layout === 'plain') {
          if (name.endsWith('label_emb.weight')) t = tf.randomNormal(shape, 0, 1, 'float32', s);
          else if (isNormParam(plan, prefix)) t = name.endsWith('.weight') ? tf.ones(shape) : tf.zeros(shape);
          else {
            // a bias: bound from the weight's fan-in
            const w = plan.params.get(`${prefix}.weight`)!;
            const bound = 1 / Math.sqrt(fanIn(w));
            t = tf.randomUniform(shape, -bound, bound, 'float32', s);
          }
        } else {
          const bound = 1 / Math.sqrt(fanIn(spec));
          t = tf.randomUniform(shape, -bound, bound, 'float32', s);
        }
        if (host) {
          host.setFromTensor(name, t, opts.streamF16 ?? false);
          return undefined;
        }
        return tf.variable(t, true);
      }) as tf.Variable | undefined;
      if (v) params.set(name, v);
    }
    return new UNet(plan, params, host);
  }

  /** The state_dict in PyTorch layout with reference key names (float32), in reference key order. */
  toStateDict(): StateDict {
    this.checkAlive();
    const out: StateDict = new Map();
    for (const [name, spec] of this.plan.params) {
      const t = tf.tidy(() =>
        toTorchLayout(this.host ? this.host.upload(name) : this.params.get(name)!, spec.layout, spec.shape),
      );
      const data = t.dataSync() as Float32Array;
      t.dispose();
      const ht: HostTensor = {
        shape: spec.shape.slice(),
        dtype: 'float32',
        data: new Float32Array(data),
        sourceDtype: 'float32',
      };
      out.set(name, ht);
    }
    return out;
  }

  /**
   * Run the net.
   * @param x [N, H, W, inChannels] (NHWC; H and W divisible by 2^(levels-1))
   * @param t [N] timesteps (float or int; raw model timesteps)
   * @returns [N, H, W, outChannels]
   */
  apply(x: tf.Tensor4D, t: tf.Tensor1D, cond: UNetCond = {}, opts: UNetApplyOptions = {}): tf.Tensor4D {
    return tf.tidy(() => this.run(x, t, cond, opts, null));
  }

  /**
   * Like `apply`, also returning intermediates by the names the reference io files use:
   * 'timestep_embedding', 'emb' (guided-diffusion `time_embed`'s output) / 'temb' (DDPM), both before any
   * conditioning is added, 'label_emb' (class-conditional models: `label_emb(y)`), and each block's output
   * ('input_block{i}', 'middle_block', 'output_block{i}' / 'conv_in', 'down{l}_block{j}', 'down{l}_downsample',
   * 'mid', 'up{l}_block{j}'). 4-D intermediates are NHWC.
   */
  applyWithIntermediates(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    cond: UNetCond = {},
    opts: UNetApplyOptions = {},
  ): { out: tf.Tensor4D; intermediates: Record<string, tf.Tensor> } {
    return tf.tidy(() => {
      const intermediates: Record<string, tf.Tensor> = {};
      const out = this.run(x, t, cond, opts, intermediates);
      return { out, intermediates };
    });
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('UNet was disposed; create or load it again');
  }

  private p(name: string): tf.Tensor {
    if (this.host) {
      if (!this.host.has(name)) throw new Error(`UNet: parameter ${name} missing`);
      const t = this.host.upload(name);
      this.uploads.push(t);
      return t;
    }
    const v = this.params.get(name);
    if (!v) throw new Error(`UNet: parameter ${name} missing`);
    return v;
  }

  /** Streamed mode: free the weights uploaded since the last call (their ops have run). */
  private release(): void {
    if (this.uploads.length === 0) return;
    tf.dispose(this.uploads);
    this.uploads = [];
  }

  private run(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    cond: UNetCond,
    opts: UNetApplyOptions,
    capture: Record<string, tf.Tensor> | null,
  ): tf.Tensor4D {
    try {
      return this.runNet(x, t, cond, opts, capture);
    } finally {
      this.release();
    }
  }

  private runNet(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    cond: UNetCond,
    opts: UNetApplyOptions,
    capture: Record<string, tf.Tensor> | null,
  ): tf.Tensor4D {
    this.checkAlive();
    const c = this.config;
    const plan = this.plan;
    if (x.rank !== 4) throw new Error(`UNet.apply: x must be [N, H, W, C], got shape [${x.shape.join(', ')}]`);
    const [n, h, w, cin] = x.shape;
    if (cin !== c.inChannels)
      throw new Error(
        `UNet.apply: x has ${cin} channels, the model takes ${c.inChannels} (x is NHWC: transpose NCHW input with x.transpose([0, 2, 3, 1]))`,
      );
    const f = 2 ** (plan.levels - 1);
    if (h % f !== 0 || w % f !== 0)
      throw new Error(`UNet.apply: H and W (${h}x${w}) must be divisible by ${f} for ${plan.levels} levels`);
    if (t.rank !== 1 || t.shape[0] !== n)
      throw new Error(`UNet.apply: t must be [N] = [${n}], got [${t.shape.join(', ')}]`);

    const temb = timestepEmbedding(t, c.modelChannels, c.kind);
    if (capture) capture.timestep_embedding = temb;
    let emb = linear(
      silu(
        linear(
          temb,
          this.p(`${plan.timeEmbed[0]}.weight`) as tf.Tensor2D,
          this.p(`${plan.timeEmbed[0]}.bias`) as tf.Tensor1D,
        ),
      ),
      this.p(`${plan.timeEmbed[1]}.weight`) as tf.Tensor2D,
      this.p(`${plan.timeEmbed[1]}.bias`) as tf.Tensor1D,
    );
    // 'emb' / 'temb' in a reference io file is the time embedding's output (guided-diffusion's `time_embed`,
    // DDPM's `temb.dense`), before any class or other conditioning is added.
    if (capture) capture[plan.embName] = emb;
    if (plan.labelEmb) {
      if (!cond.y) throw new Error('UNet.apply: this model is class-conditional; pass cond.y ([N] int32 labels)');
      if (cond.y.shape[0] !== n) throw new Error(`UNet.apply: cond.y must be [${n}], got [${cond.y.shape.join(', ')}]`);
      const label = tf.gather(this.p(`${plan.labelEmb}.weight`), cond.y.cast('int32'));
      if (capture) capture.label_emb = label;
      emb = emb.add(label);
    } else if (cond.y)
      throw new Error('UNet.apply: cond.y given but the model is not class-conditional (numClasses is null)');
    if (cond.emb) {
      if (!plan.embCondProj)
        throw new Error('UNet.apply: cond.emb given but the model has no embedding conditioning (embCondDim is null)');
      if (cond.emb.rank !== 2 || cond.emb.shape[0] !== n || cond.emb.shape[1] !== c.embCondDim)
        throw new Error(`UNet.apply: cond.emb must be [${n}, ${c.embCondDim}], got [${cond.emb.shape.join(', ')}]`);
      emb = emb.add(
        linear(
          cond.emb,
          this.p(`${plan.embCondProj}.weight`) as tf.Tensor2D,
          this.p(`${plan.embCondProj}.bias`) as tf.Tensor1D,
        ),
      );
    }
    if (cond.tokens) {
      if (c.tokenCondDim === null)
        throw new Error('UNet.apply: cond.tokens given but the model has no token conditioning (tokenCondDim is null)');
      if (cond.tokens.rank !== 3 || cond.tokens.shape[0] !== n || cond.tokens.shape[2] !== c.tokenCondDim)
        throw new Error(
          `UNet.apply: cond.tokens must be [${n}, L, ${c.tokenCondDim}], got [${cond.tokens.shape.join(', ')}]`,
        );
    }
    this.release();
    const embAct = silu(emb);
    const training = !!opts.training && c.dropout > 0;
    const ctx: RunCtx = {
      embAct,
      tokens: cond.tokens ?? null,
      training,
      seed: opts.seed ?? 0,
      dropoutCount: 0,
      fast: training || recordingGradients() ? null : this.fastCtx(embAct),
    };

    try {
      // Each block runs in its own tidy scope, so only block outputs (the skips) outlive it: at 256 px one
      // ResBlock's intermediates are ~1.5 GiB. Under a tape the tensors gradients need are kept by the
      // engine (saved copies), so the scopes are safe there too.
      const hs: tf.Tensor4D[] = [];
      let hcur: tf.Tensor4D = x;
      for (const block of plan.input) {
        hcur = tf.tidy(() => this.runBlock(block, hcur, ctx));
        this.release();
        hs.push(hcur);
        if (capture) capture[block.capture] = hcur;
      }
      // the middle block's input is the last skip: it stays until the first output block reads it
      hcur = tf.tidy(() => this.runBlock(plan.middle, hcur, ctx));
      this.release();
      if (capture) capture[plan.middle.capture] = hcur;
      for (const block of plan.output) {
        const skip = hs.pop()!;
        const next = tf.tidy(() => this.runBlock(block, concatChannels(hcur, skip), ctx));
        this.release();
        this.dropConsumed(hcur, x, hs, capture, ctx);
        this.dropConsumed(skip, x, hs, capture, ctx);
        hcur = next;
        if (capture) capture[block.capture] = hcur;
      }
      return tf.tidy(() => {
        const hn = this.norm(hcur, plan.outNorm, ctx, true);
        return conv2d(
          hn,
          this.p(`${plan.outConv}.weight`) as tf.Tensor4D,
          this.p(`${plan.outConv}.bias`) as tf.Tensor1D,
        );
      });
    } finally {
      if (ctx.fast) for (const m of ctx.fast.groupAvg.values()) m.dispose();
    }
  }

  /**
   * Forward-only path: free an activation no later block reads (the caller's input, a captured
   * intermediate and a skip still waiting stay). Under a tape everything stays for the enclosing scope.
   */
  private dropConsumed(
    t: tf.Tensor4D,
    input: tf.Tensor4D,
    pending: tf.Tensor4D[],
    capture: Record<string, tf.Tensor> | null,
    ctx: RunCtx,
  ): void {
    if (!ctx.fast || capture || t === input || pending.includes(t)) return;
    t.dispose();
  }

  /** ResBlocks in plan order. */
  private resLayersCache: ResLayer[] | null = null;
  private get resLayers(): ResLayer[] {
    if (!this.resLayersCache) {
      const out: ResLayer[] = [];
      for (const b of [...this.plan.input, this.plan.middle, ...this.plan.output])
        for (const l of b.layers) if (l.type === 'res') out.push(l);
      this.resLayersCache = out;
    }
    return this.resLayersCache;
  }

  /**
   * State of a forward-only pass: each ResBlock's embedding projection, with 1 added to the scale
   * half of scale-shift blocks (the norm's affine map takes 1 + scale). (One product with the
   * weights side by side would need them concatenated: a copy per call, or tensors held beside the
   * parameters; per-block products with the parameters themselves measured faster than the former.)
   */
  private fastCtx(embAct: tf.Tensor2D): FastCtx {
    const emb = new Map<ResLayer, tf.Tensor2D[]>();
    for (const l of this.resLayers) {
      emb.set(l, this.blockEmb(l, embAct));
      this.release();
    }
    return { emb, groupAvg: new Map() };
  }

  /**
   * GroupNorm(32) with the params under `prefix`, optionally followed by SiLU; on the forward-only
   * path optionally with a per-sample scale-shift ((1 + scale) [N, C], shift [N, C]) folded into the affine map.
   */
  private norm(
    x: tf.Tensor4D,
    prefix: string,
    ctx: RunCtx,
    act: boolean,
    scale1?: tf.Tensor2D,
    shift?: tf.Tensor2D,
  ): tf.Tensor4D {
    return groupNorm(
      x,
      32,
      this.p(`${prefix}.weight`) as tf.Tensor1D,
      this.p(`${prefix}.bias`) as tf.Tensor1D,
      this.plan.normEps,
      { scale1, shift, silu: act, groupAverager: ctx.fast?.groupAvg },
    );
  }

  private runBlock(block: Block, x: tf.Tensor4D, ctx: RunCtx): tf.Tensor4D {
    let h = x;
    for (const l of block.layers) h = this.runLayer(l, h, ctx);
    return h;
  }

  private runLayer(l: Layer, x: tf.Tensor4D, ctx: RunCtx): tf.Tensor4D {
    switch (l.type) {
      case 'conv':
        return conv2d(x, this.p(`${l.name}.weight`) as tf.Tensor4D, this.p(`${l.name}.bias`) as tf.Tensor1D);
      case 'res':
        return this.resBlock(l, x, ctx);
      case 'attn':
        return this.attnBlock(l, x, ctx);
      case 'down':
        if (l.conv)
          return conv2d(x, this.p(`${l.conv}.weight`) as tf.Tensor4D, this.p(`${l.conv}.bias`) as tf.Tensor1D, {
            stride: 2,
            pad: l.asymmetricPad
              ? [
                  [0, 1],
                  [0, 1],
                ]
              : 1,
          });
        return tf.avgPool(x, 2, 2, 'valid');
      case 'up': {
        const up = upsample2(x);
        return l.conv
          ? conv2d(up, this.p(`${l.conv}.weight`) as tf.Tensor4D, this.p(`${l.conv}.bias`) as tf.Tensor1D)
          : up;
      }
    }
  }

  private resBlock(l: ResLayer, x: tf.Tensor4D, ctx: RunCtx): tf.Tensor4D {
    const n = x.shape[0];
    let h = this.norm(x, l.norm1, ctx, true);
    if (l.updown === 'down') {
      h = tf.avgPool(h, 2, 2, 'valid');
      x = tf.avgPool(x, 2, 2, 'valid');
    } else if (l.updown === 'up') {
      h = upsample2(h);
      x = upsample2(x);
    }
    h = conv2d(h, this.p(`${l.conv1}.weight`) as tf.Tensor4D, this.p(`${l.conv1}.bias`) as tf.Tensor1D);
    const e = ctx.fast ? ctx.fast.emb.get(l)! : this.blockEmb(l, ctx.embAct);
    h = l.scaleShift
      ? this.norm(h, l.norm2, ctx, true, e[0], e[1])
      : this.norm(h.add(e[0].reshape([n, 1, 1, l.cout])), l.norm2, ctx, true);
    if (ctx.training)
      h = tf.dropout(h, this.config.dropout, undefined, deriveSeed(ctx.seed, ctx.dropoutCount++)) as tf.Tensor4D;
    h = conv2d(h, this.p(`${l.conv2}.weight`) as tf.Tensor4D, this.p(`${l.conv2}.bias`) as tf.Tensor1D);
    const skip = l.skip
      ? linear(x, this.p(`${l.skip}.weight`) as tf.Tensor2D, this.p(`${l.skip}.bias`) as tf.Tensor1D)
      : x;
    return skip.add(h);
  }

  /** A ResBlock's embedding projection: [1 + scale, shift] ([N, cout] each) for scale-shift blocks, else [[N, cout]]. */
  private blockEmb(l: ResLayer, embAct: tf.Tensor2D): tf.Tensor2D[] {
    const e = linear(embAct, this.p(`${l.embProj}.weight`) as tf.Tensor2D, this.p(`${l.embProj}.bias`) as tf.Tensor1D);
    if (!l.scaleShift) return [e];
    const [sc, sh] = tf.split(e, 2, 1) as tf.Tensor2D[];
    return [sc.add(1), sh];
  }

  /** Columns of a fused projection weight [in, parts*C] for part `j`, given the reference's output-channel order. */
  private splitProj(
    name: string,
    parts: number,
    j: number,
    heads: number,
    headsFirst: boolean,
  ): { w: tf.Tensor2D; b: tf.Tensor1D } {
    const w = this.p(`${name}.weight`);
    const b = this.p(`${name}.bias`);
    const [cin, cout] = w.shape as [number, number];
    const c = cout / parts;
    const ch = c / heads;
    if (headsFirst && heads > 1) {
      // output channel = head * parts*ch + part * ch + i
      const ws = w.reshape([cin, heads, parts, ch]).slice([0, 0, j, 0], [cin, heads, 1, ch]).reshape([cin, c]);
      const bs = b.reshape([heads, parts, ch]).slice([0, j, 0], [heads, 1, ch]).reshape([c]);
      return { w: ws as tf.Tensor2D, b: bs as tf.Tensor1D };
    }
    // output channel = part * C + head * ch + i (also the legacy order when heads == 1)
    return { w: w.slice([0, j * c], [cin, c]) as tf.Tensor2D, b: b.slice([j * c], [c]) as tf.Tensor1D };
  }

  private attnBlock(l: AttnLayer, x: tf.Tensor4D, ctx: RunCtx): tf.Tensor4D {
    const [n, h, w, c] = x.shape;
    const T = h * w;
    const heads = l.heads;
    const ch = c / heads;
    const scale = 1 / Math.sqrt(ch);
    if (ctx.fast && l.qkv && !(l.encoderKv && ctx.tokens)) {
      // One projection for q, k, v, split per head from its output (no weight slicing per call); the
      // softmax scale goes on the logits.
      const xn = this.norm(x, l.norm, ctx, false).reshape([n, T, c]) as tf.Tensor3D;
      const qkv = linear(xn, this.p(`${l.qkv}.weight`) as tf.Tensor2D, this.p(`${l.qkv}.bias`) as tf.Tensor1D);
      let parts: tf.Tensor4D[];
      if (heads === 1 || !l.newOrder) {
        // output channel = head * 3ch + part * ch + i
        const r =
          heads === 1 ? qkv.reshape([n, 1, T, 3 * ch]) : qkv.reshape([n, T, heads, 3 * ch]).transpose([0, 2, 1, 3]);
        parts = tf.split(r, 3, 3) as tf.Tensor4D[];
      } else {
        // output channel = part * C + head * ch + i
        parts = tf.unstack(qkv.reshape([n, T, 3, heads, ch]).transpose([2, 0, 3, 1, 4])) as tf.Tensor4D[];
      }
      let a: tf.Tensor = attention(parts[0], parts[1], parts[2], undefined, scale);
      a = heads === 1 ? a.reshape([n, T, c]) : a.transpose([0, 2, 1, 3]).reshape([n, T, c]);
      const out = linear(a, this.p(`${l.proj}.weight`) as tf.Tensor2D, this.p(`${l.proj}.bias`) as tf.Tensor1D);
      return x.add(out.reshape([n, h, w, c]));
    }
    const xn = groupNorm(
      x,
      32,
      this.p(`${l.norm}.weight`) as tf.Tensor1D,
      this.p(`${l.norm}.bias`) as tf.Tensor1D,
      this.plan.normEps,
    ).reshape([n, T, c]) as tf.Tensor3D;
    let wq: tf.Tensor2D, bq: tf.Tensor1D, wk: tf.Tensor2D, bk: tf.Tensor1D, wv: tf.Tensor2D, bv: tf.Tensor1D;
    if (l.qkv) {
      ({ w: wq, b: bq } = this.splitProj(l.qkv, 3, 0, heads, !l.newOrder));
      ({ w: wk, b: bk } = this.splitProj(l.qkv, 3, 1, heads, !l.newOrder));
      ({ w: wv, b: bv } = this.splitProj(l.qkv, 3, 2, heads, !l.newOrder));
    } else {
      [wq, bq] = [this.p(`${l.q}.weight`) as tf.Tensor2D, this.p(`${l.q}.bias`) as tf.Tensor1D];
      [wk, bk] = [this.p(`${l.k}.weight`) as tf.Tensor2D, this.p(`${l.k}.bias`) as tf.Tensor1D];
      [wv, bv] = [this.p(`${l.v}.weight`) as tf.Tensor2D, this.p(`${l.v}.bias`) as tf.Tensor1D];
    }
    // Fold the softmax scale into the query projection (the reference scales q and k by ch^-1/4 each).
    const q = linear(xn, wq.mul(scale) as tf.Tensor2D, bq.mul(scale) as tf.Tensor1D);
    const k = linear(xn, wk, bk);
    const v = linear(xn, wv, bv);
    const toHeads = (a: tf.Tensor3D): tf.Tensor4D => {
      const len = a.shape[1];
      return (
        heads === 1 ? a.reshape([n, 1, len, c]) : a.reshape([n, len, heads, ch]).transpose([0, 2, 1, 3])
      ) as tf.Tensor4D;
    };
    let kh = toHeads(k);
    let vh = toHeads(v);
    if (l.encoderKv && ctx.tokens) {
      const ek = this.splitProj(l.encoderKv, 2, 0, heads, !l.newOrder);
      const ev = this.splitProj(l.encoderKv, 2, 1, heads, !l.newOrder);
      kh = tf.concat([toHeads(linear(ctx.tokens, ek.w, ek.b)), kh], 2);
      vh = tf.concat([toHeads(linear(ctx.tokens, ev.w, ev.b)), vh], 2);
    }
    let a: tf.Tensor = attention(toHeads(q), kh, vh, undefined, 1);
    a = heads === 1 ? a.reshape([n, T, c]) : a.transpose([0, 2, 1, 3]).reshape([n, T, c]);
    const out = linear(a, this.p(`${l.proj}.weight`) as tf.Tensor2D, this.p(`${l.proj}.bias`) as tf.Tensor1D);
    return x.add(out.reshape([n, h, w, c]));
  }
}

interface RunCtx {
  /** silu(emb) [N, 4*modelChannels], shared by every ResBlock's embedding projection. */
  embAct: tf.Tensor2D;
  tokens: tf.Tensor3D | null;
  training: boolean;
  seed: number;
  dropoutCount: number;
  /**
   * Forward-only (no gradient tape, no dropout): fewer, larger kernels with the same math (the
   * embedding projections up front, `groupNorm`'s folded forward); null under a tape.
   */
  fast: FastCtx | null;
}

/** Per-forward state of the forward-only path. */
interface FastCtx {
  /** Each ResBlock's embedding projection by layer: [1 + scale, shift] ([N, cout] each) for scale-shift blocks, else [[N, cout]]. */
  emb: Map<ResLayer, tf.Tensor2D[]>;
  /** Group-averaging matrices by channel count (built once per forward and kept across the block scopes, see `groupNorm`; disposed when the forward ends). */
  groupAvg: Map<number, tf.Tensor2D>;
}

/**
 * Channel concatenation [N,H,W,A] ++ [N,H,W,B] -> [N,H,W,A+B] (torch.cat(dim=1) in NCHW).
 * On wasm, padding each side with zeros and adding is about twice as fast as the channel-axis concat
 * kernel (a strided copy in JS); both are exact.
 */
function concatChannels(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D {
  if (tf.getBackend() !== 'wasm') return tf.concat([a, b], 3);
  const ca = a.shape[3];
  const cb = b.shape[3];
  return tf
    .pad(a, [
      [0, 0],
      [0, 0],
      [0, 0],
      [0, cb],
    ])
    .add(
      tf.pad(b, [
        [0, 0],
        [0, 0],
        [0, 0],
        [ca, 0],
      ]),
    );
}

/**
 * Nearest-neighbour 2x upsampling (F.interpolate(scale_factor=2, mode='nearest')). [N,H,W,C] -> [N,2H,2W,C]
 * Its gradient sums each 2x2 block of dy: 4 x a 2x2 average pool (XNNPACK), exact, ~10x faster on
 * wasm than tfjs's ResizeNearestNeighborGrad.
 */
function upsample2(x: tf.Tensor4D): tf.Tensor4D {
  return upsample2Grad(x) as tf.Tensor4D;
}

const upsample2Grad = tf.customGrad(((x: tf.Tensor4D) => ({
  value: tf.image.resizeNearestNeighbor(x, [x.shape[1] * 2, x.shape[2] * 2], false, false),
  gradFunc: (dy: tf.Tensor4D) => tf.avgPool(dy, 2, 2, 'valid').mul(4),
})) as unknown as Parameters<typeof tf.customGrad>[0]);

function fanIn(spec: ParamSpec): number {
  const s = spec.shape;
  return s.slice(1).reduce((a, b) => a * b, 1);
}

function isNormParam(plan: UNetPlan, prefix: string): boolean {
  if (prefix === plan.outNorm) return true;
  let found = false;
  const visit = (b: Block) =>
    b.layers.forEach((l) => {
      if (l.type === 'res' && (l.norm1 === prefix || l.norm2 === prefix)) found = true;
      if (l.type === 'attn' && l.norm === prefix) found = true;
    });
  [...plan.input, plan.middle, ...plan.output].forEach(visit);
  return found;
}
