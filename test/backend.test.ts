import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend } from '../lib/backend.js';
import { Rng, deriveSeed } from '../lib/random.js';

describe('backend', () => {
  it('reports the chosen backend, matching tfjs', () => {
    const b = backendInfo();
    expect(b).to.not.equal(null);
    expect(tf.getBackend()).to.equal(b!.tfBackend);
  });
  it('rejects an unknown DIFFGUIDE_BACKEND with the valid names', async () => {
    const saved = process.env.DIFFGUIDE_BACKEND;
    process.env.DIFFGUIDE_BACKEND = 'cuda';
    try {
      let err: Error | null = null;
      await initBackend({ verbose: false }).catch((e: Error) => (err = e));
      expect(err).to.be.instanceOf(Error);
      expect(String(err)).to.match(/not a backend.*wasm/);
    } finally {
      if (saved === undefined) delete process.env.DIFFGUIDE_BACKEND;
      else process.env.DIFFGUIDE_BACKEND = saved;
    }
  });
});

describe('seeds', () => {
  it('the same seed gives the same tensor, another seed another', () => {
    const a = new Rng(7).normal([64]).arraySync() as number[];
    const b = new Rng(7).normal([64]).arraySync() as number[];
    const c = new Rng(8).normal([64]).arraySync() as number[];
    expect(a).to.deep.equal(b);
    expect(a).to.not.deep.equal(c);
  });
  it('derived seeds differ across streams', () => {
    const s = new Set(Array.from({ length: 1000 }, (_, i) => deriveSeed(1, i)));
    expect(s.size).to.equal(1000);
  });
});
