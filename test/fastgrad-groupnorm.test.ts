/**
 * The fused forward GroupNorm on wasm (lib/fastgrad/groupnorm.ts, one call into our SIMD module)
 * against the cpu backend (tfjs ops), with scale-shift and SiLU, several group sizes, large
 * activations (the sigmoid's range reduction and clamps), and no leaks.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { groupNorm } from '../lib/ops/nn.js';
import { fusedGroupNormApplies, fusedGroupNormTapedApplies } from '../lib/fastgrad/groupnorm.js';
import { compareWithCpu, expectNoLeaks, rand } from './fastgrad_util.js';

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

  // Under a tape: the fused forward + gradient pair against the cpu backend's closed-form ops, for
  // every input (x, γ, β, scale1, shift) and a non-uniform upstream gradient.
  for (const c of cases) {
    it(`gradient: ${c.name}`, async () => {
      expect(fusedGroupNormTapedApplies(tf.zeros(c.shape))).to.equal(true);
      const err = await compareWithCpu(() => {
        const n = c.shape[0];
        const ch = c.shape[c.shape.length - 1];
        const x = rand(c.shape, 1, 3);
        const w = rand(c.shape, 9);
        const g = rand([ch], 2);
        const b = rand([ch], 3);
        const s1 = c.name.startsWith('large') ? rand([n, ch], 4, 60) : rand([n, ch], 4).add(1);
        const sh = rand([n, ch], 5);
        const f = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor, ss1?: tf.Tensor, ssh?: tf.Tensor) => {
          const opts = c.ss
            ? { scale1: ss1 as tf.Tensor2D, shift: ssh as tf.Tensor2D, silu: c.silu }
            : { silu: c.silu };
          const y = groupNorm(xx, c.groups, gg as tf.Tensor1D, bb as tf.Tensor1D, 1e-5, opts);
          return y.mul(w).sum();
        };
        const { value, grads } = tf.valueAndGrads(f)(c.ss ? [x, g, b, s1, sh] : [x, g, b]);
        return [value, ...grads];
      });
      expect(err).to.be.lessThan(2e-5);
    });
  }

  it('gradient at the UNet size the forward-only kernel leaves to tfjs ([8, 32, 32, 32])', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([8, 32, 32, 32], 11, 2);
      const w = rand([8, 32, 32, 32], 12);
      const g = rand([32], 13) as tf.Tensor1D;
      const b = rand([32], 14) as tf.Tensor1D;
      const s1 = rand([8, 32], 15).add(1) as tf.Tensor2D;
      const sh = rand([8, 32], 16) as tf.Tensor2D;
      return tf.grads((xx: tf.Tensor) =>
        groupNorm(xx, 32, g, b, 1e-5, { scale1: s1, shift: sh, silu: true }).mul(w).sum(),
      )([x]);
    });
    expect(err).to.be.lessThan(2e-5);
  });

  it('gradient leaves no tensors or buffers behind', () => {
    const x = rand([2, 6, 5, 64], 6);
    const g = rand([64], 7) as tf.Tensor1D;
    const b = rand([64], 8) as tf.Tensor1D;
    const s1 = rand([2, 64], 9) as tf.Tensor2D;
    const sh = rand([2, 64], 10) as tf.Tensor2D;
    const grad = tf.grads((xx: tf.Tensor, gg: tf.Tensor) =>
      groupNorm(xx, 32, gg as tf.Tensor1D, b, 1e-5, { scale1: s1, shift: sh, silu: true }).sum(),
    );
    const run = () => tf.dispose(grad([x, g]));
    expectNoLeaks(run);
    tf.dispose([x, g, b, s1, sh]);
  });

  it('leaves no tensors or buffers behind', () => {
    const x = rand([2, 6, 5, 64], 6);
    const g = rand([64], 7) as tf.Tensor1D;
    const b = rand([64], 8) as tf.Tensor1D;
    const run = () => tf.tidy(() => groupNorm(x, 32, g, b, 1e-5, { silu: true }).dataSync());
    expectNoLeaks(run);
    tf.dispose([x, g, b]);
  });
});
