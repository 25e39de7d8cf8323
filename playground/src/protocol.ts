/** Messages between the page (main.ts) and the worker (worker.ts) that runs the library. */
import type { SDEDIT_DEFAULTS } from '../../lib/methods/sdedit.js';
import type { SDG_DEFAULTS } from '../../lib/methods/sdg.js';

/** An image batch as it crosses the worker boundary: NHWC float32 in [-1, 1]. */
export interface Images {
  data: Float32Array;
  shape: [number, number, number, number];
}

export type Job =
  | { type: 'sdedit'; guide: Images; mask?: Images; t0: number; steps: number; repeats: number; seed: number }
  | {
      type: 'sdg';
      text?: string;
      image?: Images;
      imageMode: 'content' | 'style';
      scale: number;
      steps: number;
      n: number;
      seed: number;
    }
  | { type: 'unclip'; a: Images; b: Images; frames: number; steps: number; seed: number }
  | {
      type: 'imagic';
      image: Images;
      text: string;
      etas: number[];
      embSteps: number;
      ftSteps: number;
      steps: number;
      seed: number;
    }
  /** The numeric check: a UNet forward on a fixed input (the same code Node runs); returns the raw output. */
  | { type: 'check'; x: Images; t: number[] };

export type ToWorker = { type: 'init'; backend: string; base: string } | { type: 'run'; id: number; job: Job };

export interface ReadyInfo {
  backend: string;
  simd: boolean | null;
  threads: number;
  ourSimdKernels: boolean;
  skipped: { name: string; reason: string }[];
  /** Where each model came from: 'cache' (IndexedDB) or 'network'. */
  models: Record<string, string>;
  imageSize: number;
  /** The methods' defaults (the library's own objects): the page's controls for them start there. */
  defaults: { sdedit: typeof SDEDIT_DEFAULTS; sdg: typeof SDG_DEFAULTS };
}

export type FromWorker =
  | { type: 'status'; text: string }
  | { type: 'ready'; info: ReadyInfo }
  | { type: 'progress'; id: number; stage: string; step: number; total: number; loss?: number }
  | { type: 'result'; id: number; images: Images; labels: string[]; ms: number; settings: Record<string, unknown> }
  | { type: 'error'; id: number | null; message: string };
