/** `diffguide inspect` and `diffguide convert` run in-process. */
import { expect } from 'chai';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import inspect from '../lib/cli/commands/inspect.js';
import convert from '../lib/cli/commands/convert.js';
import { readCheckpoint } from '../lib/io/index.js';
import { packageRoot } from '../lib/paths.js';
import { HAVE_PARITY, PARITY } from './fixtures.js';

async function capture(fn: () => Promise<number | void>): Promise<{ status: number | void; out: string }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.map(String).join(' '));
  try {
    const status = await fn();
    return { status, out: lines.join('\n') };
  } finally {
    console.log = orig;
  }
}

describe('io: inspect and convert commands', () => {
  const data = (f: string) => join(packageRoot(), 'test', 'data', 'io', f);

  it('inspect --json --keys reports format, counts, dtypes and keys', async () => {
    const { out } = await capture(() =>
      inspect.run({ values: { json: true, keys: true }, positionals: [data('wrapped_zip.pt')] }),
    );
    const r = JSON.parse(out) as {
      format: string;
      unwrapped: string;
      tensors: number;
      params: number;
      dtypes: Record<string, number>;
      architecture: string;
      keys: { name: string; shape: number[]; dtype: string }[];
    };
    expect(r.format).to.equal('torch-zip');
    expect(r.unwrapped).to.equal('state_dict');
    expect(r.tensors).to.equal(6);
    expect(r.params).to.equal(6 + 2 + 5 + 12 + 3 + 2);
    expect(r.dtypes).to.deep.equal({ float32: 3, float16: 1, int64: 1, bool: 1 });
    expect(r.architecture).to.equal('unknown');
    expect(r.keys[2]).to.deep.equal({ name: 'emb.position_ids', shape: [1, 5], dtype: 'int64' });
  });

  it('inspect detects a registered architecture when the nets recognise the keys', async function () {
    if (!HAVE_PARITY) this.skip();
    const { out } = await capture(() =>
      inspect.run({ values: { json: true }, positionals: [join(PARITY, 'ddpm_tiny.pt')] }),
    );
    const r = JSON.parse(out) as { architecture: string; config: object | null; detector_error?: string };
    if (r.detector_error) this.skip(); // nets under construction
    expect(r.architecture).to.not.equal('unknown');
    expect(r.config).to.be.an('object');
  });

  it('convert writes safetensors with the same keys/values and records the source format; --fp16 halves floats', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffguide-io-cli-'));
    try {
      const out = join(dir, 'w.safetensors');
      const { status } = await capture(() =>
        convert.run({ values: { quiet: true }, positionals: [data('wrapped_legacy.pth'), out] }),
      );
      expect(status ?? 0).to.equal(0);
      const a = await readCheckpoint(data('wrapped_legacy.pth'));
      const b = await readCheckpoint(out);
      expect(b.metadata).to.include({
        format: 'pt',
        source_format: 'torch-legacy',
        unwrapped: 'state_dict',
        source_epoch: '3',
      });
      expect(new Set(b.tensors.keys())).to.deep.equal(new Set(a.tensors.keys()));
      for (const [k, t] of a.tensors) {
        expect(b.tensors.get(k)!.shape, k).to.deep.equal(t.shape);
        expect([...b.tensors.get(k)!.data], k).to.deep.equal([...t.data]);
      }
      expect(b.tensors.get('emb.position_ids')!.sourceDtype).to.equal('int64');
      const out16 = join(dir, 'w16.safetensors');
      await capture(() =>
        convert.run({ values: { quiet: true, fp16: true }, positionals: [data('tiny_fp16.jit.pt'), out16] }),
      );
      const c = await readCheckpoint(out16);
      expect(c.metadata.source_format).to.equal('torchscript');
      expect([...c.tensors.values()].every((t) => t.sourceDtype === 'float16')).to.equal(true);
      const bad = await capture(() =>
        convert.run({ values: {}, positionals: [data('tiny_fp16.jit.pt'), join(dir, 'x.bin')] }),
      );
      expect(bad.status).to.equal(2);
      expect(readdirSync(dir).sort()).to.deep.equal(['w.safetensors', 'w16.safetensors']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
