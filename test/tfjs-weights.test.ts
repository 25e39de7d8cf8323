/**
 * The TF.js weights-manifest format: `diffguide convert --to tfjs` on the shipped weights, loaded back
 * through tf.io handlers (a file handler and tf.io.http from a local server) into the same nets.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readStateDict, type StateDict } from '../lib/io/index.js';
import { encodeTfjsWeights, loadTfjsWeights, TFJS_WEIGHTS_FORMAT } from '../lib/io/tfjs.js';
import { tfjsFileHandler } from '../lib/io/tfjs-file.js';
import { convertToTfjs } from '../lib/models/tfjs-convert.js';
import { loadClipTfjs, loadDiffuserTfjs, loadNoisyClipTfjs, loadPriorTfjs } from '../lib/models/tfjs.js';
import {
  loadClipModel,
  loadNoisyClipModel,
  loadPriorModel,
  loadUNetDiffuser,
  WeightsError,
} from '../lib/models/load.js';
import { weightsPath } from '../lib/paths.js';
import { Rng } from '../lib/random.js';
import convert from '../lib/cli/commands/convert.js';

const MODELS = ['unet', 'cond-unet', 'clip', 'noisy-clip', 'prior'] as const;

function expectSameStateDict(a: StateDict, b: StateDict): void {
  expect([...a.keys()]).to.deep.equal([...b.keys()]);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    expect(u.shape, k).to.deep.equal(t.shape);
    expect(u.dtype, k).to.equal(t.dtype);
    expect(
      Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      ),
      `${k} bytes`,
    ).to.equal(true);
  }
}

describe('TF.js weights format (convert --to tfjs, tf.io handlers)', () => {
  let dir: string;
  let server: Server;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'diffguide-tfjs-'));
    for (const m of MODELS) await convertToTfjs(weightsPath(m), join(dir, m));
    server = createServer((req, res) => {
      const p = join(dir, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
      try {
        const body = readFileSync(p);
        res.writeHead(200, { 'content-type': p.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
        res.end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
  });

  after(() => {
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes model.json with a weightsManifest whose shards hold exactly the listed weights', () => {
    const json = JSON.parse(readFileSync(join(dir, 'unet', 'model.json'), 'utf8')) as tf.io.ModelJSON;
    expect(json.format).to.equal(TFJS_WEIGHTS_FORMAT);
    expect((json.modelTopology as { model: string }).model).to.equal('unet');
    expect((json.modelTopology as { config: { prediction: string } }).config.prediction).to.equal('v');
    const [group] = json.weightsManifest;
    expect(json.weightsManifest).to.have.length(1);
    expect(group.paths[0]).to.match(/^group1-shard1of\d+\.bin$/);
    const shardBytes = group.paths.map((p) => statSync(join(dir, 'unet', p)).size);
    expect(shardBytes.slice(0, -1).every((b) => b === 4 * 1024 * 1024)).to.equal(true);
    const want = group.weights.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1) * 4, 0);
    expect(shardBytes.reduce((a, b) => a + b, 0)).to.equal(want);
    expect(readdirSync(join(dir, 'unet')).sort()).to.deep.equal(['model.json', ...group.paths].sort());
    expect((json.userDefinedMetadata as { sourceSha256: string }).sourceSha256).to.match(/^[0-9a-f]{64}$/);
  });

  for (const m of MODELS) {
    it(`${m}: converted -> loaded (file handler) gives the safetensors' tensors, bit for bit`, async () => {
      const want = await readStateDict(join(weightsPath(m), `${m}.safetensors`));
      const got = await loadTfjsWeights(tfjsFileHandler(join(dir, m)));
      expect(got.model).to.equal(m);
      expect(got.config).to.deep.equal(JSON.parse(readFileSync(join(weightsPath(m), 'config.json'), 'utf8')));
      expectSameStateDict(want, got.stateDict);
    });
  }

  it('tensors spanning shard boundaries survive small shards', async () => {
    const sd = await readStateDict(join(weightsPath('unet'), 'unet.safetensors'));
    const { modelJSON, shards } = encodeTfjsWeights(sd, { model: 'unet', config: null, shardBytes: 100_003 });
    expect(shards.length).to.be.greaterThan(40);
    const sub = join(dir, 'small-shards');
    const h = tfjsFileHandler(sub);
    await h.save!({
      ...tf.io.getModelArtifactsForJSONSync(
        modelJSON,
        modelJSON.weightsManifest[0].weights,
        new Uint8Array(Buffer.concat(shards.map((s) => s.data))).buffer,
      ),
    });
    const back = await loadTfjsWeights(tfjsFileHandler(sub));
    expectSameStateDict(sd, back.stateDict);
  });

  it('loads through tf.io.http from a local server into a UNet whose output equals the safetensors UNet, exactly', async () => {
    const fromSafetensors = await loadUNetDiffuser();
    const fromTfjs = await loadDiffuserTfjs(`${base}/unet/model.json`);
    try {
      expect(fromTfjs.prediction).to.equal(fromSafetensors.prediction);
      expect(fromTfjs.schedule.length).to.equal(fromSafetensors.schedule.length);
      expect(Array.from(fromTfjs.schedule.alphasCumprod)).to.deep.equal(
        Array.from(fromSafetensors.schedule.alphasCumprod),
      );
      const x = new Rng(7).normal<tf.Rank.R4>([2, 32, 32, 3]);
      const t = tf.tensor1d([900, 250], 'int32');
      const a = fromSafetensors.unet.apply(x, t);
      const b = fromTfjs.unet.apply(x, t);
      const [da, db] = [a.dataSync(), b.dataSync()];
      expect(da.length).to.equal(2 * 32 * 32 * 3);
      expect(Buffer.from(db.buffer).equals(Buffer.from(da.buffer))).to.equal(true);
      expect(tf.tidy(() => tf.moments(a).variance.dataSync()[0])).to.be.greaterThan(0.01); // a real output, not zeros
      tf.dispose([x, t, a, b]);
    } finally {
      fromSafetensors.unet.dispose();
      fromTfjs.unet.dispose();
    }
  });

  it('CLIP, noisy CLIP and prior from tfjs give the same embeddings as from safetensors', async () => {
    const [c1, c2] = [await loadClipModel(), await loadClipTfjs(`${base}/clip/model.json`)];
    const [n1, n2] = [await loadNoisyClipModel(), await loadNoisyClipTfjs(tfjsFileHandler(join(dir, 'noisy-clip')))];
    const [p1, p2] = [await loadPriorModel(), await loadPriorTfjs(tfjsFileHandler(join(dir, 'prior')))];
    try {
      const img = tf.tidy(() => new Rng(3).normal<tf.Rank.R4>([1, 32, 32, 3]).clipByValue(-1, 1)) as tf.Tensor4D;
      const e1 = c1.encodeText(['red heart']);
      const e2 = c2.encodeText(['red heart']);
      expect(Array.from(e2.dataSync())).to.deep.equal(Array.from(e1.dataSync()));
      const i1 = c1.encodeImage(img).embedding;
      const i2 = c2.encodeImage(img).embedding;
      expect(Array.from(i2.dataSync())).to.deep.equal(Array.from(i1.dataSync()));
      const t = tf.tensor1d([400], 'int32');
      const m1 = n1.encodeImage(img, { t }).embedding;
      const m2 = n2.encodeImage(img, { t }).embedding;
      expect(Array.from(m2.dataSync())).to.deep.equal(Array.from(m1.dataSync()));
      expect(Array.from(m1.dataSync()).some((v) => v !== 0)).to.equal(true);
      expect(p2.prior.config).to.deep.equal(p1.prior.config);
      const s1 = p1.prior.toStateDict();
      expectSameStateDict(s1, p2.prior.toStateDict());
      tf.dispose([img, e1, e2, i1, i2, t, m1, m2]);
    } finally {
      [c1, c2, n1, n2].forEach((m) => m.dispose());
      p1.prior.dispose();
      p2.prior.dispose();
    }
  });

  it('refuses other models, foreign model.json files and missing shards, naming the fix', async () => {
    let err = await loadDiffuserTfjs(tfjsFileHandler(join(dir, 'clip'))).catch((e: Error) => e);
    expect(err).to.be.instanceOf(WeightsError);
    expect((err as Error).message).to.match(
      /holds the 'clip' weights, expected 'unet'.*convert --to tfjs weights\/unet/s,
    );
    const foreign = join(dir, 'foreign');
    await tfjsFileHandler(foreign).save!({
      modelTopology: { class_name: 'Sequential' },
      weightSpecs: [],
      weightData: new ArrayBuffer(0),
    });
    err = await loadTfjsWeights(tfjsFileHandler(foreign)).catch((e: Error) => e);
    expect((err as Error).message).to.match(
      /not diffguide weights \(modelTopology.format is 'unknown'.*diffguide convert --to tfjs/s,
    );
    const lonely = mkdtempSync(join(dir, 'lonely-'));
    writeFileSync(join(lonely, 'model.json'), readFileSync(join(dir, 'prior', 'model.json'))); // lists shards that are not there
    err = await loadTfjsWeights(tfjsFileHandler(lonely)).catch((e: Error) => e);
    expect((err as Error).message, (err as Error).message).to.match(/shard group1-shard1of\d+\.bin is missing/);
    err = await loadTfjsWeights(`${base}/nothing-here/model.json`).catch((e: Error) => e);
    expect((err as Error).message).to.match(/nothing-here\/model\.json: cannot load TF\.js weights/);
  });

  it('the CLI converts a weights folder and rejects an unknown --to', async () => {
    const out = join(dir, 'cli-judge');
    const logs: string[] = [];
    const orig = console.log;
    console.log = (s: string) => void logs.push(s);
    let rc: number | void;
    try {
      rc = await convert.run({ positionals: [weightsPath('judge'), out], values: { to: 'tfjs' } });
    } finally {
      console.log = orig;
    }
    expect(rc).to.equal(undefined);
    expect(logs.join('\n')).to.match(/'judge', \d+ tensors/);
    expectSameStateDict(
      await readStateDict(join(weightsPath('judge'), 'judge.safetensors')),
      (await loadTfjsWeights(tfjsFileHandler(out))).stateDict,
    );
    const errs: string[] = [];
    const origE = console.error;
    console.error = (s: string) => void errs.push(s);
    try {
      rc = await convert.run({ positionals: [weightsPath('judge'), out], values: { to: 'onnx' } });
    } finally {
      console.error = origE;
    }
    expect(rc).to.equal(2);
    expect(errs.join('\n')).to.match(/--to onnx is not a format; use --to safetensors or --to tfjs/);
  });
});
