/** `diffguide verify`: every shared fixture passes; a wrong config fails with a non-zero status; io reading. */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readStateDict, writeSafetensors } from '../lib/io/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import verifyCommand, { findConfigBeside, readIoFile, verify } from '../lib/cli/commands/verify.js';
import { HAVE_PARITY, PARITY, parity } from './fixtures.js';

describe('verify', function () {
  before(function () {
    if (!HAVE_PARITY) {
      console.log(`    (skipping: no parity fixtures at ${PARITY})`);
      this.skip();
    }
  });

  const cases: [string, string, number][] = [
    ['gd_tiny_a.pt', 'gd_tiny_a_io.json', 1e-4],
    ['ddpm_tiny.pt', 'ddpm_tiny_io.json', 1e-4],
    ['ddpm_tiny.safetensors', 'ddpm_tiny_io.json', 1e-4],
    ['clip_tiny.pt', 'clip_tiny_io.json', 1e-4],
    ['clip_tiny_fp16.pt', 'clip_tiny_io.json', 2e-3],
    ['clip_tiny_fp16.safetensors', 'clip_tiny_io.json', 2e-3],
  ];
  for (const [w, io, tol] of cases) {
    it(`${w} passes against ${io} (tolerance ${tol})`, async () => {
      const r = await verify({ weights: parity(w), io: parity(io) });
      expect(r.tolerance).to.equal(tol);
      expect(r.pass, JSON.stringify(r.outputs)).to.equal(true);
      const names = r.outputs.map((o) => o.name);
      if (w.startsWith('clip'))
        expect(names).to.include.members(['image_features', 'text_features', 'logits_per_image', 'logits_per_text']);
      else expect(names).to.include('out');
      for (const o of r.outputs) expect(o.maxRelErr).to.be.at.most(tol);
    });
  }

  it('finds NAME.config.json beside the weights, stripping precision suffixes', () => {
    expect(findConfigBeside(parity('gd_tiny_a.pt'))).to.equal(parity('gd_tiny_a.config.json'));
    expect(findConfigBeside(parity('ddpm_tiny.safetensors'))).to.equal(parity('ddpm_tiny.config.json'));
    const dir = mkdtempSync(join(tmpdir(), 'dg-verify-'));
    try {
      writeFileSync(join(dir, 'model.config.json'), '{}');
      expect(findConfigBeside(join(dir, 'model_fp16.safetensors'))).to.equal(join(dir, 'model.config.json'));
      expect(findConfigBeside(join(dir, 'other.pt'))).to.equal(null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a wrong config fails: the command exits 1 and names the failing output', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-verify-'));
    try {
      // same keys, different head split (64 channels per head instead of 16): wrong numbers, not a load error
      const cfg = join(dir, 'wrong.config.json');
      writeFileSync(
        cfg,
        JSON.stringify({
          image_size: 32,
          num_channels: 32,
          num_res_blocks: 1,
          channel_mult: '1,2,2',
          attention_resolutions: '16,8',
          num_head_channels: 64,
          learn_sigma: true,
          use_scale_shift_norm: true,
          resblock_updown: true,
        }),
      );
      const logs: string[] = [];
      const orig = console.log;
      console.log = (...a: unknown[]) => void logs.push(a.join(' '));
      let status: number | void;
      try {
        status = await verifyCommand.run({
          values: { weights: parity('gd_tiny_a.pt'), io: parity('gd_tiny_a_io.json'), config: cfg, json: true },
          positionals: [],
        });
      } finally {
        console.log = orig;
      }
      expect(status).to.equal(1);
      const report = JSON.parse(logs.join('\n'));
      expect(report.pass).to.equal(false);
      expect(report.outputs.find((o: { name: string }) => o.name === 'out').pass).to.equal(false);
      // the embedding and first block do not depend on attention heads, so they still pass
      expect(report.outputs.find((o: { name: string }) => o.name === 'input_block0').pass).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads io files (int64 -> int32, float32) and rejects inconsistent entries by name', async () => {
    const io = await readIoFile(parity('gd_tiny_a_io.json'));
    expect(io.get('x')!.shape).to.deep.equal([2, 3, 32, 32]);
    expect(io.get('t')!.data).to.be.instanceOf(Int32Array);
    const dir = mkdtempSync(join(tmpdir(), 'dg-verify-'));
    try {
      writeFileSync(
        join(dir, 'bad_io.json'),
        JSON.stringify({ x: { dtype: 'float32', shape: [4], offset: 0, nbytes: 16 } }),
      );
      writeFileSync(join(dir, 'bad_io.bin'), Buffer.alloc(8));
      let err: Error | null = null;
      await readIoFile(join(dir, 'bad_io.json')).catch((e) => (err = e));
      expect(String(err)).to.match(/entry 'x' needs bytes 0\.\.16/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Write NAME_io.json + NAME_io.bin (float32 or int64 entries). */
  const writeIo = (
    jsonPath: string,
    entries: Record<string, { shape: number[]; dtype: 'float32' | 'int64'; data: ArrayLike<number> }>,
  ) => {
    const meta: Record<string, object> = {};
    const parts: Buffer[] = [];
    let off = 0;
    for (const [k, e] of Object.entries(entries)) {
      const b =
        e.dtype === 'int64'
          ? Buffer.from(BigInt64Array.from(Array.from(e.data), (v) => BigInt(v)).buffer)
          : Buffer.from(Float32Array.from(e.data).buffer);
      meta[k] = { dtype: e.dtype, shape: e.shape, offset: off, nbytes: b.length };
      parts.push(b);
      off += b.length;
    }
    writeFileSync(jsonPath, JSON.stringify(meta));
    writeFileSync(jsonPath.replace(/\.json$/, '.bin'), Buffer.concat(parts));
  };
  const runCommand = async (values: Record<string, string | boolean>) => {
    const logs: string[] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => void logs.push(a.join(' '));
    try {
      return { status: await verifyCommand.run({ values, positionals: [] }), out: logs.join('\n') };
    } finally {
      console.log = orig;
    }
  };

  it("class-conditional guided diffusion: 'emb' is time_embed's output, as in the reference (not emb + label_emb(y))", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-verify-'));
    try {
      // gd_tiny_a's weights plus a random label_emb: the reference's timestep_embedding, emb (= time_embed(...)) and
      // input_block0 (a conv of x alone) do not depend on y, so its io file's numbers still hold.
      const sd = await readStateDict(parity('gd_tiny_a.pt'));
      const classes = 3;
      const table = Float32Array.from({ length: classes * 128 }, (_, i) => Math.sin(i * 0.37) * 2);
      sd.set('label_emb.weight', { shape: [classes, 128], dtype: 'float32', data: table, sourceDtype: 'float32' });
      const weights = join(dir, 'gd_cc.safetensors');
      await writeSafetensors(weights, sd);
      const cfg = JSON.parse(readFileSync(parity('gd_tiny_a.config.json'), 'utf8'));
      writeFileSync(join(dir, 'gd_cc.config.json'), JSON.stringify({ ...cfg, class_cond: true, num_classes: classes }));
      const ref = await readIoFile(parity('gd_tiny_a_io.json'));
      const y = [2, 1];
      const entry = (k: string) => ({
        shape: ref.get(k)!.shape,
        dtype: (ref.get(k)!.dtype === 'int64' ? 'int64' : 'float32') as 'int64' | 'float32',
        data: ref.get(k)!.data,
      });
      const io = join(dir, 'gd_cc_io.json');
      writeIo(io, {
        x: entry('x'),
        t: entry('t'),
        y: { shape: [2], dtype: 'int64', data: y },
        timestep_embedding: entry('timestep_embedding'),
        emb: entry('emb'),
        input_block0: entry('input_block0'),
        label_emb: {
          shape: [2, 128],
          dtype: 'float32',
          data: [...table.subarray(y[0] * 128, y[0] * 128 + 128), ...table.subarray(y[1] * 128, y[1] * 128 + 128)],
        },
      });
      const r = await verify({ weights, io });
      expect(r.net).to.match(/classes 3|guided/);
      const by = Object.fromEntries(r.outputs.map((o) => [o.name, o]));
      expect(Object.keys(by).sort()).to.deep.equal(['emb', 'input_block0', 'label_emb', 'timestep_embedding']);
      for (const o of r.outputs) expect(o.pass, `${o.name}: ${o.maxRelErr}`).to.equal(true);
      expect(by.emb.maxAbsErr).to.be.below(1e-4); // with the label added it was off by max|label_emb| (about 2)
      expect(r.pass).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reference outputs the net does not produce are listed as skipped, in the text and the JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-verify-'));
    try {
      const ref = await readIoFile(parity('gd_tiny_a_io.json'));
      const entry = (k: string) => ({
        shape: ref.get(k)!.shape,
        dtype: (ref.get(k)!.dtype === 'int64' ? 'int64' : 'float32') as 'int64' | 'float32',
        data: ref.get(k)!.data,
      });
      const io = join(dir, 'gd_io.json');
      writeIo(io, {
        x: entry('x'),
        t: entry('t'),
        out: entry('out'),
        emb: entry('emb'),
        attn_probs0: { shape: [2, 4], dtype: 'float32', data: new Float32Array(8) },
        h_after_hooks: { shape: [3], dtype: 'float32', data: [1, 2, 3] },
      });
      const text = await runCommand({ weights: parity('gd_tiny_a.pt'), io });
      expect(text.status).to.equal(0);
      expect(text.out).to.match(/skip attn_probs0 +\[2, 4\] +not produced by this unet: not compared/);
      expect(text.out).to.match(/skip h_after_hooks +\[3\] +not produced by this unet: not compared/);
      expect(text.out.trim().split('\n').pop()).to.equal(
        'PASS (2 of 4 reference outputs compared; skipped: attn_probs0, h_after_hooks)',
      );
      const json = await runCommand({ weights: parity('gd_tiny_a.pt'), io, json: true });
      const report = JSON.parse(json.out);
      expect(report.skipped).to.deep.equal([
        { name: 'attn_probs0', shape: [2, 4], reason: 'not produced by this unet' },
        { name: 'h_after_hooks', shape: [3], reason: 'not produced by this unet' },
      ]);
      expect(report.outputs.map((o: { name: string }) => o.name)).to.deep.equal(['out', 'emb']);
      const full = await runCommand({ weights: parity('gd_tiny_a.pt'), io: parity('gd_tiny_a_io.json') });
      expect(full.out.trim().split('\n').pop()).to.equal('PASS (all 5 reference outputs compared)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('CLIP: a head count inferred from no config is in the report; a config nested under one key is read', async () => {
    const r = await verify({ weights: parity('clip_tiny.pt'), io: parity('clip_tiny_io.json') });
    expect(r.config).to.equal(null);
    expect(r.inferred).to.have.length(1);
    expect(r.inferred[0]).to.match(
      /^no CLIP config was given: transformer_heads = 2 was inferred as transformer_width 128 \/ 64/,
    );
    const text = await runCommand({ weights: parity('clip_tiny.pt'), io: parity('clip_tiny_io.json') });
    expect(text.out).to.match(/note: no CLIP config was given: transformer_heads = 2 was inferred/);
    const dir = mkdtempSync(join(tmpdir(), 'dg-verify-'));
    try {
      const cfg = join(dir, 'clip.json');
      // the README's clip_tiny constructor arguments, nested as some exporters write them
      writeFileSync(
        cfg,
        JSON.stringify({
          name: 'clip_tiny',
          constructor: {
            embed_dim: 64,
            image_resolution: 32,
            vision_layers: 2,
            vision_width: 128,
            vision_patch_size: 8,
            context_length: 77,
            vocab_size: 1000,
            transformer_width: 128,
            transformer_heads: 2,
            transformer_layers: 2,
          },
        }),
      );
      const nested = await verify({ weights: parity('clip_tiny.pt'), io: parity('clip_tiny_io.json'), config: cfg });
      expect(nested.pass).to.equal(true);
      expect(nested.inferred).to.deep.equal([]);
      // the wrong head count read from the config is used (and fails), so the nesting really is read
      writeFileSync(
        cfg,
        JSON.stringify({
          constructor: {
            embed_dim: 64,
            image_resolution: 32,
            vision_layers: 2,
            vision_width: 128,
            vision_patch_size: 8,
            context_length: 77,
            vocab_size: 1000,
            transformer_width: 128,
            transformer_heads: 4,
            transformer_layers: 2,
          },
        }),
      );
      const wrong = await verify({ weights: parity('clip_tiny.pt'), io: parity('clip_tiny_io.json'), config: cfg });
      expect(wrong.outputs.find((o) => o.name === 'text_features')!.pass).to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a checkpoint of no known architecture with a clear error', async () => {
    let err: Error | null = null;
    await verify({ weights: parity('real/alex.pth'), io: parity('gd_tiny_a_io.json') }).catch((e) => (err = e));
    expect(String(err)).to.match(/not a known architecture/);
  });
});
