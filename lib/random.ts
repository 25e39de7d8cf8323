/**
 * Seeded randomness. Every stochastic function in diffguide takes a seed (or an `Rng`), so the
 * same seed gives the same output on the same backend.
 */
import * as tf from '@tensorflow/tfjs';

/** Derive a 31-bit seed from a base seed and a stream index (splitmix-style mixing). */
export function deriveSeed(seed: number, stream: number): number {
  let z = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul((stream + 1) | 0, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) & 0x7fffffff;
}

/**
 * `n` deterministic values in [-1, 1) from a 32-bit xorshift stream: the same on every backend
 * and platform (no tfjs RNG), for self-checks and test data.
 */
export function xorshiftUniform(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/** A counter-based stream of seeds; each draw uses a fresh derived seed. */
export class Rng {
  private counter = 0;
  constructor(readonly seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`seed must be a finite number, got ${seed}`);
  }
  /** The next derived integer seed. */
  nextSeed(): number {
    return deriveSeed(this.seed, this.counter++);
  }
  /** Standard normal tensor of `shape`. */
  normal<R extends tf.Rank>(shape: number[], dtype: 'float32' = 'float32'): tf.Tensor<R> {
    return tf.randomNormal(shape as number[] as never, 0, 1, dtype, this.nextSeed()) as unknown as tf.Tensor<R>;
  }
  /** Uniform [lo, hi) tensor of `shape`. */
  uniform<R extends tf.Rank>(shape: number[], lo = 0, hi = 1): tf.Tensor<R> {
    return tf.randomUniform(shape as never, lo, hi, 'float32', this.nextSeed()) as unknown as tf.Tensor<R>;
  }
  /** A JS float in [0, 1) (mulberry32 on a derived seed). */
  float(): number {
    let a = this.nextSeed();
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** A new independent Rng (for handing to a sub-task). */
  fork(): Rng {
    return new Rng(this.nextSeed());
  }
}
