/**
 * `diffguide eval <model>` for clip, noisy-clip, cond-unet and prior: load the shipped weights (or
 * --weights), measure the bars of issue 6, return `{model, bars, ...}`.
 */
import type { Dataset } from '../data/dataset.js';
import { weightsPath } from '../paths.js';
import { makeSchedule } from '../../samplers/schedule.js';
import { loadClipModel, loadCondDiffuser, loadNoisyClipModel, loadPriorModel } from '../models/load.js';
import { loadJudge } from './unet.js';
import {
  clipBars,
  evalClipOnDataset,
  evalNoisyClipOnDataset,
  noisyClipBars,
  type Bar,
} from '../metrics/clip-dataset.js';
import { UNCLIP_EVAL_DECODER_STEPS, decoderReconstructionCategory, evalUnclipPrompts, unclipBars } from './unclip.js';

export interface ModelEvalArgs {
  ds: Dataset;
  /** Weights of the model evaluated (folder or file); default weights/<model>. */
  weights?: string;
  /** Judge folder (default weights/judge). */
  judge?: string;
  /** CLIP folder for the dependent models (default weights/clip). */
  clip?: string;
  /** cond-unet: the prior to use for the prompt bar (default weights/prior); prior: the decoder (default weights/cond-unet). */
  partner?: string;
  /** Total samples for the prompt bar, spread evenly over the categories (default 4 per category). */
  n?: number;
  steps?: number;
  seed?: number;
  onProgress?: (msg: string) => void;
}

export interface ModelEvalReport {
  model: string;
  bars: Record<string, Bar>;
  [k: string]: unknown;
}

async function promptBars(model: 'cond-unet' | 'prior', a: ModelEvalArgs): Promise<ModelEvalReport> {
  const clip = await loadClipModel(a.clip ?? weightsPath('clip'));
  const judge = await loadJudge(a.judge ?? weightsPath('judge'));
  const decoder = await loadCondDiffuser(model === 'cond-unet' ? a.weights : a.partner);
  const { prior, schedule } = await loadPriorModel(model === 'prior' ? a.weights : a.partner);
  const opts = {
    perCategory: a.n ? Math.max(1, Math.round(a.n / a.ds.categoryNames.length)) : 4,
    steps: a.steps ?? UNCLIP_EVAL_DECODER_STEPS,
    seed: a.seed ?? 0,
    onProgress: a.onProgress,
  };
  const r = await evalUnclipPrompts(decoder, prior, schedule, clip, judge, a.ds, opts);
  const recon =
    model === 'cond-unet'
      ? await decoderReconstructionCategory(decoder, clip, judge, a.ds, { ...opts, n: 72 })
      : undefined;
  const out: ModelEvalReport = { model, samples: r.samples, decoderSteps: opts.steps, bars: unclipBars(r, recon) };
  clip.dispose();
  decoder.unet.dispose();
  prior.dispose();
  return out;
}

export const MODEL_EVALS: Record<string, (a: ModelEvalArgs) => Promise<ModelEvalReport>> = {
  async clip(a) {
    const clip = await loadClipModel(a.weights);
    const r = evalClipOnDataset(clip, a.ds);
    clip.dispose();
    return { model: 'clip', images: r.images, names: r.names, bars: clipBars(r) };
  },
  async 'noisy-clip'(a) {
    const noisy = await loadNoisyClipModel(a.weights);
    const clip = await loadClipModel(a.clip);
    const schedule = makeSchedule('cosine', 1000);
    const r = evalNoisyClipOnDataset(noisy, clip, schedule, a.ds, { t: 500, seed: a.seed ?? 0 });
    // Diagnostics: the same retrieval at other noise levels (t = 0 gives the clean ceiling).
    const diagnostics: Record<string, { noisyTop5: number; plainTop5: number; ratio: number; alphaBar: number }> = {};
    for (const t of [0, 250, 750, 900]) {
      const d = evalNoisyClipOnDataset(noisy, clip, schedule, a.ds, { t, seed: a.seed ?? 0 });
      diagnostics[`t${t}`] = {
        noisyTop5: d.noisyTop5,
        plainTop5: d.plainTop5,
        ratio: d.ratio,
        alphaBar: schedule.alphaBar(t),
      };
    }
    noisy.dispose();
    clip.dispose();
    return {
      model: 'noisy-clip',
      t: r.t,
      schedule: 'cosine',
      alphaBar: schedule.alphaBar(500),
      images: r.images,
      noisyTop5: r.noisyTop5,
      plainTop5: r.plainTop5,
      bars: noisyClipBars(r),
      diagnostics,
    };
  },
  'cond-unet': (a) => promptBars('cond-unet', a),
  prior: (a) => promptBars('prior', a),
};
