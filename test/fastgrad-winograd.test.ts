/**
 * Winograd F(2x2, 3x3) convolutions on wasm (lib/fastgrad/winograd.ts): forward (Conv2D,
 * FusedConv2D with bias and ReLU) and the input gradient against the cpu backend, the filter
 * transform cache against stale weights and leaks, and the committed wasm bytes against their source.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { compareWithCpu, rand } from './fastgrad_util.js';
import { winogradApplies, winogradFilterGradApplies } from '../lib/fastgrad/winograd.js';
import { SIMD_WASM_PLAIN, SIMD_WASM_SHARED } from '../lib/fastgrad/simd-wasm.js';
import { compileSimdModule } from '../scripts/compile-wat.js';
import type { WasmBackend } from '../lib/fastgrad/wasm.js';

const TOL = 1e-5;
type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;

/** [N, H, W, Cin, Cout, pad]: even and odd sizes (partial last tiles), every pad form. */
const CASES: [number, number, number, number, number, Pad][] = [
  [2, 16, 16, 8, 16, 'same'],
  [1, 17, 19, 12, 8, 'same'],
  [4, 11, 10, 16, 12, 'valid'],
  [
    1,
    18,
    15,
    8,
    8,
    [
      [0, 0],
      [0, 1],
      [2, 1],
      [0, 0],
    ],
  ],
];

function applies(c: (typeof CASES)[number]): boolean {
  const [n, h, w, cin, cout, pad] = c;
  const info = tf.backend_util.computeConv2DInfo(
    [n, h, w, cin],
    [3, 3, cin, cout],
    1,
    1,
    pad,
    undefined,
    false,
    'channelsLast',
  );
  return winogradApplies(
    tf.backend() as unknown as WasmBackend,
    [n, h, w, cin],
    [3, 3, cin, cout],
    1,
    1,
    1,
    1,
    info.outHeight,
    info.outWidth,
  );
}

describe('fastgrad: Winograd 3x3 convolutions on wasm match the cpu backend', () => {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  it('every case here takes the Winograd path (else these tests would test the stock kernel)', () => {
    for (const c of CASES) expect(applies(c), JSON.stringify(c)).to.equal(true);
    // The weight gradient too where Cout % 8 == 0 (our GEMM's blocks); the 12-channel case checks the fallback.
    const be = tf.backend() as unknown as WasmBackend;
    expect(
      CASES.map(([n, h, w, cin, cout]) =>
        winogradFilterGradApplies(be, [n, h, w, cin], [3, 3, cin, cout], 1, 1, 1, 1, h, w),
      ),
    ).to.deep.equal([true, true, false, true]);
    expect(applies([1, 4, 4, 8, 8, 'same']), 'too few tiles').to.equal(false);
    expect(applies([4, 16, 16, 3, 8, 'same']), 'Cin not a multiple of 4').to.equal(false);
  });

  for (const [n, h, w, cin, cout, pad] of CASES) {
    const name = `${n}x${h}x${w}, ${cin}->${cout}, pad ${JSON.stringify(pad)}`;
    it(`conv2d and fused conv2d (bias; linear and relu): ${name}`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand([n, h, w, cin], 1) as tf.Tensor4D;
        const f = rand([3, 3, cin, cout], 2, 0.3) as tf.Tensor4D;
        const b = rand([cout], 3) as tf.Tensor1D;
        return [
          tf.conv2d(x, f, 1, pad),
          tf.fused.conv2d({ x, filter: f, strides: 1, pad, bias: b }),
          tf.fused.conv2d({ x, filter: f, strides: 1, pad, bias: b, activation: 'relu' }),
        ];
      });
      expect(err).to.be.lessThan(TOL);
    });

    it(`input and filter gradients: ${name}`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand([n, h, w, cin], 4) as tf.Tensor4D;
        const f = rand([3, 3, cin, cout], 5, 0.3) as tf.Tensor4D;
        const info = tf.backend_util.computeConv2DInfo(x.shape, f.shape, 1, 1, pad, undefined, false, 'channelsLast');
        const dy = rand([n, info.outHeight, info.outWidth, cout], 6);
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf
            .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad)
            .mul(dy)
            .sum(),
        )([x, f]);
        return [dx, df];
      });
      expect(err).to.be.lessThan(TOL);
    });
  }

  it('agrees with the stock XNNPACK convolution (DIFFGUIDE_WINOGRAD=0) to float32 rounding', () => {
    const x = rand([2, 16, 16, 16], 7) as tf.Tensor4D;
    const f = rand([3, 3, 16, 16], 8, 0.3) as tf.Tensor4D;
    try {
      const fast = tf.conv2d(x, f, 1, 'same');
      process.env.DIFFGUIDE_WINOGRAD = '0';
      const stock = tf.conv2d(x, f, 1, 'same');
      delete process.env.DIFFGUIDE_WINOGRAD;
      const d = tf.max(tf.abs(fast.sub(stock))).dataSync()[0] / tf.max(tf.abs(stock)).dataSync()[0];
      expect(d).to.be.greaterThan(0); // a different algorithm: not bit-identical, so the fast path ran
      expect(d).to.be.lessThan(TOL);
      tf.dispose([fast, stock]);
    } finally {
      delete process.env.DIFFGUIDE_WINOGRAD;
      tf.dispose([x, f]);
    }
  });

  it('a variable assigned new weights gives the new result (forward and input gradient; no stale filter transform)', async () => {
    const x = rand([1, 16, 16, 8], 9) as tf.Tensor4D;
    const w1 = rand([3, 3, 8, 8], 10, 0.3) as tf.Tensor4D;
    const w2 = rand([3, 3, 8, 8], 11, 0.3) as tf.Tensor4D;
    const v = tf.variable(w1);
    try {
      const run = (w: tf.Tensor4D) =>
        tf.tidy(() => {
          const y = tf.conv2d(x, w, 1, 'same');
          const dx = tf.grad((t: tf.Tensor) =>
            tf
              .conv2d(t as tf.Tensor4D, w, 1, 'same')
              .square()
              .sum(),
          )(x);
          return [y.dataSync() as Float32Array, dx.dataSync() as Float32Array];
        });
      for (const w of [w1, w2, w1, w2]) {
        if (w !== w1 || v.dataId !== w1.dataId) v.assign(w);
        const [y, dx] = run(v);
        const [yr, dxr] = run(w); // the same weights through a tensor of their own
        expect(Array.from(y)).to.deep.equal(Array.from(yr));
        expect(Array.from(dx)).to.deep.equal(Array.from(dxr));
      }
      const [ya] = run(v);
      const [yb] = run(w1);
      expect(Array.from(ya)).to.not.deep.equal(Array.from(yb)); // v holds w2 now
    } finally {
      tf.dispose([x, w1, w2, v]);
    }
  });

  it('neither tensors nor backend buffers grow over repeated forward and backward calls with fresh weights', () => {
    const x = rand([2, 16, 16, 8], 12) as tf.Tensor4D;
    const numDataIds = () => tf.engine().backend.numDataIds();
    const step = (i: number) =>
      tf.tidy(() => {
        const w = rand([3, 3, 8, 8], 100 + i, 0.3) as tf.Tensor4D;
        const b = rand([8], 200 + i) as tf.Tensor1D;
        tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias: b, activation: 'relu' }).dataSync();
        tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'same').sum())([
          x,
          w,
        ]).forEach((g) => g.dataSync());
      });
    try {
      step(0);
      const tensors = tf.memory().numTensors;
      const ids = numDataIds();
      for (let i = 1; i <= 20; i++) step(i);
      expect(tf.memory().numTensors).to.equal(tensors);
      expect(numDataIds()).to.equal(ids);
    } finally {
      x.dispose();
    }
  });
});

describe('fastgrad: the committed SIMD wasm module is its source compiled', () => {
  it('simd-wasm.ts equals simd-module.ts compiled by wabt (run `npm run build:wasm` after editing the source)', async () => {
    const { plain, shared } = await compileSimdModule();
    expect(Buffer.from(plain).toString('base64')).to.equal(SIMD_WASM_PLAIN);
    expect(Buffer.from(shared).toString('base64')).to.equal(SIMD_WASM_SHARED);
  });
});
