import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { attention, geluErf, groupNorm, layerNorm, linear, quickGelu, silu } from '../lib/ops/nn.js';
import { conv2d } from '../lib/ops/conv.js';
import { compareWithCpu, expectNoLeaks, rand } from './fastgrad_util.js';

const TOL = 1e-5;

/** Forward value and gradients w.r.t. every input of `f`, weighted by a fixed random cotangent. */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], seed = 99): tf.Tensor[] {
  const y = f(...xs);
  const w = rand(y.shape, seed);
  const gs = tf.grads((...a: tf.Tensor[]) =>
    f(...a)
      .mul(w)
      .sum(),
  )(xs);
  return [y, ...gs];
}

describe('lib/ops: forward and gradients on wasm match the cpu backend', () => {
  const cases: { name: string; run: () => tf.Tensor[]; ref?: () => tf.Tensor[] }[] = [
    {
      name: 'groupNorm [N,H,W,C], 4 groups',
      run: () =>
        valueAndGrads(
          (x, g, b) => groupNorm(x, 4, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
          [rand([2, 5, 6, 8], 1), rand([8], 2), rand([8], 3)],
        ),
    },
    {
      name: 'groupNorm [N,L,C], 32 groups',
      run: () =>
        valueAndGrads(
          (x, g, b) => groupNorm(x, 32, g as tf.Tensor1D, b as tf.Tensor1D, 1e-6),
          [rand([2, 7, 64], 4), rand([64], 5), rand([64], 6)],
        ),
    },
    {
      name: 'layerNorm',
      run: () =>
        valueAndGrads(
          (x, g, b) => layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
          [rand([3, 7, 16], 7, 3), rand([16], 8), rand([16], 9)],
        ),
    },
    { name: 'silu', run: () => valueAndGrads((x) => silu(x), [rand([4, 33], 10, 6)]) },
    { name: 'quickGelu', run: () => valueAndGrads((x) => quickGelu(x), [rand([4, 33], 11, 6)]) },
    { name: 'geluErf', run: () => valueAndGrads((x) => geluErf(x), [rand([4, 33], 12, 6)]) },
    {
      name: 'linear [B,L,in]·[in,out] + b',
      run: () =>
        valueAndGrads(
          (x, w, b) => linear(x, w as tf.Tensor2D, b as tf.Tensor1D),
          [rand([2, 5, 12], 13), rand([12, 7], 14), rand([7], 15)],
        ),
    },
    {
      name: 'attention with causal mask',
      run: () => {
        const mask = tf.linalg
          .bandPart(tf.ones([6, 6]), -1, 0)
          .sub(1)
          .mul(1e9);
        return valueAndGrads(
          (q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, mask),
          [rand([2, 3, 6, 4], 16), rand([2, 3, 6, 4], 17), rand([2, 3, 6, 4], 18)],
        );
      },
    },
    { name: 'softmax', run: () => valueAndGrads((x) => tf.softmax(x), [rand([3, 5, 9], 19, 4)]) },
    {
      name: 'avgPool 2x2 stride 2',
      run: () => valueAndGrads((x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid'), [rand([2, 8, 6, 3], 20)]),
    },
    {
      name: 'nearest upsample x2 (reference: reshape + broadcast; tfjs cpu ResizeNearestNeighborGrad is wrong for this shape)',
      run: () =>
        valueAndGrads((x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [10, 12]), [rand([2, 5, 6, 3], 21)]),
      ref: () =>
        valueAndGrads(
          (x) =>
            x
              .reshape([2, 5, 1, 6, 1, 3])
              .mul(tf.ones([1, 1, 2, 1, 2, 1]))
              .reshape([2, 10, 12, 3]),
          [rand([2, 5, 6, 3], 21)],
        ),
    },
    {
      name: 'concat along channels',
      run: () => valueAndGrads((a, b) => tf.concat([a, b], 3), [rand([2, 4, 4, 3], 22), rand([2, 4, 4, 5], 23)]),
    },
    {
      name: 'pad (0,1,0,1)',
      run: () =>
        valueAndGrads(
          (x) =>
            tf.pad(x, [
              [0, 0],
              [0, 1],
              [0, 1],
              [0, 0],
            ]),
          [rand([2, 4, 4, 3], 24)],
        ),
    },
    {
      name: 'mean / square / sqrt / rsqrt / exp / log',
      run: () =>
        valueAndGrads(
          (x) =>
            tf
              .rsqrt(x.square().mean(-1, true).add(1))
              .mul(tf.sqrt(x.abs().add(1)))
              .add(tf.exp(x).mul(0.1))
              .add(tf.log(x.abs().add(1))),
          [rand([3, 10], 25)],
        ),
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const err = await compareWithCpu(c.run, c.ref);
      expect(err).to.be.lessThan(TOL);
    });
  }
});

describe('lib/ops: no tensor growth', () => {
  it('100 forward+backward passes of a conv + groupNorm + attention block keep tf.memory().numTensors (and backend buffers) flat', () => {
    const c = 16;
    const vars = {
      w1: tf.variable(rand([3, 3, c, c], 51, 0.1)),
      b1: tf.variable(rand([c], 52, 0.1)),
      g: tf.variable(rand([c], 53)),
      bt: tf.variable(rand([c], 54)),
      wqkv: tf.variable(rand([c, 3 * c], 55, 0.2)),
      wo: tf.variable(rand([c, c], 56, 0.2)),
    };
    const x = rand([2, 8, 8, c], 57) as tf.Tensor4D;
    const step = () => {
      const { value, grads } = tf.variableGrads(() => {
        let h = tf.conv2d(x, vars.w1 as tf.Tensor4D, 1, 'same').add(vars.b1) as tf.Tensor4D;
        h = silu(groupNorm(h, 4, vars.g as tf.Tensor1D, vars.bt as tf.Tensor1D, 1e-5));
        const seq = h.reshape([2, 64, c]);
        const qkv = linear(seq, vars.wqkv as tf.Tensor2D);
        const [q, k, v] = tf
          .split(qkv, 3, 2)
          .map((t) => t.reshape([2, 64, 2, c / 2]).transpose([0, 2, 1, 3]) as tf.Tensor4D);
        const a = attention(q, k, v).transpose([0, 2, 1, 3]).reshape([2, 64, c]);
        return linear(a, vars.wo as tf.Tensor2D)
          .add(seq)
          .square()
          .mean() as tf.Scalar;
      });
      value.dispose();
      tf.dispose(grads);
    };
    expectNoLeaks(step, 100);
    tf.dispose([x, ...Object.values(vars)]);
  });
});

describe('lib/ops conv2d: PyTorch padding, fused forward, gradients', () => {
  const cases: { name: string; x: number[]; w: number[]; opts: import('../lib/ops/conv.js').Conv2dOptions }[] = [
    { name: '3x3 default pad (same)', x: [2, 6, 6, 4], w: [3, 3, 4, 5], opts: {} },
    { name: '3x3 stride 2 pad 1', x: [2, 8, 8, 4], w: [3, 3, 4, 5], opts: { stride: 2, pad: 1 } },
    {
      name: '3x3 stride 2 DDPM pad (0,1,0,1)',
      x: [2, 8, 8, 4],
      w: [3, 3, 4, 5],
      opts: {
        stride: 2,
        pad: [
          [0, 1],
          [0, 1],
        ],
      },
    },
    { name: '1x1', x: [2, 5, 5, 6], w: [1, 1, 6, 3], opts: {} },
    { name: '3x3 silu', x: [2, 6, 6, 4], w: [3, 3, 4, 5], opts: { activation: 'silu' } },
    { name: '3x3 relu', x: [2, 6, 6, 4], w: [3, 3, 4, 5], opts: { activation: 'relu' } },
  ];
  for (const c of cases) {
    it(`${c.name}: forward (fused and taped) and dx, dW, db`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand(c.x, 61) as tf.Tensor4D;
        const w = rand(c.w, 62) as tf.Tensor4D;
        const b = rand([c.w[3]], 63) as tf.Tensor1D;
        const fwd = conv2d(x, w, b, c.opts); // no tape: fused kernel
        const [y, ...g] = valueAndGrads(
          (a, ww, bb) => conv2d(a as tf.Tensor4D, ww as tf.Tensor4D, bb as tf.Tensor1D, c.opts),
          [x, w, b],
        );
        return [fwd, y, ...g];
      });
      expect(err).to.be.lessThan(TOL);
    });
  }
  it('matches an explicitly padded input (PyTorch semantics)', () => {
    const [a, b] = tf.tidy(() => {
      const x = rand([1, 8, 8, 3], 64) as tf.Tensor4D;
      const w = rand([3, 3, 3, 2], 65) as tf.Tensor4D;
      return [
        conv2d(x, w, undefined, {
          stride: 2,
          pad: [
            [0, 1],
            [0, 1],
          ],
        }),
        tf.conv2d(
          tf.pad(x, [
            [0, 0],
            [0, 1],
            [0, 1],
            [0, 0],
          ]),
          w,
          2,
          'valid',
        ),
      ];
    });
    expect(a.shape).to.deep.equal([1, 4, 4, 2]);
    expect(Math.max(...(a.sub(b).abs().dataSync() as Float32Array))).to.be.lessThan(1e-6);
    tf.dispose([a, b]);
  });
});

describe('lib/ops: groupNorm matches its definition (autodiff of the textbook formula)', () => {
  /** GroupNorm written out: moments over each group's positions and channels. */
  function naiveGroupNorm(x: tf.Tensor, groups: number, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
    const [n, c] = [x.shape[0], x.shape[x.rank - 1]];
    const xg = x.reshape([n, -1, groups, c / groups]);
    const { mean, variance } = tf.moments(xg, [1, 3], true);
    return xg
      .sub(mean)
      .div(tf.sqrt(variance.add(eps)))
      .reshape(x.shape)
      .mul(g)
      .add(b);
  }
  const cases: { shape: number[]; groups: number; eps: number }[] = [
    { shape: [2, 5, 6, 8], groups: 4, eps: 1e-5 },
    { shape: [3, 7, 64], groups: 32, eps: 1e-6 },
    { shape: [1, 4, 4, 32], groups: 32, eps: 1e-5 },
    { shape: [2, 3, 3, 6], groups: 1, eps: 1e-5 },
    { shape: [2, 16, 16, 64], groups: 32, eps: 1e-5 }, // large enough for the pooled means
  ];
  for (const cs of cases) {
    it(`[${cs.shape}] ${cs.groups} groups: value and gradients (x, gamma, beta) within 1e-4`, () => {
      const c = cs.shape[cs.shape.length - 1];
      // an offset mean: the two-pass forward must not lose precision to it
      const xs = [rand(cs.shape, 61).add(3), rand([c], 62), rand([c], 63)];
      const ours = valueAndGrads(
        (x, g, b) => groupNorm(x, cs.groups, g as tf.Tensor1D, b as tf.Tensor1D, cs.eps),
        xs,
        64,
      );
      const ref = valueAndGrads((x, g, b) => naiveGroupNorm(x, cs.groups, g, b, cs.eps), xs, 64);
      for (let i = 0; i < ours.length; i++) {
        const err = tf.tidy(
          () => tf.max(tf.abs(ours[i].sub(ref[i]))).dataSync()[0] / Math.max(1, tf.max(tf.abs(ref[i])).dataSync()[0]),
        );
        expect(err, `output ${i}`).to.be.below(1e-4);
      }
      tf.dispose([...xs, ...ours, ...ref]);
    });
  }
});
