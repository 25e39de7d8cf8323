/** `diffguide demo`: the showcase runs end to end (tiny random models, quick budgets) and writes one page. */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { runDemo } from '../lib/demo/showcase.js';
import { randomModels, disposeModels } from '../lib/models/load.js';

describe('demo (tiny random models, quick)', function () {
  this.timeout(600000);
  it('runs all five methods, writes PNGs and one HTML page referencing them, leaks no tensors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-demo-'));
    const models = randomModels(0, { imageSize: 16 });
    try {
      const before = tf.memory().numTensors;
      const r = await runDemo({ out: dir, quick: true, models });
      expect(tf.memory().numTensors).to.equal(before);
      expect(r.page).to.equal(join(dir, 'index.html'));
      const html = readFileSync(r.page, 'utf8');
      for (const m of ['SDEdit', 'SDG', 'DiffusionCLIP', 'unCLIP', 'Imagic']) expect(html).to.include(`<h2>${m}</h2>`);
      const srcs = [...html.matchAll(/src="([^"]+)"/g)].map((x) => x[1]);
      expect(srcs.length).to.be.greaterThan(40);
      for (const s of srcs) expect(existsSync(join(dir, s)), s).to.equal(true);
      expect(html).to.include('t0');
    } finally {
      disposeModels(models);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
