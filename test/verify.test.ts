/** `diffguide verify`: every shared fixture passes; a wrong config fails with a non-zero status; io reading. */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
      if (w.startsWith('clip')) expect(names).to.include.members(['image_features', 'text_features', 'logits_per_image', 'logits_per_text']);
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
      writeFileSync(cfg, JSON.stringify({ image_size: 32, num_channels: 32, num_res_blocks: 1, channel_mult: '1,2,2', attention_resolutions: '16,8', num_head_channels: 64, learn_sigma: true, use_scale_shift_norm: true, resblock_updown: true }));
      const logs: string[] = [];
      const orig = console.log;
      console.log = (...a: unknown[]) => void logs.push(a.join(' '));
      let status: number | void;
      try {
        status = await verifyCommand.run({ values: { weights: parity('gd_tiny_a.pt'), io: parity('gd_tiny_a_io.json'), config: cfg, json: true }, positionals: [] });
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
      writeFileSync(join(dir, 'bad_io.json'), JSON.stringify({ x: { dtype: 'float32', shape: [4], offset: 0, nbytes: 16 } }));
      writeFileSync(join(dir, 'bad_io.bin'), Buffer.alloc(8));
      let err: Error | null = null;
      await readIoFile(join(dir, 'bad_io.json')).catch((e) => (err = e));
      expect(String(err)).to.match(/entry 'x' needs bytes 0\.\.16/);
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
