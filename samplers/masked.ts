/**
 * Masked sampling (SDEdit masked editing, RePaint inpainting): DDPM steps with the known region
 * replaced after each step by the reference noised to that level, plus RePaint's resampling: after
 * every `jumpLength` steps, noise back up `jumpLength` levels and denoise again, `resample - 1` extra
 * times, so the generated region harmonises with the known one.
 */
import * as tf from '@tensorflow/tfjs';
import { qForward, SamplingRun, type Move, type SamplerOptions } from './core.js';
import { ddpmMove } from './ddpm.js';
import { maskHook } from './hooks.js';
import type { DiffusionModel } from './model.js';
import type { Schedule } from './schedule.js';

export interface MaskedOptions extends SamplerOptions {
  /** Image whose masked region is kept [1 or N, H, W, C] in [-1, 1]. */
  reference: tf.Tensor4D;
  /** [1 or N, H, W, 1 or C]: 1 = keep the reference, 0 = generate. */
  mask: tf.Tensor4D;
  /** Levels to go back up per resampling jump. Default 10. */
  jumpLength?: number;
  /** Times each jump segment is denoised (1 = no resampling, plain masked sampling). Default 1. */
  resample?: number;
}

/** The RePaint-style move sequence from `start` down to `end` (up-moves have hooks: false). */
export function repaintMoves(start: number, end: number, jumpLength: number, resample: number): Move[] {
  if (jumpLength < 1 || resample < 1) throw new Error('repaintMoves: jumpLength and resample must be >= 1');
  const jumps = new Map<number, number>();
  const moves: Move[] = [];
  let j = start;
  while (j > end) {
    moves.push({ index: j, from: j, to: j - 1, hooks: true });
    j -= 1;
    if (resample > 1 && (j + 1) % jumpLength === 0 && j + jumpLength <= start && j > end) {
      const left = jumps.get(j) ?? resample - 1;
      if (left > 0) {
        jumps.set(j, left - 1);
        for (let u = 0; u < jumpLength; u++) {
          moves.push({ index: j + 1, from: j, to: j + 1, hooks: false });
          j += 1;
        }
      }
    }
  }
  return moves;
}

/**
 * Masked DDPM sampling with optional RePaint resampling.
 * @param x [N, H, W, C] x_t at startIndex (noise, or the reference noised to startIndex for SDEdit)
 */
export async function sampleMasked(
  model: DiffusionModel,
  x: tf.Tensor4D,
  schedule: Schedule,
  opts: MaskedOptions,
): Promise<tf.Tensor4D> {
  if (!opts.reference || !opts.mask) throw new Error('sampleMasked: give reference and mask');
  const hooks = [
    maskHook(opts.reference, opts.mask),
    ...(opts.stepHook ? (Array.isArray(opts.stepHook) ? opts.stepHook : [opts.stepHook]) : []),
  ];
  const run = new SamplingRun(model, schedule, { ...opts, stepHook: hooks });
  try {
    const { start, end } = run.range();
    const moves = repaintMoves(start, end, opts.jumpLength ?? 10, opts.resample ?? 1);
    return await run.run(x, moves, (xt, m, k) =>
      m.to < m.from ? ddpmMove(run, xt, m, k, moves.length) : { x: qForward(xt, schedule, m.from, m.to, run.rng) },
    );
  } finally {
    run.dispose();
  }
}
