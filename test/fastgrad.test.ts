import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { compareWithCpu, rand, relErr } from './fastgrad_util.js';

const TOL = 1e-5;

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  stride: number;
  pad: Pad;
  dilation?: number;
}

const convCases: ConvCase[] = [
  { name: '3x3 s1 same', x: [2, 9, 8, 5], w: [3, 3, 5, 7], stride: 1, pad: 'same' },
  { name: '3x3 s1 valid', x: [2, 9, 8, 5], w: [3, 3, 5, 7], stride: 1, pad: 'valid' },
  { name: '3x3 s2 same (even)', x: [2, 8, 8, 4], w: [3, 3, 4, 6], stride: 2, pad: 'same' },
  { name: '3x3 s2 same (odd)', x: [2, 9, 7, 4], w: [3, 3, 4, 6], stride: 2, pad: 'same' },
  { name: '3x3 s2 valid', x: [2, 9, 8, 4], w: [3, 3, 4, 6], stride: 2, pad: 'valid' },
  { name: '3x3 s2 explicit 1', x: [2, 8, 8, 4], w: [3, 3, 4, 6], stride: 2, pad: 1 },
  {
    name: 'DDPM down: pad (0,1,0,1) then 3x3 s2 valid',
    x: [2, 8, 8, 4],
    w: [3, 3, 4, 6],
    stride: 2,
    pad: [
      [0, 0],
      [0, 1],
      [0, 1],
      [0, 0],
    ],
  },
  { name: '1x1 s1', x: [2, 6, 6, 8], w: [1, 1, 8, 3], stride: 1, pad: 'valid' },
  {
    name: '4x4 s2 explicit',
    x: [1, 10, 10, 3],
    w: [4, 4, 3, 5],
    stride: 2,
    pad: [
      [0, 0],
      [1, 2],
      [2, 1],
      [0, 0],
    ],
  },
  { name: '3x3 dilation 2 same', x: [2, 9, 9, 3], w: [3, 3, 3, 4], stride: 1, pad: 'same', dilation: 2 },
  { name: '3x3 dilation 2 valid', x: [1, 10, 9, 3], w: [3, 3, 3, 4], stride: 1, pad: 'valid', dilation: 2 },
  { name: '5x5 s1 same', x: [1, 7, 7, 3], w: [5, 5, 3, 2], stride: 1, pad: 'same' },
  { name: '1x1 s2 (phases without taps)', x: [2, 7, 6, 3], w: [1, 1, 3, 4], stride: 2, pad: 'valid' },
  { name: '2x2 s2 valid (odd input)', x: [1, 7, 9, 3], w: [2, 2, 3, 4], stride: 2, pad: 'valid' },
  { name: '3x3 s3 same', x: [1, 10, 11, 2], w: [3, 3, 2, 3], stride: 3, pad: 'same' },
  {
    name: '3x3 s2 large explicit pad',
    x: [1, 6, 6, 2],
    w: [3, 3, 2, 3],
    stride: 2,
    pad: [
      [0, 0],
      [3, 4],
      [4, 3],
      [0, 0],
    ],
  },
  {
    name: '3x3 s1 explicit asymmetric pad',
    x: [2, 7, 9, 3],
    w: [3, 3, 3, 4],
    stride: 1,
    pad: [
      [0, 0],
      [0, 2],
      [1, 0],
      [0, 0],
    ],
  },
  { name: '2x2 s1 same (pad after only)', x: [2, 6, 7, 3], w: [2, 2, 3, 5], stride: 1, pad: 'same' },
  { name: '3x2 s1 valid (rectangular kernel)', x: [3, 8, 6, 4], w: [3, 2, 4, 3], stride: 1, pad: 'valid' },
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
  for (const [name, mode] of [
    ['dW as GEMMs on shifted views (default)', ''],
    ['dW by the swap convolution (DIFFGUIDE_DW=swap)', 'swap'],
  ]) {
    it(`${name}: dx, dW`, async () => {
      const savedMode = process.env.DIFFGUIDE_DW;
      process.env.DIFFGUIDE_DW = mode;
      try {
        const err = await compareWithCpu(() => {
          const x = rand([2, 6, 6, 4], 91) as tf.Tensor4D;
          const w = rand([3, 3, 4, 5], 92) as tf.Tensor4D;
          return tf.grads((a: tf.Tensor, b: tf.Tensor) =>
            tf
              .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')
              .mul(rand([2, 6, 6, 5], 93))
              .sum(),
          )([x, w]);
        });
        expect(err).to.be.lessThan(TOL);
      } finally {
        if (savedMode === undefined) delete process.env.DIFFGUIDE_DW;
        else process.env.DIFFGUIDE_DW = savedMode;
      }
    });
  }
  it('DDPM asymmetric pad: tf.pad (0,1,0,1) then valid stride-2 conv', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([2, 8, 8, 4], 4);
      const w = rand([3, 3, 4, 6], 5);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => {
        const p = tf.pad(a, [
          [0, 0],
          [0, 1],
          [0, 1],
          [0, 0],
        ]) as tf.Tensor4D;
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
      const f = (a: tf.Tensor, b: tf.Tensor) =>
        tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [2, 10, 10, 4], 2, 'same');
      const y = f(x, w);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        f(a, b)
          .mul(rand([2, 10, 10, 4], 9))
          .sum(),
      )([x, w]);
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
        const y = tf.fused.conv2d({
          x: a as tf.Tensor4D,
          filter: c as tf.Tensor4D,
          strides: 1,
          pad: 'same',
          bias: d,
          activation: 'linear',
        });
        return y.mul(rand(y.shape, 13)).sum();
      })([x, w, b]);
      return [dx, dw, db];
    });
    expect(err).to.be.lessThan(TOL);
  });
});

describe('fastgrad: matMul / batchMatMul forward and gradients match the cpu backend', () => {
  const cases: { name: string; a: number[]; b: number[]; ta?: boolean; tb?: boolean }[] = [
    { name: '2D', a: [7, 5], b: [5, 6] },
    { name: '2D transposeA', a: [5, 7], b: [5, 6], ta: true },
    { name: '2D transposeB', a: [7, 5], b: [6, 5], tb: true },
    { name: '2D both transposed', a: [5, 7], b: [6, 5], ta: true, tb: true },
    { name: 'batched (attention q·kᵀ)', a: [2, 3, 9, 4], b: [2, 3, 11, 4], tb: true },
    { name: 'batched (attention w·v)', a: [2, 3, 9, 11], b: [2, 3, 11, 4] },
    { name: 'batched transposeA', a: [3, 5, 7], b: [3, 5, 4], ta: true },
    { name: 'broadcast weights [B,L,K]·[K,N]', a: [3, 5, 7], b: [7, 4] },
    { name: 'broadcast weights transposeB', a: [3, 5, 7], b: [4, 7], tb: true },
    { name: 'shared left operand', a: [4, 5], b: [3, 5, 6] },
    // Long reductions with M % 4 == 0 and N % 8 == 0 take our Aᵀ·B kernel (gemmTN), here forward and in the gradients.
    { name: 'transposeA, long reduction (weight-gradient shape; gemmTN)', a: [130, 12], b: [130, 16], ta: true },
    { name: 'batched transposeA, long reduction (gemmTN)', a: [2, 3, 96, 8], b: [2, 3, 96, 24], ta: true },
    { name: 'linear layer over many rows: dW = xᵀ·dy via gemmTN', a: [300, 20], b: [20, 32] },
    // True batches of small products (M % 4 == 0, N % 8 == 0; the gradients' products too) take gemmTN in one pass.
    { name: 'batched small products (attention w·v shape; gemmTN)', a: [2, 3, 8, 16], b: [2, 3, 16, 8] },
    { name: 'batched small products, transposeB (q·kᵀ; gemmTN)', a: [2, 3, 8, 16], b: [2, 3, 8, 16], tb: true },
    { name: 'batched small products, transposeA (gemmTN)', a: [2, 3, 16, 8], b: [2, 3, 16, 8], ta: true },
    {
      name: 'batched small products, both transposed (gemmTN)',
      a: [2, 3, 16, 8],
      b: [2, 3, 8, 16],
      ta: true,
      tb: true,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const err = await compareWithCpu(() => {
        const a = rand(c.a, 21);
        const b = rand(c.b, 22);
        const f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, c.ta, c.tb);
        const y = f(a, b);
        const [da, db] = tf.grads((x: tf.Tensor, z: tf.Tensor) => f(x, z).mul(rand(y.shape, 23)).sum())([a, b]);
        return [y, da, db];
      });
      expect(err).to.be.lessThan(TOL);
    });
  }
  it('broadcast batch [2,1]·[1,3]: forward and gradients equal the explicitly tiled product on cpu', async () => {
    // tfjs's cpu backend itself returns NaN for broadcast batched matmuls, so the reference tiles.
    const a = rand([2, 1, 4, 5], 21);
    const b = rand([1, 3, 5, 6], 22);
    const dy = rand([2, 3, 4, 6], 23);
    const run = (tile: boolean) =>
      tf.tidy(() => {
        const f = (x: tf.Tensor, z: tf.Tensor) =>
          tile ? tf.matMul(tf.tile(x, [1, 3, 1, 1]), tf.tile(z, [2, 1, 1, 1])) : tf.matMul(x, z);
        const [da, db] = tf.grads((x: tf.Tensor, z: tf.Tensor) => f(x, z).mul(dy).sum())([a, b]);
        return [f(a, b), da, db].map((t) => t.dataSync() as Float32Array);
      });
    const here = run(false);
    const prev = tf.getBackend();
    await tf.setBackend('cpu');
    let ref: Float32Array[];
    try {
      ref = run(true);
    } finally {
      await tf.setBackend(prev);
    }
    tf.dispose([a, b, dy]);
    for (let i = 0; i < 3; i++) expect(relErr(here[i], ref[i])).to.be.lessThan(TOL);
  });
});

describe('fastgrad: slice / unstack / split on wasm match the cpu backend', () => {
  const sliceCases: { name: string; shape: number[]; begin: number[]; size: number[] }[] = [
    { name: 'rows of a matrix', shape: [6, 5], begin: [2, 0], size: [3, 5] },
    { name: 'channels of NHWC (strided)', shape: [2, 4, 3, 8], begin: [0, 0, 0, 3], size: [-1, -1, -1, 4] },
    { name: 'spatial crop', shape: [2, 7, 6, 3], begin: [1, 2, 1, 0], size: [1, 3, 4, 3] },
    { name: 'rank 5, short runs', shape: [2, 3, 4, 5, 2], begin: [1, 1, 0, 2, 1], size: [1, 2, 4, 3, 1] },
    { name: 'whole tensor', shape: [3, 4], begin: [0, 0], size: [3, 4] },
    { name: 'scalar-like 1-element', shape: [4], begin: [2], size: [1] },
    { name: 'long strided runs', shape: [3, 4, 64], begin: [0, 1, 0], size: [3, 2, 64] },
  ];
  for (const c of sliceCases) {
    it(`slice: ${c.name} (forward + gradient)`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand(c.shape, 31);
        const y = tf.slice(x, c.begin, c.size);
        const dx = tf.grad((a: tf.Tensor) => tf.slice(a, c.begin, c.size).mul(rand(y.shape, 32)).sum())(x);
        return [y, dx];
      });
      expect(err).to.equal(0);
    });
  }
  it('int32 and bool slices', async () => {
    const err = await compareWithCpu(() => {
      const i = tf.range(0, 60, 1, 'int32').reshape([3, 4, 5]);
      const b = tf.greater(rand([3, 4, 5], 33), 0);
      return [tf.slice(i, [1, 1, 2], [2, 2, 3]).toFloat(), tf.slice(b, [0, 2, 0], [3, 2, 5]).toFloat()];
    });
    expect(err).to.equal(0);
  });
  it('a slice past the end throws, as on the stock backends (it once read past the input)', () => {
    const x = tf.zeros([2, 4, 4, 3]);
    expect(() => x.slice(2, 1)).to.throw(/begin\[0\] \+ size\[0\]|must be/);
    expect(() => tf.slice(x, [1, 3, 0, 0], [1, 2, 4, 3])).to.throw();
    x.dispose();
  });
  it('unstack along axes 0 and 1 (forward + gradient)', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([4, 3, 5], 34);
      const outs = [...tf.unstack(x, 0), ...tf.unstack(x, 1)];
      const dx = tf.grad((a: tf.Tensor) => tf.addN(tf.unstack(a, 1).map((t, i) => t.mul(i + 1).sum())))(x);
      return [...outs, dx];
    });
    expect(err).to.equal(0);
  });
  it('split into sizes along channels and rows (forward + gradient)', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([2, 6, 9], 35);
      const a = tf.split(x, [2, 3, 4], 2);
      const b = tf.split(x, 3, 1);
      const dx = tf.grad((t: tf.Tensor) => tf.addN(tf.split(t, [2, 3, 4], 2).map((p, i) => p.mul(i + 1).sum())))(x);
      return [...a, ...b, dx];
    });
    expect(err).to.equal(0);
  });
});

describe('fastgrad: gather (embedding lookup) gradient on wasm', () => {
  it('token embedding [vocab, width] gathered by [B, L] ids, with repeated ids', async () => {
    const err = await compareWithCpu(() => {
      const table = rand([50, 8], 41);
      const ids = tf.tensor2d(
        [
          [3, 7, 7, 0, 49],
          [7, 1, 2, 3, 3],
        ],
        [2, 5],
        'int32',
      );
      const y = tf.gather(table, ids);
      const dt = tf.grad((t: tf.Tensor) =>
        tf
          .gather(t, ids)
          .mul(rand([2, 5, 8], 42))
          .sum(),
      )(table);
      return [y, dt];
    });
    expect(err).to.be.lessThan(TOL);
  });
  it('gather along axis 1 and unsortedSegmentSum with dropped ids', async () => {
    const err = await compareWithCpu(() => {
      const x = rand([4, 6, 3], 43);
      const ids = tf.tensor1d([5, 0, 5, 2], 'int32');
      const dx = tf.grad((t: tf.Tensor) =>
        tf
          .gather(t, ids, 1)
          .mul(rand([4, 4, 3], 44))
          .sum(),
      )(x);
      const seg = tf.unsortedSegmentSum(rand([5, 3], 45), tf.tensor1d([1, 0, 1, 3, 2], 'int32'), 3);
      return [dx, seg];
    });
    expect(err).to.be.lessThan(TOL);
  });
});

describe('fastgrad: pow fast paths and rsqrt gradient', () => {
  for (const e of [2, 3, 1, 0.5, -0.5, -1, 1.5]) {
    it(`pow(x, ${e}) forward and gradient`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand([3, 17], 71).abs().add(0.5);
        const y = tf.pow(x, e);
        const dx = tf.grad((a: tf.Tensor) =>
          tf
            .pow(a, e)
            .mul(rand([3, 17], 72))
            .sum(),
        )(x);
        return [y, dx];
      });
      expect(err).to.be.lessThan(TOL);
    });
  }
  it('pow with a tensor exponent and negative bases (stock path), int exponent', async () => {
    const err = await compareWithCpu(() => [
      tf.pow(rand([4, 5], 73), tf.tensor1d([2, 3, 2, 1, 2])),
      tf.pow(rand([6], 74), tf.scalar(2, 'int32')),
    ]);
    expect(err).to.be.lessThan(TOL);
  });
  it('rsqrt gradient', async () => {
    const err = await compareWithCpu(() => [
      tf.grad((a: tf.Tensor) =>
        tf
          .rsqrt(a)
          .mul(rand([4, 9], 76))
          .sum(),
      )(rand([4, 9], 75).abs().add(0.1)),
    ]);
    expect(err).to.be.lessThan(TOL);
  });
  it('repeated calls give bit-identical results (no uninitialised memory)', () => {
    const run = () =>
      tf.tidy(() => {
        const x = rand([2, 9, 9, 4], 77) as tf.Tensor4D;
        const w = rand([3, 3, 4, 6], 78) as tf.Tensor4D;
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf
            .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')
            .mul(rand([2, 5, 5, 6], 79))
            .sum(),
        )([x, w]);
        const q = rand([2, 3, 7, 4], 80);
        const dq = tf.grad((a: tf.Tensor) => tf.matMul(a, q, false, true).sum())(q);
        return [dx, dw, dq].map((t) => Array.from(t.dataSync()));
      });
    expect(run()).to.deep.equal(run());
  });
});

describe('fastgrad: depthwise conv gradients on wasm match the cpu backend', () => {
  const cases: { name: string; x: number[]; w: number[]; stride: number; pad: 'same' | 'valid' | number }[] = [
    { name: '3x3 s1 same, multiplier 1', x: [2, 7, 6, 4], w: [3, 3, 4, 1], stride: 1, pad: 'same' },
    { name: '3x3 s1 valid, multiplier 2', x: [2, 7, 6, 3], w: [3, 3, 3, 2], stride: 1, pad: 'valid' },
    { name: '3x3 s2 same, multiplier 2', x: [2, 8, 9, 3], w: [3, 3, 3, 2], stride: 2, pad: 'same' },
    { name: '5x5 s2 pad 2, multiplier 1', x: [1, 9, 9, 2], w: [5, 5, 2, 1], stride: 2, pad: 2 },
  ];
  for (const c of cases) {
    it(`${c.name}: dx, dW`, async () => {
      const err = await compareWithCpu(() => {
        const x = rand(c.x, 81) as tf.Tensor4D;
        const w = rand(c.w, 82) as tf.Tensor4D;
        const f = (a: tf.Tensor, b: tf.Tensor) =>
          tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad as 'same');
        const y = f(x, w);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a, b).mul(rand(y.shape, 83)).sum())([x, w]);
        return [y, dx, dw];
      });
      expect(err).to.be.lessThan(TOL);
    });
  }
});

for (const mode of ['swap', 'shift'])
  describe(`fastgrad: dW by DIFFGUIDE_DW=${mode} matches the cpu backend`, () => {
    for (const [stride, pad] of [
      [1, 'same'],
      [1, 'valid'],
      [2, 'same'],
      [2, 'valid'],
    ] as [number, 'same' | 'valid'][]) {
      it(`3x3 stride ${stride} ${pad}`, async () => {
        const saved = process.env.DIFFGUIDE_DW;
        process.env.DIFFGUIDE_DW = mode;
        try {
          const err = await compareWithCpu(() => {
            const x = rand([2, 9, 8, 4], 94) as tf.Tensor4D;
            const w = rand([3, 3, 4, 6], 95) as tf.Tensor4D;
            const y = tf.conv2d(x, w, stride, pad);
            return [
              tf.grad((b: tf.Tensor) =>
                tf
                  .conv2d(x, b as tf.Tensor4D, stride, pad)
                  .mul(rand(y.shape, 96))
                  .sum(),
              )(w),
            ];
          });
          expect(err).to.be.lessThan(TOL);
        } finally {
          if (saved === undefined) delete process.env.DIFFGUIDE_DW;
          else process.env.DIFFGUIDE_DW = saved;
        }
      });
    }
  });

describe('fastgrad: the wasm Conv2DBackpropFilter kernel with dilations (shifted GEMM)', () => {
  // tfjs's gradient never passes dilations to the kernel (diffguide's Conv2D gradient uses tf ops
  // for dilated convs), so call the kernel directly; the cpu side is the tf-ops gradient.
  for (const pad of ['same', 'valid'] as const) {
    it(`3x3 dilation 2 ${pad}`, async () => {
      const xs = [2, 11, 10, 3];
      const ws = [3, 3, 3, 4];
      const dyOf = () => {
        const y = tf.conv2d(rand(xs, 97) as tf.Tensor4D, rand(ws, 98) as tf.Tensor4D, 1, pad, 'NHWC', 2);
        return rand(y.shape, 99) as tf.Tensor4D;
      };
      const err = await compareWithCpu(
        () => [
          tf.engine().runKernel('Conv2DBackpropFilter', { x: rand(xs, 97), dy: dyOf() }, {
            strides: 1,
            pad,
            dataFormat: 'NHWC',
            dilations: 2,
            filterShape: ws,
          } as never) as tf.Tensor,
        ],
        () => [
          tf.grad((b: tf.Tensor) =>
            tf
              .conv2d(rand(xs, 97) as tf.Tensor4D, b as tf.Tensor4D, 1, pad, 'NHWC', 2)
              .mul(dyOf())
              .sum(),
          )(rand(ws, 98)),
        ],
      );
      expect(err).to.be.lessThan(TOL);
    });
  }
});
