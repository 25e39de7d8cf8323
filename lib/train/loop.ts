/**
 * The generic training loop: Adam with warm-up (+ optional cosine decay), global-norm clipping, EMA
 * weights, per-step seeds, a progress bar with loss and ETA on stderr, a loss curve (CSV + PNG) and
 * sample grids written as it goes, and atomic checkpoints resumable after SIGKILL (losing at most one
 * checkpoint interval). Every step is a pure function of (seed, step, checkpointed state), so a
 * resumed run continues exactly as the uninterrupted run would have.
 */
import * as tf from '@tensorflow/tfjs';
import { appendFileSync, existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, deriveSeed } from '../random.js';
import { plotLines } from '../image/plot.js';
import { writePng, writeRgbPng } from '../image/png.js';
import { Adam, Ema, clipByGlobalNorm, lrAt, withWeights, type AdamOptions } from '../optim/adam.js';
import { assignGroup, readCheckpoint, removeStaleTemporaries, writeCheckpoint } from './checkpoint.js';
import { checkCount, checkNumber } from '../options.js';
import { ensureWritableDir } from '../output.js';
import { WasmHeapError } from '../fastgrad/wasm.js';
import { describeBackend } from '../backend.js';

/** What a model contributes to the loop. */
export interface TrainTask<B = unknown> {
  /** Trainable parameters by reference key name. */
  params: Map<string, tf.Variable>;
  /**
   * State the loss updates without gradients (training-mode BatchNorm's running statistics):
   * checkpointed and restored with the parameters, exported as they are (no EMA).
   */
  buffers?: Map<string, tf.Variable>;
  /** The next batch (outside the gradient tape); `rng` is this step's own stream. */
  nextBatch(step: number, rng: Rng): B;
  /** The loss on a batch (called under `tf.variableGrads`). May use `rng` for noise. */
  loss(batch: B, rng: Rng): tf.Scalar;
  disposeBatch?(batch: B): void;
  /** Serializable data position (e.g. the batch sampler state) for checkpoints. */
  getState?(): unknown;
  setState?(state: unknown): void;
  /** A grid of samples / reconstructions, called with the EMA weights in place. [1, H, W, 3] in [-1, 1]. */
  sampleGrid?(seed: number): tf.Tensor4D;
  /** Extra figures (e.g. held-out accuracy), computed with EMA weights at sample time and logged. */
  evaluate?(): Record<string, number>;
}

export interface TrainOptions {
  /** Output folder: checkpoint.safetensors, loss.csv, loss.png, samples/, log lines. */
  out: string;
  /** Total steps to reach (a resumed run continues to this number). */
  steps: number;
  lr: number;
  warmup?: number;
  decay?: 'constant' | 'cosine';
  minLr?: number;
  /**
   * With a constant rate: decay linearly to `minLr` over the last this many steps before `steps`
   * (see `LrSchedule`). Saved with the checkpoint: a resume without it keeps the cooldown and its end.
   */
  cooldown?: number;
  /**
   * Stop when aborted: after the current step, with a checkpoint written (`stopped` in the result).
   * `stopOnSignals()` (lib/train/interrupt.ts) aborts it on SIGINT / SIGTERM.
   */
  signal?: AbortSignal;
  /** Max global gradient norm (default 1; 0 disables). */
  clip?: number;
  /** EMA decay (default 0.999). */
  emaDecay?: number;
  adam?: AdamOptions;
  seed?: number;
  /** Checkpoint every this many steps (default 200) and at least every `checkpointSeconds` (default 600). */
  checkpointEvery?: number;
  checkpointSeconds?: number;
  /** Sample grid + evaluate every this many steps (default 500; 0 = never). */
  sampleEvery?: number;
  /** CSV row every this many steps (default 10). */
  logEvery?: number;
  /** Continue from `out/checkpoint.safetensors` if present. */
  resume?: boolean;
  /** Stored in checkpoints; a resume with a different config is refused. */
  config?: Record<string, unknown>;
  /** Progress callback; default: a progress bar on stderr unless DIFFGUIDE_QUIET=1. */
  onProgress?: (p: TrainProgress) => void;
  /** Stop after this many steps in this process (for tests and time-boxed runs). */
  maxStepsThisRun?: number;
}

export interface TrainProgress {
  step: number;
  steps: number;
  loss: number;
  avgLoss: number;
  lr: number;
  gradNorm: number;
  secPerStep: number;
  etaSeconds: number;
}

export interface TrainResult {
  step: number;
  /** Mean loss over the last (up to) 100 steps. */
  avgLoss: number;
  /** Total training wall time across resumes, seconds. */
  wallSeconds: number;
  secPerStep: number;
  resumedFrom: number | null;
  evals: Record<string, number>;
  /** True when `signal` stopped the run before `steps`. */
  stopped: boolean;
}

interface SavedState {
  step: number;
  adamT: number;
  seed: number;
  task: unknown;
  wallSeconds: number;
  recent: number[];
  config: Record<string, unknown>;
  evals: Record<string, number>;
  /** A cooldown given to this run: its length and the step it ends at. */
  cooldown?: { steps: number; end: number };
  /** Each distinct backend the run trained on, across resumes (for the model card). */
  backends?: string[];
  /** The loop settings this run trains with (what ran, so a resume can keep them; absent in older checkpoints). */
  run?: RunSettings;
}

/** The loop settings a checkpoint records (state.json `run`): the target step (cooldown end included) and the rates and intervals. */
export interface RunSettings {
  steps: number;
  lr: number;
  warmup: number;
  checkpointEvery: number;
  sampleEvery: number;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Default progress: a bar on a TTY, a line every ~30 s otherwise (log files). */
export function progressBar(label: string): (p: TrainProgress) => void {
  let lastLine = 0;
  const tty = process.stderr.isTTY;
  return (p) => {
    if (process.env.DIFFGUIDE_QUIET === '1') return;
    const w = 24;
    const f = Math.round((w * p.step) / p.steps);
    const line = `${label} ${p.step}/${p.steps} [${'#'.repeat(f)}${'.'.repeat(w - f)}] loss ${p.loss.toFixed(4)} avg ${p.avgLoss.toFixed(4)} lr ${p.lr.toExponential(1)} |g| ${p.gradNorm.toFixed(2)} ${p.secPerStep.toFixed(2)}s/step ETA ${fmtTime(p.etaSeconds)}`;
    if (tty) process.stderr.write(`\r${line}${p.step === p.steps ? '\n' : ''}`);
    else if (Date.now() - lastLine > 30000 || p.step === p.steps) {
      lastLine = Date.now();
      process.stderr.write(`${new Date().toISOString()} ${line}\n`);
    }
  };
}

const CSV_HEADER = 'step,loss,avg_loss,lr,grad_norm,wall_s';

function trimCsv(path: string, upTo: number): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.length);
  const keep = lines.filter((l, i) => i === 0 || Number(l.split(',')[0]) <= upTo);
  writeFileSync(path, keep.join('\n') + '\n');
}

function plotCsv(csv: string, png: string): void {
  const lines = readFileSync(csv, 'utf8')
    .split('\n')
    .filter((l) => l.length)
    .slice(1);
  const x = lines.map((l) => Number(l.split(',')[0]));
  const loss = lines.map((l) => Number(l.split(',')[1]));
  const avg = lines.map((l) => Number(l.split(',')[2]));
  const img = plotLines(
    [
      { x, y: loss, color: [170, 200, 230] },
      { x, y: avg, color: [31, 119, 180] },
    ],
    { width: 640, height: 320, logY: true },
  );
  const tmp = `${png}.tmp.png`;
  writeRgbPng(tmp, img);
  renameSync(tmp, png);
}

/** Run (or resume) training. */
export async function train<B>(task: TrainTask<B>, opts: TrainOptions): Promise<TrainResult> {
  const seed = opts.seed ?? 0;
  const out = opts.out;
  checkCount('steps', opts.steps);
  checkNumber('lr', opts.lr, { above: 0 });
  ensureWritableDir(join(out, 'samples'), `training output folder ${out}`);
  const ckptPath = join(out, 'checkpoint.safetensors');
  for (const f of removeStaleTemporaries(ckptPath)) {
    if (process.env.DIFFGUIDE_QUIET !== '1')
      process.stderr.write(`removed ${f}: a checkpoint write that never finished (its process is gone)\n`);
  }
  const csvPath = join(out, 'loss.csv');
  const config = opts.config ?? {};
  if (existsSync(ckptPath) && !opts.resume) {
    throw new Error(`${ckptPath} exists; pass --resume to continue it, or choose another --out folder`);
  }
  const adam = new Adam(task.params, opts.adam);
  const ema = new Ema(task.params, opts.emaDecay ?? 0.999);
  try {
    return await runLoop(task, opts, adam, ema, ckptPath, csvPath, config, seed, out);
  } finally {
    adam.dispose();
    ema.dispose();
  }
}

async function runLoop<B>(
  task: TrainTask<B>,
  opts: TrainOptions,
  adam: Adam,
  ema: Ema,
  ckptPath: string,
  csvPath: string,
  config: Record<string, unknown>,
  seed: number,
  out: string,
): Promise<TrainResult> {
  let step = 0;
  let wallBefore = 0;
  let recent: number[] = [];
  let resumedFrom: number | null = null;
  let evals: Record<string, number> = {};
  let backends: string[] = [];
  let cooldown = opts.cooldown !== undefined ? { steps: opts.cooldown, end: opts.steps } : undefined;
  if (opts.resume && existsSync(ckptPath)) {
    const ck = readCheckpoint(ckptPath);
    const st = ck.state as SavedState;
    const want = JSON.stringify(config);
    const have = JSON.stringify(st.config);
    if (want !== have) {
      throw new Error(
        `cannot resume ${ckptPath}: it was trained with config ${have}, this run asks for ${want}; pass the same options or use a new --out folder`,
      );
    }
    assignGroup(task.params, ck.groups.params, 'parameter', ckptPath);
    assignGroup(ema.shadow, ck.groups.ema, 'EMA weight', ckptPath);
    assignGroup(adam.m, ck.groups.adam_m, 'Adam first moment', ckptPath);
    assignGroup(adam.v, ck.groups.adam_v, 'Adam second moment', ckptPath);
    if (task.buffers?.size) assignGroup(task.buffers, ck.groups.buffers, 'buffer', ckptPath);
    adam.t = st.adamT;
    step = st.step;
    wallBefore = st.wallSeconds;
    recent = st.recent;
    evals = st.evals ?? {};
    cooldown ??= st.cooldown;
    backends = st.backends ?? [];
    if (st.seed !== seed) throw new Error(`cannot resume ${ckptPath}: it used --seed ${st.seed}, this run ${seed}`);
    task.setState?.(st.task);
    resumedFrom = step;
    trimCsv(csvPath, step);
  }
  if (!existsSync(csvPath) || resumedFrom === null) writeFileSync(csvPath, CSV_HEADER + '\n');

  const save = () => {
    const run: RunSettings = {
      steps: total,
      lr: opts.lr,
      warmup: opts.warmup ?? 0,
      checkpointEvery: ckEvery,
      sampleEvery,
    };
    const st: SavedState = {
      step,
      adamT: adam.t,
      seed,
      task: task.getState?.(),
      wallSeconds: wallBefore + (Date.now() - t0) / 1000,
      recent: recent.slice(-100),
      config,
      evals,
      ...(cooldown ? { cooldown } : {}),
      backends,
      run,
    };
    writeCheckpoint(
      ckptPath,
      {
        params: task.params,
        ema: ema.shadow,
        adam_m: adam.m,
        adam_v: adam.v,
        ...(task.buffers?.size ? { buffers: task.buffers } : {}),
      },
      st,
    );
    writeFileSync(
      join(out, 'state.json'),
      JSON.stringify({ ...st, recent: undefined, avgLoss: mean(recent.slice(-100)) }, null, 2),
    );
  };
  const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
  const sample = () => {
    if (task.sampleGrid || task.evaluate) {
      withWeights(task.params, ema.shadow, () => {
        if (task.sampleGrid) {
          const g = task.sampleGrid(deriveSeed(seed, 1 << 30));
          writePng(join(out, 'samples', `step-${String(step).padStart(7, '0')}.png`), g);
          writePng(join(out, 'samples', 'latest.png'), g);
          g.dispose();
        }
        if (task.evaluate) {
          evals = task.evaluate();
          appendFileSync(join(out, 'evals.jsonl'), JSON.stringify({ step, ...evals }) + '\n');
        }
      });
    }
  };

  const varList = [...task.params.values()];
  const names = [...task.params.keys()];
  const byId = new Map(varList.map((v, i) => [v.name, names[i]]));
  const progress = opts.onProgress ?? progressBar(`train`);
  const ckEvery = opts.checkpointEvery ?? 200;
  // a cooled-down run ends where its cooldown does, even when resumed without --steps
  const total = cooldown?.end ?? opts.steps;
  const here = describeBackend();
  if (!backends.includes(here)) backends.push(here);
  const ckSecs = opts.checkpointSeconds ?? 600;
  const sampleEvery = opts.sampleEvery ?? 500;
  const logEvery = opts.logEvery ?? 10;
  const t0 = Date.now();
  let lastCk = Date.now();
  let stepsThisRun = 0;
  const startStep = step;
  while (
    step < total &&
    (opts.maxStepsThisRun === undefined || stepsThisRun < opts.maxStepsThisRun) &&
    !opts.signal?.aborted
  ) {
    const rng = new Rng(deriveSeed(seed, step));
    const lr = lrAt(step, {
      lr: opts.lr,
      warmup: opts.warmup,
      total,
      decay: opts.decay,
      minLr: opts.minLr,
      cooldown: cooldown?.steps,
    });
    const batch = task.nextBatch(step, rng);
    const lossRng = rng.fork();
    let stepResult: { value: tf.Scalar; grads: tf.NamedTensorMap };
    try {
      stepResult = tf.variableGrads(() => task.loss(batch, lossRng), varList);
    } catch (e) {
      // WasmHeapError names the fix; add where (on the first step of a run: this batch never fit).
      if (e instanceof WasmHeapError)
        e.message = `training step ${step}${step === startStep ? ' (the first of this run)' : ''}: ${e.message}`;
      throw e;
    } finally {
      task.disposeBatch?.(batch);
    }
    const { value, grads } = stepResult;
    const named = new Map<string, tf.Tensor>();
    for (const [id, g] of Object.entries(grads)) named.set(byId.get(id) ?? id, g);
    const { grads: clipped, norm } = clipByGlobalNorm(named, opts.clip ?? 1);
    adam.step(clipped, lr);
    for (const g of clipped.values()) g.dispose();
    const lossVal = value.dataSync()[0];
    value.dispose();
    if (!Number.isFinite(lossVal)) {
      throw new Error(
        `loss became ${lossVal} at step ${step}; lower --lr (now ${opts.lr}) or resume from the last checkpoint with a smaller rate`,
      );
    }
    ema.update(task.params, step);
    step++;
    stepsThisRun++;
    recent.push(lossVal);
    if (recent.length > 100) recent.shift();
    const elapsed = (Date.now() - t0) / 1000;
    const sps = elapsed / (step - startStep);
    if (step % logEvery === 0 || step === total) {
      appendFileSync(
        csvPath,
        `${step},${lossVal},${mean(recent)},${lr},${norm},${(wallBefore + elapsed).toFixed(1)}\n`,
      );
    }
    progress({
      step,
      steps: total,
      loss: lossVal,
      avgLoss: mean(recent),
      lr,
      gradNorm: norm,
      secPerStep: sps,
      etaSeconds: sps * (total - step),
    });
    if (sampleEvery > 0 && step % sampleEvery === 0) {
      sample();
      plotCsv(csvPath, join(out, 'loss.png'));
    }
    if (step % ckEvery === 0 || (Date.now() - lastCk) / 1000 > ckSecs || step === total) {
      save();
      lastCk = Date.now();
    }
    // let signal handlers run between steps (the step itself is synchronous)
    if (opts.signal) await new Promise<void>((r) => setImmediate(r));
  }
  if (stepsThisRun > 0 && step % ckEvery !== 0 && step !== total) save();
  if (step === total && stepsThisRun > 0) {
    if (!(sampleEvery > 0 && step % sampleEvery === 0)) sample();
    plotCsv(csvPath, join(out, 'loss.png'));
    save();
  }
  const result: TrainResult = {
    step,
    avgLoss: mean(recent),
    wallSeconds: wallBefore + (Date.now() - t0) / 1000,
    secPerStep: stepsThisRun ? (Date.now() - t0) / 1000 / stepsThisRun : NaN,
    resumedFrom,
    evals,
    stopped: step < total && !!opts.signal?.aborted,
  };
  return result;
}

/** Load the EMA (default) or raw weights of a training checkpoint into `params`, and its `buffers` if given. */
export function loadTrainedWeights(
  path: string,
  params: Map<string, tf.Variable>,
  which: 'ema' | 'params' = 'ema',
  buffers?: Map<string, tf.Variable>,
): unknown {
  const ck = readCheckpoint(path);
  assignGroup(params, ck.groups[which], which === 'ema' ? 'EMA weight' : 'parameter', path);
  if (buffers?.size) assignGroup(buffers, ck.groups.buffers, 'buffer', path);
  return ck.state;
}
