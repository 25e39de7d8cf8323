/**
 * The fused Adam(W) update on wasm (lib/fastgrad/adam.ts) against the same Adam class on the cpu
 * backend (tfjs ops): parameters and moments after several steps, with and without weight decay,
 * sizes with a scalar tail (size % 4 != 0), and no leaks.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { Adam } from '../lib/optim/adam.js';
import { fusedAdamApplies } from '../lib/fastgrad/adam.js';
import { data, relErr } from './fastgrad_util.js';

const SHAPES: number[][] = [[3, 3, 8, 16], [7], [5, 3], [16]];

/** Run 4 Adam steps on `backend`; returns params, m and v (flat values) by name. */
async function run(backend: string, weightDecay: number): Promise<Map<string, Float32Array>> {
  const prev = tf.getBackend();
  await tf.setBackend(backend);
  try {
    const params = new Map(
      SHAPES.map((s, i) => [`p${i}`, tf.variable(tf.tensor(data(tf.util.sizeFromShape(s), 10 + i), s))] as const),
    );
    const adam = new Adam(params, { weightDecay });
    for (let step = 0; step < 4; step++) {
      const grads = new Map(
        [...params].map(([k, p], i) => [k, tf.tensor(data(p.size, 100 * step + i), p.shape)] as const),
      );
      adam.step(grads, 1e-2 * (step + 1));
      tf.dispose([...grads.values()]);
    }
    const out = new Map<string, Float32Array>();
    for (const [k, p] of params) {
      out.set(k, p.dataSync() as Float32Array);
      out.set(`m/${k}`, adam.m.get(k)!.dataSync() as Float32Array);
      out.set(`v/${k}`, adam.v.get(k)!.dataSync() as Float32Array);
    }
    adam.dispose();
    tf.dispose([...params.values()]);
    return out;
  } finally {
    await tf.setBackend(prev);
  }
}

describe('fastgrad: fused Adam update on wasm', () => {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  it('applies on wasm (else the comparison would test the op path twice)', () => {
    const p = tf.zeros([5]);
    expect(fusedAdamApplies(p, p)).to.equal(true);
    p.dispose();
  });

  for (const wd of [0, 0.1]) {
    it(`parameters and moments after 4 steps equal the op path on cpu (weight decay ${wd})`, async () => {
      const here = await run(tf.getBackend(), wd);
      const ref = await run('cpu', wd);
      for (const [k, r] of ref) expect(relErr(here.get(k)!, r), k).to.be.lessThan(1e-5);
    });
  }

  it('leaves no tensors or buffers behind', () => {
    const params = new Map([['w', tf.variable(tf.ones([9, 4]))]]);
    const adam = new Adam(params);
    const g = new Map([['w', tf.fill([9, 4], 0.5)]]);
    adam.step(g, 1e-3);
    const tensors = tf.memory().numTensors;
    const ids = tf.engine().backend.numDataIds();
    for (let i = 0; i < 5; i++) adam.step(g, 1e-3);
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(tf.engine().backend.numDataIds()).to.equal(ids);
    adam.dispose();
    tf.dispose([...params.values(), ...g.values()]);
  });
});
