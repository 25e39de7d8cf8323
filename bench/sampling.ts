/**
 * `diffguide bench sampling`: what the samplers cost beyond the net, and what guidance costs.
 *
 * - `overhead`: (sampler time per step - one net forward) / one net forward, for DDPM ancestral steps
 *   with the bench UNet (../shared/bench/gd_bench32.pt, learned-range variance, batch 8, 32x32), with
 *   the default NaN/Inf check. Goal < 0.05. `overhead_ddim` the same for DDIM, `overhead_no_check`
 *   for DDPM with `checkFinite: false`.
 * - `guided_over_unguided`: time of one guided DDPM step (UNet forward + CLIP image-tower forward and
 *   input gradient, text-cosine guidance on x0, `guidanceX0: 'linear'`) over an unguided step, with
 *   CLIP from ../shared/bench/clip_bench.pt. `guided_model_x0_over_unguided`: the same with the
 *   gradient through the UNet too (`guidanceX0: 'model'`).
 * Times are medians over `reps` runs of `steps` steps after a warm-up run, all in this process.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { backendInfo } from '../lib/backend.js';
import { readStateDict } from '../lib/io/index.js';
import { UNet, configFromReference } from '../nets/unet/index.js';
import { CLIP, clipConfigFromJson } from '../nets/clip/index.js';
import { clipText } from '../guidance/index.js';
import { diffusionModel, makeSchedule, randomStart, respace, sampleDdim, sampleDdpm, type NetFn, type SamplerOptions } from '../samplers/index.js';

export interface SamplingBenchOptions {
  /** Repetitions (median reported). Default 5. */
  reps?: number;
  /** Steps per timed sampling run. Default 10. */
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
  const steps = opts.steps ?? 10;
  const dir = benchDir();
  const unetPath = join(dir, 'gd_bench32.pt');
  if (!existsSync(unetPath)) throw new Error(`bench sampling needs ${unetPath} (set DIFFGUIDE_SHARED to the folder holding bench/)`);
  const unet = UNet.fromStateDict(await readStateDict(unetPath), configFromReference(JSON.parse(readFileSync(join(dir, 'gd_bench32.config.json'), 'utf8'))));
  const net: NetFn = (x, t, cond) => unet.apply(x, t, cond ?? {});
  const model = diffusionModel(net, { variance: 'learnedRange' });
  const schedule = respace(makeSchedule('linear', 1000), String(steps));
  const batch = 8;
  const x = randomStart([batch, 32, 32, 3], 1);
  const t = tf.fill([batch], 500) as tf.Tensor1D;

  // one net forward (read back, as the sampler does each step)
  const netTimes: number[] = [];
  for (let r = 0; r < reps + 2; r++) {
    const t0 = performance.now();
    const y = net(x, t);
    y.dataSync();
    const dt = performance.now() - t0;
    y.dispose();
    if (r >= 2) netTimes.push(dt);
  }
  const netMs = median(netTimes);

  const perStep = async (fn: (o: SamplerOptions) => Promise<tf.Tensor4D>, o: SamplerOptions): Promise<number> => {
    (await fn({ ...o, seed: 1 })).dispose(); // warm-up
    const ts: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const y = await fn({ ...o, seed: 1 });
      y.dataSync();
      ts.push((performance.now() - t0) / steps);
      y.dispose();
    }
    return median(ts);
  };
  const ddpm = (o: SamplerOptions) => sampleDdpm(model, x, schedule, o);
  const ddim = (o: SamplerOptions) => sampleDdim(model, x, schedule, o);
  const ddpmMs = await perStep(ddpm, {});
  const ddpmNoCheckMs = await perStep(ddpm, { checkFinite: false });
  const ddimMs = await perStep(ddim, {});
  process.stderr.write('bench sampling: unguided done\n');

  let guided: Record<string, number | string | null> = { guided_over_unguided: null };
  const clipPath = join(dir, 'clip_bench.pt');
  if (existsSync(clipPath)) {
    const clip = CLIP.fromStateDict(await readStateDict(clipPath), clipConfigFromJson(JSON.parse(readFileSync(join(dir, 'clip_bench.config.json'), 'utf8'))));
    const text = tf.randomNormal([1, clip.embedDim], 0, 1, 'float32', 3);
    const g = clipText(clip, text, { onX0: true });
    const guidedMs = await perStep(ddpm, { guidance: g, guidanceScale: 100 });
    const guidedModelMs = await perStep(ddpm, { guidance: g, guidanceScale: 100, guidanceX0: 'model' });
    guided = {
      guided_step_ms: +guidedMs.toFixed(1),
      guided_model_x0_step_ms: +guidedModelMs.toFixed(1),
      guided_over_unguided: +(guidedMs / ddpmMs).toFixed(3),
      guided_model_x0_over_unguided: +(guidedModelMs / ddpmMs).toFixed(3),
    };
    text.dispose();
  } else guided.note = `no ${clipPath}`;
  tf.dispose([x, t]);
  const b = backendInfo();
  return {
    backend: b ? { name: b.name, threads: b.threads, simd: b.simd } : tf.getBackend(),
    model: 'gd_bench32 (learned range), batch 8, 32x32x3',
    steps,
    reps,
    net_forward_ms: +netMs.toFixed(1),
    ddpm_step_ms: +ddpmMs.toFixed(1),
    ddim_step_ms: +ddimMs.toFixed(1),
    overhead: +((ddpmMs - netMs) / netMs).toFixed(4),
    overhead_no_check: +((ddpmNoCheckMs - netMs) / netMs).toFixed(4),
    overhead_ddim: +((ddimMs - netMs) / netMs).toFixed(4),
    ...guided,
  };
}
