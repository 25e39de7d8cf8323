/**
 * lib/fastgrad's per-call savings on wasm: right operands (weights) keep XNNPACK's packed copy
 * across calls, transposed weights (dy·Wᵀ) are transposed once per buffer, Identity shares the
 * buffer. These tests check that nothing stale is ever served: new weights (assign, dispose and
 * re-allocate, reshape of the same buffer) give fresh results, and that nothing grows.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { data, relErr } from './fastgrad_util.js';

const TOL = 1e-5;

/** [rows, k]·[k, n] in float64 on plain arrays (the reference; no backend involved). */
function refMatMul(
  a: Float32Array,
  b: Float32Array,
  rows: number,
  k: number,
  n: number,
  transposeB = false,
): Float32Array {
  const out = new Float32Array(rows * n);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * (transposeB ? b[j * k + p] : b[p * n + j]);
      out[i * n + j] = s;
    }
  }
  return out;
}

const onWasm = () => tf.getBackend() === 'wasm';
const numDataIds = () => tf.engine().backend.numDataIds();

function expectProduct(
  y: tf.Tensor,
  a: Float32Array,
  b: Float32Array,
  rows: number,
  k: number,
  n: number,
  transposeB = false,
): void {
  expect(relErr(y.dataSync() as Float32Array, refMatMul(a, b, rows, k, n, transposeB))).to.be.lessThan(TOL);
}

describe('fastgrad: cached weights on wasm never go stale', () => {
  const rows = 9;
  const k = 7;
  const n = 5;
  const x = data(rows * k, 1);
  const dy = data(rows * n, 2);
  const w1 = data(k * n, 3);
  const w2 = data(k * n, 4);

  it('repeated products with the same weights equal the reference every time (plain, transposed, batch folded)', () => {
    const w = tf.tensor2d(w1, [k, n]);
    try {
      for (let i = 0; i < 3; i++) {
        tf.tidy(() => {
          expectProduct(tf.matMul(tf.tensor2d(x, [rows, k]), w), x, w1, rows, k, n);
          expectProduct(tf.matMul(tf.tensor3d(x, [3, rows / 3, k]), w), x, w1, rows, k, n); // [B, L, K]·[K, N]
          expectProduct(tf.matMul(tf.tensor2d(dy, [rows, n]), w, false, true), dy, w1, rows, n, k, true); // dy·Wᵀ
        });
      }
    } finally {
      w.dispose();
    }
  });

  it('a variable assigned new weights between calls gives the new product (forward and input gradient)', () => {
    const w = tf.variable(tf.tensor2d(w1, [k, n]));
    const xt = tf.tensor2d(x, [rows, k]);
    const dyt = tf.tensor2d(dy, [rows, n]);
    try {
      const run = () =>
        tf.tidy(() => {
          const y = tf.matMul(xt, w);
          const dx = tf.grad((t: tf.Tensor) => tf.matMul(t, w).mul(dyt).sum())(xt); // dy·Wᵀ on the backward path
          return [y.dataSync() as Float32Array, dx.dataSync() as Float32Array];
        });
      for (const [wv, seed] of [
        [w1, 0],
        [w2, 1],
        [w1, 2],
        [w2, 3],
      ] as const) {
        if (seed > 0) w.assign(tf.tensor2d(wv, [k, n]));
        const [y, dx] = run();
        expect(relErr(y, refMatMul(x, wv, rows, k, n))).to.be.lessThan(TOL);
        expect(relErr(dx, refMatMul(dy, wv, rows, n, k, true))).to.be.lessThan(TOL);
      }
    } finally {
      tf.dispose([w, xt, dyt]);
    }
  });

  it('weights disposed and re-allocated (the heap slot reused under a new id) give the new product', () => {
    const xt = tf.tensor2d(x, [rows, k]);
    const dyt = tf.tensor2d(dy, [rows, n]);
    try {
      for (const wv of [w1, w2, w1]) {
        const w = tf.tensor2d(wv, [k, n]);
        tf.tidy(() => {
          expectProduct(tf.matMul(xt, w), x, wv, rows, k, n);
          expectProduct(tf.matMul(dyt, w, false, true), dy, wv, rows, n, k, true);
        });
        w.dispose();
      }
    } finally {
      tf.dispose([xt, dyt]);
    }
  });

  it('one buffer reshaped to another [K, N] is not served the operator packed for the first shape', () => {
    // w1 has 35 elements: [7, 5] and [5, 7] share the buffer (Reshape shares the data id).
    const w = tf.tensor2d(w1, [k, n]);
    try {
      tf.tidy(() => {
        expectProduct(tf.matMul(tf.tensor2d(x, [rows, k]), w), x, w1, rows, k, n);
        const w57 = w.reshape([n, k]);
        const x5 = data(rows * n, 5);
        expectProduct(tf.matMul(tf.tensor2d(x5, [rows, n]), w57), x5, w1, rows, n, k);
        // transposed: Wᵀ cached for [7, 5], then the same buffer as [5, 7] transposed
        expectProduct(tf.matMul(tf.tensor2d(dy, [rows, n]), w, false, true), dy, w1, rows, n, k, true);
        expectProduct(tf.matMul(tf.tensor2d(x, [rows, k]), w57, false, true), x, w1, rows, k, n, true);
        // and back to the first shapes
        expectProduct(tf.matMul(tf.tensor2d(x, [rows, k]), w), x, w1, rows, k, n);
        expectProduct(tf.matMul(tf.tensor2d(dy, [rows, n]), w, false, true), dy, w1, rows, n, k, true);
      });
    } finally {
      w.dispose();
    }
  });

  it('the cached transposed copy is freed with its weights (backend buffers back to the start)', function () {
    if (!onWasm()) this.skip();
    const before = numDataIds();
    const w = tf.tensor2d(w1, [k, n]);
    const dyt = tf.tensor2d(dy, [rows, n]);
    tf.tidy(() => {
      tf.matMul(dyt, w, false, true);
    });
    expect(numDataIds()).to.equal(before + 3); // w, dy and the transposed copy of w
    w.dispose();
    expect(numDataIds()).to.equal(before + 1);
    dyt.dispose();
    expect(numDataIds()).to.equal(before);
  });

  it('weight-gradient products (transposeA: activations as the right operand) are right and leave no buffers', function () {
    if (!onWasm()) this.skip();
    const a = tf.tensor2d(x, [rows, k]);
    const d = tf.tensor2d(dy, [rows, n]);
    const before = numDataIds();
    const out = tf.tidy(() => [
      tf.matMul(a, d, true, false),
      tf.matMul(d, a, true, false),
      tf.matMul(d, tf.transpose(a), true, true),
    ]);
    expect(numDataIds()).to.equal(before + 3); // the three results only
    const xT = new Float32Array(k * rows);
    for (let r = 0; r < rows; r++) for (let c = 0; c < k; c++) xT[c * rows + r] = x[r * k + c];
    const ref = refMatMul(xT, dy, k, rows, n); // aᵀ·d [k, n]
    expect(relErr(out[0].dataSync() as Float32Array, ref)).to.be.lessThan(TOL);
    tf.tidy(() => {
      expect(relErr(tf.transpose(out[1]).dataSync() as Float32Array, ref)).to.be.lessThan(TOL); // (dᵀ·a)ᵀ
      expect(relErr(tf.transpose(out[2]).dataSync() as Float32Array, ref)).to.be.lessThan(TOL);
    });
    tf.dispose([...out, a, d]);
    expect(numDataIds()).to.equal(before - 2);
  });

  it('a training-like loop (weights assigned every step) grows neither tensors nor backend buffers', () => {
    const w = tf.variable(tf.tensor2d(w1, [k, n]));
    const b = tf.variable(tf.zeros([n]));
    const xt = tf.tensor3d(x, [3, rows / 3, k]);
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.matMul(xt, w).add(b).square().mean() as tf.Scalar, [w, b]);
        w.assign(w.sub(grads[w.name].mul(0.1)));
        b.assign(b.sub(grads[b.name].mul(0.1)));
        return value;
      });
    try {
      step().dispose();
      const tensors = tf.memory().numTensors;
      const buffers = numDataIds();
      const losses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const l = step();
        losses.push(l.dataSync()[0]);
        l.dispose();
      }
      expect(tf.memory().numTensors).to.equal(tensors);
      expect(numDataIds()).to.equal(buffers);
      // gradient descent on a convex loss with fresh weights every step: the loss goes down
      expect(losses[19]).to.be.lessThan(losses[0]);
    } finally {
      tf.dispose([w, b, xt]);
    }
  });
});

describe('fastgrad: Identity on wasm shares the buffer', () => {
  it('clone has the same values and no new backend buffer; it outlives its source', function () {
    const src = tf.tensor2d(data(12, 9), [3, 4]);
    const want = Array.from(src.dataSync());
    const before = numDataIds();
    const c = src.clone();
    if (onWasm()) expect(numDataIds()).to.equal(before); // shared, not copied
    expect(c.shape).to.deep.equal([3, 4]);
    src.dispose();
    expect(Array.from(c.dataSync())).to.deep.equal(want);
    c.dispose();
    expect(numDataIds()).to.equal(before - 1);
  });
  it('a variable assigned after cloning does not change the clone (assign takes a new buffer)', () => {
    const v = tf.variable(tf.tensor1d([1, 2, 3]));
    const c = v.clone();
    v.assign(tf.tensor1d([7, 8, 9]));
    expect(Array.from(c.dataSync())).to.deep.equal([1, 2, 3]);
    expect(Array.from(v.dataSync())).to.deep.equal([7, 8, 9]);
    tf.dispose([v, c]);
  });
  it('int32, bool and string tensors clone too', () => {
    const ts = [tf.tensor1d([1, -2, 3], 'int32'), tf.tensor1d([1, 0, 1], 'bool'), tf.tensor1d(['a', 'bc'])];
    for (const t of ts) {
      const c = t.clone();
      expect(c.dtype).to.equal(t.dtype);
      expect(c.arraySync()).to.deep.equal(t.arraySync());
      c.dispose();
    }
    tf.dispose(ts);
  });
  it('gradients through customGrad (which clones what it saves) are unchanged, with no growth', () => {
    const f = tf.customGrad((a: tf.Tensor, save: tf.GradSaveFunc) => {
      const y = a.square();
      save([a]);
      return { value: y, gradFunc: (d: tf.Tensor, [s]: tf.Tensor[]) => d.mul(s).mul(2) };
    });
    const a = tf.tensor1d([1, -2, 3]);
    const run = () =>
      tf.tidy(() =>
        Array.from(
          tf
            .grad((t: tf.Tensor) => (f(t) as tf.Tensor).sum())(a)
            .dataSync(),
        ),
      );
    expect(run()).to.deep.equal([2, -4, 6]);
    const tensors = tf.memory().numTensors;
    const buffers = numDataIds();
    for (let i = 0; i < 10; i++) run();
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(numDataIds()).to.equal(buffers);
    a.dispose();
  });
});
