/**
 * bench scale's models without their weights: openai's 256x256 uncond flags build exactly the released
 * checkpoint's key list, and the wasm fit check refuses what the heap cannot hold, naming the backends that can.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GD_256_UNCOND_FLAGS } from '../bench/scale.js';
import { configFromReference, unetParamShapes } from '../nets/unet/index.js';
import { assertFitsWasm } from '../lib/fastgrad/wasm.js';
import { PARITY } from './fixtures.js';

describe('bench scale: the 256 px guided-diffusion UNet and the wasm fit check', () => {
  it("openai's 256x256 uncond flags build every key and shape of gd_256_uncond.full.keys.json (552,814,086 parameters)", function () {
    const p = join(PARITY, 'gd_256_uncond.full.keys.json');
    if (!existsSync(p)) this.skip();
    const want = JSON.parse(readFileSync(p, 'utf8')) as Record<string, { shape: number[] }>;
    const got = unetParamShapes(configFromReference(GD_256_UNCOND_FLAGS));
    expect([...got.keys()].sort()).to.deep.equal(Object.keys(want).sort());
    for (const [k, s] of got) expect(s, k).to.deep.equal(want[k].shape);
    expect([...got.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0)).to.equal(552814086);
  });

  it('on wasm: weights beyond the 4 GB heap are refused before any allocation, naming tensorflow and webgpu; what fits passes', function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    const before = tf.memory().numBytes;
    expect(() => assertFitsWasm(4 * 2 ** 30, 'a 1.07G-parameter net')).to.throw(
      /a 1\.07G-parameter net needs 4096 MB.*--backend tensorflow.*--backend webgpu/,
    );
    expect(() => assertFitsWasm(64 * 2 ** 20, 'a small net')).not.to.throw();
    expect(tf.memory().numBytes).to.equal(before);
  });
});
