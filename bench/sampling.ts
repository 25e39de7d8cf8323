/**
 * `diffguide bench sampling`: what the samplers cost beyond the net, and what guidance costs.
 *
 * - `overhead`: the DDPM sampler's own time per step (everything but the net: parameterisation, mean,
 *   variance, noise, NaN/Inf check, bookkeeping; measured with a net that returns a precomputed output)
 *   as a fraction of one forward of the bench UNet (../shared/bench/gd_bench32.pt, learned-range
 *   variance, batch 8, 32x32). Goal < 0.05. `overhead_ddim` the same for DDIM, `overhead_no_check`
 *   with `checkFinite: false`; `overhead_end_to_end` = (full step - net forward) / net forward, which
 *   on a loaded machine is dominated by timing noise.
 * - `guided_over_unguided`: time of one guided DDPM step (UNet forward + CLIP image-tower forward and
 *   input gradient, text-cosine guidance on x0, `guidanceX0: 'linear'`) over an unguided step, with
 *   CLIP from ../shared/bench/clip_bench.pt. `guided_model_x0_over_unguided`: the same with the
 *   gradient through the UNet too (`guidanceX0: 'model'`).
 * Times are medians over `reps` interleaved runs of `steps` steps after a warm-up run, in this process.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { backendInfo } from '../lib/backend.js';
import { readStateDict } from '../lib/io/index.js';
import { UNet, configFromReference } from '../nets/unet/index.js';
import { CLIP, clipConfigFromJson } from '../nets/clip/index.js';
import { clipText, cosine } from '../guidance/index.js';
import {
  diffusionModel,
  makeSchedule,
  randomStart,
  respace,
  sampleDdim,
  sampleDdpm,
  type NetFn,
  type SamplerOptions,
} from '../samplers/index.js';

export interface SamplingBenchOptions {
  /** Repetitions (median reported). Default 5. */
  reps?: number;
  /** Steps per timed sampling run. Default 4. */
  steps?: number;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function benchDir(): string {
  return resolve(process.env.DIFFGUIDE_SHARED ?? join(packageRoot(), '..', 'shared'), 'bench');
}

export async function run(opts: SamplingBenchOptions = {}): Promise<Record<string, unknown>> {
  const reps = opts.reps && opts.reps > 0 ? opts.reps : 5;
  const steps = opts.steps ?? 4;
  const dir = benchDir();
  const unetPath = join(dir, 'gd_bench32.pt');
  if (!existsSync(unetPath))
    throw new Error(`bench sampling needs ${unetPath} (set DIFFGUIDE_SHARED to the folder holding bench/)`);
  const unet = UNet.fromStateDict(
    await readStateDict(unetPath),
    configFromReference(JSON.parse(readFileSync(join(dir, 'gd_bench32.config.json'), 'utf8'))),
  );
  const net: NetFn = (x, t, cond) => unet.apply(x, t, cond ?? {});
  const model = diffusionModel(net, { variance: 'learnedRange' });
  const schedule = respace(makeSchedule('linear', 1000), String(steps));
  const batch = 8;
  const x = randomStart([batch, 32, 32, 3], 1);
  const t = tf.fill([batch], 500) as tf.Tensor1D;
  // The same output, precomputed: a "free" net that isolates the sampler's own per-step work.
  const cachedOut = net(x, t);
  const freeModel = diffusionModel((xx) => tf.clone(cachedOut) as tf.Tensor4D, { variance: 'learnedRange' });

  const timeNet = (): number => {
    const t0 = performance.now();
    const y = net(x, t);
    y.dataSync();
    const dt = performance.now() - t0;
    y.dispose();
    return dt;
  };
  const timeRun = async (fn: (o: SamplerOptions) => Promise<tf.Tensor4D>, o: SamplerOptions = {}): Promise<number> => {
    const t0 = performance.now();
    const y = await fn({ ...o, seed: 1 });
    y.dataSync();
    const dt = (performance.now() - t0) / steps;
    y.dispose();
    return dt;
  };
  const ddpm = (o: SamplerOptions) => sampleDdpm(model, x, schedule, o);
  const ddpmFree = (o: SamplerOptions) => sampleDdpm(freeModel, x, schedule, o);
  const ddimFree = (o: SamplerOptions) => sampleDdim(freeModel, x, schedule, o);

  // warm-up
  timeNet();
  await timeRun(ddpm);
  await timeRun(ddpmFree);
  await timeRun(ddimFree);
  // interleaved so that load from other processes hits all measurements alike
  const netT: number[] = [];
  const ddpmT: number[] = [];
  const freeT: number[] = [];
  const freeNoCheckT: number[] = [];
  const ddimFreeT: number[] = [];
  for (let r = 0; r < reps; r++) {
    netT.push(timeNet());
    ddpmT.push(await timeRun(ddpm));
    for (let k = 0; k < 3; k++) {
      freeT.push(await timeRun(ddpmFree));
      freeNoCheckT.push(await timeRun(ddpmFree, { checkFinite: false }));
      ddimFreeT.push(await timeRun(ddimFree));
    }
  }
  const netMs = median(netT);
  const ddpmMs = median(ddpmT);
  process.stderr.write('bench sampling: unguided done\n');

  let guided: Record<string, number | string | null> = { guided_over_unguided: null };
  const clipPath = join(dir, 'clip_bench.pt');
  if (existsSync(clipPath)) {
    const clip = CLIP.fromStateDict(
      await readStateDict(clipPath),
      clipConfigFromJson(JSON.parse(readFileSync(join(dir, 'clip_bench.config.json'), 'utf8'))),
    );
    const text = tf.randomNormal([1, clip.embedDim], 0, 1, 'float32', 3);
    const g = clipText(clip, text, { onX0: true });
    await timeRun(ddpm, { guidance: g });
    const unT: number[] = [];
    const gT: number[] = [];
    const gmT: number[] = [];
    const cT: number[] = [];
    const clipGrad = () =>
      tf.grad((v: tf.Tensor) => tf.sum(cosine(clip.encodeImage(v as tf.Tensor4D).embedding, text as tf.Tensor2D)))(x);
    clipGrad().dispose();
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const gx = clipGrad();
      gx.dataSync();
      cT.push(performance.now() - t0);
      gx.dispose();
      unT.push(await timeRun(ddpm));
      gT.push(await timeRun(ddpm, { guidance: g, guidanceScale: 100 }));
      if (r < Math.max(2, reps >> 1))
        gmT.push(await timeRun(ddpm, { guidance: g, guidanceScale: 100, guidanceX0: 'model' }));
    }
    const un = median(unT);
    guided = {
      unguided_step_ms: +un.toFixed(1),
      clip_input_grad_ms: +median(cT).toFixed(1),
      guided_step_ms: +median(gT).toFixed(1),
      guided_model_x0_step_ms: +median(gmT).toFixed(1),
      guided_over_unguided: +(median(gT) / un).toFixed(3),
      guided_model_x0_over_unguided: +(median(gmT) / un).toFixed(3),
    };
    text.dispose();
  } else guided.note = `no ${clipPath}`;
  tf.dispose([x, t, cachedOut]);
  const b = backendInfo();
  return {
    backend: b ? { name: b.name, threads: b.threads, simd: b.simd } : tf.getBackend(),
    model: 'gd_bench32 (learned range), batch 8, 32x32x3',
    steps,
    reps,
    net_forward_ms: +netMs.toFixed(1),
    sampler_own_step_ms: +median(freeT).toFixed(2),
    overhead: +(median(freeT) / netMs).toFixed(4),
    overhead_no_check: +(median(freeNoCheckT) / netMs).toFixed(4),
    overhead_ddim: +(median(ddimFreeT) / netMs).toFixed(4),
    ddpm_step_ms: +ddpmMs.toFixed(1),
    overhead_end_to_end: +((ddpmMs - netMs) / netMs).toFixed(4),
    ...guided,
  };
}
