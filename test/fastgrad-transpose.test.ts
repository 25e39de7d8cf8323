/**
 * The wasm Transpose kernel (lib/fastgrad/transpose.ts): which permutations become a batched 2-D
 * transpose, and bit-exact results against the cpu backend for those and for the rest.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { batched2dPlan } from '../lib/fastgrad/transpose.js';
import { compareWithCpu, rand } from './fastgrad_util.js';

describe('fastgrad: transpose on wasm', () => {
  it('recognises batched 2-D transposes after dropping size-1 axes and merging adjacent ones', () => {
    expect(batched2dPlan([7, 13], [1, 0])).to.deep.equal({ p: 1, a: 7, b: 13 });
    expect(batched2dPlan([16, 64, 40], [0, 2, 1])).to.deep.equal({ p: 16, a: 64, b: 40 });
    expect(batched2dPlan([4, 32, 32, 64], [3, 0, 1, 2])).to.deep.equal({ p: 1, a: 4 * 32 * 32, b: 64 });
    expect(batched2dPlan([4, 32, 32, 64], [1, 2, 3, 0])).to.deep.equal({ p: 1, a: 4, b: 32 * 32 * 64 });
    expect(batched2dPlan([2, 1, 9, 4, 1], [0, 2, 3, 1, 4])).to.equal(null); // moves nothing: the identity
    expect(batched2dPlan([2, 5, 9, 1], [0, 3, 2, 1])).to.deep.equal({ p: 2, a: 5, b: 9 });
    expect(batched2dPlan([8, 65, 4, 64], [0, 2, 1, 3])).to.equal(null); // blocks of 64: the stock kernel
    expect(batched2dPlan([2, 3, 4], [2, 0, 1])).to.deep.equal({ p: 1, a: 6, b: 4 });
    expect(batched2dPlan([2, 3, 4], [1, 2, 0])).to.deep.equal({ p: 1, a: 2, b: 12 });
    expect(batched2dPlan([2, 3, 4], [2, 1, 0])).to.equal(null); // a full reversal is not a 2-D transpose
  });

  const cases: [number[], number[]][] = [
    [
      [16, 64, 40],
      [0, 2, 1],
    ], // blocks only
    [
      [7, 13],
      [1, 0],
    ], // edges on both sides
    [
      [3, 5, 6, 9],
      [3, 0, 1, 2],
    ], // channels first
    [
      [2, 9, 6, 5],
      [0, 3, 1, 2],
    ], // batched, edges
    [
      [5, 1, 7, 2],
      [2, 1, 0, 3],
    ], // the stock kernel
    [
      [2, 3, 4],
      [2, 1, 0],
    ], // the stock kernel
  ];
  for (const [shape, perm] of cases) {
    it(`float32 and int32 ${JSON.stringify(shape)} by ${JSON.stringify(perm)} equal the cpu backend exactly`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand(shape, 1);
        return [tf.transpose(x, perm), tf.transpose(x.mul(1000).toInt(), perm).toFloat()];
      });
      expect(err).to.equal(0);
    });
  }
});
