/** Helpers for fastgrad/ops tests: run a computation on wasm and on the cpu backend and compare. */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { xorshiftUniform } from '../lib/random.js';

/** Deterministic pseudo-random data in [-1, 1) (no tf RNG, identical on every backend). */
export function data(n: number, seed: number): Float32Array {
  return xorshiftUniform(n, Math.imul(seed, 2654435761) >>> 0);
}

export function rand(shape: number[], seed: number, scale = 1): tf.Tensor {
  const d = data(tf.util.sizeFromShape(shape), seed);
  if (scale !== 1) for (let i = 0; i < d.length; i++) d[i] *= scale;
  return tf.tensor(d, shape);
}

/** Norm-wise relative error max|a-b| / max|b|. */
export function relErr(a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= num)) num = d; // NaN propagates as Infinity below
    den = Math.max(den, Math.abs(b[i]));
  }
  if (Number.isNaN(num)) return Infinity;
  return den === 0 ? num : num / den;
}

type Outs = { shapes: number[][]; values: Float32Array[] };

async function runOn(backend: string, fn: () => tf.Tensor[]): Promise<Outs> {
  const prev = tf.getBackend();
  await tf.setBackend(backend);
  try {
    const outs = tf.tidy(fn);
    const res = { shapes: outs.map((t) => t.shape), values: outs.map((t) => t.dataSync() as Float32Array) };
    tf.dispose(outs);
    return res;
  } finally {
    await tf.setBackend(prev);
  }
}

/**
 * Run `fn` on the current backend (wasm in the test setup) and on cpu (`refFn` there when given:
 * an equivalent formulation, for ops whose cpu kernel is itself wrong); return the largest
 * relative error over all outputs (and throw if shapes differ).
 */
export async function compareWithCpu(fn: () => tf.Tensor[], refFn: () => tf.Tensor[] = fn): Promise<number> {
  const here = await runOn(tf.getBackend(), fn);
  const ref = await runOn('cpu', refFn);
  let worst = 0;
  for (let i = 0; i < ref.values.length; i++) {
    if (JSON.stringify(here.shapes[i]) !== JSON.stringify(ref.shapes[i])) {
      throw new Error(
        `output ${i}: shape ${JSON.stringify(here.shapes[i])} here vs ${JSON.stringify(ref.shapes[i])} on cpu`,
      );
    }
    worst = Math.max(worst, relErr(here.values[i], ref.values[i]));
  }
  return worst;
}

/**
 * Runs `run` once (caches warm up), then `times` more: neither the engine's tensors nor the backend's
 * buffers may grow (diffguide's wasm kernels allocate and free below the engine).
 */
export function expectNoLeaks(run: () => void, times = 10): void {
  run();
  const tensors = tf.memory().numTensors;
  const ids = tf.engine().backend.numDataIds();
  for (let i = 0; i < times; i++) run();
  expect(tf.memory().numTensors).to.equal(tensors);
  expect(tf.engine().backend.numDataIds()).to.equal(ids);
}
