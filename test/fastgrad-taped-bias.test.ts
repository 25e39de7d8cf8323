/**
 * Convolutions and linear layers with a bias under a gradient tape on wasm run as the fused kernel
 * itself (FusedConv2D / _FusedMatMul with the gradients lib/fastgrad/index.ts registers): values and
 * gradients w.r.t. input, weights and bias against the cpu backend (conv + add there), for 3x3
 * stride 1 (Winograd), stride 2 with PyTorch and asymmetric padding, 1x1 and a linear layer; the
 * taped forward has no Add kernel left; no leaks.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { conv2d, type ConvPadding } from '../lib/ops/conv.js';
import { biasKernelUnderTape, linear } from '../lib/ops/nn.js';
import { compareWithCpu, expectNoLeaks, rand } from './fastgrad_util.js';

describe('fastgrad: bias kernels under a tape on wasm match the cpu backend', () => {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  it('applies on wasm to a rank-1 bias', () => {
    const b = tf.zeros([8]);
    expect(biasKernelUnderTape(b)).to.equal(true);
    b.dispose();
  });

  const convs: {
    name: string;
    x: number[];
    k: number;
    cout: number;
    stride: number;
    pad?: ConvPadding;
    silu?: boolean;
  }[] = [
    { name: '3x3 stride 1 (Winograd), SiLU after', x: [2, 9, 8, 16], k: 3, cout: 12, stride: 1, silu: true },
    { name: '3x3 stride 2, PyTorch padding 1', x: [2, 9, 8, 8], k: 3, cout: 16, stride: 2, pad: 1 },
    {
      name: '3x3 stride 2, asymmetric padding (DDPM)',
      x: [1, 8, 8, 8],
      k: 3,
      cout: 8,
      stride: 2,
      pad: [
        [0, 1],
        [0, 1],
      ],
    },
    { name: '1x1 (a product over pixels)', x: [2, 5, 6, 12], k: 1, cout: 20, stride: 1, pad: 0 },
  ];
  for (const c of convs) {
    it(`conv2d ${c.name}: value and d/dx, d/dw, d/db`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand(c.x, 1);
        const w = rand([c.k, c.k, c.x[3], c.cout], 2, 0.3);
        const b = rand([c.cout], 3);
        const f = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => {
          const y = conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, bb as tf.Tensor1D, {
            stride: c.stride,
            pad: c.pad,
            activation: c.silu ? 'silu' : 'linear',
          });
          return y.mul(rand(y.shape, 4)).sum();
        };
        const { value, grads } = tf.valueAndGrads(f)([x, w, b]);
        return [value, ...grads];
      });
      expect(err).to.be.lessThan(1e-5);
    });
  }

  it('linear over [N, L, C]: value and d/dx, d/dw, d/db', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([3, 7, 24], 5);
      const w = rand([24, 40], 6, 0.2);
      const b = rand([40], 7);
      const f = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        linear(xx as tf.Tensor3D, ww as tf.Tensor2D, bb as tf.Tensor1D)
          .mul(rand([3, 7, 40], 8))
          .sum();
      const { value, grads } = tf.valueAndGrads(f)([x, w, b]);
      return [value, ...grads];
    });
    expect(err).to.be.lessThan(1e-5);
  });

  it('the taped forward of a conv and a linear layer runs no Add kernel (the bias rides in the kernel)', async () => {
    const x = rand([1, 6, 6, 8], 9) as tf.Tensor4D;
    const w = rand([3, 3, 8, 8], 10) as tf.Tensor4D;
    const wl = rand([8, 4], 11) as tf.Tensor2D;
    const b = rand([8], 12) as tf.Tensor1D;
    const bl = rand([4], 13) as tf.Tensor1D;
    const grad = tf.grad((xx: tf.Tensor) => linear(conv2d(xx as tf.Tensor4D, w, b), wl, bl).sum());
    const p = await tf.profile(() => grad(x));
    const names = p.kernels.map((k) => k.name);
    expect(names).to.include('FusedConv2D');
    expect(names).to.include('_FusedMatMul');
    expect(names).to.not.include('Add');
    tf.dispose([x, w, wl, b, bl]);
  });

  it('leaves no tensors or buffers behind', () => {
    const x = rand([2, 6, 6, 8], 14) as tf.Tensor4D;
    const w = rand([3, 3, 8, 8], 15) as tf.Tensor4D;
    const b = rand([8], 16) as tf.Tensor1D;
    const grad = tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
      conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, bb as tf.Tensor1D, { stride: 2, pad: 1 }).sum(),
    );
    const run = () => tf.dispose(grad([x, w, b]));
    expectNoLeaks(run);
    tf.dispose([x, w, b]);
  });
});
