/**
 * UNet configurations: the typed config, conversion from the reference constructor arguments,
 * the parameter list (reference key names and PyTorch shapes) a config creates, and inference of a
 * config from a state_dict's key names and shapes.
 *
 * Two architecture families share one executor:
 *  - 'guided-diffusion': openai/guided-diffusion `unet.UNetModel` (also GLIDE's AttentionBlock with
 *    `encoder_kv` for token conditioning, and GLIDE's `transformer_proj` for a vector added to the
 *    time embedding);
 *  - 'ddpm': pesser/pytorch_diffusion `Model` (= ermongroup/SDEdit `models/diffusion.py`).
 */
import { ourShape as layoutShape, type TorchLayout } from '../layout.js';

/** Architecture family; decides key names and the small numerical conventions (norm eps, embedding). */
export type UNetKind = 'guided-diffusion' | 'ddpm';

export interface UNetConfig {
  kind: UNetKind;
  /** Training resolution (informational; attention placement is given by `attentionDs`). */
  imageSize?: number;
  inChannels: number;
  /** Base width (`model_channels` / DDPM `ch`). The time embedding is 4x this. */
  modelChannels: number;
  outChannels: number;
  numResBlocks: number;
  /**
   * Downsample rates at which attention is used (UNetModel's `attention_resolutions`; create_model's
   * resolutions "16,8" at image 64 are rates 4,8). Rate 1 is the input resolution.
   */
  attentionDs: number[];
  /** Width multiplier per level (may be fractional, e.g. 0.5 for the 512 model; widths are int(mult * modelChannels)). */
  channelMult: number[];
  /** Dropout rate inside ResBlocks (applied only with `training: true`). */
  dropout: number;
  /** Class-conditional: `label_emb` with this many classes (guided-diffusion `num_classes`). */
  numClasses: number | null;
  /** Attention heads (used when numHeadChannels is -1). */
  numHeads: number;
  /** Fixed channels per head; -1 to use numHeads. */
  numHeadChannels: number;
  /** Heads in the decoder attention blocks; -1 = numHeads. */
  numHeadsUpsample: number;
  /** FiLM-like scale/shift from the embedding after the second GroupNorm. */
  useScaleShiftNorm: boolean;
  /** Up/downsample with ResBlocks instead of (conv) resampling layers. */
  resblockUpdown: boolean;
  /** Learned 3x3 convolution in the resampling layers (UNetModel `conv_resample`, DDPM `resamp_with_conv`). */
  convResample: boolean;
  /** QKVAttention (split q,k,v before heads) instead of QKVAttentionLegacy (heads before q,k,v). */
  useNewAttentionOrder: boolean;
  /** Informational: the output carries a variance channel set (outChannels = 2 * inChannels). */
  learnSigma: boolean;
  /** Width D of a conditioning vector `cond.emb` [N, D] added to the time embedding through `transformer_proj`. */
  embCondDim: number | null;
  /** Width D of conditioning tokens `cond.tokens` [N, L, D] attended to via each attention block's `encoder_kv`. */
  tokenCondDim: number | null;
}

/** How a parameter is stored in PyTorch and which transpose the loader applies (nets/layout.ts). */
export type ParamLayout = TorchLayout;

export interface ParamSpec {
  /** Shape in the PyTorch state_dict. */
  shape: number[];
  layout: ParamLayout;
}

/** Our (NHWC-side) shape for a PyTorch shape and layout. */
export function ourShape(spec: ParamSpec): number[] {
  return layoutShape(spec.shape, spec.layout);
}

// ---------------------------------------------------------------------------------------------
// Plan: the layer graph a config creates (shared by the param list, random init and the forward).

export interface ResLayer {
  type: 'res';
  cin: number;
  cout: number;
  updown: 'up' | 'down' | null;
  norm1: string;
  conv1: string;
  embProj: string;
  norm2: string;
  conv2: string;
  /** 1x1 conv on the skip path when cin != cout. */
  skip: string | null;
  scaleShift: boolean;
}
export interface AttnLayer {
  type: 'attn';
  channels: number;
  heads: number;
  norm: string;
  /** guided-diffusion: one conv1d producing q,k,v. */
  qkv: string | null;
  /** DDPM: separate 1x1 convs. */
  q: string | null;
  k: string | null;
  v: string | null;
  proj: string;
  /** GLIDE-style extra keys/values from conditioning tokens. */
  encoderKv: string | null;
  newOrder: boolean;
}
export interface ConvLayer {
  type: 'conv';
  name: string;
}
export interface DownLayer {
  type: 'down';
  /** 3x3 stride-2 conv, or null for 2x2 average pooling. */
  conv: string | null;
  /** DDPM pads (0,1,0,1) before a valid conv; guided-diffusion pads 1 on every side. */
  asymmetricPad: boolean;
}
export interface UpLayer {
  type: 'up';
  /** 3x3 conv after nearest-neighbour 2x, or null. */
  conv: string | null;
}
export type Layer = ResLayer | AttnLayer | ConvLayer | DownLayer | UpLayer;

export interface Block {
  layers: Layer[];
  /** Name of this block's output in reference io files (intermediates). */
  capture: string;
}

export interface UNetPlan {
  config: UNetConfig;
  params: Map<string, ParamSpec>;
  timeEmbed: [string, string];
  labelEmb: string | null;
  embCondProj: string | null;
  input: Block[];
  middle: Block;
  output: Block[];
  outNorm: string;
  outConv: string;
  /** Intermediate name of the embedding after the MLP ('emb' / 'temb'). */
  embName: string;
  normEps: number;
  levels: number;
}

function resolveHeads(channels: number, numHeads: number, numHeadChannels: number, where: string): number {
  if (numHeadChannels === -1) {
    if (!(numHeads >= 1) || channels % numHeads !== 0)
      throw new Error(
        `UNet config: attention at ${where} has ${channels} channels, not divisible by numHeads ${numHeads}`,
      );
    return numHeads;
  }
  if (!(numHeadChannels >= 1) || channels % numHeadChannels !== 0)
    throw new Error(
      `UNet config: attention at ${where} has ${channels} channels, not divisible by numHeadChannels ${numHeadChannels}`,
    );
  return channels / numHeadChannels;
}

function checkGroups(c: number, where: string): void {
  if (c % 32 !== 0)
    throw new Error(
      `UNet config: GroupNorm(32) at ${where} needs channels divisible by 32, got ${c}; check modelChannels/channelMult`,
    );
}

/** Build the layer plan and the parameter list (reference names, PyTorch shapes) of a config. */
export function buildPlan(config: UNetConfig): UNetPlan {
  const c = validateConfig(config);
  const params = new Map<string, ParamSpec>();
  const add = (name: string, shape: number[], layout: ParamLayout) => params.set(name, { shape, layout });
  const addConv = (p: string, cin: number, cout: number, k = 3) => {
    add(`${p}.weight`, [cout, cin, k, k], k === 1 ? 'conv1x1' : 'conv');
    add(`${p}.bias`, [cout], 'plain');
  };
  const addConv1d = (p: string, cin: number, cout: number) => {
    add(`${p}.weight`, [cout, cin, 1], 'conv1d');
    add(`${p}.bias`, [cout], 'plain');
  };
  const addLinear = (p: string, cin: number, cout: number) => {
    add(`${p}.weight`, [cout, cin], 'linear');
    add(`${p}.bias`, [cout], 'plain');
  };
  const addNorm = (p: string, ch: number) => {
    checkGroups(ch, p);
    add(`${p}.weight`, [ch], 'plain');
    add(`${p}.bias`, [ch], 'plain');
  };
  const mc = c.modelChannels;
  const ted = mc * 4;
  const gd = c.kind === 'guided-diffusion';
  const L = c.channelMult.length;
  const attn = new Set(c.attentionDs);
  const width = (m: number) => Math.trunc(m * mc);

  const res = (p: string, cin: number, cout: number, updown: ResLayer['updown'] = null): ResLayer => {
    const l: ResLayer = gd
      ? {
          type: 'res',
          cin,
          cout,
          updown,
          scaleShift: c.useScaleShiftNorm,
          norm1: `${p}.in_layers.0`,
          conv1: `${p}.in_layers.2`,
          embProj: `${p}.emb_layers.1`,
          norm2: `${p}.out_layers.0`,
          conv2: `${p}.out_layers.3`,
          skip: cin !== cout ? `${p}.skip_connection` : null,
        }
      : {
          type: 'res',
          cin,
          cout,
          updown,
          scaleShift: false,
          norm1: `${p}.norm1`,
          conv1: `${p}.conv1`,
          embProj: `${p}.temb_proj`,
          norm2: `${p}.norm2`,
          conv2: `${p}.conv2`,
          skip: cin !== cout ? `${p}.nin_shortcut` : null,
        };
    addNorm(l.norm1, cin);
    addConv(l.conv1, cin, cout);
    addLinear(l.embProj, ted, l.scaleShift ? 2 * cout : cout);
    addNorm(l.norm2, cout);
    addConv(l.conv2, cout, cout);
    if (l.skip) addConv(l.skip, cin, cout, 1);
    return l;
  };
  const attention = (p: string, ch: number, heads: number): AttnLayer => {
    const l: AttnLayer = gd
      ? {
          type: 'attn',
          channels: ch,
          heads,
          norm: `${p}.norm`,
          qkv: `${p}.qkv`,
          q: null,
          k: null,
          v: null,
          proj: `${p}.proj_out`,
          encoderKv: c.tokenCondDim ? `${p}.encoder_kv` : null,
          newOrder: c.useNewAttentionOrder,
        }
      : {
          type: 'attn',
          channels: ch,
          heads: 1,
          norm: `${p}.norm`,
          qkv: null,
          q: `${p}.q`,
          k: `${p}.k`,
          v: `${p}.v`,
          proj: `${p}.proj_out`,
          encoderKv: null,
          newOrder: false,
        };
    addNorm(l.norm, ch);
    if (gd) {
      addConv1d(l.qkv!, ch, 3 * ch);
      if (l.encoderKv) addConv1d(l.encoderKv, c.tokenCondDim!, 2 * ch);
      addConv1d(l.proj, ch, ch);
    } else {
      for (const n of [l.q!, l.k!, l.v!, l.proj]) addConv(n, ch, ch, 1);
    }
    return l;
  };
  const heads = (ch: number, up: boolean, where: string) =>
    resolveHeads(ch, up && c.numHeadsUpsample !== -1 ? c.numHeadsUpsample : c.numHeads, c.numHeadChannels, where);

  let plan: UNetPlan;
  if (gd) {
    addLinear('time_embed.0', mc, ted);
    addLinear('time_embed.2', ted, ted);
    if (c.numClasses !== null) add('label_emb.weight', [c.numClasses, ted], 'plain');
    if (c.embCondDim !== null) addLinear('transformer_proj', c.embCondDim, ted);
    let ch = width(c.channelMult[0]);
    const inputCh = ch;
    addConv('input_blocks.0.0', c.inChannels, ch);
    const input: Block[] = [{ layers: [{ type: 'conv', name: 'input_blocks.0.0' }], capture: 'input_block0' }];
    const chans = [ch];
    let ds = 1;
    for (let level = 0; level < L; level++) {
      for (let j = 0; j < c.numResBlocks; j++) {
        const i = input.length;
        const out = width(c.channelMult[level]);
        const layers: Layer[] = [res(`input_blocks.${i}.0`, ch, out)];
        ch = out;
        if (attn.has(ds)) layers.push(attention(`input_blocks.${i}.1`, ch, heads(ch, false, `input_blocks.${i}.1`)));
        input.push({ layers, capture: `input_block${i}` });
        chans.push(ch);
      }
      if (level !== L - 1) {
        const i = input.length;
        const p = `input_blocks.${i}.0`;
        let layer: Layer;
        if (c.resblockUpdown) layer = res(p, ch, ch, 'down');
        else {
          layer = { type: 'down', conv: c.convResample ? `${p}.op` : null, asymmetricPad: false };
          if (c.convResample) addConv(`${p}.op`, ch, ch);
        }
        input.push({ layers: [layer], capture: `input_block${i}` });
        chans.push(ch);
        ds *= 2;
      }
    }
    const middle: Block = {
      layers: [
        res('middle_block.0', ch, ch),
        attention('middle_block.1', ch, heads(ch, false, 'middle_block.1')),
        res('middle_block.2', ch, ch),
      ],
      capture: 'middle_block',
    };
    const output: Block[] = [];
    for (let level = L - 1; level >= 0; level--) {
      for (let j = 0; j <= c.numResBlocks; j++) {
        const i = output.length;
        const ich = chans.pop()!;
        const out = width(c.channelMult[level]);
        const layers: Layer[] = [res(`output_blocks.${i}.0`, ch + ich, out)];
        ch = out;
        if (attn.has(ds)) layers.push(attention(`output_blocks.${i}.1`, ch, heads(ch, true, `output_blocks.${i}.1`)));
        if (level && j === c.numResBlocks) {
          const p = `output_blocks.${i}.${layers.length}`;
          if (c.resblockUpdown) layers.push(res(p, ch, ch, 'up'));
          else {
            layers.push({ type: 'up', conv: c.convResample ? `${p}.conv` : null });
            if (c.convResample) addConv(`${p}.conv`, ch, ch);
          }
          ds /= 2;
        }
        output.push({ layers, capture: `output_block${i}` });
      }
    }
    addNorm('out.0', ch);
    addConv('out.2', inputCh, c.outChannels);
    plan = {
      config: c,
      params,
      timeEmbed: ['time_embed.0', 'time_embed.2'],
      labelEmb: c.numClasses !== null ? 'label_emb' : null,
      embCondProj: c.embCondDim !== null ? 'transformer_proj' : null,
      input,
      middle,
      output,
      outNorm: 'out.0',
      outConv: 'out.2',
      embName: 'emb',
      normEps: 1e-5,
      levels: L,
    };
  } else {
    addLinear('temb.dense.0', mc, ted);
    addLinear('temb.dense.1', ted, ted);
    addConv('conv_in', c.inChannels, mc);
    const input: Block[] = [{ layers: [{ type: 'conv', name: 'conv_in' }], capture: 'conv_in' }];
    const chans = [mc];
    const inMult = [1, ...c.channelMult];
    let blockIn = mc;
    for (let level = 0; level < L; level++) {
      blockIn = Math.trunc(mc * inMult[level]);
      const blockOut = width(c.channelMult[level]);
      const ds = 2 ** level;
      for (let j = 0; j < c.numResBlocks; j++) {
        const layers: Layer[] = [res(`down.${level}.block.${j}`, blockIn, blockOut)];
        blockIn = blockOut;
        if (attn.has(ds)) layers.push(attention(`down.${level}.attn.${j}`, blockIn, 1));
        input.push({ layers, capture: `down${level}_block${j}` });
        chans.push(blockIn);
      }
      if (level !== L - 1) {
        const conv = c.convResample ? `down.${level}.downsample.conv` : null;
        if (conv) addConv(conv, blockIn, blockIn);
        input.push({ layers: [{ type: 'down', conv, asymmetricPad: true }], capture: `down${level}_downsample` });
        chans.push(blockIn);
      }
    }
    const middle: Block = {
      layers: [
        res('mid.block_1', blockIn, blockIn),
        attention('mid.attn_1', blockIn, 1),
        res('mid.block_2', blockIn, blockIn),
      ],
      capture: 'mid',
    };
    const output: Block[] = [];
    for (let level = L - 1; level >= 0; level--) {
      const blockOut = width(c.channelMult[level]);
      const ds = 2 ** level;
      for (let j = 0; j <= c.numResBlocks; j++) {
        const skipIn = chans.pop()!;
        const layers: Layer[] = [res(`up.${level}.block.${j}`, blockIn + skipIn, blockOut)];
        blockIn = blockOut;
        if (attn.has(ds)) layers.push(attention(`up.${level}.attn.${j}`, blockIn, 1));
        if (level !== 0 && j === c.numResBlocks) {
          const conv = c.convResample ? `up.${level}.upsample.conv` : null;
          if (conv) addConv(conv, blockIn, blockIn);
          layers.push({ type: 'up', conv });
        }
        output.push({ layers, capture: `up${level}_block${j}` });
      }
    }
    addNorm('norm_out', blockIn);
    addConv('conv_out', blockIn, c.outChannels);
    plan = {
      config: c,
      params,
      timeEmbed: ['temb.dense.0', 'temb.dense.1'],
      labelEmb: null,
      embCondProj: null,
      input,
      middle,
      output,
      outNorm: 'norm_out',
      outConv: 'conv_out',
      embName: 'temb',
      normEps: 1e-6,
      levels: L,
    };
  }
  plan.params = referenceOrder(plan.params, c.kind);
  return plan;
}

/**
 * Parameters in the reference state_dict order (module registration order): DDPM registers each level's
 * blocks, then its attentions, then its resampler, and the up levels by index; GLIDE registers
 * `transformer_proj` after the UNet body.
 */
function referenceOrder(params: Map<string, ParamSpec>, kind: UNetKind): Map<string, ParamSpec> {
  const rank = (k: string): number[] => {
    if (kind === 'guided-diffusion') return [k.startsWith('transformer_proj.') ? 1 : 0];
    let m: RegExpExecArray | null;
    if (k.startsWith('temb.')) return [0];
    if (k.startsWith('conv_in.')) return [1];
    if ((m = /^(down|up)\.(\d+)\.(block|attn)\.(\d+)\./.exec(k)))
      return [m[1] === 'down' ? 2 : 4, +m[2], m[3] === 'block' ? 0 : 1, +m[4]];
    if ((m = /^(down|up)\.(\d+)\.(downsample|upsample)\./.exec(k))) return [m[1] === 'down' ? 2 : 4, +m[2], 2];
    if (k.startsWith('mid.')) return [3, k.startsWith('mid.block_1.') ? 0 : k.startsWith('mid.attn_1.') ? 1 : 2];
    if (k.startsWith('norm_out.')) return [5];
    return [6];
  };
  const cmp = (a: number[], b: number[]) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++)
      if ((a[i] ?? -1) !== (b[i] ?? -1)) return (a[i] ?? -1) - (b[i] ?? -1);
    return 0;
  };
  const entries = [...params.entries()].map((e, i) => ({ e, r: rank(e[0]), i }));
  entries.sort((a, b) => cmp(a.r, b.r) || a.i - b.i);
  return new Map(entries.map((x) => x.e));
}

/** Reference key -> PyTorch shape for a config (exactly the state_dict the reference constructor creates). */
export function unetParamShapes(config: UNetConfig): Map<string, number[]> {
  return new Map([...buildPlan(config).params].map(([k, v]) => [k, v.shape]));
}

// ---------------------------------------------------------------------------------------------
// Defaults and validation.

/** Defaults for fields a partial config leaves out (guided-diffusion UNetModel's own defaults). */
export function defaultConfig(kind: UNetKind = 'guided-diffusion'): UNetConfig {
  return {
    kind,
    inChannels: 3,
    modelChannels: 128,
    outChannels: 3,
    numResBlocks: 2,
    attentionDs: kind === 'ddpm' ? [] : [],
    channelMult: kind === 'ddpm' ? [1, 2, 2, 2] : [1, 2, 4, 8],
    dropout: 0,
    numClasses: null,
    numHeads: 1,
    numHeadChannels: -1,
    numHeadsUpsample: -1,
    useScaleShiftNorm: false,
    resblockUpdown: false,
    convResample: true,
    useNewAttentionOrder: false,
    learnSigma: false,
    embCondDim: null,
    tokenCondDim: null,
  };
}

/** Fill defaults and check a config; returns a complete copy. Throws naming the bad field. */
export function validateConfig(partial: Partial<UNetConfig> & { kind?: UNetKind }): UNetConfig {
  const c: UNetConfig = { ...defaultConfig(partial.kind ?? 'guided-diffusion'), ...stripUndefined(partial) };
  const posInt = (k: keyof UNetConfig) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new Error(`UNet config: ${k} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  if (c.kind !== 'guided-diffusion' && c.kind !== 'ddpm')
    throw new Error(`UNet config: kind must be 'guided-diffusion' or 'ddpm', got ${JSON.stringify(c.kind)}`);
  posInt('inChannels');
  posInt('modelChannels');
  posInt('outChannels');
  posInt('numResBlocks');
  if (!Array.isArray(c.channelMult) || c.channelMult.length === 0 || c.channelMult.some((m) => !(m > 0)))
    throw new Error(
      `UNet config: channelMult must be a non-empty list of positive numbers, got ${JSON.stringify(c.channelMult)}`,
    );
  if (!Array.isArray(c.attentionDs) || c.attentionDs.some((d) => !Number.isInteger(d) || d < 1))
    throw new Error(
      `UNet config: attentionDs must list downsample rates (positive integers), got ${JSON.stringify(c.attentionDs)}`,
    );
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`UNet config: dropout must be in [0, 1), got ${c.dropout}`);
  if (c.numClasses !== null) posInt('numClasses');
  if (c.embCondDim !== null) posInt('embCondDim');
  if (c.tokenCondDim !== null) posInt('tokenCondDim');
  if (
    c.kind === 'ddpm' &&
    (c.numClasses !== null ||
      c.embCondDim !== null ||
      c.tokenCondDim !== null ||
      c.useScaleShiftNorm ||
      c.resblockUpdown)
  )
    throw new Error(
      'UNet config: the DDPM architecture has no class, embedding or token conditioning, scale-shift norm or ResBlock resampling; use kind "guided-diffusion" for those',
    );
  c.learnSigma = c.outChannels === 2 * c.inChannels;
  return c;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------------------------------------
// Reference constructor arguments -> config.

const GD_DEFAULT_MULT: Record<number, number[]> = {
  512: [0.5, 1, 1, 2, 2, 4, 4],
  256: [1, 1, 2, 2, 4, 4],
  128: [1, 1, 2, 3, 4],
  64: [1, 2, 3, 4],
};

function numList(v: unknown, what: string): number[] {
  if (Array.isArray(v)) return v.map((x) => Number(x));
  if (typeof v === 'number') return [v];
  if (typeof v === 'string') return v.trim() === '' ? [] : v.split(',').map((s) => Number(s.trim()));
  throw new Error(`UNet config: ${what} must be a list or a comma-separated string, got ${JSON.stringify(v)}`);
}
function bool(v: unknown, fallback: boolean): boolean {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'string') return ['true', '1', 'yes', 'y', 't'].includes(v.toLowerCase());
  return Boolean(v);
}

/**
 * Config from reference constructor arguments, as in the `*.config.json` files:
 *  - guided-diffusion `create_model` flags (`num_channels`, `attention_resolutions` "16,8" as resolutions,
 *    `channel_mult` "" = per-size default, `learn_sigma`, `class_cond`), converted exactly as create_model does;
 *  - guided-diffusion / GLIDE `UNetModel` kwargs (`model_channels`, `attention_resolutions` as downsample
 *    rates, `out_channels`, `num_classes`, `conv_resample`, `encoder_channels`);
 *  - DDPM `Model` arguments (`resolution`, `ch`, `ch_mult`, `attn_resolutions`, `out_ch`, `resamp_with_conv`),
 *    flat or nested as in SDEdit's yaml ({data: {image_size}, model: {...}}).
 * Our own extension keys `emb_cond_dim` / `token_cond_dim` (or the camelCase UNetConfig fields) are accepted too.
 */
export function configFromReference(json: Record<string, unknown>): UNetConfig {
  if (json && typeof json === 'object' && 'kind' in json && 'modelChannels' in json)
    return validateConfig(json as Partial<UNetConfig>);
  let j: Record<string, unknown> = json;
  if (j.model && typeof j.model === 'object') {
    const data = (j.data ?? {}) as Record<string, unknown>;
    j = {
      ...(j.model as Record<string, unknown>),
      resolution: (j.model as Record<string, unknown>).resolution ?? data.image_size,
    };
  }
  const isDdpm = 'ch' in j || 'ch_mult' in j || 'attn_resolutions' in j || 'out_ch' in j;
  if (isDdpm) {
    const res = Number(j.resolution ?? j.image_size);
    const mult = numList(j.ch_mult ?? [1, 2, 2, 2], 'ch_mult');
    const attnRes = new Set(numList(j.attn_resolutions ?? [], 'attn_resolutions'));
    const ds: number[] = [];
    if (attnRes.size && !(res > 0))
      throw new Error('DDPM config: attn_resolutions needs resolution (or data.image_size) to place attention');
    for (let i = 0; i < mult.length; i++) if (attnRes.has(Math.floor(res / 2 ** i))) ds.push(2 ** i);
    const inC = Number(j.in_channels ?? 3);
    return validateConfig({
      kind: 'ddpm',
      imageSize: res > 0 ? res : undefined,
      inChannels: inC,
      modelChannels: Number(j.ch),
      outChannels: Number(j.out_ch ?? inC),
      numResBlocks: Number(j.num_res_blocks),
      attentionDs: ds,
      channelMult: mult,
      dropout: Number(j.dropout ?? 0),
      convResample: bool(j.resamp_with_conv, true),
    });
  }
  const size = j.image_size !== undefined ? Number(j.image_size) : undefined;
  const createModelStyle = 'num_channels' in j;
  let mult: number[];
  const cm = j.channel_mult;
  if (cm === undefined || cm === '' || (Array.isArray(cm) && cm.length === 0)) {
    if (!createModelStyle && cm === undefined) mult = [1, 2, 4, 8];
    else {
      const d = size !== undefined ? GD_DEFAULT_MULT[size] : undefined;
      if (!d)
        throw new Error(
          `guided-diffusion config: channel_mult "" has no default for image_size ${size} (create_model knows 64, 128, 256, 512); give channel_mult`,
        );
      mult = d;
    }
  } else mult = numList(cm, 'channel_mult');
  let attentionDs: number[];
  if (createModelStyle) {
    const resList = numList(j.attention_resolutions ?? '16', 'attention_resolutions');
    if (resList.length && size === undefined)
      throw new Error('guided-diffusion config: attention_resolutions (resolutions) need image_size');
    attentionDs = resList.map((r) => Math.floor(size! / Math.trunc(r)));
  } else attentionDs = numList(j.attention_resolutions ?? [], 'attention_resolutions');
  const inC = Number(j.in_channels ?? 3);
  const learnSigma = bool(j.learn_sigma, false);
  const outC = j.out_channels !== undefined ? Number(j.out_channels) : learnSigma ? 2 * inC : inC;
  let numClasses: number | null = null;
  if (j.num_classes !== undefined && j.num_classes !== null) numClasses = Number(j.num_classes);
  else if (bool(j.class_cond, false)) numClasses = 1000;
  const optNum = (...keys: string[]): number | null => {
    for (const k of keys) if (j[k] !== undefined && j[k] !== null) return Number(j[k]);
    return null;
  };
  return validateConfig({
    kind: 'guided-diffusion',
    imageSize: size,
    inChannels: inC,
    modelChannels: Number(j.num_channels ?? j.model_channels),
    outChannels: outC,
    numResBlocks: Number(j.num_res_blocks ?? 2),
    attentionDs,
    channelMult: mult,
    dropout: Number(j.dropout ?? 0),
    numClasses,
    numHeads: Number(j.num_heads ?? (createModelStyle ? 1 : 1)),
    numHeadChannels: Number(j.num_head_channels ?? -1),
    numHeadsUpsample: Number(j.num_heads_upsample ?? -1),
    useScaleShiftNorm: bool(j.use_scale_shift_norm, false),
    resblockUpdown: bool(j.resblock_updown, false),
    convResample: bool(j.conv_resample, true),
    useNewAttentionOrder: bool(j.use_new_attention_order, false),
    embCondDim: optNum('emb_cond_dim', 'embCondDim', 'xf_width_emb'),
    tokenCondDim: optNum('token_cond_dim', 'tokenCondDim', 'encoder_channels'),
  });
}

// ---------------------------------------------------------------------------------------------
// Inference from a state_dict.

/** Anything with per-key shapes: a state_dict, a `*.keys.json` object, or a Map of shapes. */
export type ShapeSource = Map<string, { shape: number[] } | number[]> | Record<string, { shape: number[] } | number[]>;

function shapesOf(sd: ShapeSource): Map<string, number[]> {
  const entries = sd instanceof Map ? [...sd.entries()] : Object.entries(sd);
  return new Map(entries.map(([k, v]) => [k, Array.isArray(v) ? v : v.shape]));
}

/** Which UNet family a state_dict's keys belong to, or null. */
export function detectUNetKind(sd: ShapeSource): UNetKind | null {
  const s = shapesOf(sd);
  if (s.has('time_embed.0.weight') && s.has('input_blocks.0.0.weight') && s.has('out.2.weight'))
    return 'guided-diffusion';
  if (s.has('temb.dense.0.weight') && s.has('conv_in.weight') && s.has('conv_out.weight')) return 'ddpm';
  return null;
}

/** Names where two key->shape maps differ: missing (in expected only), unexpected (in got only), shape mismatches. */
export function diffKeys(
  expected: Map<string, number[]>,
  got: Map<string, number[]>,
): { missing: string[]; unexpected: string[]; mismatched: string[] } {
  const missing = [...expected.keys()].filter((k) => !got.has(k));
  const unexpected = [...got.keys()].filter((k) => !expected.has(k));
  const mismatched = [...expected.keys()]
    .filter((k) => got.has(k) && got.get(k)!.join(',') !== expected.get(k)!.join(','))
    .map((k) => `${k}: expected [${expected.get(k)!.join(', ')}], got [${got.get(k)!.join(', ')}]`);
  return { missing, unexpected, mismatched };
}

function exactMatch(config: UNetConfig, shapes: Map<string, number[]>): boolean {
  let exp: Map<string, number[]>;
  try {
    exp = unetParamShapes(config);
  } catch {
    return false;
  }
  if (exp.size !== shapes.size) return false;
  const d = diffKeys(exp, shapes);
  return !d.missing.length && !d.unexpected.length && !d.mismatched.length;
}

/**
 * Infer a UNet config from key names and shapes. Structure (widths, depth, attention placement,
 * resampling kind, scale-shift, classes, conditioning widths) is read from the weights; the attention
 * head split and order are not stored in a checkpoint, so they come from `hints` or default to
 * num_head_channels 64 (all released guided-diffusion models) when every attention width is a multiple
 * of 64, else a single head, in legacy order.
 * @throws when the keys are not a UNet of a known family or no config reproduces them exactly.
 */
export function inferUNetConfig(sd: ShapeSource, hints: Partial<UNetConfig> = {}): UNetConfig {
  const s = shapesOf(sd);
  const kind = detectUNetKind(s);
  if (!kind)
    throw new Error(
      'cannot infer a UNet config: the weights have neither guided-diffusion keys (time_embed.0.weight, input_blocks.0.0.weight) nor DDPM keys (temb.dense.0.weight, conv_in.weight)',
    );
  const get = (k: string) => {
    const v = s.get(k);
    if (!v) throw new Error(`cannot infer a UNet config: key ${k} is missing`);
    return v;
  };
  const candidates: UNetConfig[] = [];
  if (kind === 'ddpm') {
    const mc = get('conv_in.weight')[0];
    const inC = get('conv_in.weight')[1];
    const outC = get('conv_out.weight')[0];
    const levels = new Set<number>();
    const blocks = new Set<number>();
    for (const k of s.keys()) {
      let m = /^down\.(\d+)\./.exec(k);
      if (m) levels.add(Number(m[1]));
      m = /^down\.0\.block\.(\d+)\./.exec(k);
      if (m) blocks.add(Number(m[1]));
    }
    const L = levels.size;
    const mult: number[] = [];
    const ds: number[] = [];
    for (let i = 0; i < L; i++) {
      mult.push(get(`down.${i}.block.0.conv1.weight`)[0] / mc);
      if (s.has(`down.${i}.attn.0.norm.weight`) || s.has(`up.${i}.attn.0.norm.weight`)) ds.push(2 ** i);
    }
    for (const convResample of [s.has('down.0.downsample.conv.weight') || L === 1, false, true]) {
      candidates.push(
        validateConfig({
          kind,
          inChannels: inC,
          modelChannels: mc,
          outChannels: outC,
          numResBlocks: blocks.size,
          attentionDs: ds,
          channelMult: mult,
          convResample,
          dropout: 0,
          ...hints,
        }),
      );
    }
  } else {
    const mc = get('time_embed.0.weight')[1];
    const inW = get('input_blocks.0.0.weight');
    const outC = get('out.2.weight')[0];
    let nIn = 0;
    let nOut = 0;
    for (const k of s.keys()) {
      let m = /^input_blocks\.(\d+)\./.exec(k);
      if (m) nIn = Math.max(nIn, Number(m[1]) + 1);
      m = /^output_blocks\.(\d+)\./.exec(k);
      if (m) nOut = Math.max(nOut, Number(m[1]) + 1);
    }
    const numClasses = s.get('label_emb.weight')?.[0] ?? null;
    const embCondDim = s.get('transformer_proj.weight')?.[1] ?? null;
    let tokenCondDim: number | null = null;
    for (const [k, v] of s) if (k.endsWith('.encoder_kv.weight')) tokenCondDim = v[1];
    let scaleShift = false;
    for (const [k, v] of s) {
      const m = /^(.*)\.emb_layers\.1\.weight$/.exec(k);
      if (m) {
        scaleShift = v[0] === 2 * get(`${m[1]}.out_layers.0.weight`)[0];
        break;
      }
    }
    // Attention widths, to pick a head split.
    const attnWidths: number[] = [];
    for (const [k, v] of s) if (k.endsWith('.qkv.weight')) attnWidths.push(v[1]);
    const headDefaults: Partial<UNetConfig> =
      attnWidths.length && attnWidths.every((w) => w % 64 === 0)
        ? { numHeadChannels: 64, numHeads: 4 }
        : { numHeadChannels: -1, numHeads: 1 };
    for (let nrb = 1; nrb < nOut; nrb++) {
      if (nOut % (nrb + 1) !== 0) continue;
      const L = nOut / (nrb + 1);
      if (nIn !== L * (nrb + 1)) continue;
      const mult: number[] = [];
      const ds = new Set<number>();
      let ok = true;
      for (let level = 0; level < L && ok; level++) {
        const first = 1 + level * (nrb + 1);
        const w = s.get(`input_blocks.${first}.0.in_layers.2.weight`);
        if (!w) ok = false;
        else mult.push(w[0] / mc);
        for (let j = 0; j < nrb; j++) if (s.has(`input_blocks.${first + j}.1.qkv.weight`)) ds.add(2 ** level);
      }
      if (!ok) continue;
      for (let i = 0; i < nOut; i++) {
        const level = L - 1 - Math.floor(i / (nrb + 1));
        if (s.has(`output_blocks.${i}.1.qkv.weight`)) ds.add(2 ** level);
      }
      for (const resblockUpdown of [false, true]) {
        for (const convResample of [true, false]) {
          candidates.push(
            validateConfig({
              kind,
              inChannels: inW[1],
              modelChannels: mc,
              outChannels: outC,
              numResBlocks: nrb,
              attentionDs: [...ds].sort((a, b) => a - b),
              channelMult: mult,
              numClasses,
              embCondDim,
              tokenCondDim,
              useScaleShiftNorm: scaleShift,
              resblockUpdown,
              convResample,
              dropout: 0,
              ...headDefaults,
              ...hints,
            }),
          );
        }
      }
    }
  }
  for (const c of candidates) if (exactMatch(c, s)) return c;
  const best = candidates[0];
  if (best) {
    let d: ReturnType<typeof diffKeys> | null = null;
    try {
      d = diffKeys(unetParamShapes(best), s);
    } catch (e) {
      throw new Error(`cannot infer a ${kind} UNet config from the weights: ${(e as Error).message}`);
    }
    throw new Error(
      `cannot infer a ${kind} UNet config that reproduces these weights exactly (closest: ${describeConfig(best)}; ` +
        `missing ${d.missing.slice(0, 5).join(', ') || 'none'}; unexpected ${d.unexpected.slice(0, 5).join(', ') || 'none'}; ` +
        `shape mismatches ${d.mismatched.slice(0, 3).join('; ') || 'none'}). Pass the config explicitly (--config CONFIG.json).`,
    );
  }
  throw new Error(
    `cannot infer a ${kind} UNet config: unusual block layout (${s.size} keys); pass the config explicitly (--config CONFIG.json)`,
  );
}

/** One-line summary of a config. */
export function describeConfig(c: UNetConfig): string {
  const parts = [
    c.kind,
    `ch ${c.modelChannels}`,
    `mult ${c.channelMult.join(',')}`,
    `res_blocks ${c.numResBlocks}`,
    `attn_ds ${c.attentionDs.join(',') || 'none'}`,
    `in ${c.inChannels} out ${c.outChannels}`,
  ];
  if (c.kind === 'guided-diffusion') {
    parts.push(c.numHeadChannels === -1 ? `heads ${c.numHeads}` : `head_ch ${c.numHeadChannels}`);
    if (c.useScaleShiftNorm) parts.push('scale-shift');
    parts.push(c.resblockUpdown ? 'resblock-updown' : c.convResample ? 'conv-resample' : 'pool-resample');
    if (c.useNewAttentionOrder) parts.push('new-attn-order');
    if (c.numClasses !== null) parts.push(`classes ${c.numClasses}`);
    if (c.embCondDim !== null) parts.push(`emb_cond ${c.embCondDim}`);
    if (c.tokenCondDim !== null) parts.push(`token_cond ${c.tokenCondDim}`);
  } else if (!c.convResample) parts.push('pool-resample');
  return parts.join(', ');
}
