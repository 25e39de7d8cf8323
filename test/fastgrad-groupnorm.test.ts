/**
 * The fused forward GroupNorm on wasm (lib/fastgrad/groupnorm.ts, one call into our SIMD module)
 * against the cpu backend (tfjs ops), with scale-shift and SiLU, several group sizes, large
 * activations (the sigmoid's range reduction and clamps), and no leaks.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { groupNorm } from '../lib/ops/nn.js';
import { fusedGroupNormApplies } from '../lib/fastgrad/groupnorm.js';
import { compareWithCpu, rand } from './fastgrad_util.js';

describe('fastgrad: fused forward GroupNorm on wasm matches the cpu backend', () => {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  it('applies to the shapes below (else they would test the op fallback)', () => {
    tf.tidy(() => {
      expect(fusedGroupNormApplies(tf.zeros([2, 6, 5, 64]))).to.equal(true);
      expect(fusedGroupNormApplies(tf.zeros([3, 7, 12]))).to.equal(true);
      expect(fusedGroupNormApplies(tf.zeros([2, 6, 5, 6]))).to.equal(false); // C % 4
      expect(fusedGroupNormApplies(tf.zeros([16, 32, 32, 32]))).to.equal(false); // large: threaded tfjs kernels
    });
  });

  const cases: { name: string; shape: number[]; groups: number; scale: number; ss: boolean; silu: boolean }[] = [
    {
      name: 'UNet norm: 32 groups of 2, scale-shift, SiLU',
      shape: [2, 6, 5, 64],
      groups: 32,
      scale: 1,
      ss: true,
      silu: true,
    },
    { name: 'one channel per group, SiLU', shape: [1, 4, 4, 32], groups: 32, scale: 1, ss: false, silu: true },
    { name: 'groups of 8 over [N, L, C], plain', shape: [3, 7, 24], groups: 3, scale: 1, ss: false, silu: false },
    { name: 'large activations (sigmoid clamps)', shape: [2, 5, 5, 16], groups: 4, scale: 1, ss: true, silu: true },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const err = await compareWithCpu(() => {
        const n = c.shape[0];
        const ch = c.shape[c.shape.length - 1];
        const x = rand(c.shape, 1, 3);
        const g = rand([ch], 2);
        const b = rand([ch], 3);
        // scale1 up to ±60 drives the SiLU input to ±100 and beyond
        const s1 = c.name.startsWith('large') ? rand([n, ch], 4, 60) : rand([n, ch], 4).add(1);
        const sh = rand([n, ch], 5);
        const opts = c.ss ? { scale1: s1 as tf.Tensor2D, shift: sh as tf.Tensor2D, silu: c.silu } : { silu: c.silu };
        return [groupNorm(x, c.groups, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5, opts)];
      });
      expect(err).to.be.lessThan(1e-5);
    });
  }

  it('leaves no tensors or buffers behind', () => {
    const x = rand([2, 6, 5, 64], 6);
    const g = rand([64], 7) as tf.Tensor1D;
    const b = rand([64], 8) as tf.Tensor1D;
    const run = () => tf.tidy(() => groupNorm(x, 32, g, b, 1e-5, { silu: true }).dataSync());
    run();
    const tensors = tf.memory().numTensors;
    const ids = tf.engine().backend.numDataIds();
    for (let i = 0; i < 10; i++) run();
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(tf.engine().backend.numDataIds()).to.equal(ids);
    tf.dispose([x, g, b]);
  });
});
