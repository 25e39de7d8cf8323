import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { compareWithCpu, rand } from './fastgrad_util.js';

const TOL = 1e-5;

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase { name: string; x: number[]; w: number[]; stride: number; pad: Pad; dilation?: number }

const convCases: ConvCase[] = [
  { name: '3x3 s1 same', x: [2, 9, 8, 5], w: [3, 3, 5, 7], stride: 1, pad: 'same' },
  { name: '3x3 s1 valid', x: [2, 9, 8, 5], w: [3, 3, 5, 7], stride: 1, pad: 'valid' },
  { name: '3x3 s2 same (even)', x: [2, 8, 8, 4], w: [3, 3, 4, 6], stride: 2, pad: 'same' },
  { name: '3x3 s2 same (odd)', x: [2, 9, 7, 4], w: [3, 3, 4, 6], stride: 2, pad: 'same' },
  { name: '3x3 s2 valid', x: [2, 9, 8, 4], w: [3, 3, 4, 6], stride: 2, pad: 'valid' },
  { name: '3x3 s2 explicit 1', x: [2, 8, 8, 4], w: [3, 3, 4, 6], stride: 2, pad: 1 },
  { name: 'DDPM down: pad (0,1,0,1) then 3x3 s2 valid', x: [2, 8, 8, 4], w: [3, 3, 4, 6], stride: 2, pad: [[0, 0], [0, 1], [0, 1], [0, 0]] },
  { name: '1x1 s1', x: [2, 6, 6, 8], w: [1, 1, 8, 3], stride: 1, pad: 'valid' },
  { name: '4x4 s2 explicit', x: [1, 10, 10, 3], w: [4, 4, 3, 5], stride: 2, pad: [[0, 0], [1, 2], [2, 1], [0, 0]] },
  { name: '3x3 dilation 2 same', x: [2, 9, 9, 3], w: [3, 3, 3, 4], stride: 1, pad: 'same', dilation: 2 },
  { name: '3x3 dilation 2 valid', x: [1, 10, 9, 3], w: [3, 3, 3, 4], stride: 1, pad: 'valid', dilation: 2 },
  { name: '5x5 s1 same', x: [1, 7, 7, 3], w: [5, 5, 3, 2], stride: 1, pad: 'same' },
];

describe('fastgrad: conv2d gradients match the cpu backend', () => {
  for (const c of convCases) {
    it(`${c.name}: dx, dW`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand(c.x, 1) as tf.Tensor4D;
        const w = rand(c.w, 2) as tf.Tensor4D;
        const f = (a: tf.Tensor4D, b: tf.Tensor4D) => {
          const y = tf.conv2d(a, b, c.stride, c.pad as 'same', 'NHWC', c.dilation ?? 1);
          return y.mul(rand(y.shape, 3)).sum();
        };
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a as tf.Tensor4D, b as tf.Tensor4D))([x, w]);
        return [dx, dw];
      });
      expect(err).to.be.lessThan(TOL);
    });
  }
  it('DDPM asymmetric pad: tf.pad (0,1,0,1) then valid stride-2 conv', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([2, 8, 8, 4], 4);
      const w = rand([3, 3, 4, 6], 5);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => {
        const p = tf.pad(a, [[0, 0], [0, 1], [0, 1], [0, 0]]) as tf.Tensor4D;
        const y = tf.conv2d(p, b as tf.Tensor4D, 2, 'valid');
        return y.mul(rand(y.shape, 6)).sum();
      })([x, w]);
      return [dx, dw];
    });
    expect(err).to.be.lessThan(TOL);
  });
  it('conv2dTranspose forward and gradients (stride 2, same)', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([2, 5, 5, 6], 7) as tf.Tensor4D;
      const w = rand([3, 3, 4, 6], 8) as tf.Tensor4D; // [KH, KW, outC, inC]
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [2, 10, 10, 4], 2, 'same');
      const y = f(x, w);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a, b).mul(rand([2, 10, 10, 4], 9)).sum())([x, w]);
      return [y, dx, dw];
    });
    expect(err).to.be.lessThan(TOL);
  });
  it('fused conv2d (bias + relu) gradients', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([2, 8, 8, 4], 10) as tf.Tensor4D;
      const w = rand([3, 3, 4, 5], 11) as tf.Tensor4D;
      const b = rand([5], 12) as tf.Tensor1D;
      const [dx, dw, db] = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => {
        const y = tf.fused.conv2d({ x: a as tf.Tensor4D, filter: c as tf.Tensor4D, strides: 1, pad: 'same', bias: d, activation: 'linear' });
        return y.mul(rand(y.shape, 13)).sum();
      })([x, w, b]);
      return [dx, dw, db];
    });
    expect(err).to.be.lessThan(TOL);
  });
});
