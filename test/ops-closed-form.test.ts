/**
 * The closed-form gradients of lib/ops (layerNorm, quickGelu) against autodiff of the plain formula,
 * the fused linear (used outside gradient recording) against matMul + add, and groupNorm's folded
 * forward against its taped path and the formula.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { groupNorm, layerNorm, linear, quickGelu } from '../lib/ops/nn.js';
import { rand } from './fastgrad_util.js';

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).to.deep.equal(b.shape);
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

/** Gradients of sum(f(xs) * w) w.r.t. every input. */
function grads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], w: tf.Tensor): tf.Tensor[] {
  return tf.grads((...a: tf.Tensor[]) =>
    f(...a)
      .mul(w)
      .sum(),
  )(xs);
}

describe('lib/ops closed-form gradients equal autodiff of the formula', () => {
  it('layerNorm: value and d/dx, d/dgamma, d/dbeta over leading axes [3, 7, 16]', () => {
    tf.tidy(() => {
      const xs = [rand([3, 7, 16], 1, 3), rand([16], 2), rand([16], 3)];
      const plain = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const m = x.mean(-1, true);
        const v = x.sub(m).square().mean(-1, true);
        return x.sub(m).div(v.add(1e-5).sqrt()).mul(g).add(b);
      };
      const ours = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5);
      expect(maxDiff(ours(xs[0], xs[1], xs[2]), plain(xs[0], xs[1], xs[2]))).to.be.below(1e-5);
      const w = rand([3, 7, 16], 4);
      const a = grads(ours as never, xs, w);
      const r = grads(plain as never, xs, w);
      a.forEach((g, i) =>
        expect(maxDiff(g, r[i]), `grad ${i}`).to.be.below(1e-4 * Math.max(1, r[i].abs().max().dataSync()[0])),
      );
    });
  });

  it('quickGelu: value and gradient', () => {
    tf.tidy(() => {
      const x = rand([4, 33], 5, 4);
      const plain = (t: tf.Tensor) => t.mul(tf.sigmoid(t.mul(1.702)));
      expect(maxDiff(quickGelu(x), plain(x))).to.be.below(1e-6);
      const w = rand([4, 33], 6);
      expect(maxDiff(grads((t) => quickGelu(t), [x], w)[0], grads(plain, [x], w)[0])).to.be.below(1e-5);
    });
  });

  it('linear: fused forward (no tape) equals matMul + add; gradients under a tape match too', () => {
    tf.tidy(() => {
      const [x, wt, b] = [rand([2, 5, 12], 7), rand([12, 7], 8), rand([7], 9)];
      const ref = tf
        .matMul(x.reshape([10, 12]), wt)
        .add(b)
        .reshape([2, 5, 7]);
      expect(maxDiff(linear(x, wt as tf.Tensor2D, b as tf.Tensor1D), ref)).to.be.below(1e-5);
      const w = rand([2, 5, 7], 10);
      const a = grads((xx, ww, bb) => linear(xx, ww as tf.Tensor2D, bb as tf.Tensor1D), [x, wt, b], w);
      const r = grads(
        (xx, ww, bb) =>
          tf
            .matMul(xx.reshape([10, 12]), ww)
            .add(bb)
            .reshape([2, 5, 7]),
        [x, wt, b],
        w,
      );
      a.forEach((g, i) => expect(maxDiff(g, r[i]), `grad ${i}`).to.be.below(1e-4));
    });
  });

  it('groupNorm: the folded forward (no tape; with and without the averaging-matrix cache) equals the taped path, scale-shift and SiLU included', () => {
    tf.tidy(() => {
      const [x, g, b] = [rand([2, 6, 5, 64], 11), rand([64], 12), rand([64], 13)];
      const [scale1, shift] = [rand([2, 64], 14).add(1) as tf.Tensor2D, rand([2, 64], 15) as tf.Tensor2D];
      const opts = { scale1, shift, silu: true };
      // Under a tape (tf.grad records), the customGrad path; its value is the reference here.
      let taped: tf.Tensor | null = null;
      tf.grad((xx: tf.Tensor) => {
        taped = tf.keep(groupNorm(xx, 32, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5, opts));
        return taped.sum();
      })(x);
      const plain = groupNorm(x, 32, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5, opts);
      const cached = groupNorm(x, 32, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5, { ...opts, groupAverager: new Map() });
      expect(maxDiff(plain, taped!)).to.be.below(1e-5);
      expect(maxDiff(cached, taped!)).to.be.below(1e-5);
      // and the taped value against the textbook formula
      const x5 = x.reshape([2, 6 * 5, 32, 2]);
      const mean = x5.mean([1, 3], true);
      const variance = x5.sub(mean).square().mean([1, 3], true);
      const ref = x5
        .sub(mean)
        .div(variance.add(1e-5).sqrt())
        .reshape([2, 6, 5, 64])
        .mul(g)
        .add(b)
        .mul(scale1.reshape([2, 1, 1, 64]))
        .add(shift.reshape([2, 1, 1, 64]));
      expect(maxDiff(taped!, ref.mul(tf.sigmoid(ref)))).to.be.below(1e-5);
      tf.dispose(taped!);
    });
  });
});
