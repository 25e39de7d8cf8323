/**
 * bench scale's models without their weights: openai's 256x256 uncond flags build exactly the released
 * checkpoint's key list, and the wasm fit check refuses what the heap cannot hold, naming the backends that can;
 * the 256 px UNet is streamed on wasm (its largest block fits), what not even streamed fits is refused at load.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GD_256_UNCOND_FLAGS } from '../bench/scale.js';
import { configFromReference, unetParamShapes } from '../nets/unet/index.js';
import { assertFitsWasm } from '../lib/fastgrad/wasm.js';
import { assertFitsStreamed, chooseWeightMode, largestBlockBytes, WEIGHT_MODE_ENV } from '../lib/models/stream.js';
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

  it('on wasm the 256 px UNet + CLIP are streamed (auto); streamed, its largest block (220 MiB) fits; a 3 GB block is refused naming the backends', function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    const saved = process.env[WEIGHT_MODE_ENV];
    delete process.env[WEIGHT_MODE_ENV];
    try {
      const shapes = unetParamShapes(configFromReference(GD_256_UNCOND_FLAGS));
      const unetBytes = 4 * [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
      const clipBytes = 4 * 87849216; // CLIP ViT-B/32's image tower
      expect(chooseWeightMode(unetBytes + clipBytes).mode).to.equal('streamed');
      const block = largestBlockBytes([...shapes].map(([k, s]) => [k, s.reduce((x, y) => x * y, 1)]));
      // the widest: an output block at 1024 channels (ResBlock 2048 -> 1024, attention, the upsampling ResBlock)
      expect(block).to.be.within(150 * 2 ** 20, 300 * 2 ** 20);
      expect(block).to.be.below(unetBytes / 8);
      const before = tf.memory().numBytes;
      expect(() => assertFitsStreamed(block, clipBytes, 'the 256 px UNet')).not.to.throw();
      expect(() => assertFitsStreamed(3 * 2 ** 30, clipBytes, 'a giant net')).to.throw(
        /a giant net \(streamed: its largest block plus the resident weights\) needs .*--backend tensorflow.*--backend webgpu/,
      );
      expect(tf.memory().numBytes).to.equal(before);
    } finally {
      if (saved === undefined) delete process.env[WEIGHT_MODE_ENV];
      else process.env[WEIGHT_MODE_ENV] = saved;
    }
  });

  it('largestBlockBytes groups guided-diffusion keys by block (input_blocks.N., middle_block., out.)', () => {
    const b = largestBlockBytes([
      ['input_blocks.0.0.weight', 10],
      ['input_blocks.1.0.in_layers.2.weight', 100],
      ['input_blocks.1.1.qkv.weight', 50],
      ['input_blocks.11.0.weight', 120],
      ['middle_block.0.weight', 60],
      ['middle_block.2.weight', 70],
      ['out.2.weight', 5],
    ]);
    expect(b).to.equal(4 * 150);
  });
});
