/**
 * `toy`: a cheap, deterministic grid that exercises the grid engine itself (tests, `bench grid`, and a
 * first try of a queue or a cluster): each cell iterates x <- tanh(gain * A x / sqrt(d)) on seeded
 * random d x d matrices, real tensor work whose cost is set by --param iters (and d). Cells are
 * seed x gain; the table is the mean and spread over seeds of the final |x| per gain.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../lib/random.js';
import type { Experiment, GridOptions } from '../lib/experiments/grid.js';

interface ToyCell {
  [k: string]: number;
  gain: number;
  seed: number;
}
interface ToyResult {
  [k: string]: number;
  rms: number;
  mean: number;
}

function intParam(opts: GridOptions, name: string, fallback: number): number {
  const v = opts.params[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`experiment toy: --param ${name}=${v} must be a non-negative integer`);
  return n;
}

const GAINS = [1.1, 1.5, 2.5];

const toy: Experiment<ToyCell, ToyResult> = {
  name: 'toy',
  summary: 'engine check: seeded tanh(A x) iterations (cost set by --param iters=N, d=N, seeds=N)',
  settings: (opts) => ({
    d: intParam(opts, 'd', 128),
    iters: intParam(opts, 'iters', opts.quick ? 20 : 500),
    seeds: intParam(opts, 'seeds', opts.quick ? 2 : 4),
  }),
  cells(opts) {
    const seeds = intParam(opts, 'seeds', opts.quick ? 2 : 4);
    return GAINS.flatMap((gain) => Array.from({ length: seeds }, (_, seed) => ({ gain, seed })));
  },
  async runCell(cell, ctx) {
    const d = ctx.settings.d as number;
    const iters = ctx.settings.iters as number;
    const rng = new Rng(1000 * cell.seed + 7);
    const a = tf.tidy(() => rng.normal<tf.Rank.R2>([d, d]).mul(cell.gain / Math.sqrt(d))) as tf.Tensor2D;
    let x = rng.normal<tf.Rank.R2>([d, d]);
    try {
      for (let i = 0; i < iters; i++) {
        const next = tf.tidy(() => tf.tanh(tf.matMul(a, x)) as tf.Tensor2D);
        x.dispose();
        x = next;
        if (i % 10 === 9) await ctx.progress(i + 1, iters);
      }
      const [rms, mean] = tf.tidy(() => [tf.sqrt(tf.mean(tf.square(x))).dataSync()[0], tf.mean(x).dataSync()[0]]);
      return { rms, mean };
    } finally {
      tf.dispose([a, x]);
    }
  },
  merge(results, info) {
    const rows = GAINS.map((gain) => {
      const rs = results.filter((r) => r.cell.gain === gain).map((r) => r.result.rms);
      const m = rs.length ? rs.reduce((s, v) => s + v, 0) / rs.length : NaN;
      const sd = rs.length ? Math.sqrt(rs.reduce((s, v) => s + (v - m) ** 2, 0) / rs.length) : NaN;
      return { gain, seeds: rs.length, rms: m, sd };
    });
    const table = [
      `toy grid: d ${info.settings.d}, ${info.settings.iters} iterations of x <- tanh(gain A x / sqrt(d))`,
      '',
      '| gain | seeds | rms of x (mean) | sd over seeds |',
      '| ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.gain} | ${r.seeds} | ${r.rms.toFixed(6)} | ${r.sd.toFixed(6)} |`),
    ].join('\n');
    return { table, json: rows };
  },
};
export default toy;
