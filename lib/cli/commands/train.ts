/**
 * `diffguide train <model>`: train (or resume) one of diffguide's small models, writing
 * checkpoints, a loss curve and sample grids under --out, and the final weights (PyTorch layout,
 * reference key names) as `<out>/<model>.safetensors` + `<out>/config.json`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command, ParsedArgs } from '../command.js';
import { UsageError, count, flag, int, num, outDir, seed as seedOpt, str } from '../command.js';
import { loadDataset } from '../../data/index.js';
import {
  train,
  loadTrainedWeights,
  progressBar,
  type RunSettings,
  type TrainOptions,
  type TrainTask,
} from '../../train/loop.js';
import { JudgeTask, judgeConfigFor } from '../../train/tasks/judge.js';
import { UNetTask, runPrediction, smallUNetConfig, type LossWeight } from '../../train/tasks/unet.js';
import { Judge } from '../../../nets/judge/model.js';
import { UNet } from '../../../nets/unet/index.js';
import { writeSafetensors } from '../../io/index.js';
import type { StateDict } from '../../io/types.js';
import * as tf from '@tensorflow/tfjs';
import { writeModelCard } from '../../train/card.js';
import { describeBackend } from '../../backend.js';
import { stopOnSignals } from '../../train/interrupt.js';

/** Card text for the models this file trains directly. */
function cardText(model: string): { description: string; data: string; credits: string[]; notes?: string[] } {
  const credits = [
    'Noto Emoji images (emoji-datasource-google): Apache License 2.0, Google.',
    'Twemoji images (emoji-datasource-twitter): CC-BY 4.0, Copyright Twitter, Inc and other contributors, https://github.com/twitter/twemoji',
    'Emoji metadata: emoji-datasource (MIT, iamcal/emoji-data).',
  ];
  const data =
    'emoji32: Noto + Twemoji emoji (emoji-datasource-google/-twitter 16.0.0, 64x64 PNGs composited on white, area-downsampled to 32x32), 9 categories (Component excluded), train split 3,444 images; held out: 368 images (~10% of emoji, both vendors of a held-out emoji), see lib/data/README.md';
  const diffusionLoss =
    "Loss: MSE on the predicted quantity (eps: DDPM's L_simple; v = sqrt(abar) eps - sqrt(1 - abar) x0), uniform timesteps; Adam lr 5e-4 after 200 warm-up steps, EMA 0.999, clip 1.";
  const unetLayout =
    'guided-diffusion layout: modelChannels 32, channelMult [1,2,2], 1 res block per level, attention at 8x8 with 32 channels per head, scale-shift norm';
  const cards: Record<string, { description: string; data: string }> = {
    judge: {
      description:
        'A small conv classifier (6 x [3x3 conv, GroupNorm(8), SiLU], widths 32-64-64-128-128-128, strides 1-2-1-2-1-2, global average pool -> 128-d features, linear heads) of emoji category (9 classes) and vendor (noto / twemoji). Trained on real images only; used by metrics (held-out accuracy, Frechet distance in its 128-d pooled feature space, category distributions of samples), never by guidance.',
      data: `${data}. Augmentation: random shifts of up to 2 px (white fill). Loss: cross-entropy (category, label smoothing 0.1) + 0.5 x cross-entropy (vendor); AdamW (wd 0.05), warm-up 100 steps, cosine decay, EMA 0.99, clip 1.`,
    },
    unet: {
      description: `An unconditional UNet (eps- or v-prediction: \`prediction\` in config.json; ${unetLayout}; ~1.2M parameters) on a cosine schedule of 1,000 steps, for SDG, SDEdit and DiffusionCLIP at 32x32.`,
      data: `${data}. ${diffusionLoss}`,
    },
    'cond-unet': {
      description: `The CLIP-embedding-conditioned UNet: unCLIP's decoder and the model Imagic optimises an embedding for. The unconditional UNet's ${unetLayout}, plus \`transformer_proj\` (128 -> time-embedding width) adding the condition to the time embedding (GLIDE/unCLIP style); eps- or v-prediction (\`prediction\` in config.json), cosine schedule of 1,000 steps. Condition: normalise(CLIP image embedding) * sqrt(128) (\`embScale\`); a zero vector is the unconditional branch for classifier-free guidance. CLIP's space is joint, so text embeddings or prior samples condition it at sampling time.`,
      data: `${data}. Targets: the CLIP image embeddings (CLIP named in config.json, frozen) of the un-augmented training images; condition dropped 15% of the time. ${diffusionLoss}`,
    },
    'text-unet': {
      description: `The CLIP-text-embedding-conditioned UNet (\`train cond-unet --condition text\`): the GLIDE-like baseline of unCLIP's comparison, a decoder conditioned directly on the text rather than on a prior's image embedding. The cond-unet's architecture (${unetLayout}, plus \`transformer_proj\`, 128 -> time-embedding width, adding the condition to the time embedding), cosine schedule of 1,000 steps, \`prediction\` in config.json. Condition: normalise(CLIP text embedding of a caption) * sqrt(128) (\`embScale\`); a zero vector is the unconditional branch for classifier-free guidance.`,
      data: `${data}. Conditions: the CLIP text embeddings (CLIP named in config.json, frozen) of a caption of each training image, drawn anew every step from the templates the CLIP and the prior are trained on (name ~60%, category ~25%, subcategory ~15%; lib/data/prompts.ts sampleCaption); condition dropped 15% of the time. ${diffusionLoss}`,
    },
    clip: {
      description:
        "diffguide's small CLIP (openai/CLIP architecture and state_dict key names, `nets/clip`), trained from scratch on emoji captions: an image tower (ViT, or ModifiedResNet with `--vision resnet`; see config.json) and a causal text transformer (width 128, 3 layers, context 20, CLIP's BPE truncated to a 4,000-token vocabulary) sharing a 128-d embedding space. Used by SDG (through the noisy CLIP), DiffusionCLIP, unCLIP (prior targets and decoder conditioning) and Imagic.",
      data: `${data}. Captions sampled anew every step from the emoji's metadata: name templates (~60%), category templates (~25%), subcategory templates (~15%). Loss: symmetric InfoNCE with multi-positive targets (a caption that fits several images of the batch counts for each), learned logit scale; training-mode BatchNorm for the ResNet tower. Augmentation: random shifts of up to 2 px (white fill), no flips. Adam (weight decay 0.1 on matrices), lr 1e-3, 50 warm-up steps, cosine decay, clip 1, EMA 0.99.`,
    },
    'noisy-clip': {
      description:
        'The time-conditioned ("noisy") CLIP image encoder for SDG: the CLIP\'s image tower with FiLM time conditioning after every normalisation (`NoisyCLIPImageEncoder`, `nets/clip/noisy.ts`; sinusoidal t features -> MLP -> per-norm scale/shift, zero-initialised so training starts at the plain CLIP). Input x_t of the cosine 1,000-step schedule the emoji UNets use, with t.',
      data: `${data}. SDG's self-supervised fine-tune: features of x_t = q_sample(x0, t), t uniform, against the frozen CLIP's clean-image features of x0, symmetric InfoNCE over the batch; all tower and FiLM parameters trained. Adam lr 3e-4, warm-up, cosine decay, clip 1, EMA (exported).`,
    },
    prior: {
      description:
        'unCLIP prior: CLIP text embedding -> CLIP image embedding (`nets/prior`: residual MLP with adaptive LayerNorm, width 256, 4 blocks). Predicts x0 (the unit-norm image embedding times sqrt(128)) on a cosine 1,000-step schedule, conditioned on the text embedding, with a learned null condition (dropped 10% of the time) for classifier-free guidance. Used by `diffguide unclip` with `weights/cond-unet` as decoder.',
      data: `${data}. Pairs from the training split: the frozen CLIP's clean-image embedding of a training image and one of its caption variants (the CLIP's templates) through the frozen text tower. Loss: MSE on x0 at uniform t. Adam lr 1e-3, 100 warm-up steps, cosine decay, clip 1, EMA 0.995.`,
    },
  };
  const card = cards[model] ?? {
    description: `diffguide's ${model} model (see lib/train/tasks/ for its training task and loss).`,
    data,
  };
  return { ...card, credits };
}
import { MODEL_TASKS, readUNetWeights } from '../../train/tasks/registry.js';
import { initFromUnconditional } from '../../train/tasks/cond-unet.js';
import { TRAIN_SCHEDULE } from '../../models/weights-config.js';
import { makeDirs } from '../../output.js';

export const TRAINABLE = ['judge', 'unet'] as const;
export type TrainableModel = (typeof TRAINABLE)[number];

/** Per-model defaults. */
export const TRAIN_DEFAULTS: Record<
  TrainableModel,
  {
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
> = {
  judge: {
    data: 'emoji32',
    steps: 3000,
    batch: 32,
    lr: 2e-3,
    warmup: 100,
    decay: 'cosine',
    ema: 0.99,
    sampleEvery: 250,
    ckptEvery: 100,
    weightDecay: 0.05,
  },
  unet: {
    data: 'emoji32',
    steps: 20000,
    batch: 16,
    lr: 5e-4,
    warmup: 200,
    decay: 'constant',
    ema: 0.999,
    sampleEvery: 250,
    ckptEvery: 100,
    weightDecay: 0,
  },
};

export interface ExportedModel {
  weightsPath: string;
  configPath: string;
}

/** Write weights (fp16 or fp32 safetensors) and config.json for a trained model into `dir`. */
export async function exportModel(
  model: TrainableModel,
  sd: StateDict,
  config: Record<string, unknown>,
  dir: string,
  dtype: 'float16' | 'float32',
  metadata: Record<string, string>,
): Promise<ExportedModel> {
  const weightsPath = join(dir, `${model}.safetensors`);
  const configPath = join(dir, 'config.json');
  makeDirs(dir);
  await writeSafetensors(weightsPath, sd, metadata, dtype === 'float16' ? { dtype: 'float16' } : undefined);
  writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n');
  return { weightsPath, configPath };
}

/** What `<out>/state.json` holds that the CLI reads on --resume / --export-only. */
interface SavedRunState {
  step: number;
  seed: number;
  config: Record<string, unknown>;
  cooldown?: { steps: number; end: number };
  run?: RunSettings;
}

/** The target step recorded in `<out>/state.json`, if any. */
function savedTarget(out: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as SavedRunState).run?.steps;
  } catch {
    return undefined;
  }
}

interface ResolvedSettings {
  seed: number;
  batch: number;
  dataSpec: string;
  modelChannels: number;
  /** unet: per-level width multipliers and res blocks per level (kept on resume, as modelChannels). */
  channelMult: number[];
  numResBlocks: number;
  run: RunSettings;
  cooldown?: number;
  maxStepsThisRun?: number;
}

/**
 * The run's settings from the flags, the saved run (resume / export) and the defaults, every value
 * range-checked. A resume keeps the saved loop settings (--steps, --lr, --warmup, --ckpt-every,
 * --sample-every) unless a flag is given, and keeps what shapes the run (--batch, --data, --seed,
 * --model-channels) whatever is given; each override or ignored flag is said on stderr.
 */
function runSettings(
  args: ParsedArgs,
  model: string,
  d: (typeof TRAIN_DEFAULTS)[TrainableModel],
  st: SavedRunState | null,
): ResolvedSettings {
  const say = (line: string) => process.stderr.write(`train ${model}: ${line}\n`);
  const given = (k: string) => args.values[k] !== undefined;
  const asked = {
    seed: given('seed') ? seedOpt(args) : undefined,
    batch: given('batch') ? count(args, 'batch') : undefined,
    data: given('data') ? str(args, 'data') : undefined,
    modelChannels: given('model-channels') ? count(args, 'model-channels', undefined, { max: 4096 }) : undefined,
    channelMult: given('channel-mult') ? channelMultOf(str(args, 'channel-mult')) : undefined,
    numResBlocks: given('res-blocks') ? count(args, 'res-blocks', undefined, { max: 8 }) : undefined,
    steps: given('steps') ? count(args, 'steps') : undefined,
    lr: given('lr') ? num(args, 'lr', undefined, { above: 0 }) : undefined,
    warmup: given('warmup') ? int(args, 'warmup', undefined, { min: 0 }) : undefined,
    checkpointEvery: given('ckpt-every') ? count(args, 'ckpt-every') : undefined,
    sampleEvery: given('sample-every') ? int(args, 'sample-every', undefined, { min: 0, why: '0 = never' }) : undefined,
  };
  if (asked.modelChannels !== undefined && asked.modelChannels % 32 !== 0)
    throw new UsageError(
      `--model-channels must be a multiple of 32 (GroupNorm's 32 groups), got ${asked.modelChannels}`,
    );
  const cooldown = given('cooldown') ? count(args, 'cooldown') : undefined;
  const maxStepsThisRun = given('max-steps-this-run') ? count(args, 'max-steps-this-run') : undefined;
  const exportOnly = flag(args, 'export-only');
  // what shapes the run: the saved value wins; a different flag is ignored, and said so
  const cfg = st?.config;
  const keep = <T>(flagName: string, have: T | undefined, want: T | undefined, fallback: T): T => {
    if (have === undefined) return want ?? fallback;
    if (want !== undefined && want !== have)
      say(
        `--${flagName} ${want} ignored: the run was trained with ${flagName} ${have}, kept on resume (use a new --out for a run with --${flagName} ${want})`,
      );
    return have;
  };
  const seed = keep('seed', st?.seed, asked.seed, 0);
  const batch = keep('batch', cfg?.batch as number | undefined, asked.batch, d.batch);
  const dataSpec = keep('data', cfg?.data as string | undefined, asked.data, d.data);
  const modelChannels = keep(
    'model-channels',
    (cfg?.net as { modelChannels?: number } | undefined)?.modelChannels,
    asked.modelChannels,
    32,
  );
  const savedNet = cfg?.net as { channelMult?: number[]; numResBlocks?: number } | undefined;
  const channelMult = keep(
    'channel-mult',
    savedNet?.channelMult?.join(','),
    asked.channelMult?.join(','),
    (smallUNetConfig().channelMult as number[]).join(','),
  )
    .split(',')
    .map(Number);
  const numResBlocks = keep('res-blocks', savedNet?.numResBlocks, asked.numResBlocks, smallUNetConfig().numResBlocks!);
  // the loop settings: a flag overrides the saved value (said), else the saved value, else the default
  const defaults: RunSettings = {
    steps: d.steps,
    lr: d.lr,
    warmup: d.warmup,
    checkpointEvery: d.ckptEvery,
    sampleEvery: d.sampleEvery,
  };
  const flagOf: Record<keyof RunSettings, string> = {
    steps: 'steps',
    lr: 'lr',
    warmup: 'warmup',
    checkpointEvery: 'ckpt-every',
    sampleEvery: 'sample-every',
  };
  const run = { ...defaults };
  const defaulted: string[] = [];
  for (const k of Object.keys(defaults) as (keyof RunSettings)[]) {
    const want = asked[k];
    const have = st?.run?.[k];
    if (exportOnly) {
      if (want !== undefined) say(`--${flagOf[k]} ignored with --export-only (it only exports the checkpoint)`);
      continue;
    }
    if (want !== undefined) {
      if (have !== undefined && have !== want)
        say(`--${flagOf[k]} ${want} overrides the run's saved ${flagOf[k]} ${have}`);
      run[k] = want;
    } else if (have !== undefined) run[k] = have;
    else if (st) defaulted.push(`--${flagOf[k]} ${defaults[k]}`);
  }
  if (st && !st.run && !exportOnly && flag(args, 'resume') && defaulted.length) {
    say(
      `the checkpoint records no loop settings (written by an older diffguide); using the defaults ${defaulted.join(', ')} (give the flags to change them)`,
    );
  }
  return { seed, batch, dataSpec, modelChannels, channelMult, numResBlocks, run, cooldown, maxStepsThisRun };
}

/** `--channel-mult 1,2,4`: positive integers, one per resolution level. */
function channelMultOf(spec: string): number[] {
  const m = spec.split(',').map((v) => Number(v.trim()));
  if (!m.length || m.some((v) => !Number.isInteger(v) || v < 1 || v > 16))
    throw new UsageError(
      `--channel-mult must be comma-separated integers 1-16, one per level (e.g. 1,2,4), got '${spec}'`,
    );
  return m;
}

/**
 * A unet run's loss option: a resumed run keeps what it was trained with (older runs: `fallback`); asking it
 * for another value is an error naming the fix, as for --prediction.
 */
function keptUNetOption(
  saved: Record<string, unknown> | null,
  key: string,
  asked: string | undefined,
  fallback: string,
  allowed: string[],
  out: string,
): string {
  if (asked !== undefined && !allowed.includes(asked))
    throw new UsageError(
      `--${key === 'lossWeight' ? 'loss-weight' : key} must be one of ${allowed.join(', ')}, got '${asked}'`,
    );
  const have = saved ? String(saved[key] ?? fallback) : undefined;
  if (have !== undefined && asked !== undefined && asked !== have)
    throw new UsageError(`${out} was trained with ${key} ${have}; use another --out for a run with ${key} ${asked}`);
  return have ?? asked ?? fallback;
}

const trainCmd: Command = {
  name: 'train',
  summary:
    'train (or --resume) a small model: judge, unet, clip, noisy-clip, cond-unet, prior (emoji 32x32); checkpoints, loss curve, sample grids',
  usage:
    'diffguide train <judge|unet|clip|noisy-clip|cond-unet|prior> [--steps N] [--batch B] [--lr LR] [--out runs/<model>] [--resume] [--export-only]',
  examples: [
    'diffguide train judge --steps 3000',
    'nohup diffguide train unet --out runs/unet --resume > runs/unet/log.txt 2>&1 &',
    'diffguide train unet --out runs/unet --export-only   # write runs/unet/unet.safetensors from the checkpoint',
    'nohup diffguide train clip --out runs/clip --resume > runs/clip/log.txt 2>&1 &',
    'diffguide train noisy-clip --clip runs/clip --out runs/noisy-clip   # then: prior, cond-unet (same --clip)',
  ],
  options: {
    steps: { type: 'string', help: 'total steps to reach (judge 3000, unet 20000)' },
    batch: { type: 'string', help: 'batch size (judge 32, unet 16)' },
    lr: { type: 'string', help: 'peak learning rate (judge 2e-3, unet 5e-4)' },
    warmup: { type: 'string', help: 'linear warm-up steps (judge 100, unet 200)' },
    out: { type: 'string', help: 'output folder (default runs/<model>)' },
    data: { type: 'string', help: 'dataset: emoji32 (default), emoji64, a prepared .json or a folder of PNGs' },
    seed: { type: 'string', help: 'seed for init, batches and noise (default 0)' },
    resume: {
      type: 'boolean',
      help: "continue from <out>/checkpoint.safetensors with the run's saved settings (a flag given overrides --steps/--lr/--warmup/--ckpt-every/--sample-every; --batch/--data/--seed are kept)",
    },
    'ckpt-every': { type: 'string', help: 'checkpoint interval in steps (default 100)' },
    'sample-every': { type: 'string', help: 'sample grid / eval interval in steps (default 250)' },
    'export-only': {
      type: 'boolean',
      help: 'only write <out>/<model>.safetensors + config.json from the checkpoint (EMA weights)',
    },
    fp16: { type: 'boolean', help: 'export weights as fp16' },
    cooldown: {
      type: 'string',
      help: 'constant-rate models: decay the rate linearly to 0 over the last N steps before --steps; kept on resume. To cool down a copy of a running run: cp -r runs/unet runs/unet-cool, then train unet --out runs/unet-cool --resume --steps <its step + N> --cooldown N',
    },
    'max-steps-this-run': { type: 'string', help: 'stop after this many steps in this process (resume later)' },
    'model-channels': { type: 'string', help: 'unet: base width (default 32; multiple of 32); kept on resume' },
    'channel-mult': {
      type: 'string',
      help: 'unet: width multiplier per resolution level, comma-separated (default 1,2,2; each level halves the size); kept on resume',
    },
    'res-blocks': { type: 'string', help: 'unet: res blocks per level (default 1); kept on resume' },
    ship: {
      type: 'string',
      help: 'with --export-only: also write weights, config, MODEL_CARD.md, loss.png, samples.png into this folder (e.g. weights/judge)',
    },
    'eval-json': {
      type: 'string',
      help: 'with --ship: a `diffguide eval <model> --json` output file to put in the card',
    },
    command: {
      type: 'string',
      help: "with --ship: the training command to record in the card (default: this run's command line)",
    },
    clip: { type: 'string', help: 'noisy-clip, cond-unet, prior: the trained CLIP folder (default weights/clip)' },
    init: {
      type: 'string',
      help: "cond-unet, unet: initialise from this unconditional UNet folder/checkpoint (default: random); cond-unet takes the init's layout (widths, levels), unet needs the same layout flags",
    },
    'loss-weight': {
      type: 'string',
      help: 'unet: per-timestep loss weight, uniform (default) or min-snr (Min-SNR-5, Hang et al. 2023); kept on resume',
    },
    flip: {
      type: 'boolean',
      help: 'unet: random horizontal flips of the training images (default off: emoji and flags have a handedness); kept on resume',
    },
    'learn-sigma': {
      type: 'boolean',
      help: "unet: also learn the sampling variance (Improved DDPM's hybrid loss; samplers then use it); kept on resume",
    },
    prediction: {
      type: 'string',
      help: 'unet, cond-unet: what the net predicts, eps (default) or v (better conditioned at high noise); kept on resume',
    },
    condition: {
      type: 'string',
      help: "cond-unet: what conditions the decoder, image (the CLIP image embedding; unCLIP's decoder, default) or text (the CLIP text embedding of a caption drawn each step; the GLIDE-like baseline, exported as text-unet); kept on resume",
    },
    vision: {
      type: 'string',
      help: 'clip: the image tower, resnet (ModifiedResNet, the default and shipped one) or vit; kept on resume',
    },
  },
  async run(args) {
    const model = args.positionals[0] as TrainableModel;
    if (!TRAINABLE.includes(model) && !MODEL_TASKS[model])
      throw new UsageError(
        `unknown model '${args.positionals[0] ?? ''}'; trainable here: ${[...TRAINABLE, ...Object.keys(MODEL_TASKS)].join(', ')}`,
      );
    const d = TRAIN_DEFAULTS[model] ?? MODEL_TASKS[model].defaults;
    const out = str(args, 'out', join('runs', model));
    const ckptPath = join(out, 'checkpoint.safetensors');
    // On resume, the checkpoint's config wins for everything that shapes the run; its loop settings are kept unless a flag overrides them.
    let savedState: SavedRunState | null = null;
    if ((flag(args, 'resume') || flag(args, 'export-only')) && existsSync(join(out, 'state.json'))) {
      savedState = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as SavedRunState;
    }
    const saved = savedState?.config ?? null;
    // every value is checked, then the output folders proved writable, before the dataset loads
    const rs = runSettings(args, model, d, savedState);
    outDir(args, 'out', out);
    if (typeof args.values.ship === 'string') outDir(args, 'ship', args.values.ship);
    const { seed, batch, dataSpec } = rs;
    const ds = loadDataset((saved?.data as string) ?? dataSpec, { log: (l) => process.stderr.write(l + '\n') });
    let task: JudgeTask | UNetTask | TrainTask<unknown>;
    let extraConfig: Record<string, unknown> | null = null;
    let netConfig: Record<string, unknown>;
    let toStateDict: () => StateDict;
    // the name the weights are written and shipped under (cond-unet --condition text: text-unet)
    let exportName: string = model;
    if (MODEL_TASKS[model]) {
      const m = await MODEL_TASKS[model].setup({
        ds,
        seed,
        batch,
        saved,
        dataSpec: (saved?.data as string) ?? dataSpec,
        options: {
          clip: args.values.clip as string | undefined,
          init: args.values.init as string | undefined,
          prediction: args.values.prediction as string | undefined,
          vision: args.values.vision as string | undefined,
          condition: args.values.condition as string | undefined,
          out,
        },
      });
      task = m.task;
      netConfig = m.netConfig;
      toStateDict = m.toStateDict;
      extraConfig = m.config;
      exportName = m.exportName ?? model;
    } else if (model === 'judge') {
      const cfg = (saved?.net as ReturnType<typeof judgeConfigFor>) ?? judgeConfigFor(ds);
      const judge = Judge.random(cfg, seed);
      task = new JudgeTask(judge, ds, { batch: (saved?.batch as number) ?? batch, seed });
      netConfig = cfg as unknown as Record<string, unknown>;
      toStateDict = () => judge.toStateDict();
    } else {
      if (saved && flag(args, 'learn-sigma') && !(saved.net as { learnSigma?: boolean }).learnSigma) {
        throw new Error(
          `${out} was trained without --learn-sigma; use another --out for a run that learns its variance`,
        );
      }
      const cfg = (saved?.net as Record<string, unknown>) ?? {
        ...smallUNetConfig(ds.height),
        modelChannels: rs.modelChannels,
        channelMult: rs.channelMult,
        numResBlocks: rs.numResBlocks,
        // a learned variance doubles the output channels (learnSigma follows from them, as guided-diffusion's learn_sigma)
        ...(flag(args, 'learn-sigma') ? { outChannels: 2 * ds.channels } : {}),
      };
      const net = UNet.random(cfg, seed);
      const prediction = runPrediction(saved, args.values.prediction as string | undefined, out);
      const init = args.values.init as string | undefined;
      if (init && !saved) {
        // all tensors from another UNet of this config (e.g. an eps run, to start a v run from its features)
        const w = await readUNetWeights(init);
        const n = initFromUnconditional(net, w);
        process.stderr.write(`unet: initialised ${n} of ${net.params.size} tensors from ${w.source}\n`);
      }
      const lossWeight = keptUNetOption(
        saved,
        'lossWeight',
        args.values['loss-weight'] as string | undefined,
        'uniform',
        ['uniform', 'min-snr'],
        out,
      ) as LossWeight;
      const flip =
        keptUNetOption(saved, 'flip', flag(args, 'flip') ? 'true' : undefined, 'false', ['true', 'false'], out) ===
        'true';
      task = new UNetTask(net, ds, {
        batch: (saved?.batch as number) ?? batch,
        seed,
        schedule: TRAIN_SCHEDULE.schedule,
        prediction,
        lossWeight,
        flip,
      });
      netConfig = { ...net.config, ...TRAIN_SCHEDULE, prediction };
      extraConfig = {
        model,
        data: (saved?.data as string) ?? dataSpec,
        batch: (saved?.batch as number) ?? batch,
        net: net.config,
        prediction,
        ...(lossWeight !== 'uniform' ? { lossWeight } : {}),
        ...(flip ? { flip: 'true' } : {}),
        ...(init ? { init } : {}),
      };
      toStateDict = () => net.toStateDict();
    }
    const config = saved ??
      extraConfig ?? {
        model,
        data: dataSpec,
        batch,
        net: model === 'judge' ? netConfig : (task as UNetTask).net.config,
      };
    const exportNow = async (trainState: unknown) => {
      const st = trainState as { step: number; wallSeconds: number };
      const meta = {
        model: exportName,
        step: String(st.step),
        wall_seconds: st.wallSeconds.toFixed(0),
        data: String(config.data),
        weights: 'ema',
        format: 'pytorch-layout',
      };
      const e = await exportModel(
        exportName as TrainableModel,
        toStateDict(),
        { model: exportName, ...netConfig, step: st.step },
        out,
        flag(args, 'fp16') ? 'float16' : 'float32',
        meta,
      );
      process.stderr.write(`wrote ${e.weightsPath} and ${e.configPath} (EMA weights at step ${st.step})\n`);
    };
    if (flag(args, 'export-only')) {
      const st = loadTrainedWeights(ckptPath, task.params, 'ema', (task as TrainTask<unknown>).buffers);
      await exportNow(st);
      const ship = args.values.ship as string | undefined;
      if (ship) {
        const s = st as { step: number; wallSeconds: number };
        const evalFile = args.values['eval-json'] as string | undefined;
        const evalReport = evalFile ? (JSON.parse(readFileSync(evalFile, 'utf8')) as { step?: number }) : undefined;
        if (evalReport?.step !== undefined && evalReport.step !== s.step) {
          throw new Error(
            `--eval-json ${evalFile} measured step ${evalReport.step}, but ${ckptPath} is at step ${s.step}: pause the run, export and evaluate the checkpoint that is shipped`,
          );
        }
        const meta = {
          model: exportName,
          step: String(s.step),
          wall_seconds: s.wallSeconds.toFixed(0),
          data: String(config.data),
          weights: 'ema',
          format: 'pytorch-layout',
        };
        const e = await exportModel(
          exportName as TrainableModel,
          toStateDict(),
          { model: exportName, ...netConfig, step: s.step },
          ship,
          flag(args, 'fp16') ? 'float16' : 'float32',
          meta,
        );
        const card = writeModelCard({
          model: exportName,
          runDir: out,
          shipDir: ship,
          weightsFile: e.weightsPath,
          ...cardText(exportName),
          command: str(args, 'command', `diffguide train ${model} --out ${out}`),
          backend: `tfjs ${describeBackend()}, @tensorflow/tfjs ${tf.version.tfjs}`,
          evalReport: evalReport as Parameters<typeof writeModelCard>[0]['evalReport'],
        });
        process.stderr.write(`shipped ${e.weightsPath}, ${e.configPath}, ${card}\n`);
      }
      return 0;
    }
    if (args.values.cooldown !== undefined && d.decay !== 'constant')
      throw new Error(`--cooldown is for constant-rate runs; ${model} already decays (${d.decay})`);
    const opts: TrainOptions = {
      out,
      steps: rs.run.steps,
      lr: rs.run.lr,
      warmup: rs.run.warmup,
      decay: d.decay,
      clip: 1,
      cooldown: rs.cooldown,
      emaDecay: d.ema,
      adam: { weightDecay: d.weightDecay },
      seed,
      checkpointEvery: rs.run.checkpointEvery,
      sampleEvery: rs.run.sampleEvery,
      resume: flag(args, 'resume'),
      config,
      onProgress: progressBar(`train ${model}`),
      maxStepsThisRun: rs.maxStepsThisRun,
    };
    if (savedState && flag(args, 'resume') && savedState.step >= opts.steps && !savedState.cooldown) {
      process.stderr.write(
        `train ${model}: ${out} is at step ${savedState.step}, which reaches --steps ${opts.steps}: nothing to train; exporting its weights\n`,
      );
    }
    process.stderr.write(
      `train ${model}: ${ds.name} train split ${ds.indicesOf('train').length} images, batch ${config.batch}, ${opts.steps} steps, lr ${opts.lr}, out ${out}\n`,
    );
    const stop = stopOnSignals();
    let r: Awaited<ReturnType<typeof train>>;
    try {
      r = await train(task as TrainTask<unknown>, { ...opts, signal: stop.signal });
    } finally {
      stop.dispose();
    }
    console.log(JSON.stringify({ model, ...r }));
    if (r.stopped) {
      process.stderr.write(
        `train ${model}: stopped at step ${r.step} of ${savedTarget(out) ?? opts.steps} by ${stop.received()}; checkpoint written. Resume (keeps the run's settings, --steps included): diffguide train ${model} --out ${out} --resume\n`,
      );
      return stop.exitCode();
    }
    const st = loadTrainedWeights(ckptPath, task.params, 'ema', (task as TrainTask<unknown>).buffers);
    await exportNow(st);
    return 0;
  },
};
export default trainCmd;
