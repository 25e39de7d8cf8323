import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { Dataset, testSubsetPath } from '../lib/data/index.js';
import { Adam, loadTrainedWeights, train, type TrainTask } from '../lib/train/index.js';
import { BatchSampler } from '../lib/data/dataset.js';
import { Rng } from '../lib/random.js';
import { CLIP, NoisyCLIPImageEncoder, type CLIPConfig } from '../nets/clip/index.js';
import { Prior } from '../nets/prior/index.js';
import { UNet } from '../nets/unet/index.js';
import { makeSchedule } from '../samplers/schedule.js';
import { ClipTask } from '../lib/train/tasks/clip.js';
import { NoisyClipTask } from '../lib/train/tasks/noisy-clip.js';
import { PriorTask } from '../lib/train/tasks/prior.js';
import { CondUNetTask, condUNetConfig, initFromUnconditional } from '../lib/train/tasks/cond-unet.js';
import { readUNetWeights } from '../lib/train/tasks/registry.js';
import { writeSafetensors } from '../lib/io/index.js';
import { evalClipOnDataset } from '../lib/metrics/clip-dataset.js';
import { categoryPhrase, subcategoryPhrase } from '../lib/data/prompts.js';
import { l2normalize } from '../lib/ops/vectors.js';
import { cli } from './cli_util.js';

const ROOT = packageRoot();

const TINY: CLIPConfig = {
  embedDim: 32,
  imageResolution: 32,
  visionLayers: 1,
  visionWidth: 32,
  visionPatchSize: 8,
  visionHeads: 2,
  contextLength: 16,
  vocabSize: 1000,
  transformerWidth: 32,
  transformerHeads: 2,
  transformerLayers: 1,
};

/** The cond-unet tests' tiny guided-diffusion UNet (each names its embCondDim). */
const COND_UNET = {
  kind: 'guided-diffusion' as const,
  imageSize: 32,
  inChannels: 3,
  outChannels: 3,
  modelChannels: 32,
  channelMult: [1, 2],
  numResBlocks: 1,
  attentionDs: [2],
  numHeadChannels: -1,
  numHeads: 2,
};

/** Loss on one fixed batch before and after `steps` Adam steps on that batch. */
function overfit<B>(task: TrainTask<B>, steps: number, lr: number): { before: number; after: number } {
  const batch = task.nextBatch(0, new Rng(0));
  const lossAt = () => tf.tidy(() => task.loss(batch, new Rng(7)).dataSync()[0]);
  const before = lossAt();
  const adam = new Adam(task.params);
  const vars = [...task.params.values()];
  const names = new Map(vars.map((v, i) => [v.name, [...task.params.keys()][i]]));
  for (let s = 0; s < steps; s++) {
    const { value, grads } = tf.variableGrads(() => task.loss(batch, new Rng(7)), vars);
    const named = new Map(Object.entries(grads).map(([id, g]) => [names.get(id) ?? id, g]));
    adam.step(named, lr);
    tf.dispose([value, ...Object.values(grads)]);
  }
  const after = lossAt();
  adam.dispose();
  task.disposeBatch?.(batch);
  return { before, after };
}

describe('training the CLIP family (tiny models, committed emoji subset)', function () {
  this.timeout(240000);
  let ds: Dataset;
  before(() => {
    ds = Dataset.load(testSubsetPath(ROOT));
  });

  it('CLIP: the contrastive loss decreases on a tiny batch, without leaking tensors', () => {
    const clip = CLIP.random(TINY, 0);
    const task = new ClipTask(clip, ds, { batch: 16, seed: 0 });
    expect(task.params.has('logit_scale')).to.equal(true);
    const n0 = tf.memory().numTensors;
    const { before, after } = overfit(task, 12, 3e-3);
    expect(Number.isFinite(before)).to.equal(true);
    expect(before).to.be.greaterThan(1.5); // ~ln(16) at init
    expect(after).to.be.lessThan(before * 0.8);
    expect(tf.memory().numTensors).to.equal(n0);
    // the eval runs on the subset's held-out items and gives fractions
    const r = evalClipOnDataset(clip, ds);
    expect(r.images).to.equal(ds.indicesOf('test').length);
    expect(r.zeroShotCategoryAccuracy).to.be.within(0, 1);
    expect(r.nameRetrievalTop5).to.be.within(0, 1);
    expect(tf.memory().numTensors).to.equal(n0);
    clip.dispose();
  });

  it('CLIP: `train` runs the task, checkpoints and logs evals', async () => {
    const out = mkdtempSync(join(tmpdir(), 'dg-clip-'));
    const clip = CLIP.random(TINY, 1);
    const task = new ClipTask(clip, ds, { batch: 8, seed: 1 });
    const r = await train(task, {
      out,
      steps: 4,
      lr: 1e-3,
      warmup: 1,
      sampleEvery: 4,
      checkpointEvery: 2,
      onProgress: () => {},
    });
    expect(r.step).to.equal(4);
    expect(existsSync(join(out, 'checkpoint.safetensors'))).to.equal(true);
    const ev = JSON.parse(readFileSync(join(out, 'evals.jsonl'), 'utf8').trim().split('\n').pop()!);
    expect(ev.step).to.equal(4);
    expect(ev.zero_shot_category_acc).to.be.within(0, 1);
    clip.dispose();
  });

  it('CLIP with a ModifiedResNet tower: training-mode BatchNorm statistics are checkpointed, resumed and exported', async () => {
    const out = mkdtempSync(join(tmpdir(), 'dg-clip-rn-'));
    const cfg: CLIPConfig = {
      ...TINY,
      visionLayers: [1, 1, 1, 1],
      visionWidth: 8,
      visionPatchSize: null,
      visionHeads: 2,
    };
    const make = () => {
      const clip = CLIP.random(cfg, 1);
      return { clip, task: new ClipTask(clip, ds, { batch: 8, seed: 1 }) };
    };
    const a = make();
    expect([...a.task.buffers.keys()]).to.include('visual.bn1.running_mean');
    expect([...a.task.params.keys()]).to.not.include('visual.bn1.running_mean');
    await train(a.task, {
      out,
      steps: 2,
      lr: 1e-3,
      warmup: 1,
      sampleEvery: 100,
      checkpointEvery: 2,
      onProgress: () => {},
    });
    const moved = a.clip.params.get('visual.bn1.running_mean')!.arraySync() as number[];
    expect(Math.max(...moved.map(Math.abs))).to.be.greaterThan(0);
    // a fresh model resumed from the checkpoint gets the statistics back; export-style loading too
    const b = make();
    await train(b.task, {
      out,
      steps: 2,
      lr: 1e-3,
      warmup: 1,
      sampleEvery: 100,
      checkpointEvery: 2,
      resume: true,
      onProgress: () => {},
    });
    expect(b.clip.params.get('visual.bn1.running_mean')!.arraySync()).to.deep.equal(moved);
    const c = make();
    loadTrainedWeights(join(out, 'checkpoint.safetensors'), c.task.params, 'ema', c.task.buffers);
    expect(c.clip.params.get('visual.bn1.running_mean')!.arraySync()).to.deep.equal(moved);
    for (const m of [a, b, c]) m.clip.dispose();
  });

  it('noisy CLIP: starts as the teacher (identity FiLM) and its InfoNCE loss decreases', () => {
    const teacher = CLIP.random(TINY, 2);
    const noisy = NoisyCLIPImageEncoder.fromStateDict(teacher.toHostStateDict() as never, teacher.config, { seed: 0 });
    // identity FiLM at init: same features as the teacher at any t
    const x = ds.images([0, 1], { rgb: true });
    const d = tf.tidy(
      () =>
        noisy
          .encodeImage(x, { t: tf.tensor1d([700, 700]) })
          .embedding.sub(teacher.encodeImage(x).embedding)
          .abs()
          .max()
          .dataSync()[0],
    );
    expect(d).to.be.lessThan(1e-4);
    x.dispose();
    const task = new NoisyClipTask(noisy, teacher, makeSchedule('cosine', 1000), ds, { batch: 16, seed: 0 });
    const { before, after } = overfit(task, 10, 3e-3);
    expect(after).to.be.lessThan(before * 0.9);
    const ev = task.evaluate();
    expect(ev.noisy_top5_t500).to.be.within(0, 1);
    noisy.dispose();
    teacher.dispose();
  });

  it('prior: the x0 loss decreases on a tiny batch', () => {
    const clip = CLIP.random(TINY, 3);
    const prior = Prior.random({ embedDim: 32, width: 32, depth: 2, hidden: 64, timesteps: 100 }, 0);
    const task = new PriorTask(prior, clip, makeSchedule('cosine', 100), ds, { batch: 32, seed: 0 });
    const { before, after } = overfit(task, 30, 3e-3);
    expect(after).to.be.lessThan(before * 0.9);
    expect(task.evaluate().category_nn_acc_onestep).to.be.within(0, 1);
    prior.dispose();
    clip.dispose();
  });

  it('cond-unet: embedding-conditioned eps loss decreases; init copies an unconditional UNet', () => {
    const clip = CLIP.random(TINY, 4);
    const uncond = UNet.random({ ...COND_UNET, embCondDim: null }, 5);
    const net = UNet.random({ ...COND_UNET, embCondDim: 32 }, 6);
    const sd = new Map(
      [...uncond.toStateDict()].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]),
    );
    const copied = initFromUnconditional(net, { layout: 'reference', tensors: sd, source: 'test' });
    expect(copied).to.equal(sd.size);
    const k = 'input_blocks.0.0.weight';
    const a = net.toStateDict().get(k)!.data;
    expect(Array.from(a.slice(0, 5))).to.deep.equal(Array.from(sd.get(k)!.data.slice(0, 5)));
    // a training checkpoint holds our layout (conv HWIO, linear [in, out]): every tensor is copied too
    const net2 = UNet.random({ ...COND_UNET, embCondDim: 32 }, 7);
    const ours = new Map(
      [...uncond.params].map(([key, v]) => [key, { shape: v.shape, data: v.dataSync() as Float32Array }]),
    );
    expect(initFromUnconditional(net2, { layout: 'ours', tensors: ours, source: 'test' })).to.equal(uncond.params.size);
    for (const key of ['input_blocks.0.0.weight', 'time_embed.2.weight', 'middle_block.1.qkv.weight']) {
      expect(Array.from(net2.params.get(key)!.dataSync())).to.deep.equal(
        Array.from(uncond.params.get(key)!.dataSync()),
      );
    }
    net2.dispose();
    const task = new CondUNetTask(net, clip, ds, { batch: 4, seed: 0 });
    const { before, after } = overfit(task, 6, 2e-3);
    expect(Number.isFinite(before)).to.equal(true);
    expect(after).to.be.lessThan(before);
    uncond.dispose();
    net.dispose();
    clip.dispose();
  });

  it("cond-unet init: takes the init UNet's layout (read beside its weights) and refuses weights of another layout, naming a tensor", async () => {
    const uncond = UNet.random({ ...COND_UNET, modelChannels: 64, numResBlocks: 2, embCondDim: null }, 5);
    // an exported folder: reference-layout safetensors + config.json, as `train --export-only` writes them
    const dir = mkdtempSync(join(tmpdir(), 'dg-init-'));
    await writeSafetensors(join(dir, 'unet.safetensors'), uncond.toStateDict());
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model: 'unet', ...uncond.config }));
    const w = await readUNetWeights(dir);
    expect(w.netConfig).to.deep.include({ modelChannels: 64, channelMult: [1, 2], numResBlocks: 2 });
    const cfg = condUNetConfig(32, 32, w.netConfig);
    expect(cfg).to.deep.include({
      modelChannels: 64,
      channelMult: [1, 2],
      numResBlocks: 2,
      numHeads: 2,
      embCondDim: 32,
    });
    const net = UNet.random(cfg, 6);
    expect(initFromUnconditional(net, w)).to.equal(uncond.params.size);
    net.dispose();
    // the default layout (width 32) does not fit these weights: no partial copy
    const other = UNet.random(condUNetConfig(32, 32), 7);
    expect(() => initFromUnconditional(other, w)).to.throw(
      /tensors do not fit this UNet \(e\.g\. .+: \[.+\] there, \[.+\] here\): its layout differs/,
    );
    other.dispose();
    uncond.dispose();
  });

  it('cond-unet --condition text: the condition is the normalised CLIP text embedding of a caption of the item times embScale (zeros when dropped), and the loss decreases', () => {
    const clip = CLIP.random(TINY, 4);
    const net = UNet.random({ ...COND_UNET, embCondDim: 32 }, 6);
    const task = new CondUNetTask(net, clip, ds, { batch: 8, seed: 0, condition: 'text', pDrop: 0.3, prediction: 'v' });
    expect(task.embeddings).to.equal(null);
    const b = task.nextBatch(0, new Rng(3));
    const idx = new BatchSampler(ds.indicesOf('train'), 8, 0).next();
    expect(b.captions).to.have.length(8);
    // each caption names its own item: its name (or a short name), category or subcategory
    b.captions!.forEach((c, j) => {
      const it = ds.items[idx[j]];
      const names = [it.name ?? '', ...(it.shortNames ?? []).map((x) => x.replace(/_/g, ' '))].map((x) =>
        x.toLowerCase(),
      );
      const fits =
        names.some((n) => n && c.includes(n)) ||
        c.includes(categoryPhrase(it.category ?? '')) ||
        (!!it.subcategory && c.includes(subcategoryPhrase(it.subcategory)));
      expect(fits, `${c} for ${it.name}`).to.equal(true);
    });
    const want = tf.tidy(() =>
      l2normalize(clip.encodeText(b.captions!))
        .mul(tf.tensor2d(b.keep, [8, 1]))
        .mul(Math.sqrt(32)),
    );
    const got = b.emb.arraySync();
    const ref = want.arraySync() as number[][];
    expect(b.keep.some((k) => k === 0) && b.keep.some((k) => k === 1)).to.equal(true);
    for (let j = 0; j < 8; j++) {
      const norm = Math.hypot(...got[j]);
      expect(norm).to.be.closeTo(b.keep[j] ? Math.sqrt(32) : 0, 1e-3);
      for (let d = 0; d < 32; d++) expect(got[j][d]).to.be.closeTo(ref[j][d], 1e-4);
    }
    want.dispose();
    task.disposeBatch(b);
    const { before, after } = overfit(task, 6, 2e-3);
    expect(after).to.be.lessThan(before);
    // the sample grid decodes category prompts' text embeddings
    const g = task.sampleGrid(1);
    expect(g.shape[3]).to.equal(3);
    g.dispose();
    net.dispose();
    clip.dispose();
  });

  it('train cond-unet --condition text: trains a few steps, records condition text, keeps it on resume, exports text-unet', async function () {
    if (!existsSync(join(ROOT, 'weights', 'clip'))) return this.skip();
    const out = join(mkdtempSync(join(tmpdir(), 'diffguide-text-unet-')), 'run');
    const base = ['train', 'cond-unet', '--data', testSubsetPath(ROOT), '--out', out, '--batch', '2'];
    const r = await cli([...base, '--condition', 'text', '--prediction', 'v', '--steps', '2', '--sample-every', '0']);
    expect(r.code, r.err).to.equal(0);
    const st = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8'));
    expect(st.step).to.equal(2);
    expect(st.config.condition).to.equal('text');
    const conf = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(conf.model).to.equal('text-unet');
    expect(conf.condition).to.equal('text');
    expect(conf.conditioning).to.contain('text embedding');
    expect(existsSync(join(out, 'text-unet.safetensors'))).to.equal(true);
    // resuming with the other condition is refused, naming the fix
    let refused = '';
    await cli([...base, '--resume', '--condition', 'image', '--steps', '3']).catch((e: Error) => (refused = e.message));
    expect(refused).to.contain('was trained with condition text; use another --out');
    // resuming without the flag keeps it
    const again = await cli([...base, '--resume', '--steps', '3', '--sample-every', '0']);
    expect(again.code, again.err).to.equal(0);
    const st2 = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8'));
    expect(st2.step).to.equal(3);
    expect(st2.config.condition).to.equal('text');
  });
});
