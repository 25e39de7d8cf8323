/**
 * Training task for the unconditional UNet: eps-prediction MSE (DDPM's L_simple; or v-prediction) with uniformly
 * drawn timesteps on a named schedule, plus Improved DDPM's variational-bound term when the net learns its
 * variance (`learnSigma`); sample grids by DDIM with the EMA weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../random.js';
import { BatchSampler, type Dataset, type SamplerState } from '../../data/dataset.js';
import { UNet } from '../../../nets/unet/index.js';
import type { UNetConfig } from '../../../nets/unet/index.js';
import { makeSchedule, respaceEven, type Schedule, type ScheduleName } from '../../../samplers/schedule.js';
import { diffusionModel, type DiffusionModel, type Parameterization } from '../../../samplers/model.js';
import { diffusionTarget, qSample } from '../../../samplers/core.js';
import { vlbTerms } from '../vlb.js';
import { unetVariance } from '../../models/diffuser.js';
import { ddimChainSync as ddimChain } from '../../../samplers/ddim.js';
import { makeDiffuser } from '../../models/diffuser.js';
import { sampleBatched } from '../../models/sample-batched.js';
import { TRAIN_SCHEDULE } from '../../models/weights-config.js';
import { makeGrid } from '../../image/grid.js';
import type { TrainTask } from '../loop.js';

/** The small emoji UNet (~3M parameters at 32x32). */
export function smallUNetConfig(imageSize = 32): Partial<UNetConfig> {
  return {
    kind: 'guided-diffusion',
    imageSize,
    inChannels: 3,
    outChannels: 3,
    modelChannels: 64,
    channelMult: [1, 2, 2],
    numResBlocks: 1,
    attentionDs: [4],
    numHeadChannels: 32,
    numHeads: 1,
    useScaleShiftNorm: true,
    resblockUpdown: false,
    convResample: true,
    dropout: 0,
  };
}

export interface UNetTaskOptions {
  batch: number;
  seed: number;
  schedule?: ScheduleName;
  timesteps?: number;
  /** Random horizontal flips. Default false (emoji and flags have a handedness). */
  flip?: boolean;
  /** Samples in the grid (default 16) and DDIM steps for them (default 25). */
  gridSamples?: number;
  gridSteps?: number;
  /** What the net predicts: 'eps' (DDPM's L_simple, default) or 'v' (well conditioned at high noise). */
  prediction?: 'eps' | 'v';
  /**
   * Per-timestep loss weight: 'uniform' (default) or 'min-snr' (Hang et al. 2023, Min-SNR-gamma: the x0-space
   * weight min(SNR, gamma), expressed for the predicted quantity; it stops the low-noise steps dominating).
   */
  lossWeight?: LossWeight;
  /** gamma of 'min-snr' (default 5, the paper's). */
  minSnrGamma?: number;
}

export type LossWeight = 'uniform' | 'min-snr';

/**
 * Min-SNR-gamma weight of one timestep for a loss on `prediction`: min(SNR, gamma) / SNR for eps,
 * min(SNR, gamma) / (SNR + 1) for v, with SNR = abar / (1 - abar). Both equal min(SNR, gamma) on the x0 error.
 */
export function minSnrWeight(alphaBar: number, prediction: 'eps' | 'v', gamma = 5): number {
  const snr = alphaBar / Math.max(1 - alphaBar, 1e-12);
  return Math.min(snr, gamma) / (prediction === 'v' ? snr + 1 : Math.max(snr, 1e-12));
}

/**
 * The prediction of a UNet training run: a resumed run keeps what it was trained with (runs from
 * before the option predicted eps); a new run takes `asked` (default eps). Asking a resumed run for
 * another one is an error that names the fix.
 */
export function runPrediction(
  saved: Record<string, unknown> | null,
  asked: string | undefined,
  out: string,
): 'eps' | 'v' {
  const p = saved ? ((saved.prediction as string | undefined) ?? 'eps') : (asked ?? 'eps');
  if (p !== 'eps' && p !== 'v') throw new Error(`--prediction must be eps or v, got '${p}'`);
  if (saved && asked && asked !== p)
    throw new Error(
      `${out} was trained with --prediction ${p}; use another --out for a run with --prediction ${asked} (--init ${out} starts it from these weights)`,
    );
  return p;
}

/**
 * Sample images with DDIM from a UNet (eta 0): `sampleBatched` (lib/models) on the UNet with this schedule
 * and prediction, so the same weights and seed give the same samples as `eval unet` and `eval methods`.
 * Returns [n, H, W, 3] in [-1, 1].
 */
export async function sampleUNet(
  net: UNet,
  schedule: Schedule,
  n: number,
  opts: {
    steps?: number;
    seed?: number;
    batch?: number;
    prediction?: Parameterization;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<tf.Tensor4D> {
  const d = makeDiffuser(net, schedule, { prediction: opts.prediction ?? 'eps', variance: unetVariance(net) });
  return sampleBatched(d, n, { steps: opts.steps, seed: opts.seed, batch: opts.batch, onProgress: opts.onProgress });
}

interface UNetBatch {
  x0: tf.Tensor4D;
}

export class UNetTask implements TrainTask<UNetBatch> {
  readonly params: Map<string, tf.Variable>;
  readonly schedule: Schedule;
  private sampler: BatchSampler;

  constructor(
    readonly net: UNet,
    readonly data: Dataset,
    readonly opts: UNetTaskOptions,
  ) {
    this.params = net.params;
    this.schedule = makeSchedule(opts.schedule ?? TRAIN_SCHEDULE.schedule, opts.timesteps ?? TRAIN_SCHEDULE.timesteps);
    this.sampler = new BatchSampler(data.indicesOf('train'), opts.batch, opts.seed);
  }

  nextBatch(_step: number, rng: Rng): UNetBatch {
    const idx = this.sampler.next();
    return tf.tidy(() => {
      let x = this.data.images(idx, { rgb: true });
      if (this.opts.flip) {
        const flips = idx.map(() => rng.float() < 0.5);
        const flipped = tf.reverse(x, 2);
        const m = tf.tensor4d(
          flips.map((f) => (f ? 1 : 0)),
          [idx.length, 1, 1, 1],
        );
        x = flipped.mul(m).add(x.mul(tf.scalar(1).sub(m))) as tf.Tensor4D;
      }
      return { x0: x };
    });
  }

  loss(b: UNetBatch, rng: Rng): tf.Scalar {
    const n = b.x0.shape[0];
    const idx = Array.from({ length: n }, () => rng.int(this.schedule.length));
    const noise = rng.normal<tf.Rank.R4>(b.x0.shape);
    const xt = qSample(b.x0, this.schedule, idx, noise);
    const t = tf.tensor1d(
      idx.map((i) => this.schedule.modelT(i)),
      'float32',
    );
    const out = this.net.apply(xt, t, {}, { training: true, seed: rng.nextSeed() });
    const prediction = this.opts.prediction ?? 'eps';
    const target = diffusionTarget(prediction, b.x0, this.schedule, idx, noise);
    if (!this.net.config.learnSigma) {
      if ((this.opts.lossWeight ?? 'uniform') === 'uniform')
        return tf.losses.meanSquaredError(target, out) as tf.Scalar;
      const w = tf.tensor1d(
        idx.map((i) => minSnrWeight(this.schedule.alphasCumprod[i], prediction, this.opts.minSnrGamma)),
      );
      return tf.squaredDifference(target, out).mean([1, 2, 3]).mul(w).mean() as tf.Scalar;
    }
    if ((this.opts.lossWeight ?? 'uniform') !== 'uniform')
      throw new Error(
        `lossWeight '${this.opts.lossWeight}' is not supported with a learned variance (learnSigma); use 'uniform'`,
      );
    // Improved DDPM's hybrid loss: L_simple on the mean half + the bound (bits/dim) on the variance half,
    // the bound weighted T/1000 (the paper's lambda = 0.001 on the T-term sum, estimated by T L_t)
    const c = b.x0.shape[3];
    const mse = tf.losses.meanSquaredError(target, out.slice([0, 0, 0, 0], [-1, -1, -1, c]));
    const model = diffusionModel((x) => x, { prediction: this.opts.prediction ?? 'eps', variance: 'learnedRange' });
    const vb = vlbTerms(model, this.schedule, b.x0, xt, idx, out)
      .mean()
      .mul(this.schedule.length / 1000);
    return mse.add(vb) as tf.Scalar;
  }

  disposeBatch(b: UNetBatch): void {
    b.x0.dispose();
  }

  getState(): SamplerState {
    return this.sampler.getState();
  }

  setState(s: unknown): void {
    this.sampler = new BatchSampler(this.data.indicesOf('train'), this.opts.batch, this.opts.seed, s as SamplerState);
  }

  sampleGrid(seed: number): tf.Tensor4D {
    // sampleDdim is async but does no real waiting; the loop calls this synchronously, so run the
    // DDIM chain here with the same math (eta 0) step by step.
    const n = this.opts.gridSamples ?? 16;
    const sched = respaceEven(this.schedule, this.opts.gridSteps ?? 25);
    const model = diffusionModel((x, t) => this.net.apply(x, t, {}), {
      prediction: this.opts.prediction ?? 'eps',
      variance: unetVariance(this.net),
    });
    const x = ddimChainSync(
      model,
      tf.randomNormal([n, this.data.height, this.data.width, 3], 0, 1, 'float32', seed) as tf.Tensor4D,
      sched,
    );
    const g = tf.tidy(() => makeGrid(x.clipByValue(-1, 1) as tf.Tensor4D, Math.ceil(Math.sqrt(n))));
    x.dispose();
    return g;
  }
}

/**
 * Deterministic DDIM (eta 0, x0 clipped) from the top of `sched` to a clean sample, synchronously
 * (training loops call their sample-grid hooks synchronously). Takes ownership of `xT` [N, H, W, C].
 * The chain is samplers/ddim.ts's `ddimChainSync`.
 */
export function ddimChainSync(model: DiffusionModel, xT: tf.Tensor4D, sched: Schedule): tf.Tensor4D {
  return ddimChain(model, xT, sched, { clipDenoised: true, consume: true });
}
