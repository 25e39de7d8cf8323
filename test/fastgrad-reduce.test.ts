/**
 * The wasm Sum kernel (lib/fastgrad/reduce.ts): which reductions become a column sum, and results
 * against the cpu backend for those and for the rest (stock kernel).
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { colSumPlan } from '../lib/fastgrad/reduce.js';
import { compareWithCpu, rand } from './fastgrad_util.js';

describe('fastgrad: sum over leading and middle axes on wasm', () => {
  it('recognises column sums ([p, r, c] -> [p, c], c > 1)', () => {
    expect(colSumPlan([16, 32, 32, 8], [0, 1, 2])).to.deep.equal({ p: 1, r: 16 * 32 * 32, c: 8 });
    expect(colSumPlan([4, 6, 5, 8], [1, 2])).to.deep.equal({ p: 4, r: 30, c: 8 });
    expect(colSumPlan([4, 6, 5, 8], [-3, -2])).to.deep.equal({ p: 4, r: 30, c: 8 });
    expect(colSumPlan([4, 6, 5, 8], [0])).to.deep.equal({ p: 1, r: 4, c: 240 });
    expect(colSumPlan([4, 6, 5, 8], [3])).to.equal(null); // innermost: the stock kernel
    expect(colSumPlan([4, 6, 5, 8], [0, 2])).to.equal(null); // not one block
    expect(colSumPlan([4, 6, 5, 8], [2, 3])).to.equal(null); // reaches the innermost axis
  });

  const cases: [number[], number[], boolean][] = [
    [[16, 17, 9, 12], [0, 1, 2], false], // a bias gradient
    [[3, 7, 5, 6], [1, 2], true], // per-sample sums (broadcast add over H, W), keepDims; c % 4 != 0
    [[5, 9, 3], [0], false],
    [[300, 40], [0], false],
    [[4, 6, 5, 8], [3], false], // stock
    [[4, 6, 5, 8], [0, 2], true], // stock
  ];
  it('a sum over every axis (axis null) equals the cpu backend', async () => {
    expect(
      await compareWithCpu(() => [tf.sum(rand([3, 4, 8], 7)), tf.sum(rand([3, 4, 8], 8), null, true)]),
    ).to.be.lessThan(1e-5);
  });
  for (const [shape, axes, keepDims] of cases) {
    it(`sum of ${JSON.stringify(shape)} over ${JSON.stringify(axes)}${keepDims ? ' (keepDims)' : ''} equals the cpu backend`, async () => {
      const err = await compareWithCpu(() => [tf.sum(rand(shape, 3), axes, keepDims)]);
      expect(err).to.be.lessThan(1e-5);
    });
  }

  it('the gradient of a broadcast bias add (a column sum) equals the cpu backend', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([8, 10, 10, 16], 4);
      const b = rand([16], 5);
      const dy = rand([8, 10, 10, 16], 6);
      return [tf.grad((bb: tf.Tensor) => x.add(bb).mul(dy).sum())(b)];
    });
    expect(err).to.be.lessThan(1e-5);
  });
});
