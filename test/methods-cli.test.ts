/** The method commands: --help with an example, unknown options, missing weights, NaN reporting, outputs. */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { cli } from './cli_util.js';
import { UNet } from '../nets/unet/index.js';
import { makeSchedule } from '../samplers/schedule.js';
import { makeDiffuser, tinyUNetConfig } from '../lib/methods/index.js';
import { sdedit } from '../lib/methods/sdedit.js';
import { sample } from '../lib/methods/sample.js';
import { writePng } from '../lib/image/png.js';
import { describeBackend } from '../lib/backend.js';

const METHOD_COMMANDS = ['sample', 'sdg', 'sdedit', 'diffusionclip', 'unclip', 'imagic', 'invert', 'demo'];

describe('method commands', function () {
  this.timeout(300000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dg-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const c of METHOD_COMMANDS) {
    it(`${c} --help shows usage, options and an example`, async () => {
      const r = await cli([c, '--help']);
      expect(r.code).to.equal(0);
      expect(r.out).to.match(new RegExp(`Usage: diffguide ${c}`));
      expect(r.out).to.match(/Examples:\n\s+diffguide /);
      expect(r.out).to.include('--backend');
      if (c !== 'demo') expect(r.out).to.include('--random-weights');
    });
  }

  it('every --help lists each option with its flag and its help separated (train has the longest flags)', async () => {
    for (const c of [...METHOD_COMMANDS, 'train', 'eval', 'data', 'bench']) {
      const r = await cli([c, '--help']);
      const rows = r.out.split('\n').filter((l) => /^\s+(-\w, )?--[a-z]/.test(l));
      expect(rows.length, c).to.be.greaterThan(2);
      for (const l of rows) expect(l, `${c}: ${l}`).to.match(/^\s+(-\w, )?--[\w-]+( VALUE)?\s{2,}\S/);
    }
  });

  it('eval judge --weights evaluates that judge (not the shipped one)', async () => {
    const missing = join(dir, 'no-judge-here');
    const err = await cli([
      'eval',
      'judge',
      '--weights',
      missing,
      '--data',
      'test/data/emoji32-subset.json',
      '--json',
    ]).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.include(join(missing, 'config.json'));
  });

  it('train --ship writes weights, config and card, and refuses an --eval-json of another step', async () => {
    const run = join(dir, 'judge-run');
    const data = ['--data', 'test/data/emoji32-subset.json'];
    expect(await cli(['train', 'judge', ...data, '--out', run, '--steps', '2', '--batch', '4'])).to.include({
      code: 0,
    });
    const report = (step: number) => {
      const f = join(dir, `eval-${step}.json`);
      writeFileSync(
        f,
        JSON.stringify({
          model: 'judge',
          step,
          bars: { test_category_accuracy: { value: 0.5, goal: 'x', pass: false } },
        }),
      );
      return f;
    };
    const ship = join(dir, 'judge-ship');
    const err = await cli([
      'train',
      'judge',
      ...data,
      '--out',
      run,
      '--export-only',
      '--ship',
      ship,
      '--eval-json',
      report(1),
    ]).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/measured step 1, but .* is at step 2/);
    expect(existsSync(join(ship, 'MODEL_CARD.md'))).to.equal(false);
    expect(
      await cli(['train', 'judge', ...data, '--out', run, '--export-only', '--ship', ship, '--eval-json', report(2)]),
    ).to.include({ code: 0 });
    for (const f of ['judge.safetensors', 'config.json', 'MODEL_CARD.md'])
      expect(existsSync(join(ship, f))).to.equal(true);
    expect(readFileSync(join(ship, 'MODEL_CARD.md'), 'utf8')).to.include('test_category_accuracy');
    const card = readFileSync(join(ship, 'MODEL_CARD.md'), 'utf8');
    expect(
      card,
      card.split('\n').find((l) => l.startsWith('- Hardware')),
    ).to.include(`trained on tfjs ${describeBackend()}`);
  });

  it('every method command is registered', async () => {
    const { COMMANDS } = await import('../lib/cli/commands.js');
    for (const c of METHOD_COMMANDS) expect(Object.keys(COMMANDS)).to.include(c);
  });

  it('an unknown option lists the valid ones', async () => {
    const r = await cli(['sdedit', 'x.png', '--t00', '0.3']);
    expect(r.code).to.equal(2);
    expect(r.err).to.include('Valid options:');
    expect(r.err).to.include('--t0');
  });

  it('a missing weights file names what was expected and the command that makes it', async () => {
    const img = join(dir, 'g.png');
    const x = tf.zeros([1, 32, 32, 3]);
    writePng(img, x);
    x.dispose();
    const r = await cli(['sdedit', img, '--weights', join(dir, 'nope'), '--backend', 'wasm']);
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/no weights for 'unet'/);
    expect(r.err).to.include('diffguide train unet');
    const r2 = await cli(['imagic', img, '--text', 'x', '--weights', join(dir, 'nope'), '--backend', 'wasm']);
    expect(r2.err).to.include('diffguide train cond-unet');
  });

  it('an incompatible weights file is refused with the expected model and the fix', async () => {
    const bad = join(dir, 'bad.safetensors');
    const { writeSafetensors } = await import('../lib/io/index.js');
    await writeSafetensors(bad, {
      'foo.weight': { shape: [2], dtype: 'float32', data: new Float32Array(2), sourceDtype: 'float32' },
    });
    const img = join(dir, 'g.png');
    const r = await cli(['sdedit', img, '--weights', bad, '--backend', 'wasm']);
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/not an unconditional UNet/);
    expect(r.err).to.include('diffguide train unet');
  });

  it('sdedit --random-weights writes PNGs, a grid, settings; resizes a 64x64 guide with a note', async () => {
    const img = join(dir, 'big.png');
    const x = tf.fill([1, 64, 64, 3], 0.5);
    writePng(img, x);
    x.dispose();
    const out = join(dir, 'o');
    const r = await cli([
      'sdedit',
      img,
      '--random-weights',
      '--steps',
      '3',
      '--repeats',
      '2',
      '--t0',
      '0.3,0.6',
      '--out',
      out,
      '--backend',
      'wasm',
    ]);
    expect(r.code, r.err).to.equal(0);
    expect(r.err).to.match(/resized to 32x32/);
    expect(r.out.trim().split('\n').at(-1)).to.equal(join(out, 'sdedit-grid.png'));
    for (let i = 0; i < 4; i++) expect(existsSync(join(out, `sdedit-${i}.png`))).to.equal(true);
    const s = JSON.parse(readFileSync(join(out, 'sdedit-settings.json'), 'utf8'));
    expect(s.t0).to.equal('0.3,0.6');
  });

  it('NaN/Inf during sampling stops with the step number', async () => {
    const u = UNet.random(tinyUNetConfig({ imageSize: 16 }), 0);
    const key = [...u.params.keys()].find((k) => k.startsWith('out.') && k.endsWith('bias'))!;
    u.params.get(key)!.assign(tf.fill(u.params.get(key)!.shape, NaN));
    const d = makeDiffuser(u, makeSchedule('linear', 1000));
    let msg = '';
    try {
      (await sample(d, { n: 1, steps: 5 })).images.dispose();
    } catch (e) {
      msg = (e as Error).message;
    }
    // the net's NaN is caught before clipping x0 could hide it, naming the first step's timestep
    expect(msg).to.match(/NaN or Inf/);
    expect(msg).to.match(/t=999/);
    const g = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
    msg = '';
    try {
      (await sdedit(d, g, { steps: 4, t0: 0.5 })).images.dispose();
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).to.match(/NaN or Inf/);
    expect(msg).to.match(/t=499/);
    g.dispose();
    u.dispose();
  });
});
