import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { describeBackend } from '../lib/backend.js';
import {
  Adam,
  Ema,
  clipByGlobalNorm,
  lrAt,
  withWeights,
  writeCheckpoint,
  readCheckpoint,
  train,
  type TrainTask,
} from '../lib/train/index.js';
import {
  meanCov,
  symmetricEigen,
  sqrtmPsd,
  frechetDistance,
  frechetDistanceOfFeatures,
  totalVariation,
} from '../lib/metrics/frechet.js';
import { Judge } from '../nets/judge/model.js';
import { Dataset, testSubsetPath } from '../lib/data/index.js';
import { HAVE_PARITY, parity } from './fixtures.js';
import type { Rng } from '../lib/random.js';

const dir = mkdtempSync(join(tmpdir(), 'dg-train-'));
const ROOT = packageRoot();

describe('lib/train: optimiser pieces', () => {
  it('Adam matches the torch.optim.Adam update written out by hand', () => {
    const p = tf.variable(tf.tensor1d([1, -2]), true, 'adam-test-p');
    const params = new Map([['w', p]]);
    const adam = new Adam(params, { beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    let m = [0, 0];
    let v = [0, 0];
    let w = [1, -2];
    for (let t = 1; t <= 3; t++) {
      const g = w.map((x) => 2 * x); // d/dw of w^2
      const gt = tf.tensor1d(g);
      adam.step(new Map([['w', gt]]), 0.1);
      gt.dispose();
      m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]);
      v = v.map((vi, i) => 0.999 * vi + 0.001 * g[i] * g[i]);
      w = w.map((wi, i) => wi - (0.1 * (m[i] / (1 - 0.9 ** t))) / (Math.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8));
    }
    const got = Array.from(p.dataSync());
    got.forEach((x, i) => expect(x).to.be.closeTo(w[i], 1e-5));
    adam.dispose();
    p.dispose();
  });

  it('AdamW decays weights but not biases', () => {
    const w = tf.variable(tf.ones([2, 2]), true, 'wd-w');
    const b = tf.variable(tf.ones([2]), true, 'wd-b');
    const adam = new Adam(
      new Map([
        ['w', w],
        ['b', b],
      ]),
      { weightDecay: 0.5 },
    );
    adam.step(
      new Map([
        ['w', tf.zeros([2, 2])],
        ['b', tf.zeros([2])],
      ]),
      0.1,
    );
    expect(w.dataSync()[0]).to.be.closeTo(0.95, 1e-6);
    expect(b.dataSync()[0]).to.be.closeTo(1, 1e-6);
    adam.dispose();
    tf.dispose([w, b]);
  });

  it('learning rate: linear warm-up, then constant (with an optional linear cooldown) or cosine to minLr', () => {
    expect(lrAt(0, { lr: 1, warmup: 10 })).to.be.closeTo(0.1, 1e-12);
    expect(lrAt(9, { lr: 1, warmup: 10 })).to.be.closeTo(1, 1e-12);
    expect(lrAt(500, { lr: 1, warmup: 10 })).to.equal(1);
    expect(lrAt(10, { lr: 1, warmup: 10, total: 110, decay: 'cosine' })).to.be.closeTo(1, 1e-12);
    expect(lrAt(60, { lr: 1, warmup: 10, total: 110, decay: 'cosine', minLr: 0.2 })).to.be.closeTo(0.6, 1e-12);
    expect(lrAt(110, { lr: 1, warmup: 10, total: 110, decay: 'cosine' })).to.be.closeTo(0, 1e-12);
    expect(() => lrAt(5, { lr: 1, decay: 'cosine' })).to.throw(/total/);
    // warmup-stable-decay: constant until total - cooldown, then linear to minLr at total
    const wsd = { lr: 1, warmup: 10, total: 110, cooldown: 40 };
    expect(lrAt(69, wsd)).to.equal(1);
    expect(lrAt(70, wsd)).to.be.closeTo(1, 1e-12);
    expect(lrAt(90, wsd)).to.be.closeTo(0.5, 1e-12);
    expect(lrAt(100, { ...wsd, minLr: 0.2 })).to.be.closeTo(0.4, 1e-12);
    expect(lrAt(110, wsd)).to.equal(0);
    expect(() => lrAt(5, { lr: 1, cooldown: 40 })).to.throw(/cooldown/);
  });

  it('clips gradients to a global norm', () => {
    const g = new Map<string, tf.Tensor>([
      ['a', tf.tensor1d([3, 0])],
      ['b', tf.tensor1d([4])],
    ]);
    const { grads, norm } = clipByGlobalNorm(g, 1);
    expect(norm).to.be.closeTo(5, 1e-6);
    const a = grads.get('a')!.dataSync();
    const b = grads.get('b')!.dataSync();
    expect(Math.hypot(a[0], a[1], b[0])).to.be.closeTo(1, 1e-5);
    tf.dispose([...grads.values()]);
    const small = new Map<string, tf.Tensor>([['a', tf.tensor1d([0.1])]]);
    const r = clipByGlobalNorm(small, 1);
    expect(r.grads.get('a')).to.equal(small.get('a'));
    small.get('a')!.dispose();
  });

  it('EMA follows d = min(decay, (1+step)/(10+step)); withWeights swaps and restores', () => {
    const p = tf.variable(tf.scalar(0), true, 'ema-p');
    const params = new Map([['p', p]]);
    const ema = new Ema(params, 0.9);
    p.assign(tf.scalar(1));
    ema.update(params, 0); // d = 0.1
    expect(ema.shadow.get('p')!.dataSync()[0]).to.be.closeTo(0.9, 1e-6);
    ema.update(params, 1000); // d = min(0.9, 1001/1010) = 0.9
    expect(ema.shadow.get('p')!.dataSync()[0]).to.be.closeTo(0.91, 1e-6);
    const inside = withWeights(params, ema.shadow, () => p.dataSync()[0]);
    expect(inside).to.be.closeTo(0.91, 1e-6);
    expect(p.dataSync()[0]).to.equal(1);
    ema.dispose();
    p.dispose();
  });
});

describe('lib/train: checkpoints', () => {
  it('round-trips groups and state; refuses truncated or foreign files with the reason', () => {
    const path = join(dir, 'ck.safetensors');
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    writeCheckpoint(
      path,
      { params: new Map([['x.weight', a]]), ema: new Map([['x.weight', a.mul(2)]]) },
      { step: 7, note: 'hi' },
    );
    const ck = readCheckpoint(path);
    expect(ck.state).to.deep.equal({ step: 7, note: 'hi' });
    expect(Array.from(ck.groups.params.get('x.weight')!.data)).to.deep.equal([1, 2, 3, 4]);
    expect(Array.from(ck.groups.ema.get('x.weight')!.data)).to.deep.equal([2, 4, 6, 8]);
    expect(existsSync(`${path}.tmp-${process.pid}`)).to.equal(false);
    truncateSync(path, statSync(path).size - 4);
    expect(() => readCheckpoint(path)).to.throw(/truncated/);
    const other = join(dir, 'other.safetensors');
    const hdr = Buffer.from('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hdr.length));
    writeFileSync(other, Buffer.concat([len, hdr, Buffer.alloc(4)]));
    expect(() => readCheckpoint(other)).to.throw(/not a diffguide training checkpoint/);
    expect(() => readCheckpoint(join(dir, 'none.safetensors'))).to.throw(/does not exist/);
    a.dispose();
  });
});

/** A linear regression as a training task: y = x w against a fixed target w; `dispose` frees both. */
function regressionTask(name: string, batch: number): { task: TrainTask<tf.Tensor2D>; dispose: () => void } {
  const w = tf.variable(tf.zeros([3, 1]), true, name);
  const target = tf.tensor2d([[1], [-2], [0.5]]);
  const task: TrainTask<tf.Tensor2D> = {
    params: new Map([['w', w]]),
    nextBatch: (_s: number, rng: Rng) => rng.normal<tf.Rank.R2>([batch, 3]),
    loss: (x) => tf.losses.meanSquaredError(tf.matMul(x, target), tf.matMul(x, w)) as tf.Scalar,
    disposeBatch: (x) => x.dispose(),
  };
  return { task, dispose: () => tf.dispose([w, target]) };
}

describe('lib/train: the loop', () => {
  it('decreases a simple regression loss, writes CSV/PNG/checkpoint, refuses to overwrite without --resume, and does not leak', async () => {
    const { task, dispose } = regressionTask('reg-w', 16);
    const out = join(dir, 'reg');
    const before = tf.memory().numTensors;
    const r = await train(task, {
      out,
      steps: 150,
      lr: 0.05,
      warmup: 5,
      seed: 1,
      sampleEvery: 0,
      logEvery: 10,
      checkpointEvery: 50,
      onProgress: () => {},
    });
    expect(tf.memory().numTensors).to.equal(before);
    expect(r.step).to.equal(150);
    expect(r.avgLoss).to.be.below(0.05);
    const csv = readFileSync(join(out, 'loss.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).to.equal('step,loss,avg_loss,lr,grad_norm,wall_s');
    expect(csv.length).to.equal(16);
    expect(Number(csv[1].split(',')[1])).to.be.greaterThan(Number(csv[15].split(',')[1]));
    expect(existsSync(join(out, 'loss.png'))).to.equal(true);
    expect(existsSync(join(out, 'checkpoint.safetensors'))).to.equal(true);
    await train(task, { out, steps: 10, lr: 0.05, onProgress: () => {} }).then(
      () => expect.fail('should refuse'),
      (e: Error) => expect(e.message).to.match(/exists; pass --resume/),
    );
    await train(task, {
      out,
      steps: 160,
      lr: 0.05,
      resume: true,
      seed: 1,
      config: { other: 1 },
      onProgress: () => {},
    }).then(
      () => expect.fail('should refuse'),
      (e: Error) => expect(e.message).to.match(/cannot resume .*config/),
    );
    dispose();
  });

  it('a cooldown given on resume is kept by later resumes, which end where it ends', async () => {
    const { task, dispose } = regressionTask('cool-w', 8);
    const out = join(dir, 'cool');
    const base = { out, lr: 0.01, seed: 1, sampleEvery: 0, logEvery: 1, checkpointEvery: 10, onProgress: () => {} };
    await train(task, { ...base, steps: 20 }); // a constant-rate run, stopped at 20
    // fork: cool down over 20 steps ending at 40, but stop after 10 of them
    await train(task, { ...base, steps: 40, cooldown: 20, resume: true, maxStepsThisRun: 10 });
    // a plain resume (asking for 1000 steps) keeps the cooldown and stops at its end
    const r = await train(task, { ...base, steps: 1000, resume: true });
    expect(r.step).to.equal(40);
    const rows = readFileSync(join(out, 'loss.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(',').map(Number));
    const lrOf = (step: number) => rows.find((row) => row[0] === step)![3];
    expect(lrOf(20)).to.be.closeTo(0.01, 1e-9); // lr of 0-based step 19 (rows are logged after the step)
    expect(lrOf(31)).to.be.closeTo((0.01 * (40 - 30)) / 20, 1e-9);
    expect(lrOf(40)).to.be.closeTo((0.01 * 1) / 20, 1e-9);
    // the state (read by model cards) names the cooldown and the backend of the three processes, once
    const st = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as { cooldown: unknown; backends: string[] };
    expect(st.cooldown).to.deep.equal({ steps: 20, end: 40 });
    expect(st.backends).to.deep.equal([describeBackend()]);
    dispose();
  });

  it('stops when its signal aborts: after the current step, with a checkpoint at that step', async () => {
    const { task, dispose } = regressionTask('stop-w', 8);
    const out = join(dir, 'stop');
    const ctl = new AbortController();
    const r = await train(task, {
      out,
      steps: 100,
      lr: 0.01,
      seed: 1,
      sampleEvery: 0,
      checkpointEvery: 50,
      signal: ctl.signal,
      onProgress: (p) => {
        if (p.step === 7) ctl.abort();
      },
    });
    expect(r).to.include({ step: 7, stopped: true });
    expect((readCheckpoint(join(out, 'checkpoint.safetensors')).state as { step: number }).step).to.equal(7);
    const done = await train(task, {
      out,
      steps: 12,
      lr: 0.01,
      seed: 1,
      sampleEvery: 0,
      resume: true,
      signal: new AbortController().signal,
      onProgress: () => {},
    });
    expect(done).to.include({ step: 12, stopped: false, resumedFrom: 7 });
    dispose();
  });

  it('SIGTERM in a training process: finishes the step, checkpoints it, exits 143', async function () {
    this.timeout(300000);
    const child = join(ROOT, 'test', 'train_child.ts');
    const out = join(dir, 'sigterm');
    const proc = spawn(process.execPath, ['--import', 'tsx', child, out, '200', '-', '-', '150'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    proc.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await new Promise<number | null>((res) => {
      const t = setInterval(() => {
        if (/step 7\n/.test(stdout)) {
          clearInterval(t);
          proc.kill('SIGTERM');
        }
      }, 20);
      proc.on('exit', (c) => {
        clearInterval(t);
        res(c);
      });
    });
    expect(code, stderr).to.equal(143);
    expect(stderr).to.match(/SIGTERM: stopping after this step/);
    const printed = stdout.match(/step (\d+)\n/g)!.map((l) => Number(l.slice(5)));
    const last = printed[printed.length - 1];
    expect(last).to.be.below(200);
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as { step: number; stopped: boolean };
    expect(result).to.include({ step: last, stopped: true });
    // the checkpoint holds exactly the last finished step, whether or not it was a multiple of 5
    expect((readCheckpoint(join(out, 'checkpoint.safetensors')).state as { step: number }).step).to.equal(last);
  });

  it('resumes after SIGKILL, continuing from the checkpoint exactly as an uninterrupted run', async function () {
    this.timeout(600000);
    const child = join(ROOT, 'test', 'train_child.ts');
    // run node itself (not the tsx wrapper, whose SIGKILL would leave the real process running)
    const node = (args: string[]) => [process.execPath, ['--import', 'tsx', ...args]] as const;
    const killed = join(dir, 'killed');
    // 1. start a run of 30 steps, slowed down, kill -9 once a checkpoint beyond step 5 exists
    const proc = spawn(...node([child, killed, '30', '-', '-', '150']), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lastStep = 0;
    proc.stdout.on('data', (b: Buffer) => {
      const m = /step (\d+)\n(?![\s\S]*step)/.exec(b.toString());
      if (m) lastStep = Number(m[1]);
    });
    const exited = new Promise<void>((res) => proc.on('exit', () => res()));
    await new Promise<void>((res, rej) => {
      const t = setInterval(() => {
        const st = join(killed, 'state.json');
        if (existsSync(st) && (JSON.parse(readFileSync(st, 'utf8')) as { step: number }).step >= 10 && lastStep >= 12) {
          clearInterval(t);
          proc.kill('SIGKILL');
          res();
        }
      }, 50);
      proc.on('exit', (code) => {
        clearInterval(t);
        if (code !== null) rej(new Error(`child finished (code ${code}) before it could be killed`));
      });
    });
    await exited;
    const ck = readCheckpoint(join(killed, 'checkpoint.safetensors'));
    const ckStep = (ck.state as { step: number }).step;
    expect(ckStep % 5).to.equal(0);
    expect(ckStep).to.be.at.least(10);
    expect(lastStep - ckStep).to.be.below(6); // lost at most one checkpoint interval (5 steps)
    expect(lastStep).to.be.below(30);
    // 2. resume with zero steps: the parameters equal the checkpoint's
    const dump0 = join(dir, 'dump0.json');
    const r0 = spawnSync(...node([child, killed, '30', '0', dump0]), { cwd: ROOT, encoding: 'utf8' });
    expect(r0.status, r0.stderr).to.equal(0);
    const p0 = JSON.parse(readFileSync(dump0, 'utf8')) as Record<string, number[]>;
    for (const [k, v] of ck.groups.params) expect(p0[k], k).to.deep.equal(Array.from(v.data));
    // 3. resume to the end; compare with an uninterrupted run
    const dump1 = join(dir, 'dump1.json');
    const r1 = spawnSync(...node([child, killed, '30', '-', dump1]), { cwd: ROOT, encoding: 'utf8' });
    expect(r1.status, r1.stderr).to.equal(0);
    const res1 = JSON.parse(r1.stdout.trim().split('\n').pop()!) as { step: number; resumedFrom: number };
    expect(res1.resumedFrom).to.equal(ckStep);
    expect(res1.step).to.equal(30);
    const firstLogged = Number(
      r1.stdout
        .split('\n')
        .find((l) => l.startsWith('step '))!
        .slice(5),
    );
    expect(firstLogged).to.equal(ckStep + 1);
    const dump2 = join(dir, 'dump2.json');
    const r2 = spawnSync(...node([child, join(dir, 'straight'), '30', '-', dump2]), { cwd: ROOT, encoding: 'utf8' });
    expect(r2.status, r2.stderr).to.equal(0);
    const a = JSON.parse(readFileSync(dump1, 'utf8')) as Record<string, number[]>;
    const b = JSON.parse(readFileSync(dump2, 'utf8')) as Record<string, number[]>;
    for (const k of Object.keys(b)) a[k].forEach((x, i) => expect(x, k).to.be.closeTo(b[k][i], 1e-6));
    // the CSV has one row per step, none duplicated by the resume
    const steps = readFileSync(join(killed, 'loss.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[0]));
    expect(steps).to.deep.equal(Array.from({ length: 30 }, (_, i) => i + 1));
  });
});

describe('lib/train: metrics', () => {
  it('Jacobi eigen-decomposition reconstructs a symmetric matrix', () => {
    const d = 6;
    const a = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let j = 0; j <= i; j++) a[i * d + j] = a[j * d + i] = Math.sin(i * 7 + j * 3) + (i === j ? 3 : 0);
    const { values, vectors } = symmetricEigen(a, d);
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += vectors[i * d + k] * values[k] * vectors[j * d + k];
        expect(s).to.be.closeTo(a[i * d + j], 1e-10);
      }
    const r = sqrtmPsd([4, 0, 0, 9], 2);
    expect(Array.from(r).map((x) => +x.toFixed(12))).to.deep.equal([2, 0, 0, 3]);
  });

  it('meanCov matches numpy.cov (ddof 1); FD is 0 for equal Gaussians and |dmu|^2 for shifted ones', () => {
    const { mean, cov } = meanCov([1, 2, 3, 4, 5, 9], 3, 2);
    expect(Array.from(mean)).to.deep.equal([3, 5]);
    expect(Array.from(cov)).to.deep.equal([4, 7, 7, 13]);
    expect(frechetDistance([0, 0], cov, [0, 0], cov)).to.be.closeTo(0, 1e-9);
    expect(frechetDistance([0, 0], cov, [3, 4], cov)).to.be.closeTo(25, 1e-9);
  });

  it("matches pytorch-fid's Frechet distance on the parity feature sets", function () {
    if (!HAVE_PARITY) this.skip();
    const c = JSON.parse(readFileSync(parity('fid_cases.json'), 'utf8')) as {
      feats1: number[][];
      feats2: number[][];
      fid: number;
    };
    const d = c.feats1[0].length;
    const fd = frechetDistanceOfFeatures(c.feats1.flat(), c.feats1.length, c.feats2.flat(), c.feats2.length, d);
    expect(fd).to.be.closeTo(c.fid, 1e-8 * Math.max(1, c.fid));
  });

  it('total-variation distance', () => {
    expect(totalVariation([1, 0], [0, 1])).to.equal(1);
    expect(totalVariation([2, 2], [1, 1])).to.equal(0);
    expect(totalVariation([3, 1], [1, 1])).to.be.closeTo(0.25, 1e-12);
  });
});

describe('nets/judge', () => {
  it('round-trips through a PyTorch-layout state_dict and gives features and logits of the right shapes', () => {
    const ds = Dataset.load(testSubsetPath(ROOT));
    const cfg = {
      imageSize: 32,
      widths: [8, 16],
      strides: [2, 2],
      groups: 4,
      categories: ds.categoryNames,
      vendors: ds.vendorNames,
    };
    const j = Judge.random(cfg, 1);
    const sd = j.toStateDict();
    expect(sd.get('blocks.0.conv.weight')!.shape).to.deep.equal([8, 3, 3, 3]);
    expect(sd.get('head_category.weight')!.shape).to.deep.equal([9, 16]);
    const j2 = Judge.fromStateDict(cfg, sd);
    const x = ds.images([0, 1, 2]);
    const a = j.apply(x);
    const b = j2.apply(x);
    expect(a.category.shape).to.deep.equal([3, 9]);
    expect(a.vendor.shape).to.deep.equal([3, 2]);
    expect(a.features.shape).to.deep.equal([3, 16]);
    expect(tf.abs(a.category.sub(b.category)).max().dataSync()[0]).to.be.below(1e-6);
    // 64x64 input is area-downsampled to the judge's size
    const up = tf.image.resizeNearestNeighbor(x, [64, 64]) as tf.Tensor4D;
    const c = j.apply(up);
    expect(tf.abs(c.category.sub(a.category)).max().dataSync()[0]).to.be.below(1e-5);
    expect(() => j.apply(tf.zeros([1, 30, 30, 3]) as tf.Tensor4D)).to.throw(/32x32 or an integer multiple/);
    sd.delete('head_vendor.bias');
    expect(() => Judge.fromStateDict(cfg, sd, 'x.safetensors')).to.throw(/x\.safetensors has no key head_vendor\.bias/);
    tf.dispose([
      x,
      up,
      a.category,
      a.vendor,
      a.features,
      b.category,
      b.vendor,
      b.features,
      c.category,
      c.vendor,
      c.features,
    ]);
    j.dispose();
    j2.dispose();
  });
});

describe('lib/train: evaluation bars', () => {
  it('evalUNet reports FID vs the Gaussian baseline and the category TV distance; evalJudge reports accuracies', async function () {
    this.timeout(600000);
    const { evalUNet, evalJudge } = await import('../lib/eval/unet.js');
    const { UNet } = await import('../nets/unet/index.js');
    const ds = Dataset.load(testSubsetPath(ROOT));
    const judge = Judge.random(
      {
        imageSize: 32,
        widths: [8, 16],
        strides: [2, 2],
        groups: 4,
        categories: ds.categoryNames,
        vendors: ds.vendorNames,
      },
      2,
    );
    const net = UNet.random(
      {
        kind: 'guided-diffusion',
        imageSize: 32,
        inChannels: 3,
        outChannels: 3,
        modelChannels: 32,
        channelMult: [1, 2],
        numResBlocks: 1,
        attentionDs: [],
      },
      0,
    );
    const before = tf.memory().numTensors;
    const r = await evalUNet(net, 'cosine', 1000, judge, ds, { n: 6, steps: 2, seed: 1 });
    expect(tf.memory().numTensors).to.equal(before);
    expect(r.model).to.equal('unet');
    const fid = r.bars.fid_ratio_vs_gaussian_baseline;
    expect(fid.value).to.be.greaterThan(0);
    expect(fid.pass).to.equal(fid.value <= 0.5);
    expect(r.fidBaseline as number).to.be.greaterThan(0);
    const tv = r.bars.category_tv_distance;
    expect(tv.value).to.be.within(0, 1);
    const counts = Object.values(r.sampleCategories as Record<string, number>);
    expect(counts.reduce((a, b) => a + b, 0)).to.equal(6);
    // the judge's own floor: its calls on the real held-out images against their labels
    const test = ds.indicesOf('test');
    const real = ds.images(test, { rgb: true });
    const calls = judge.predict(real).category;
    real.dispose();
    const K = ds.categoryNames.length;
    const called = new Array<number>(K).fill(0);
    const labelled = new Array<number>(K).fill(0);
    test.forEach((i, k) => {
      called[calls[k]]++;
      labelled[ds.categoryIds[i]]++;
    });
    const { totalVariation } = await import('../lib/metrics/frechet.js');
    expect(r.judgeTvOnHeldOut as number).to.be.closeTo(totalVariation(called, labelled), 1e-12);
    // the x0 diagnostic: one row per noise level, up to the last index; a random net is no better than the mean image near t = T
    const rows = r.x0ErrorByNoiseLevel as { index: number; alphaBar: number; model: number; meanImage: number }[];
    expect(rows.map((x) => x.index)).to.deep.equal([100, 500, 800, 900, 950, 980, 999]);
    for (const x of rows) {
      expect(x.model).to.be.within(0, 4);
      expect(x.meanImage).to.be.within(0, 4);
    }
    expect(rows[6].model).to.be.greaterThan(rows[6].meanImage);
    const j = evalJudge(judge, ds);
    expect(j.bars.test_category_accuracy.value).to.be.within(0, 1);
    expect(j.n).to.equal(ds.indicesOf('test').length);
    net.dispose();
    judge.dispose();
  });
});

describe("lib/train: the unet task's loss weights", () => {
  it('min-snr weighs every step as min(SNR, 5) on the x0 error, for eps and for v', async () => {
    const { minSnrWeight } = await import('../lib/train/tasks/unet.js');
    for (const abar of [0.999, 0.9, 0.5, 0.1, 0.001]) {
      const snr = abar / (1 - abar);
      // ||eps err||^2 = SNR ||x0 err||^2 and ||v err||^2 = (SNR + 1) ||x0 err||^2 (per unit variance)
      expect(minSnrWeight(abar, 'eps') * snr).to.be.closeTo(Math.min(snr, 5), 1e-9);
      expect(minSnrWeight(abar, 'v') * (snr + 1)).to.be.closeTo(Math.min(snr, 5), 1e-9);
    }
    expect(minSnrWeight(0.5, 'v', 0.5)).to.be.closeTo(0.25, 1e-12);
  });

  it('a min-snr unet loss differs from the uniform one on the same batch', async () => {
    const { UNetTask, smallUNetConfig } = await import('../lib/train/tasks/unet.js');
    const { UNet } = await import('../nets/unet/index.js');
    const { Rng } = await import('../lib/random.js');
    const ds = Dataset.load(testSubsetPath(packageRoot()));
    const net = UNet.random({ ...smallUNetConfig(32), modelChannels: 32 }, 0);
    const losses = (['uniform', 'min-snr'] as const).map((lossWeight) => {
      const task = new UNetTask(net, ds, { batch: 4, seed: 0, prediction: 'v', lossWeight });
      const b = task.nextBatch(0, new Rng(1));
      const l = tf.tidy(() => task.loss(b, new Rng(2)).dataSync()[0]);
      task.disposeBatch(b);
      return l;
    });
    expect(losses[0]).to.be.greaterThan(0);
    expect(Math.abs(losses[0] - losses[1])).to.be.greaterThan(1e-4);
    for (const v of net.params.values()) v.dispose();
  });
});
