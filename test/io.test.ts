/** Checkpoint I/O on the shared fixtures: every file in every format, key sets, values across formats. */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkKeys,
  detectFormat,
  formatKeyReport,
  inspectCheckpoint,
  openCheckpoint,
  readCheckpoint,
  readStateDict,
  writeSafetensors,
  type HostTensor,
  type StateDict,
} from '../lib/io/index.js';
import { BENCH, HAVE_PARITY, PARITY } from './fixtures.js';
import { packageRoot } from '../lib/paths.js';

type KeysJson = Record<string, { shape: number[]; dtype: string }>;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('io: shared fixtures', function () {
  before(function () {
    if (!HAVE_PARITY) {
      console.log(`    (skipping: no parity fixtures at ${PARITY})`);
      this.skip();
    }
  });

  const cases: { file: string; keys: string; fmt: string; dtypeFromKeys: boolean }[] = [
    { file: 'parity/clip_tiny.pt', keys: 'parity/clip_tiny.keys.json', fmt: 'torch-zip', dtypeFromKeys: true },
    { file: 'parity/clip_tiny_fp16.pt', keys: 'parity/clip_tiny.keys.json', fmt: 'torch-zip', dtypeFromKeys: false },
    {
      file: 'parity/clip_tiny_fp16.safetensors',
      keys: 'parity/clip_tiny.keys.json',
      fmt: 'safetensors',
      dtypeFromKeys: false,
    },
    { file: 'parity/ddpm_tiny.pt', keys: 'parity/ddpm_tiny.keys.json', fmt: 'torch-zip', dtypeFromKeys: true },
    {
      file: 'parity/ddpm_tiny.safetensors',
      keys: 'parity/ddpm_tiny.keys.json',
      fmt: 'safetensors',
      dtypeFromKeys: true,
    },
    { file: 'parity/gd_tiny_a.pt', keys: 'parity/gd_tiny_a.keys.json', fmt: 'torch-zip', dtypeFromKeys: true },
    { file: 'bench/clip_bench.pt', keys: 'bench/clip_bench.keys.json', fmt: 'torch-zip', dtypeFromKeys: true },
    { file: 'bench/ddpm_bench32.pt', keys: 'bench/ddpm_bench32.keys.json', fmt: 'torch-zip', dtypeFromKeys: true },
    { file: 'bench/gd_bench32.pt', keys: 'bench/gd_bench32.keys.json', fmt: 'torch-zip', dtypeFromKeys: true },
    { file: 'bench/gd_bench64.pt', keys: 'bench/gd_bench64.keys.json', fmt: 'torch-zip', dtypeFromKeys: true },
  ];
  const shared = (p: string) => join(PARITY, '..', p);

  for (const c of cases) {
    it(`${c.file}: format, key set/order, shapes${c.dtypeFromKeys ? ', dtypes' : ''}`, async () => {
      const expected = JSON.parse(readFileSync(shared(c.keys), 'utf8')) as KeysJson;
      const ck = await readCheckpoint(shared(c.file));
      expect(ck.format).to.equal(c.fmt);
      const r = checkKeys(Object.keys(expected), ck.tensors);
      expect(formatKeyReport(r)).to.equal('');
      if (c.fmt !== 'safetensors') expect([...ck.tensors.keys()]).to.deep.equal(Object.keys(expected)); // state_dict order
      for (const [k, t] of ck.tensors) {
        expect(t.shape, k).to.deep.equal(expected[k].shape);
        expect(t.data.length, k).to.equal(t.shape.reduce((a, b) => a * b, 1));
        if (c.dtypeFromKeys) expect(t.sourceDtype, k).to.equal(expected[k].dtype);
        if (t.sourceDtype.startsWith('float')) expect(t.dtype).to.equal('float32');
        if (t.dtype === 'float32')
          for (const v of t.data) if (!Number.isFinite(v)) throw new Error(`${k} has a non-finite value`);
      }
    });
  }

  it('fp16 checkpoints agree with the fp32 one within fp16 precision; .pt and .safetensors fp16 are identical', async () => {
    const f32 = await readStateDict(join(PARITY, 'clip_tiny.pt'));
    const f16 = await readCheckpoint(join(PARITY, 'clip_tiny_fp16.pt'));
    const st16 = await readStateDict(join(PARITY, 'clip_tiny_fp16.safetensors'));
    let halves = 0;
    for (const [k, a] of f32) {
      const b = f16.tensors.get(k)!;
      const c = st16.get(k)!;
      expect(maxAbsDiff(b.data, c.data), k).to.equal(0);
      if (b.sourceDtype === 'float16') {
        halves++;
        for (let i = 0; i < a.data.length; i++) {
          const tol = Math.abs(a.data[i]) * 2 ** -11 + 2 ** -25;
          if (Math.abs(a.data[i] - b.data[i]) > tol)
            throw new Error(`${k}[${i}]: fp32 ${a.data[i]} vs fp16 ${b.data[i]}`);
        }
      } else expect(maxAbsDiff(a.data, b.data), k).to.equal(0);
    }
    expect(halves).to.be.greaterThan(10);
  });

  it('ddpm_tiny .pt and .safetensors hold identical values', async () => {
    const a = await readStateDict(join(PARITY, 'ddpm_tiny.pt'));
    const b = await readStateDict(join(PARITY, 'ddpm_tiny.safetensors'));
    expect(a.size).to.equal(b.size);
    for (const [k, t] of a) expect(maxAbsDiff(t.data, b.get(k)!.data), k).to.equal(0);
  });

  const jit: [string, string][] = [
    ['ddpm_bench32.jit.pt', 'ddpm_bench32.pt'],
    ['gd_bench32.jit.pt', 'gd_bench32.pt'],
    ['gd_bench64.jit.pt', 'gd_bench64.pt'],
    ['clip_bench_image.jit.pt', 'clip_bench.pt'],
    ['clip_bench_text.jit.pt', 'clip_bench.pt'],
  ];
  for (const [j, sd] of jit) {
    it(`TorchScript ${j}: parameters and buffers equal the state_dict ${sd}`, async () => {
      const a = await readCheckpoint(join(BENCH, j));
      expect(a.format).to.equal('torchscript');
      const b = await readStateDict(join(BENCH, sd));
      const r = checkKeys(b.keys(), a.tensors);
      expect(r.unexpected, 'keys not in the state_dict').to.deep.equal([]);
      if (j.startsWith('clip')) {
        // each half holds its tower's parameters only
        expect(a.tensors.size).to.be.greaterThan(50);
        if (j.includes('image')) expect(r.missing.every((k) => !k.startsWith('visual.'))).to.equal(true);
        else expect(r.missing.filter((k) => !k.startsWith('visual.'))).to.deep.equal(['logit_scale']);
      } else {
        expect(r.missing).to.deep.equal([]);
        expect([...a.tensors.keys()]).to.deep.equal([...b.keys()]); // state_dict order
      }
      for (const [k, t] of a.tensors) {
        expect(t.shape, k).to.deep.equal(b.get(k)!.shape);
        expect(maxAbsDiff(t.data, b.get(k)!.data), k).to.equal(0);
      }
    });
  }

  it('legacy LPIPS heads (pre-1.6 format, saved from cuda:0) load with the released shapes and values', async () => {
    // Shapes of lpips v0.1 linear heads; sums and first values measured with PyTorch 1.13 torch.load.
    const want: Record<string, { shapes: number[]; sum0: number; first0: number[] }> = {
      alex: { shapes: [64, 192, 384, 256, 256], sum0: 2.349532, first0: [3.8e-6, 0.1475012, 4e-6] },
      vgg: { shapes: [64, 128, 256, 512, 512], sum0: 6.925992, first0: [0.0501117, 0.0393123, 0.0464007] },
      squeeze: { shapes: [64, 128, 256, 384, 384, 512, 512], sum0: 5.690101, first0: [0.2047091, 0, 6.9e-6] },
    };
    for (const [net, w] of Object.entries(want)) {
      const ck = await readCheckpoint(join(PARITY, 'real', `${net}.pth`));
      expect(ck.format).to.equal('torch-legacy');
      expect([...ck.tensors.keys()]).to.deep.equal(w.shapes.map((_, i) => `lin${i}.model.1.weight`));
      w.shapes.forEach((c, i) => expect(ck.tensors.get(`lin${i}.model.1.weight`)!.shape).to.deep.equal([1, c, 1, 1]));
      const t0 = ck.tensors.get('lin0.model.1.weight')!;
      expect(t0.data.reduce((a, b) => a + b, 0)).to.be.closeTo(w.sum0, 1e-4);
      w.first0.forEach((v, i) => expect(t0.data[i]).to.be.closeTo(v, 1e-7));
      for (const t of ck.tensors.values()) expect(Math.min(...t.data)).to.be.at.least(0); // LPIPS heads are non-negative
    }
  });

  it('detectFormat and inspectCheckpoint describe files without reading tensor data', async () => {
    const head = (p: string) => readFileSync(p).subarray(0, 64);
    expect(detectFormat(head(join(PARITY, 'clip_tiny.pt')))).to.equal('torch-zip');
    expect(detectFormat(head(join(PARITY, 'ddpm_tiny.safetensors')))).to.equal('safetensors');
    expect(detectFormat(head(join(PARITY, 'real', 'alex.pth')))).to.equal('torch-legacy');
    expect(detectFormat(new Uint8Array(64).fill(7))).to.equal(null);
    const info = await inspectCheckpoint(join(PARITY, 'clip_tiny_fp16.pt'));
    const keys = JSON.parse(readFileSync(join(PARITY, 'clip_tiny.keys.json'), 'utf8')) as KeysJson;
    expect(info.format).to.equal('torch-zip');
    expect(info.count).to.equal(Object.keys(keys).length);
    expect(info.dtypes.float16 + info.dtypes.float32).to.equal(info.count);
    const params = Object.values(keys).reduce((a, k) => a + k.shape.reduce((x, y) => x * y, 1), 0);
    expect(info.params).to.equal(params);
    expect(info.totalBytes)
      .to.be.lessThan(params * 4)
      .and.greaterThan(params * 2);
    const jit = await inspectCheckpoint(join(BENCH, 'gd_bench32.jit.pt'));
    expect(jit.format).to.equal('torchscript');
  });

  it('filter and stripPrefix select keys before reading; colliding stripped keys are an error', async () => {
    const ck = await openCheckpoint(join(PARITY, 'clip_tiny.pt'), {
      stripPrefix: 'visual.',
      filter: (k) => k.startsWith('ln_p'),
    });
    try {
      expect(ck.tensors.map((t) => t.name)).to.deep.equal([
        'ln_pre.weight',
        'ln_pre.bias',
        'ln_post.weight',
        'ln_post.bias',
      ]);
    } finally {
      await ck.close();
    }
    let err: Error | null = null;
    await readCheckpoint(join(PARITY, 'clip_tiny.pt'), { stripPrefix: 'visual.' }).catch((e: Error) => (err = e));
    expect(String(err)).to.match(/key '[a-z_.0-9]+' occurs twice after stripping 'visual\.'/);
  });

  it('convert round trip: torch zip -> safetensors (fp32 exact, fp16 within precision) -> same state_dict', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffguide-io-'));
    try {
      const src = await readCheckpoint(join(PARITY, 'gd_tiny_a.pt'));
      const out = join(dir, 'gd.safetensors');
      await writeSafetensors(out, src.tensors, { source_format: src.format });
      const back = await readCheckpoint(out);
      expect(back.metadata).to.deep.equal({ source_format: 'torch-zip' });
      expect(back.tensors.size).to.equal(src.tensors.size);
      for (const [k, t] of src.tensors) expect(maxAbsDiff(t.data, back.tensors.get(k)!.data), k).to.equal(0);
      const out16 = join(dir, 'gd16.safetensors');
      await writeSafetensors(out16, src.tensors, {}, { dtype: 'float16' });
      const b16 = await readStateDict(out16);
      for (const [k, t] of src.tensors) {
        const h = b16.get(k)!;
        expect(h.sourceDtype).to.equal('float16');
        for (let i = 0; i < t.data.length; i++)
          if (Math.abs(t.data[i] - h.data[i]) > Math.abs(t.data[i]) * 2 ** -11 + 2 ** -25)
            throw new Error(`${k}[${i}]`);
      }
      expect(readdirSync(dir).sort()).to.deep.equal(['gd.safetensors', 'gd16.safetensors']); // no temp files left
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('io: safetensors reference vectors', function () {
  const file = join(PARITY, 'safetensors_vectors.json');
  before(function () {
    if (!existsSync(file)) {
      console.log(`    (skipping: no ${file})`);
      this.skip();
    }
  });

  it('reads every vector and writes byte-identical files', async () => {
    const { vectors } = JSON.parse(readFileSync(file, 'utf8')) as { vectors: Record<string, number[]> };
    const expectShape: Record<string, [string, number[]] | null> = {
      'serialization_attn.0': ['attn.0', [1, 2, 3]],
      empty: null,
      forced_alignment_attn0: ['attn0', [1, 1, 2, 3]],
    };
    expect(Object.keys(vectors).sort()).to.deep.equal(Object.keys(expectShape).sort());
    const dir = mkdtempSync(join(tmpdir(), 'diffguide-io-'));
    try {
      for (const [name, bytes] of Object.entries(vectors)) {
        const p = join(dir, `${name}.safetensors`);
        writeFileSync(p, Uint8Array.from(bytes));
        const ck = await readCheckpoint(p);
        const want = expectShape[name];
        if (!want) expect(ck.tensors.size).to.equal(0);
        else {
          expect([...ck.tensors.keys()]).to.deep.equal([want[0]]);
          const t = ck.tensors.get(want[0])!;
          expect(t.shape).to.deep.equal(want[1]);
          expect([...t.data]).to.deep.equal([0, 1, 2, 3, 4, 5]);
        }
        const q = join(dir, `${name}.rewritten.safetensors`);
        await writeSafetensors(q, ck.tensors);
        expect([...readFileSync(q)], name).to.deep.equal(bytes);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('io: safetensors write/read round trip (no fixtures)', () => {
  it('keeps every host dtype, int64 source dtype, metadata, scalars and empty tensors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffguide-io-'));
    try {
      const f = new Float32Array(60).map((_, i) => Math.sin(i) * 100);
      const sd: StateDict = new Map<string, HostTensor>([
        ['w', { shape: [3, 4, 5], dtype: 'float32', data: f, sourceDtype: 'float32' }],
        [
          'ids',
          { shape: [4], dtype: 'int32', data: Int32Array.from([0, -1, 2147483647, -2147483648]), sourceDtype: 'int64' },
        ],
        ['i32', { shape: [2], dtype: 'int32', data: Int32Array.from([5, -6]), sourceDtype: 'int32' }],
        ['u8', { shape: [3], dtype: 'uint8', data: Uint8Array.from([0, 128, 255]), sourceDtype: 'uint8' }],
        ['mask', { shape: [2, 2], dtype: 'bool', data: Uint8Array.from([1, 0, 0, 1]), sourceDtype: 'bool' }],
        ['scale', { shape: [], dtype: 'float32', data: Float32Array.from([4.6052]), sourceDtype: 'float32' }],
        ['none', { shape: [0, 3], dtype: 'float32', data: new Float32Array(0), sourceDtype: 'float32' }],
      ]);
      const p = join(dir, 'a.safetensors');
      await writeSafetensors(p, sd, { note: 'hi' });
      const back = await readCheckpoint(p);
      expect(back.metadata).to.deep.equal({ note: 'hi' });
      expect(new Set(back.tensors.keys())).to.deep.equal(new Set(sd.keys()));
      for (const [k, t] of sd) {
        const b = back.tensors.get(k)!;
        expect(b.shape, k).to.deep.equal(t.shape);
        expect(b.dtype, k).to.equal(t.dtype);
        expect(b.sourceDtype, k).to.equal(t.sourceDtype);
        expect([...b.data], k).to.deep.equal([...t.data]);
      }
      // Header as the reference writes it: 8-byte aligned, tensors by dtype (I64 > F32 > I32 > U8 > BOOL) then name.
      const raw = readFileSync(p);
      const n = Number(raw.readBigUInt64LE(0));
      expect(n % 8).to.equal(0);
      const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string }>;
      expect(Object.keys(header)).to.deep.equal(['__metadata__', 'ids', 'none', 'scale', 'w', 'i32', 'u8', 'mask']);
      expect(header.ids.dtype).to.equal('I64');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fp16 writing rounds to nearest even, keeps inf/nan/subnormals', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffguide-io-'));
    try {
      const vals = [
        0,
        -0,
        1,
        -2.5,
        65504,
        65520,
        1e-7,
        5.960464477539063e-8,
        2 ** -14,
        1 + 2 ** -11,
        1 + 3 * 2 ** -11,
        Infinity,
        -Infinity,
        NaN,
      ];
      const want = [
        0,
        -0,
        1,
        -2.5,
        65504,
        Infinity,
        1.1920928955078125e-7,
        5.960464477539063e-8,
        2 ** -14,
        1,
        1 + 2 ** -9,
        Infinity,
        -Infinity,
        NaN,
      ];
      const p = join(dir, 'h.safetensors');
      await writeSafetensors(
        p,
        { x: { shape: [vals.length], dtype: 'float32', data: Float32Array.from(vals), sourceDtype: 'float32' } },
        undefined,
        { dtype: 'float16' },
      );
      const got = [...(await readStateDict(p)).get('x')!.data];
      expect(got.map((v) => (Object.is(v, -0) ? '-0' : String(v)))).to.deep.equal(
        want.map((v) => (Object.is(v, -0) ? '-0' : String(v))),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('io: small checkpoints saved by PyTorch (test/data/io, see make.py there)', () => {
  const data = (f: string) => join(packageRoot(), 'test', 'data', 'io', f);
  type Exp = Record<string, { shape: number[]; dtype: string; values: number[] }>;
  const expected = JSON.parse(readFileSync(data('expected.json'), 'utf8')) as Record<string, Exp>;
  const same = (got: StateDict, want: Exp) => {
    expect([...got.keys()]).to.deep.equal(Object.keys(want));
    for (const [k, w] of Object.entries(want)) {
      const t = got.get(k)!;
      expect(t.shape, k).to.deep.equal(w.shape);
      expect(t.sourceDtype, k).to.equal(w.dtype);
      expect([...t.data], k).to.deep.equal(w.values.map((v) => (w.dtype === 'bool' ? Number(v) : Math.fround(v))));
    }
  };

  for (const [file, fmt] of [
    ['wrapped_legacy.pth', 'torch-legacy'],
    ['wrapped_zip.pt', 'torch-zip'],
  ] as const) {
    it(`${file}: unwraps state_dict (not ema), fp16/int64/bool, transposed views and shared storages`, async () => {
      const ck = await readCheckpoint(data(file));
      expect(ck.format).to.equal(fmt);
      expect(ck.unwrapped).to.equal('state_dict');
      expect(ck.metadata.epoch).to.equal('3');
      expect(ck.metadata.other_weight_sets).to.equal('ema');
      same(ck.tensors, expected.wrapped);
      expect(ck.tensors.get('emb.position_ids')!.data).to.be.instanceOf(Int32Array);
    });
  }

  it('tiny_fp16.jit.pt: fp16 TorchScript parameters and buffers, not plain tensor attributes', async () => {
    const ck = await readCheckpoint(data('tiny_fp16.jit.pt'));
    expect(ck.format).to.equal('torchscript');
    same(ck.tensors, expected['tiny_fp16.jit']);
  });
});
