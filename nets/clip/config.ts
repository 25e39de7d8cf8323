/**
 * CLIP configuration, its inference from state_dict keys/shapes (as openai/CLIP's `build_model`),
 * and the parameter key set / PyTorch-layout shapes of a configuration (no tensors allocated).
 */

/** The image tower's part of `CLIPConfig`. */
export interface CLIPVisionConfig {
  /** Projection width D of both towers. */
  embedDim: number;
  /** Square input resolution of the image tower. */
  imageResolution: number;
  /** ViT: number of blocks; ModifiedResNet: blocks per stage [4]. */
  visionLayers: number | [number, number, number, number];
  /** ViT: token width; ModifiedResNet: stem width (64 for RN50). */
  visionWidth: number;
  /** ViT patch size; null for the ModifiedResNet tower. */
  visionPatchSize: number | null;
  /** Vision heads. Default as the reference: visionWidth / 64 (ViT) or visionWidth * 32 / 64 (ResNet). */
  visionHeads?: number;
}

/** Constructor arguments of openai/CLIP's `CLIP` (camelCased), plus optional head counts. */
export interface CLIPConfig extends CLIPVisionConfig {
  contextLength: number;
  vocabSize: number;
  transformerWidth: number;
  /** Text heads. Default (and what build_model infers): transformerWidth / 64. */
  transformerHeads: number;
  transformerLayers: number;
}

/** Anything with a shape per key: a state_dict (`Map<string, HostTensor>`), a keys.json object, ... */
export type ShapeSource = Map<string, { shape: readonly number[] }> | Record<string, { shape: readonly number[] }>;

function entries(src: ShapeSource): [string, readonly number[]][] {
  const it = src instanceof Map ? [...src.entries()] : Object.entries(src);
  return it.map(([k, v]) => [k, v.shape]);
}

/** Reference keys that are not parameters (the released TorchScript files carry them). */
export const CLIP_NON_PARAM_KEYS = ['input_resolution', 'context_length', 'vocab_size'];

export function isVitConfig(c: CLIPVisionConfig): boolean {
  return c.visionPatchSize !== null && typeof c.visionLayers === 'number';
}

export function visionHeads(c: CLIPVisionConfig): number {
  if (c.visionHeads !== undefined) return c.visionHeads;
  return isVitConfig(c) ? Math.floor(c.visionWidth / 64) : Math.floor((c.visionWidth * 32) / 64);
}

function shapeMap(src: ShapeSource): Map<string, readonly number[]> {
  return new Map(entries(src));
}

function needer(shapes: Map<string, readonly number[]>, what: string) {
  return (k: string): readonly number[] => {
    const s = shapes.get(k);
    if (!s)
      throw new Error(`not a ${what} state_dict: no key '${k}' (expected openai/CLIP's model.state_dict() key names)`);
    return s;
  };
}

/**
 * Infer the image tower's configuration from `visual.*` keys and shapes as openai/CLIP's
 * `build_model` does (ViT when `visual.proj` exists, else ModifiedResNet). `embedDim` comes from
 * `visual.proj` / `visual.attnpool.c_proj.weight`.
 */
export function inferVisionConfig(src: ShapeSource): CLIPVisionConfig {
  const shapes = shapeMap(src);
  const need = needer(shapes, 'CLIP image tower');
  const keys = [...shapes.keys()];
  if (shapes.has('visual.proj')) {
    const conv = need('visual.conv1.weight');
    const patch = conv[conv.length - 1];
    const grid = Math.round(Math.sqrt(need('visual.positional_embedding')[0] - 1));
    return {
      embedDim: need('visual.proj')[1],
      imageResolution: patch * grid,
      visionLayers: keys.filter((k) => k.startsWith('visual.') && k.endsWith('.attn.in_proj_weight')).length,
      visionWidth: conv[0],
      visionPatchSize: patch,
    };
  }
  const counts = [1, 2, 3, 4].map(
    (b) => new Set(keys.filter((k) => k.startsWith(`visual.layer${b}.`)).map((k) => k.split('.')[2])).size,
  );
  if (counts.some((c) => c === 0))
    throw new Error(
      `not a CLIP state_dict: neither 'visual.proj' (ViT) nor 'visual.layer1..4' (ModifiedResNet) keys found`,
    );
  const pe = need('visual.attnpool.positional_embedding')[0];
  const outputWidth = Math.round(Math.sqrt(pe - 1));
  if (outputWidth * outputWidth + 1 !== pe)
    throw new Error(`CLIP state_dict: visual.attnpool.positional_embedding has ${pe} rows, not a square grid + 1`);
  return {
    embedDim: need('visual.attnpool.c_proj.weight')[0],
    imageResolution: outputWidth * 32,
    visionLayers: counts as [number, number, number, number],
    visionWidth: need('visual.layer1.0.conv1.weight')[0],
    visionPatchSize: null,
  };
}

/** Which towers a CLIP state_dict (or model) holds. */
export interface CLIPTowers {
  image: boolean;
  text: boolean;
}

export const BOTH_TOWERS: Readonly<CLIPTowers> = { image: true, text: true };

/** The towers present in a state_dict: `visual.*` keys = image; token_embedding / text_projection / transformer.* = text. */
export function clipTowersIn(src: ShapeSource): CLIPTowers {
  const keys = [...shapeMap(src).keys()];
  return {
    image: keys.some((k) => k.startsWith('visual.')),
    text: keys.some(
      (k) => k === 'token_embedding.weight' || k === 'text_projection' || k.startsWith('transformer.resblocks.'),
    ),
  };
}

/** Text-tower fields of a CLIPConfig as `build_model` infers them (heads = width / 64). */
export function inferTextConfig(src: ShapeSource): Omit<CLIPConfig, keyof CLIPVisionConfig> & { embedDim: number } {
  const shapes = shapeMap(src);
  const need = needer(shapes, 'CLIP text tower');
  const keys = [...shapes.keys()];
  const transformerWidth = need('ln_final.weight')[0];
  return {
    embedDim: need('text_projection')[1],
    contextLength: need('positional_embedding')[0],
    vocabSize: need('token_embedding.weight')[0],
    transformerWidth,
    transformerHeads: Math.floor(transformerWidth / 64),
    transformerLayers: new Set(keys.filter((k) => k.startsWith('transformer.resblocks')).map((k) => k.split('.')[2]))
      .size,
  };
}

/** Placeholder fields of an absent tower (a state_dict holding one tower only). */
const NO_VISION = { imageResolution: 0, visionLayers: 0, visionWidth: 0, visionPatchSize: 0 } as const;
const NO_TEXT = {
  contextLength: 0,
  vocabSize: 0,
  transformerWidth: 0,
  transformerHeads: 0,
  transformerLayers: 0,
} as const;

/**
 * Infer the CLIP configuration from a state_dict's keys and shapes exactly as openai/CLIP's
 * `build_model` does (head counts are width / 64 there too).
 * @param towers the towers to infer (default both); an absent tower's fields are 0
 * @throws naming the missing key when the source is not a CLIP state_dict
 */
export function inferClipConfig(src: ShapeSource, towers: CLIPTowers = BOTH_TOWERS): CLIPConfig {
  if (!towers.image && !towers.text)
    throw new Error('not a CLIP state_dict: neither image-tower (visual.*) nor text-tower keys');
  const text = towers.text ? inferTextConfig(src) : { ...NO_TEXT };
  const vision = towers.image ? inferVisionConfig(src) : { ...NO_VISION, embedDim: 0 };
  // build_model takes embed_dim from text_projection
  return { ...vision, ...text, embedDim: towers.text ? (text as { embedDim: number }).embedDim : vision.embedDim };
}

/** Parameter and buffer kinds, for layout conversion and initialisation. */
export type ParamKind =
  | 'linear' // PyTorch [out, in]; ours [in, out]
  | 'conv' // PyTorch OIHW; ours HWIO
  | 'matrix' // used as x @ W in the reference: same layout both sides
  | 'vector' // 1-D / embeddings: same layout
  | 'buffer'; // BatchNorm running stats: not trainable

export interface ParamSpec {
  /** PyTorch-layout shape. */
  shape: number[];
  kind: ParamKind;
  dtype: 'float32' | 'int64';
}

function residualBlockSpecs(prefix: string, width: number, out: Map<string, ParamSpec>): void {
  const f = (k: string, shape: number[], kind: ParamKind) => out.set(prefix + k, { shape, kind, dtype: 'float32' });
  f('attn.in_proj_weight', [3 * width, width], 'linear');
  f('attn.in_proj_bias', [3 * width], 'vector');
  f('attn.out_proj.weight', [width, width], 'linear');
  f('attn.out_proj.bias', [width], 'vector');
  f('ln_1.weight', [width], 'vector');
  f('ln_1.bias', [width], 'vector');
  f('mlp.c_fc.weight', [4 * width, width], 'linear');
  f('mlp.c_fc.bias', [4 * width], 'vector');
  f('mlp.c_proj.weight', [width, 4 * width], 'linear');
  f('mlp.c_proj.bias', [width], 'vector');
  f('ln_2.weight', [width], 'vector');
  f('ln_2.bias', [width], 'vector');
}

function batchNormSpecs(prefix: string, c: number, out: Map<string, ParamSpec>): void {
  out.set(prefix + 'weight', { shape: [c], kind: 'vector', dtype: 'float32' });
  out.set(prefix + 'bias', { shape: [c], kind: 'vector', dtype: 'float32' });
  out.set(prefix + 'running_mean', { shape: [c], kind: 'buffer', dtype: 'float32' });
  out.set(prefix + 'running_var', { shape: [c], kind: 'buffer', dtype: 'float32' });
  out.set(prefix + 'num_batches_tracked', { shape: [], kind: 'buffer', dtype: 'int64' });
}

/** Key -> spec of the image tower (keys start with `visual.`), in the reference's state_dict order. */
export function visionParamSpecs(c: CLIPVisionConfig): Map<string, ParamSpec> {
  const out = new Map<string, ParamSpec>();
  const f = (k: string, shape: number[], kind: ParamKind) => out.set('visual.' + k, { shape, kind, dtype: 'float32' });
  if (isVitConfig(c)) {
    const w = c.visionWidth;
    const p = c.visionPatchSize as number;
    const grid = Math.floor(c.imageResolution / p);
    f('class_embedding', [w], 'vector');
    f('positional_embedding', [grid * grid + 1, w], 'vector');
    f('proj', [w, c.embedDim], 'matrix');
    f('conv1.weight', [w, 3, p, p], 'conv');
    f('ln_pre.weight', [w], 'vector');
    f('ln_pre.bias', [w], 'vector');
    for (let i = 0; i < (c.visionLayers as number); i++)
      residualBlockSpecs(`visual.transformer.resblocks.${i}.`, w, out);
    f('ln_post.weight', [w], 'vector');
    f('ln_post.bias', [w], 'vector');
    return out;
  }
  const layers = c.visionLayers as number[];
  const w = c.visionWidth;
  const half = Math.floor(w / 2);
  f('conv1.weight', [half, 3, 3, 3], 'conv');
  batchNormSpecs('visual.bn1.', half, out);
  f('conv2.weight', [half, half, 3, 3], 'conv');
  batchNormSpecs('visual.bn2.', half, out);
  f('conv3.weight', [w, half, 3, 3], 'conv');
  batchNormSpecs('visual.bn3.', w, out);
  let inplanes = w;
  layers.forEach((blocks, s) => {
    const planes = w * 2 ** s;
    for (let b = 0; b < blocks; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      const pre = `visual.layer${s + 1}.${b}.`;
      out.set(pre + 'conv1.weight', { shape: [planes, inplanes, 1, 1], kind: 'conv', dtype: 'float32' });
      batchNormSpecs(pre + 'bn1.', planes, out);
      out.set(pre + 'conv2.weight', { shape: [planes, planes, 3, 3], kind: 'conv', dtype: 'float32' });
      batchNormSpecs(pre + 'bn2.', planes, out);
      out.set(pre + 'conv3.weight', { shape: [planes * 4, planes, 1, 1], kind: 'conv', dtype: 'float32' });
      batchNormSpecs(pre + 'bn3.', planes * 4, out);
      if (stride > 1 || inplanes !== planes * 4) {
        out.set(pre + 'downsample.0.weight', { shape: [planes * 4, inplanes, 1, 1], kind: 'conv', dtype: 'float32' });
        batchNormSpecs(pre + 'downsample.1.', planes * 4, out);
      }
      inplanes = planes * 4;
    }
  });
  const embed = w * 32;
  const spacial = Math.floor(c.imageResolution / 32);
  f('attnpool.positional_embedding', [spacial * spacial + 1, embed], 'vector');
  for (const n of ['k_proj', 'q_proj', 'v_proj']) {
    f(`attnpool.${n}.weight`, [embed, embed], 'linear');
    f(`attnpool.${n}.bias`, [embed], 'vector');
  }
  f('attnpool.c_proj.weight', [c.embedDim, embed], 'linear');
  f('attnpool.c_proj.bias', [c.embedDim], 'vector');
  return out;
}

/** Key -> spec of the text tower (no `visual.` keys, no `logit_scale`). */
export function textParamSpecs(c: CLIPConfig): Map<string, ParamSpec> {
  const out = new Map<string, ParamSpec>();
  const w = c.transformerWidth;
  const f = (k: string, shape: number[], kind: ParamKind) => out.set(k, { shape, kind, dtype: 'float32' });
  f('positional_embedding', [c.contextLength, w], 'vector');
  f('text_projection', [w, c.embedDim], 'matrix');
  for (let i = 0; i < c.transformerLayers; i++) residualBlockSpecs(`transformer.resblocks.${i}.`, w, out);
  f('token_embedding.weight', [c.vocabSize, w], 'vector');
  f('ln_final.weight', [w], 'vector');
  f('ln_final.bias', [w], 'vector');
  return out;
}

/**
 * Every state_dict key of `CLIP(config)` with its PyTorch-layout shape (nothing allocated).
 * @param towers restrict to these towers (`logit_scale` belongs to the pair: included with both)
 */
export function clipParamSpecs(c: CLIPConfig, towers: CLIPTowers = BOTH_TOWERS): Map<string, ParamSpec> {
  const out = new Map<string, ParamSpec>();
  if (towers.text) for (const [k, v] of textParamSpecs(c)) out.set(k, v);
  if (towers.image && towers.text) out.set('logit_scale', { shape: [], kind: 'vector', dtype: 'float32' });
  if (towers.image) for (const [k, v] of visionParamSpecs(c)) out.set(k, v);
  return out;
}

/** Validate an image-tower configuration (clear errors for impossible shapes). */
export function validateVisionConfig(c: CLIPVisionConfig): void {
  const bad = (m: string) => {
    throw new Error(`invalid CLIP config: ${m}`);
  };
  if (isVitConfig(c)) {
    const p = c.visionPatchSize as number;
    if (c.imageResolution % p !== 0)
      bad(`imageResolution ${c.imageResolution} is not a multiple of visionPatchSize ${p}`);
  } else if (!Array.isArray(c.visionLayers) || c.visionLayers.length !== 4) {
    bad('a ModifiedResNet needs visionLayers as 4 stage depths and visionPatchSize null');
  } else if (c.imageResolution % 32 !== 0)
    bad(`ModifiedResNet imageResolution ${c.imageResolution} is not a multiple of 32`);
  const vh = visionHeads(c);
  const vw = isVitConfig(c) ? c.visionWidth : c.visionWidth * 32;
  if (vh < 1 || vw % vh !== 0) bad(`vision width ${vw} is not divisible by ${vh} heads (set visionHeads)`);
}

/** Validate a configuration (clear errors for impossible shapes). */
export function validateClipConfig(c: CLIPConfig, towers: CLIPTowers = BOTH_TOWERS): void {
  if (towers.image) validateVisionConfig(c);
  if (!towers.text) return;
  const bad = (m: string) => {
    throw new Error(`invalid CLIP config: ${m}`);
  };
  if (c.transformerHeads < 1 || c.transformerWidth % c.transformerHeads !== 0) {
    bad(`transformerWidth ${c.transformerWidth} is not divisible by transformerHeads ${c.transformerHeads}`);
  }
}

/** Receives one line for each config value inferred rather than read. Default: `warnInferred`. */
export type InferredNote = (line: string) => void;

const warned = new Set<string>();
/** The default note: a warning on stderr (console.warn), each distinct line once per process. */
export const warnInferred: InferredNote = (line) => {
  if (warned.has(line)) return;
  warned.add(line);
  console.warn(`diffguide: ${line}`);
};

/**
 * The line saying the text tower's head count was inferred, not read: the weights' shapes do not determine it, and
 * the rule (openai/CLIP build_model's width / 64) is only a guess, a poor one for widths that are not multiples of 64.
 * @param where what lacked it, e.g. 'no CLIP config was given' or 'the CLIP config JSON has no transformer_heads'
 */
export function inferredHeadsNote(where: string, width: number, heads: number): string {
  const head = `${where}: transformer_heads = ${heads} was inferred as transformer_width ${width} / 64 (openai/CLIP build_model's rule; the weights' shapes do not determine it)`;
  return width % 64 !== 0
    ? `${head}; ${width} is not a multiple of 64, so the guess is probably wrong and the text features with it: give a config JSON with transformer_heads (CLIP's constructor arguments)`
    : `${head}; give a config JSON with transformer_heads if the model was built with another head count`;
}

/** CLIPConfig fields as camelCase / snake_case keys, for reading config JSON. */
const CONFIG_KEYS: [string, string][] = [
  ['embedDim', 'embed_dim'],
  ['imageResolution', 'image_resolution'],
  ['visionLayers', 'vision_layers'],
  ['visionWidth', 'vision_width'],
  ['visionPatchSize', 'vision_patch_size'],
  ['contextLength', 'context_length'],
  ['vocabSize', 'vocab_size'],
  ['transformerWidth', 'transformer_width'],
  ['transformerHeads', 'transformer_heads'],
  ['transformerLayers', 'transformer_layers'],
  ['visionHeads', 'vision_heads'],
];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The object holding the CLIP arguments: `obj` itself when it has any of them, else the one object nested in it
 * (`{"constructor": {...}}`, `{"model": "clip", "clip": {...}}`; up to 3 levels).
 */
function clipArgumentsOf(obj: Record<string, unknown>): Record<string, unknown> {
  const has = (o: Record<string, unknown>) => CONFIG_KEYS.some(([c, sn]) => o[c] !== undefined || o[sn] !== undefined);
  let cur = obj;
  const path: string[] = [];
  for (let depth = 0; depth <= 3; depth++) {
    if (has(cur)) return cur;
    const nested = Object.entries(cur).filter(([, v]) => isPlainObject(v));
    if (nested.length !== 1 || depth === 3) {
      const at = path.length ? ` under '${path.join('.')}'` : '';
      throw new Error(
        `CLIP config JSON: none of CLIP's constructor arguments (${CONFIG_KEYS.map(([, sn]) => sn).join(', ')}) found${at}` +
          (nested.length > 1
            ? `, and ${nested.length} nested objects (${nested.map(([k]) => k).join(', ')}) could hold them`
            : '') +
          `; give them at the top level or nested under one key, e.g. {"embed_dim": 512, ...} or {"constructor": {"embed_dim": 512, ...}}`,
      );
    }
    path.push(nested[0][0]);
    cur = nested[0][1] as Record<string, unknown>;
  }
  return cur;
}

/**
 * A CLIPConfig from a config JSON object: the reference constructor arguments in snake_case (the
 * `*.config.json` files beside the fixtures: embed_dim, image_resolution, vision_layers, ...) or
 * this library's camelCase fields, at the top level or nested under one key (`{"constructor": {...}}`).
 * A missing `transformer_heads` defaults as the reference's build_model (width / 64) and is reported through
 * `opts.onInferred` (default: a warning on stderr); vision heads follow the reference constructor's rule unless given.
 */
export function clipConfigFromJson(
  json: Record<string, unknown>,
  opts: { onInferred?: InferredNote } = {},
): CLIPConfig {
  if (!isPlainObject(json))
    throw new Error(
      `CLIP config JSON must be an object of CLIP's constructor arguments, got ${Array.isArray(json) ? 'an array' : JSON.stringify(json)}`,
    );
  const obj = clipArgumentsOf(json);
  const pick = (camel: string, snake: string): unknown => (obj[camel] !== undefined ? obj[camel] : obj[snake]);
  const num = (camel: string, snake: string): number => {
    const v = pick(camel, snake);
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new Error(`CLIP config JSON: '${snake}' (or '${camel}') must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const layers = pick('visionLayers', 'vision_layers');
  const patch = pick('visionPatchSize', 'vision_patch_size');
  const visionLayers = Array.isArray(layers)
    ? (layers.map(Number) as [number, number, number, number])
    : num('visionLayers', 'vision_layers');
  const transformerWidth = num('transformerWidth', 'transformer_width');
  const heads = pick('transformerHeads', 'transformer_heads');
  const vheads = pick('visionHeads', 'vision_heads');
  for (const [v, sn] of [
    [heads, 'transformer_heads'],
    [vheads, 'vision_heads'],
  ] as const)
    if (v !== undefined && v !== null && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1))
      throw new Error(`CLIP config JSON: '${sn}' must be a positive integer, got ${JSON.stringify(v)}`);
  const c: CLIPConfig = {
    embedDim: num('embedDim', 'embed_dim'),
    imageResolution: num('imageResolution', 'image_resolution'),
    visionLayers,
    visionWidth: num('visionWidth', 'vision_width'),
    visionPatchSize: Array.isArray(layers) || patch === null || patch === undefined ? null : Number(patch),
    contextLength: num('contextLength', 'context_length'),
    vocabSize: num('vocabSize', 'vocab_size'),
    transformerWidth,
    transformerHeads: typeof heads === 'number' ? heads : Math.floor(transformerWidth / 64),
    transformerLayers: num('transformerLayers', 'transformer_layers'),
  };
  if (typeof vheads === 'number') c.visionHeads = vheads;
  if (typeof heads !== 'number')
    (opts.onInferred ?? warnInferred)(
      inferredHeadsNote('the CLIP config JSON has no transformer_heads', transformerWidth, c.transformerHeads),
    );
  validateClipConfig(c);
  return c;
}
