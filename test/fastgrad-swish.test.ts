/**
 * SiLU and QuickGELU on wasm as one call into our SIMD module each way (lib/fastgrad/swish.ts)
 * against the cpu backend (tfjs ops): forward without a tape, value and gradient under one,
 * large inputs (the sigmoid's clamps), and no leaks.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { quickGelu, silu } from '../lib/ops/nn.js';
import { fusedSwishApplies } from '../lib/fastgrad/swish.js';
import { compareWithCpu, expectNoLeaks, rand } from './fastgrad_util.js';

describe('fastgrad: fused SiLU / QuickGELU on wasm match the cpu backend', () => {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  it('applies to the shapes below; not to sizes % 4 != 0, nor without a tape to large inputs', () => {
    const a = tf.zeros([2, 5, 6, 8]);
    const b = tf.zeros([3, 5]);
    const c = tf.zeros([16, 32, 32, 32]);
    expect(fusedSwishApplies(a, false)).to.equal(true);
    expect(fusedSwishApplies(b, true)).to.equal(false);
    expect(fusedSwishApplies(c, false)).to.equal(false);
    expect(fusedSwishApplies(c, true)).to.equal(true);
    tf.dispose([a, b, c]);
  });

  const fns = [
    { name: 'silu', f: silu },
    { name: 'quickGelu', f: quickGelu },
  ];
  for (const { name, f } of fns) {
    for (const scale of [3, 60]) {
      it(`${name} forward (no tape), inputs up to ±${scale}`, async () => {
        const err = await compareWithCpu(() => [f(rand([2, 5, 6, 8], 1, scale))]);
        expect(err).to.be.lessThan(1e-5);
      });
      it(`${name} value and gradient, inputs up to ±${scale}`, async () => {
        const err = await compareWithCpu(() => {
          const x = rand([2, 5, 6, 8], 1, scale);
          const w = rand([2, 5, 6, 8], 2);
          const { value, grad } = tf.valueAndGrad((xx: tf.Tensor) => f(xx).mul(w).sum())(x);
          return [value, grad];
        });
        expect(err).to.be.lessThan(1e-5);
      });
    }
  }

  it('leaves no tensors or buffers behind', () => {
    const x = rand([4, 64], 3);
    const grad = tf.grad((xx: tf.Tensor) => quickGelu(silu(xx)).sum());
    const run = () => {
      tf.dispose(grad(x));
      tf.tidy(() => silu(x).dataSync());
    };
    expectNoLeaks(run);
    x.dispose();
  });
});
