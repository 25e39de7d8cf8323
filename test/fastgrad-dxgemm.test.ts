import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { compareWithCpu, rand } from './fastgrad_util.js';
import { gemmDxApplies } from '../lib/fastgrad/conv.js';
import type { WasmBackend } from '../lib/fastgrad/wasm.js';

const TOL = 1e-5;

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

/** Stride-1 geometries the GEMM + col2im input gradient must get right (pads that cut rows and columns off, batches, rectangles). */
const cases: { name: string; x: number[]; w: number[]; pad: Pad }[] = [
  { name: '3x3 same', x: [1, 8, 8, 16], w: [3, 3, 16, 24], pad: 'same' },
  { name: '3x3 valid, batch 2, rectangular input', x: [2, 5, 7, 8], w: [3, 3, 8, 12], pad: 'valid' },
  { name: '1x1', x: [2, 3, 4, 12], w: [1, 1, 12, 20], pad: 'valid' },
  { name: '5x5 same on a 4x4 input (taps reach past every side)', x: [1, 4, 4, 6], w: [5, 5, 6, 10], pad: 'same' },
  {
    name: '3x2 kernel, asymmetric explicit pad',
    x: [2, 6, 5, 4],
    w: [3, 2, 4, 9],
    pad: [
      [0, 0],
      [2, 0],
      [0, 1],
      [0, 0],
    ],
  },
  { name: '2x2 same (pad after only)', x: [3, 5, 6, 5], w: [2, 2, 5, 7], pad: 'same' },
];

function withDxGemm<T>(mode: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.DIFFGUIDE_DX_GEMM;
  if (mode === undefined) delete process.env.DIFFGUIDE_DX_GEMM;
  else process.env.DIFFGUIDE_DX_GEMM = mode;
  return fn().finally(() => {
    if (saved === undefined) delete process.env.DIFFGUIDE_DX_GEMM;
    else process.env.DIFFGUIDE_DX_GEMM = saved;
  });
}

describe('fastgrad: conv input gradient as W · dyᵀ and col2im (DIFFGUIDE_DX_GEMM=1) matches the cpu backend', () => {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });
  for (const c of cases) {
    it(c.name, async () => {
      const err = await withDxGemm('1', () =>
        compareWithCpu(() => {
          const x = rand(c.x, 11) as tf.Tensor4D;
          const w = rand(c.w, 12) as tf.Tensor4D;
          return [
            tf.grad((a: tf.Tensor) => {
              const y = tf.conv2d(a as tf.Tensor4D, w, 1, c.pad as 'same');
              return y.mul(rand(y.shape, 13)).sum();
            })(x),
          ];
        }),
      );
      expect(err).to.be.lessThan(TOL);
    });
  }

  it('conv2dTranspose (Conv2DBackpropInput called directly) on that path', async () => {
    const err = await withDxGemm('1', () =>
      compareWithCpu(() => [
        tf.conv2dTranspose(
          rand([2, 6, 6, 10], 21) as tf.Tensor4D,
          rand([3, 3, 7, 10], 22) as tf.Tensor4D,
          [2, 6, 6, 7],
          1,
          'same',
        ),
      ]),
    );
    expect(err).to.be.lessThan(TOL);
  });

  it('repeated calls free what they allocate (tensor count and wasm bytes stay put)', async () => {
    await withDxGemm('1', async () => {
      const dy = rand([1, 4, 4, 32], 31) as tf.Tensor4D;
      const w = rand([3, 3, 16, 32], 32) as tf.Tensor4D;
      const once = () => tf.tidy(() => tf.conv2dTranspose(dy, w, [1, 4, 4, 16], 1, 'same').sum().dataSync());
      once();
      const before = tf.memory();
      for (let i = 0; i < 3; i++) once();
      const after = tf.memory();
      expect(after.numTensors).to.equal(before.numTensors);
      expect(after.numBytes).to.equal(before.numBytes);
      tf.dispose([dy, w]);
    });
  });

  it('is chosen for few pixels and many channels, not where Winograd or the rotated filter is cheaper', () => {
    const be = tf.backend() as unknown as WasmBackend;
    const g = { sh: 1, sw: 1, dh: 1, dw: 1, padTop: 1, padLeft: 1 };
    // The 256 px guided-diffusion UNet's lowest level: 1024 -> 1024 channels at 8x8, batch 1.
    expect(gemmDxApplies(be, [1, 8, 8, 1024], [3, 3, 1024, 1024], 8, 8, g)).to.equal(true);
    // 64 channels at 32x32, batch 4: Winograd (many tiles) or the rotated filter, not this.
    expect(gemmDxApplies(be, [4, 32, 32, 64], [3, 3, 64, 64], 32, 32, g)).to.equal(false);
    // Strided convolutions keep their phase decomposition.
    expect(gemmDxApplies(be, [1, 4, 4, 1024], [3, 3, 1024, 1024], 8, 8, { ...g, sh: 2, sw: 2 })).to.equal(false);
  });
});
