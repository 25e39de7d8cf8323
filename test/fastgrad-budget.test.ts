/**
 * The wasm cache budget (lib/fastgrad/wasm.ts `cacheAllowed`): with no room, convolutions and
 * products run uncached and give the same results, and nothing they allocate stays behind; Winograd
 * on large images in bands of tile rows equals the one-shot transform.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { compareWithCpu, rand, relErr } from './fastgrad_util.js';
import { setWasmCacheBudget, wasmCacheStats } from '../lib/fastgrad/wasm.js';
import { setWinogradScratchBytes } from '../lib/fastgrad/winograd.js';

const TOL = 1e-5;
const onWasm = () => tf.getBackend() === 'wasm';
const wasmBytes = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.byteLength;

/** A UNet-like step on fresh weights: Winograd 3x3 conv (+ its gradients), a strided-free small conv, a linear layer and its input gradient. */
function work(seed: number): tf.Tensor[] {
  const x = rand([1, 16, 16, 8], seed) as tf.Tensor4D;
  const w = rand([3, 3, 8, 16], seed + 1, 0.2) as tf.Tensor4D;
  const small = rand([1, 4, 4, 16], seed + 2) as tf.Tensor4D;
  const w2 = rand([3, 3, 16, 8], seed + 3, 0.2) as tf.Tensor4D;
  const a = rand([5, 12], seed + 4) as tf.Tensor2D;
  const wl = rand([12, 16], seed + 5, 0.3) as tf.Tensor2D;
  const [dx, dw] = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
    tf
      .conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, 'same')
      .square()
      .sum(),
  )([x, w]);
  const y2 = tf.conv2d(small, w2, 1, 'same');
  const dl = tf.grad((aa: tf.Tensor) =>
    tf
      .matMul(aa as tf.Tensor2D, wl)
      .square()
      .sum(),
  )(a);
  const bl = rand([16], seed + 6) as tf.Tensor1D;
  return [
    tf.conv2d(x, w, 1, 'same'),
    dx,
    dw,
    y2,
    tf.matMul(a, wl),
    dl,
    tf.fused.matMul({ a, b: wl, bias: bl, activation: 'relu' }),
  ];
}

describe('fastgrad: the wasm cache budget', () => {
  before(function () {
    if (!onWasm()) this.skip();
  });
  afterEach(() => setWasmCacheBudget(null));

  it('with no room: the same results as the cpu backend, caches refused and none granted', async () => {
    setWasmCacheBudget(0);
    const before = wasmCacheStats();
    const err = await compareWithCpu(() => work(40));
    const after = wasmCacheStats();
    expect(err).to.be.lessThan(TOL);
    expect(after.refused).to.be.greaterThan(before.refused);
    expect(after.granted).to.equal(before.granted);
    expect(after.usedBytes).to.equal(before.usedBytes);
  });

  it('with room: caches are granted, and their bytes are returned when the weights are freed', () => {
    setWasmCacheBudget(64 * 2 ** 20);
    const used0 = wasmCacheStats().usedBytes;
    const x = rand([1, 16, 16, 8], 50) as tf.Tensor4D;
    const w = rand([3, 3, 8, 16], 51) as tf.Tensor4D;
    tf.tidy(() => tf.conv2d(x, w, 1, 'same').dataSync());
    expect(wasmCacheStats().usedBytes).to.equal(used0 + 2 * 16 * 8 * 16 * 4); // the Winograd transform and its packed planes
    w.dispose();
    x.dispose();
    expect(wasmCacheStats().usedBytes).to.equal(used0);
  });

  it('uncached calls leave nothing behind (wasm heap size and tensor count stay put over repeats)', () => {
    setWasmCacheBudget(0);
    // Large enough that 20 leaked packed copies (20 x 0.6 + 20 x 1 MiB) could not hide in the heap's free blocks.
    const x = rand([1, 16, 16, 128], 60) as tf.Tensor4D;
    const w = rand([3, 3, 128, 128], 61, 0.05) as tf.Tensor4D;
    const wl = rand([512, 512], 62, 0.05) as tf.Tensor2D;
    const a = rand([5, 512], 63) as tf.Tensor2D;
    const once = () =>
      tf.tidy(() => {
        tf.conv2d(x, w, 1, 'same').dataSync();
        tf.grad((aa: tf.Tensor) => tf.matMul(aa as tf.Tensor2D, wl).sum())(a).dataSync();
        tf.fused.matMul({ a, b: wl, bias: tf.zeros([512]) }).dataSync();
      });
    for (let i = 0; i < 3; i++) once();
    const heap = wasmBytes();
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) once();
    expect(wasmBytes()).to.equal(heap);
    expect(tf.memory().numTensors).to.equal(tensors);
    tf.dispose([x, w, wl, a]);
  });

  for (const [name, shape, pad] of [
    ['batch 1, even size, same', [1, 22, 20, 8], 'same'],
    ['batch 2, odd size (half tiles at the band edges), valid', [2, 21, 19, 8], 'valid'],
  ] as const) {
    it(`Winograd in bands of tile rows equals the one-shot transform (${name})`, () => {
      const x = rand(shape as unknown as number[], 70) as tf.Tensor4D;
      const w = rand([3, 3, 8, 12], 71, 0.2) as tf.Tensor4D;
      const b = rand([12], 72) as tf.Tensor1D;
      const run = () =>
        tf.tidy(
          () =>
            tf.fused.conv2d({ x, filter: w, bias: b, strides: 1, pad, activation: 'relu' }).dataSync() as Float32Array,
        );
      const whole = run();
      const prev = setWinogradScratchBytes(3 * 16 * 10 * (8 + 12) * 4); // about 3 tile rows per band
      let banded: Float32Array;
      try {
        banded = run();
      } finally {
        setWinogradScratchBytes(prev);
      }
      expect(relErr(banded, whole)).to.equal(0);
      tf.dispose([x, w, b]);
    });
  }
});

describe('fastgrad: uncached small convolutions without packing (gemmTN on the filter as stored)', () => {
  before(function () {
    if (!onWasm()) this.skip();
  });
  afterEach(() => setWasmCacheBudget(null));
  for (const [name, x, w, pad, act] of [
    ['3x3 same, 4x4, bias + relu (pixels padded to 8)', [1, 4, 4, 12], [3, 3, 12, 16], 'same', 'relu'],
    ['3x3 valid, batch 2, rectangular, bias', [2, 6, 5, 8], [3, 3, 8, 20], 'valid', 'linear'],
    ['1x1 at 1x1 (one pixel)', [1, 1, 1, 32], [1, 1, 32, 8], 'valid', 'linear'],
    [
      '3x2 kernel, explicit asymmetric pad',
      [1, 5, 7, 4],
      [3, 2, 4, 12],
      [
        [0, 0],
        [2, 0],
        [1, 1],
        [0, 0],
      ],
      'relu',
    ],
  ] as const) {
    it(name, async () => {
      setWasmCacheBudget(0);
      const err = await compareWithCpu(() => {
        const xx = rand(x as unknown as number[], 80) as tf.Tensor4D;
        const ww = rand(w as unknown as number[], 81, 0.3) as tf.Tensor4D;
        const b = rand([w[3]], 82) as tf.Tensor1D;
        return [
          tf.conv2d(xx, ww, 1, pad as 'same'),
          tf.fused.conv2d({ x: xx, filter: ww, bias: b, strides: 1, pad: pad as 'same', activation: act }),
        ];
      });
      expect(err).to.be.lessThan(TOL);
    });
  }
});
