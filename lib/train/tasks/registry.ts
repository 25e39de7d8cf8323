/**
 * The CLIP-family and conditional models that `diffguide train <model>` can train besides the judge
 * and the unconditional UNet: clip, noisy-clip, cond-unet, prior. Each entry builds its task from the
 * dataset and the (saved or new) run config; the CLI does the rest (loop, checkpoints, export).
 */
import type { Dataset } from '../../data/dataset.js';
import type { StateDict } from '../../io/types.js';
import type { TrainTask } from '../loop.js';
import { CLIP, type CLIPConfig } from '../../../nets/clip/index.js';
import { ClipTask, smallClipConfig, type SmallClipVision } from './clip.js';
import { NoisyClipTask } from './noisy-clip.js';
import { PriorTask } from './prior.js';
import {
  COND_UNET_CONDITIONS,
  CondUNetTask,
  condUNetConfig,
  initFromUnconditional,
  type CondUNetCondition,
  type UNetWeights,
} from './cond-unet.js';
import { runPrediction } from './unet.js';
import { NoisyCLIPImageEncoder } from '../../../nets/clip/index.js';
import { Prior, type PriorConfig } from '../../../nets/prior/index.js';
import { UNet, type UNetConfig } from '../../../nets/unet/index.js';
import { makeSchedule } from '../../../samplers/schedule.js';
import { loadClipModel, readConfigBeside, resolveWeights } from '../../models/load.js';
import { TRAIN_SCHEDULE } from '../../models/weights-config.js';
import { readStateDict } from '../../io/index.js';
import { readCheckpoint } from '../checkpoint.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The trained CLIP a dependent model uses: --clip (file or folder), else the run's saved one, else weights/clip. */
async function teacherClip(ctx: ModelTaskContext): Promise<{ clip: CLIP; path: string }> {
  const want = (ctx.saved?.clip as string | undefined) ?? ctx.options.clip;
  const path = resolveWeights('clip', want);
  return { clip: await loadClipModel(path), path };
}

/**
 * A UNet's weights to initialise from: an exported file or folder (unet.safetensors or
 * cond-unet.safetensors: reference layout), else a training checkpoint's EMA group (our layout:
 * conv HWIO, linear [in, out]).
 */
export async function readUNetWeights(spec: string): Promise<UNetWeights> {
  const exported = ['unet.safetensors', 'cond-unet.safetensors'].map((f) => join(spec, f)).find((f) => existsSync(f));
  const file =
    existsSync(spec) && statSync(spec).isDirectory() ? (exported ?? join(spec, 'checkpoint.safetensors')) : spec;
  if (file.endsWith('checkpoint.safetensors')) {
    const g = readCheckpoint(file).groups.ema;
    if (!g) throw new Error(`${file} has no EMA weights`);
    const state = join(dirname(file), 'state.json');
    const netConfig = existsSync(state)
      ? (JSON.parse(readFileSync(state, 'utf8')) as { config?: { net?: Partial<UNetConfig> } }).config?.net
      : undefined;
    return { layout: 'ours', tensors: g, source: file, netConfig };
  }
  const sd = await readStateDict(file);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of sd)
    tensors.set(k, {
      shape: [...v.shape],
      data: v.data instanceof Float32Array ? v.data : Float32Array.from(v.data as ArrayLike<number>),
    });
  return {
    layout: 'reference',
    tensors,
    source: file,
    netConfig: (readConfigBeside(file) as Partial<UNetConfig> | null) ?? undefined,
  };
}

export interface ModelTaskDefaults {
  data: string;
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  decay: 'constant' | 'cosine';
  ema: number;
  sampleEvery: number;
  ckptEvery: number;
  weightDecay: number;
}

export interface ModelTaskContext {
  ds: Dataset;
  seed: number;
  batch: number;
  /** The dataset spec (e.g. 'emoji32') stored in the run config. */
  dataSpec: string;
  /** The run config stored in a checkpoint being resumed/exported, else null. */
  saved: Record<string, unknown> | null;
  /** Extra string options from the command line (`clip`: the CLIP weights folder, `init`, `prediction`, `vision`, `condition`, `out`). */
  options: Record<string, string | undefined>;
}

export interface ModelTaskSetup {
  task: TrainTask<unknown>;
  /** Goes into the exported config.json (after `model`). */
  netConfig: Record<string, unknown>;
  /** The run config stored in checkpoints (a resume must match). */
  config: Record<string, unknown>;
  toStateDict: () => StateDict;
  /** The name the weights are exported and shipped under (`<name>.safetensors`, the card's title); default the model's. */
  exportName?: string;
}

/**
 * cond-unet's condition (--condition): a resumed run keeps what it was trained with (older runs:
 * 'image'); asking it for the other is an error naming the fix.
 */
export function runCondition(
  saved: Record<string, unknown> | null,
  asked: string | undefined,
  out: string,
): CondUNetCondition {
  if (asked !== undefined && !(COND_UNET_CONDITIONS as readonly string[]).includes(asked))
    throw new Error(`--condition must be one of ${COND_UNET_CONDITIONS.join(', ')}, got '${asked}'`);
  const have = saved ? ((saved.condition as CondUNetCondition | undefined) ?? 'image') : undefined;
  if (have !== undefined && asked !== undefined && asked !== have)
    throw new Error(`${out} was trained with condition ${have}; use another --out for a run with --condition ${asked}`);
  return have ?? (asked as CondUNetCondition | undefined) ?? 'image';
}

export interface ModelTaskEntry {
  defaults: ModelTaskDefaults;
  summary: string;
  setup(ctx: ModelTaskContext): Promise<ModelTaskSetup>;
}

export const MODEL_TASKS: Record<string, ModelTaskEntry> = {
  clip: {
    summary:
      'CLIP from scratch on emoji captions (ModifiedResNet or ViT image tower + text transformer, symmetric InfoNCE)',
    defaults: {
      data: 'emoji32',
      steps: 1500,
      batch: 64,
      lr: 1e-3,
      warmup: 50,
      decay: 'cosine',
      ema: 0.99,
      sampleEvery: 100,
      ckptEvery: 50,
      weightDecay: 0.1,
    },
    async setup({ ds, seed, batch, saved, dataSpec, options }) {
      const cfg =
        (saved?.net as CLIPConfig | undefined) ??
        smallClipConfig(ds.height, (options.vision ?? 'resnet') as SmallClipVision);
      const clip = CLIP.random(cfg, seed);
      const b = (saved?.batch as number | undefined) ?? batch;
      const task = new ClipTask(clip, ds, { batch: b, seed });
      return {
        task: task as TrainTask<unknown>,
        netConfig: {
          clip: cfg,
          tokenizer: `CLIP BPE, first ${cfg.vocabSize - 514} merges (Tokenizer.forVocabSize(${cfg.vocabSize}))`,
        },
        config: { model: 'clip', data: dataSpec, batch: b, net: cfg },
        toStateDict: () => clip.toHostStateDict() as unknown as StateDict,
      };
    },
  },
  'noisy-clip': {
    summary:
      "SDG's noisy CLIP: FiLM time-conditioned image tower, noisy-image features matched to frozen clean features",
    defaults: {
      data: 'emoji32',
      steps: 200,
      batch: 64,
      lr: 3e-4,
      warmup: 20,
      decay: 'cosine',
      ema: 0.98,
      sampleEvery: 100,
      ckptEvery: 50,
      weightDecay: 0,
    },
    async setup(ctx) {
      const { clip, path } = await teacherClip(ctx);
      const b = (ctx.saved?.batch as number | undefined) ?? ctx.batch;
      const noisy = NoisyCLIPImageEncoder.fromStateDict(clip.toHostStateDict() as never, clip.config, {
        seed: ctx.seed,
      });
      const schedule = makeSchedule(TRAIN_SCHEDULE.schedule, TRAIN_SCHEDULE.timesteps);
      const task = new NoisyClipTask(noisy, clip, schedule, ctx.ds, { batch: b, seed: ctx.seed });
      const net = { ...noisy.config, timeEmbedChannels: noisy.timeEmbedChannels, timeEmbedDim: noisy.timeEmbedDim };
      return {
        task: task as TrainTask<unknown>,
        netConfig: { visual: net, ...TRAIN_SCHEDULE, teacher: path },
        config: { model: 'noisy-clip', data: ctx.dataSpec, batch: b, clip: path, net },
        toStateDict: () => noisy.toHostStateDict() as unknown as StateDict,
      };
    },
  },
  prior: {
    summary: 'unCLIP prior: text embedding -> image embedding (x0 prediction, cosine schedule)',
    defaults: {
      data: 'emoji32',
      steps: 2000,
      batch: 128,
      lr: 1e-3,
      warmup: 100,
      decay: 'cosine',
      ema: 0.995,
      sampleEvery: 500,
      ckptEvery: 250,
      weightDecay: 0.01,
    },
    async setup(ctx) {
      const { clip, path } = await teacherClip(ctx);
      const b = (ctx.saved?.batch as number | undefined) ?? ctx.batch;
      const cfg = (ctx.saved?.net as PriorConfig | undefined) ?? {
        embedDim: clip.embedDim,
        width: 256,
        depth: 4,
        hidden: 512,
        timesteps: TRAIN_SCHEDULE.timesteps,
      };
      const prior = Prior.random(cfg, ctx.seed);
      const task = new PriorTask(prior, clip, makeSchedule(TRAIN_SCHEDULE.schedule, cfg.timesteps), ctx.ds, {
        batch: b,
        seed: ctx.seed,
      });
      return {
        task: task as TrainTask<unknown>,
        netConfig: { ...prior.config, schedule: TRAIN_SCHEDULE.schedule, prediction: 'x0', clip: path },
        config: { model: 'prior', data: ctx.dataSpec, batch: b, clip: path, net: prior.config },
        toStateDict: () => prior.toStateDict(),
      };
    },
  },
  'cond-unet': {
    summary:
      'UNet conditioned on a CLIP image embedding with condition dropout (unCLIP decoder, Imagic); --condition text: on the text embedding of a caption (the GLIDE-like baseline, shipped as text-unet)',
    defaults: {
      data: 'emoji32',
      steps: 20000,
      batch: 16,
      lr: 5e-4,
      warmup: 200,
      decay: 'constant',
      ema: 0.999,
      sampleEvery: 100,
      ckptEvery: 25,
      weightDecay: 0,
    },
    async setup(ctx) {
      const { clip, path } = await teacherClip(ctx);
      const b = (ctx.saved?.batch as number | undefined) ?? ctx.batch;
      const init = (ctx.saved?.init as string | null | undefined) ?? ctx.options.init ?? null;
      // On resume the checkpoint overwrites everything; the init only matters for a fresh run, whose
      // layout (widths, levels) is the init UNet's.
      const w = init && !ctx.saved ? await readUNetWeights(init) : null;
      const cfg =
        (ctx.saved?.net as Partial<UNetConfig> | undefined) ??
        condUNetConfig(ctx.ds.height, clip.embedDim, w?.netConfig);
      const net = UNet.random(cfg, ctx.seed);
      if (w) {
        const n = initFromUnconditional(net, w);
        process.stderr.write(`cond-unet: initialised ${n} of ${net.params.size} tensors from ${w.source}\n`);
      }
      const embScale = Math.sqrt(clip.embedDim);
      const prediction = runPrediction(ctx.saved, ctx.options.prediction, ctx.options.out ?? 'this run');
      const condition = runCondition(ctx.saved, ctx.options.condition, ctx.options.out ?? 'this run');
      const task = new CondUNetTask(net, clip, ctx.ds, { batch: b, seed: ctx.seed, embScale, prediction, condition });
      return {
        task: task as TrainTask<unknown>,
        netConfig: {
          ...net.config,
          ...TRAIN_SCHEDULE,
          prediction,
          embScale,
          conditioning:
            condition === 'text'
              ? 'normalise(CLIP text embedding of a caption) * embScale; zeros = unconditional'
              : 'normalise(CLIP image embedding) * embScale; zeros = unconditional',
          ...(condition !== 'image' ? { condition } : {}),
          clip: path,
        },
        config: {
          model: 'cond-unet',
          data: ctx.dataSpec,
          batch: b,
          clip: path,
          init,
          net: net.config,
          ...(prediction !== 'eps' ? { prediction } : {}),
          ...(condition !== 'image' ? { condition } : {}),
        },
        toStateDict: () => net.toStateDict(),
        ...(condition === 'text' ? { exportName: 'text-unet' } : {}),
      };
    },
  },
};
