/**
 * The fused LayerNorm on wasm (lib/fastgrad/layernorm.ts, one call into our SIMD module forward
 * and one for the gradient) against the cpu backend (tfjs ops): forward without a tape, value and
 * gradients w.r.t. x, γ, β under one with a non-uniform upstream gradient, an offset input (the
 * two-pass statistics), and no leaks.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { layerNorm } from '../lib/ops/nn.js';
import { fusedLayerNormApplies } from '../lib/fastgrad/layernorm.js';
import { compareWithCpu, expectNoLeaks, rand } from './fastgrad_util.js';

describe('fastgrad: fused LayerNorm on wasm matches the cpu backend', () => {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  it('applies to the shapes below, not to C % 4 != 0', () => {
    const a = tf.zeros([8, 65, 128]);
    const b = tf.zeros([3, 6]);
    expect(fusedLayerNormApplies(a)).to.equal(true);
    expect(fusedLayerNormApplies(b)).to.equal(false);
    tf.dispose([a, b]);
  });

  const cases = [
    { name: 'CLIP tokens [4, 17, 96]', shape: [4, 17, 96], offset: 0 },
    { name: 'rows of 4 [5, 4]', shape: [5, 4], offset: 0 },
    { name: 'offset input (mean 50) [3, 7, 32]', shape: [3, 7, 32], offset: 50 },
  ];
  for (const c of cases) {
    it(`forward (no tape): ${c.name}`, async () => {
      const err = await compareWithCpu(() => {
        const ch = c.shape[c.shape.length - 1];
        const x = rand(c.shape, 1, 2).add(c.offset);
        return [layerNorm(x, rand([ch], 2) as tf.Tensor1D, rand([ch], 3) as tf.Tensor1D, 1e-5)];
      });
      expect(err).to.be.lessThan(1e-5);
    });
    it(`value and d/dx, d/dgamma, d/dbeta: ${c.name}`, async () => {
      const err = await compareWithCpu(() => {
        const ch = c.shape[c.shape.length - 1];
        const x = rand(c.shape, 1, 2).add(c.offset);
        const w = rand(c.shape, 4);
        const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          layerNorm(xx, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5)
            .mul(w)
            .sum();
        const { value, grads } = tf.valueAndGrads(f)([x, rand([ch], 2), rand([ch], 3)]);
        return [value, ...grads];
      });
      expect(err).to.be.lessThan(2e-5);
    });
  }

  it('leaves no tensors or buffers behind', () => {
    const x = rand([2, 9, 32], 5);
    const g = rand([32], 6) as tf.Tensor1D;
    const b = rand([32], 7) as tf.Tensor1D;
    const grad = tf.grads((xx: tf.Tensor, gg: tf.Tensor) =>
      layerNorm(xx, gg as tf.Tensor1D, b, 1e-5)
        .square()
        .sum(),
    );
    const run = () => {
      tf.dispose(grad([x, g]));
      tf.tidy(() => layerNorm(x, g, b, 1e-5).dataSync());
    };
    expectNoLeaks(run);
    tf.dispose([x, g, b]);
  });
});
