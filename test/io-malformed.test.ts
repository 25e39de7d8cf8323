/**
 * Checkpoint I/O on files built here byte by byte: wrapped checkpoints, strided/shared storages, dtype conversion,
 * and malformed inputs (truncated zip, random bytes, lying safetensors headers, forbidden pickle globals).
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectCheckpoint, readCheckpoint, readStateDict, writeSafetensors } from '../lib/io/index.js';
import inspect from '../lib/cli/commands/inspect.js';
import convert from '../lib/cli/commands/convert.js';
import { HAVE_PARITY, PARITY } from './fixtures.js';

// ------------------------------------------------------------------ a tiny pickle writer (protocol 2 opcodes)
class Pk {
  b: number[] = [0x80, 2];
  raw(...xs: number[]) {
    this.b.push(...xs);
    return this;
  }
  text(s: string) {
    for (const c of Buffer.from(s, 'latin1')) this.b.push(c);
    return this;
  }
  str(s: string) {
    const u = Buffer.from(s, 'utf8');
    this.raw(0x58, u.length & 255, (u.length >> 8) & 255, 0, 0, ...u);
    return this;
  }
  int(n: number) {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    const v = Buffer.alloc(4);
    v.writeInt32LE(n);
    return this.raw(0x4a, ...v);
  }
  global(mod: string, name: string) {
    return this.raw(0x63).text(`${mod}\n${name}\n`);
  }
  mark() {
    return this.raw(0x28);
  }
  tuple() {
    return this.raw(0x74);
  }
  ints(xs: number[]) {
    this.mark();
    for (const x of xs) this.int(x);
    return this.tuple();
  }
  /** _rebuild_tensor_v2(('storage', torch.<cls>, key, 'cpu', numel), offset, shape, stride, False, OrderedDict()) */
  tensor(cls: string, key: string, numel: number, offset: number, shape: number[], stride: number[]) {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', cls).str(key).str('cuda:0').int(numel).tuple().raw(0x51); // BINPERSID
    this.int(offset).ints(shape).ints(stride).raw(0x89);
    this.global('collections', 'OrderedDict').raw(0x29, 0x52); // OrderedDict()
    return this.tuple().raw(0x52);
  }
  /** torch._tensor._rebuild_from_type_v2(_rebuild_tensor_v2, Parameter, (storage, offset, shape, stride, False, OrderedDict()), {}) */
  param(cls: string, key: string, numel: number, shape: number[]) {
    const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    this.global('torch._tensor', '_rebuild_from_type_v2').mark();
    this.global('torch._utils', '_rebuild_tensor_v2').global('torch.nn.parameter', 'Parameter').mark();
    this.mark().str('storage').global('torch', cls).str(key).str('cpu').int(numel).tuple().raw(0x51);
    this.int(0).ints(shape).ints(stride).raw(0x89).global('collections', 'OrderedDict').raw(0x29, 0x52).tuple();
    return this.raw(0x7d).tuple().raw(0x52);
  }
  /** OrderedDict() then SETITEMS of the pairs written by `body`. */
  odict(body: (p: Pk) => void) {
    this.global('collections', 'OrderedDict').raw(0x29, 0x52).mark();
    body(this);
    return this.raw(0x75);
  }
  dict(body: (p: Pk) => void) {
    this.raw(0x7d).mark();
    body(this);
    return this.raw(0x75);
  }
  stop() {
    this.raw(0x2e);
    return Uint8Array.from(this.b);
  }
}

// ------------------------------------------------------------------ a tiny zip writer (stored entries, like torch.save)
/** `zip64`: sizes and offsets only in ZIP64 extra fields, counts in a ZIP64 end record (as for files > 4 GiB). */
function zip(entries: [string, Uint8Array][], zip64 = false): Uint8Array {
  const parts: Buffer[] = [];
  const cd: Buffer[] = [];
  let off = 0;
  for (const [name, data] of entries) {
    const n = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(0x08, 6); // data descriptor flag: sizes 0 in the local header, as torch writes
    lh.writeUInt16LE(n.length, 26);
    parts.push(lh, n, Buffer.from(data));
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(45, 4);
    ch.writeUInt16LE(45, 6);
    ch.writeUInt16LE(0x08, 8);
    ch.writeUInt32LE(zip64 ? 0xffffffff : data.length, 20);
    ch.writeUInt32LE(zip64 ? 0xffffffff : data.length, 24);
    ch.writeUInt16LE(n.length, 28);
    ch.writeUInt32LE(zip64 ? 0xffffffff : off, 42);
    const extra = Buffer.alloc(zip64 ? 28 : 0);
    if (zip64) {
      ch.writeUInt16LE(28, 30);
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(data.length), 4);
      extra.writeBigUInt64LE(BigInt(data.length), 12);
      extra.writeBigUInt64LE(BigInt(off), 20);
    }
    cd.push(ch, n, extra);
    off += 30 + n.length + data.length;
  }
  const cdBuf = Buffer.concat(cd);
  const tail: Buffer[] = [];
  if (zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cdBuf.length), 40);
    rec.writeBigUInt64LE(BigInt(off), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(off + cdBuf.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : cdBuf.length, 12);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : off, 16);
  return new Uint8Array(Buffer.concat([...parts, cdBuf, ...tail, eocd]));
}

function f32bytes(xs: number[]) {
  return new Uint8Array(Float32Array.from(xs).buffer);
}

function safetensors(header: object | string, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  return new Uint8Array(Buffer.concat([n, h, Buffer.from(data)]));
}

describe('io: checkpoints built byte by byte', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), 'diffguide-io-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let count = 0;
  const put = (bytes: Uint8Array, ext = '.pt') => {
    const p = join(dir, `f${count++}${ext}`);
    writeFileSync(p, bytes);
    return p;
  };
  const torchZip = (pkl: Uint8Array, storages: Record<string, Uint8Array>, zip64 = false) =>
    put(
      zip(
        [
          ['archive/data.pkl', pkl],
          ...Object.entries(storages).map(([k, v]) => [`archive/data/${k}`, v] as [string, Uint8Array]),
          ['archive/version', Buffer.from('3\n')],
        ],
        zip64,
      ),
    );
  const errorOf = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };

  it('unwraps {state_dict: ..., epoch} and records the wrapper and scalar fields', async () => {
    const pkl = new Pk()
      .dict((p) => {
        p.str('state_dict').odict((q) => {
          q.str('a.weight').tensor('FloatStorage', '0', 4, 0, [2, 2], [2, 1]);
          q.str('a.bias').tensor('FloatStorage', '1', 2, 0, [2], [1]);
        });
        p.str('epoch').int(7);
        p.str('arch').str('unet');
      })
      .stop();
    const ck = await readCheckpoint(torchZip(pkl, { 0: f32bytes([1, 2, 3, 4]), 1: f32bytes([5, 6]) }));
    expect(ck.format).to.equal('torch-zip');
    expect(ck.unwrapped).to.equal('state_dict');
    expect(ck.metadata).to.include({ epoch: '7', arch: 'unet', unwrapped: 'state_dict' });
    expect([...ck.tensors.keys()]).to.deep.equal(['a.weight', 'a.bias']);
    expect([...ck.tensors.get('a.weight')!.data]).to.deep.equal([1, 2, 3, 4]);
  });

  it('prefers EMA weights in {model, model_ema}, lets the caller choose, and strips DataParallel prefixes', async () => {
    const pkl = new Pk()
      .dict((p) => {
        p.str('model').odict((q) => q.str('module.w').tensor('FloatStorage', '0', 1, 0, [], []));
        p.str('model_ema').odict((q) => q.str('module.w').tensor('FloatStorage', '1', 1, 0, [], []));
        p.str('optimizer').dict((q) => q.str('lr').int(3));
      })
      .stop();
    const p = torchZip(pkl, { 0: f32bytes([1]), 1: f32bytes([2]) });
    const ema = await readCheckpoint(p, { stripPrefix: 'module.' });
    expect(ema.unwrapped).to.equal('model_ema');
    expect(ema.metadata.other_weight_sets).to.equal('model');
    expect([...ema.tensors.keys()]).to.deep.equal(['w']);
    expect(ema.tensors.get('w')!.shape).to.deep.equal([]);
    expect([...ema.tensors.get('w')!.data]).to.deep.equal([2]);
    const raw = await readCheckpoint(p, { wrapper: 'model' });
    expect(raw.unwrapped).to.equal('model');
    expect([...raw.tensors.keys()]).to.deep.equal(['module.w']);
    expect([...raw.tensors.get('module.w')!.data]).to.deep.equal([1]);
    expect(await errorOf(readCheckpoint(p, { wrapper: 'ema' }))).to.match(
      /no top-level entry 'ema'.*model, model_ema, optimizer/,
    );
  });

  it('reads strided views, storage offsets, shared storages and _rebuild_from_type_v2 parameters', async () => {
    const pkl = new Pk()
      .odict((q) => {
        q.str('full').tensor('FloatStorage', '0', 8, 0, [2, 4], [4, 1]);
        q.str('transposed').tensor('FloatStorage', '0', 8, 0, [4, 2], [1, 4]);
        q.str('tail').tensor('FloatStorage', '0', 8, 5, [3], [1]);
        q.str('every_other').tensor('FloatStorage', '0', 8, 1, [2, 2], [4, 2]);
        q.str('as_param').param('FloatStorage', '0', 8, [8]);
      })
      .stop();
    const sd = await readStateDict(torchZip(pkl, { 0: f32bytes([0, 1, 2, 3, 4, 5, 6, 7]) }));
    const sd64 = await readStateDict(torchZip(pkl, { 0: f32bytes([0, 1, 2, 3, 4, 5, 6, 7]) }, true)); // ZIP64 fields
    for (const [k, t] of sd) expect([...sd64.get(k)!.data], k).to.deep.equal([...t.data]);
    expect([...sd.get('full')!.data]).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([...sd.get('transposed')!.data]).to.deep.equal([0, 4, 1, 5, 2, 6, 3, 7]);
    expect([...sd.get('tail')!.data]).to.deep.equal([5, 6, 7]);
    expect([...sd.get('every_other')!.data]).to.deep.equal([1, 3, 5, 7]);
    expect([...sd.get('as_param')!.data]).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('converts half, bfloat16, double, int64, int8 and bool storages; int64 that does not fit int32 is an error naming the key', async () => {
    const half = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]).buffer); // 1, -2, 65504, 2^-24
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc0a0]).buffer); // 1, -5
    const f64 = new Uint8Array(new Float64Array([0.1, -1e30]).buffer);
    const i64 = new Uint8Array(new BigInt64Array([0n, -3n, 2147483647n]).buffer);
    const i8 = new Uint8Array(new Int8Array([-128, 127]).buffer);
    const b = Uint8Array.from([1, 0, 1]);
    const pkl = new Pk()
      .odict((q) => {
        q.str('h').tensor('HalfStorage', 'h', 4, 0, [4], [1]);
        q.str('bf').tensor('BFloat16Storage', 'bf', 2, 0, [2], [1]);
        q.str('d').tensor('DoubleStorage', 'd', 2, 0, [2], [1]);
        q.str('l').tensor('LongStorage', 'l', 3, 0, [3], [1]);
        q.str('c').tensor('CharStorage', 'c', 2, 0, [2], [1]);
        q.str('m').tensor('BoolStorage', 'm', 3, 0, [3], [1]);
      })
      .stop();
    const ck = await readCheckpoint(torchZip(pkl, { h: half, bf: bf16, d: f64, l: i64, c: i8, m: b }));
    const t = ck.tensors;
    expect([...t.get('h')!.data]).to.deep.equal([1, -2, 65504, 2 ** -24]);
    expect(t.get('h')!.sourceDtype).to.equal('float16');
    expect([...t.get('bf')!.data]).to.deep.equal([1, -5]);
    expect([...t.get('d')!.data]).to.deep.equal([Math.fround(0.1), Math.fround(-1e30)]);
    expect(t.get('l')!.data).to.be.instanceOf(Int32Array);
    expect([...t.get('l')!.data]).to.deep.equal([0, -3, 2147483647]);
    expect(t.get('l')!.sourceDtype).to.equal('int64');
    expect([...t.get('c')!.data]).to.deep.equal([-128, 127]);
    expect(t.get('m')!.dtype).to.equal('bool');
    expect([...t.get('m')!.data]).to.deep.equal([1, 0, 1]);

    const big = new Pk().odict((q) => q.str('position_ids').tensor('LongStorage', '0', 1, 0, [1], [1])).stop();
    const msg = await errorOf(
      readCheckpoint(torchZip(big, { 0: new Uint8Array(new BigInt64Array([1n << 40n]).buffer) })),
    );
    expect(msg).to.match(/tensor 'position_ids' \(int64\) holds 1099511627776 .* does not fit int32/);
  });

  it('refuses forbidden pickle globals by name and executes nothing', async () => {
    // os.system('touch PWNED') via GLOBAL + REDUCE
    const pwned = join(dir, 'PWNED');
    const evil = new Pk().global('os', 'system').mark().str(`touch ${pwned}`).tuple().raw(0x52).stop();
    const msg = await errorOf(readCheckpoint(torchZip(evil, {})));
    expect(msg).to.match(/^refusing pickle global os\.system: not needed by a checkpoint/);
    expect(() => readFileSync(pwned)).to.throw();
    // inside an otherwise valid state_dict, and via STACK_GLOBAL (protocol 4)
    const hidden = new Pk()
      .odict((q) => {
        q.str('w').tensor('FloatStorage', '0', 1, 0, [1], [1]);
        q.str('x').str('builtins').str('eval').raw(0x93).mark().str('1+1').tuple().raw(0x52);
      })
      .stop();
    expect(await errorOf(readCheckpoint(torchZip(hidden, { 0: f32bytes([1]) })))).to.match(
      /refusing pickle global builtins\.eval/,
    );
    // a whole pickled model object: the error says how to re-save
    const model = new Pk().global('torch.nn.modules.conv', 'Conv2d').raw(0x29, 0x81).stop();
    expect(await errorOf(readCheckpoint(torchZip(model, {})))).to.match(
      /refusing pickle global torch\.nn\.modules\.conv\.Conv2d.*state_dict/,
    );
    // the same in a legacy-format stream
    const legacy = Buffer.concat([
      Buffer.from(new Pk().raw(0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).stop()),
      Buffer.from(new Pk().raw(0x4d, 0xe9, 0x03).stop()),
      Buffer.from(new Pk().raw(0x7d).stop()),
      Buffer.from(new Pk().global('subprocess', 'Popen').mark().str('ls').tuple().raw(0x52).stop()),
    ]);
    expect(await errorOf(readCheckpoint(put(new Uint8Array(legacy), '.pth')))).to.match(
      /refusing pickle global subprocess\.Popen/,
    );
  });

  it('rejects malformed pickles and archives with clear messages', async () => {
    expect(await errorOf(readCheckpoint(torchZip(Uint8Array.from([0x80, 2, 0xff]), {})))).to.match(
      /not a valid pickle \(unknown opcode 0xff/,
    );
    expect(await errorOf(readCheckpoint(torchZip(Uint8Array.from([0x80, 2, 0x52]), {})))).to.match(/malformed pickle/);
    expect(await errorOf(readCheckpoint(torchZip(Uint8Array.from([0x80, 2, 0x7d]), {})))).to.match(/ends unexpectedly/);
    const list = new Pk().raw(0x5d).stop();
    expect(await errorOf(readCheckpoint(torchZip(list, {})))).to.match(/pickled object is a list, not a state_dict/);
    const missing = new Pk().odict((q) => q.str('w').tensor('FloatStorage', '9', 4, 0, [4], [1])).stop();
    expect(await errorOf(readCheckpoint(torchZip(missing, {})))).to.match(
      /tensor 'w' uses storage 9, but its record archive\/data\/9 in the archive is missing; the file is truncated or corrupt/,
    );
    const short = new Pk().odict((q) => q.str('w').tensor('FloatStorage', '0', 4, 0, [4], [1])).stop();
    expect(await errorOf(readCheckpoint(torchZip(short, { 0: f32bytes([1, 2]) })))).to.match(
      /tensor 'w' uses storage 0: its record archive\/data\/0 in the archive has 8 bytes, but the storage holds 4 float32 elements \(16 bytes\)/,
    );
    const nopkl = put(zip([['a/readme.txt', Buffer.from('hi')]]));
    expect(await errorOf(readCheckpoint(nopkl))).to.match(/zip archive without data\.pkl: not a PyTorch checkpoint/);
  });

  it('inspect validates what it describes: a missing or short storage record fails inspect and convert alike, before anything is written', async () => {
    const pkl = new Pk()
      .odict((q) => {
        q.str('a').tensor('FloatStorage', '0', 2, 0, [2], [1]);
        q.str('b').tensor('FloatStorage', '1', 4, 0, [2, 2], [2, 1]);
        q.str('c').tensor('FloatStorage', '1', 4, 1, [3], [1]); // a view into b's storage
      })
      .stop();
    const good = torchZip(pkl, { 0: f32bytes([1, 2]), 1: f32bytes([1, 2, 3, 4]) });
    expect((await inspectCheckpoint(good)).count).to.equal(3);
    const cases: [string, string, RegExp][] = [
      [
        'missing',
        torchZip(pkl, { 0: f32bytes([1, 2]) }),
        /tensor 'b' uses storage 1, but its record archive\/data\/1 in the archive is missing; the file is truncated or corrupt: save it again with torch\.save, or download it again/,
      ],
      [
        'short',
        torchZip(pkl, { 0: f32bytes([1, 2]), 1: f32bytes([1, 2, 3]) }),
        /tensor 'b' uses storage 1: its record archive\/data\/1 in the archive has 12 bytes, but the storage holds 4 float32 elements \(16 bytes\); the file is truncated/,
      ],
    ];
    // a view past its storage's declared elements: caught at open too
    const past = new Pk().odict((q) => q.str('v').tensor('FloatStorage', '0', 2, 1, [2], [1])).stop();
    cases.push([
      'view past its storage',
      torchZip(past, { 0: f32bytes([1, 2]) }),
      /tensor 'v' needs elements 1\.\.3 of storage 0, which holds 2; the file is truncated or corrupt/,
    ]);
    for (const [what, file, re] of cases) {
      expect(await errorOf(inspectCheckpoint(file)), what).to.match(re);
      expect(await errorOf(inspect.run({ values: { json: true }, positionals: [file] })), what).to.match(re);
      const out = join(dir, `converted-${what.replace(/ /g, '-')}.safetensors`);
      expect(await errorOf(convert.run({ values: { quiet: true }, positionals: [file, out] })), what).to.match(re);
      expect(existsSync(out), what).to.equal(false);
      expect(await errorOf(readCheckpoint(file)), what).to.match(re);
    }
    // a filter that leaves the broken tensor out opens fine (its bytes are never needed)
    const ck = await readCheckpoint(cases[0][1], { filter: (k) => k === 'a' });
    expect([...ck.tensors.keys()]).to.deep.equal(['a']);
  });

  it('safetensors that are too short, have an absurd header length or reversed offsets say which', async () => {
    const st = (bytes: Uint8Array, ext = '.safetensors') => put(bytes, ext);
    const len = (n: bigint, rest: string) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(n);
      return new Uint8Array(Buffer.concat([b, Buffer.from(rest)]));
    };
    expect(await errorOf(readCheckpoint(st(Uint8Array.from([1, 2, 3, 4, 5]))))).to.match(
      /invalid safetensors file: only 5 bytes, fewer than the 8-byte header length a safetensors file starts with \(truncated file\?\); download or convert it again/,
    );
    expect(await errorOf(readCheckpoint(st(new Uint8Array(0))))).to.match(/empty file \(0 bytes\), not a checkpoint/);
    // an absurd length, with or without the .safetensors name (the JSON header at byte 8 tells)
    for (const ext of ['.safetensors', '.bin']) {
      expect(await errorOf(readCheckpoint(st(len(0xffffffffffffffffn, '{}'), ext))), ext).to.match(
        /invalid safetensors file: header length 18446744073709551615 exceeds the 100 MB limit and the 10-byte file \(bytes 0\.\.8, a little-endian u64, are corrupt/,
      );
      expect(await errorOf(readCheckpoint(st(len(1n << 50n, '{}'), ext))), ext).to.match(
        /header length 1125899906842624 exceeds the 100 MB limit/,
      );
    }
    expect(await errorOf(readCheckpoint(st(len(0n, '{}'))))).to.match(/header length 0 is too small for a JSON header/);
    expect(await errorOf(readCheckpoint(st(len(2n, '[]'))))).to.match(
      /invalid safetensors file: header does not start with '\{'/,
    );
    // reversed offsets, where sorting by begin would make them look like an overlap
    const t = (dtype: string, shape: number[], offs: [number, number]) => ({ dtype, shape, data_offsets: offs });
    expect(
      await errorOf(
        readCheckpoint(st(safetensors({ a: t('F32', [2], [0, 8]), b: t('F32', [1], [8, 4]) }, new Uint8Array(12)))),
      ),
    ).to.match(/tensor 'b' has reversed data_offsets \[8, 4\]: the end lies before the begin/);
    expect(
      await errorOf(
        readCheckpoint(st(safetensors({ a: t('F32', [2], [0, 8]), b: t('F32', [1], [4, 0]) }, new Uint8Array(8)))),
      ),
    ).to.not.match(/overlap/);
  });

  it('rejects random bytes, empty files and truncated files quickly', async () => {
    const rnd = new Uint8Array(4096);
    for (let i = 0; i < rnd.length; i++) rnd[i] = (i * 2654435761) >>> 24;
    expect(await errorOf(readCheckpoint(put(rnd)))).to.match(/unrecognised checkpoint format/);
    expect(await errorOf(readCheckpoint(put(new Uint8Array(0))))).to.match(/empty file \(0 bytes\), not a checkpoint/);
    expect(await errorOf(readCheckpoint(put(Uint8Array.from([1, 2, 3]))))).to.match(
      /unrecognised checkpoint format \(only 3 bytes; first bytes 01 02 03\)/,
    );
    expect(await errorOf(readCheckpoint(join(dir, 'nope.pt')))).to.match(/does not exist/);
    if (!HAVE_PARITY) return;
    const full = readFileSync(join(PARITY, 'clip_tiny.pt'));
    for (const cut of [full.length >> 1, full.length - 30, 100]) {
      expect(await errorOf(readCheckpoint(put(full.subarray(0, cut))))).to.match(
        /not a readable zip archive: .*truncated/,
      );
    }
    const legacy = readFileSync(join(PARITY, 'real', 'alex.pth'));
    expect(await errorOf(readCheckpoint(put(legacy.subarray(0, legacy.length - 100), '.pth')))).to.match(/truncated/);
    expect(await errorOf(readCheckpoint(put(legacy.subarray(0, 200), '.pth')))).to.match(/truncated/);
    const st = readFileSync(join(PARITY, 'ddpm_tiny.safetensors'));
    expect(await errorOf(readCheckpoint(put(st.subarray(0, st.length - 4), '.safetensors')))).to.match(
      /ends at byte \d+ of the buffer but the file holds only/,
    );
  });

  it('writeSafetensors is atomic: a failed write leaves the old file and no temp file', async () => {
    const sub = mkdtempSync(join(dir, 'atomic-'));
    const p = join(sub, 'w.safetensors');
    await writeSafetensors(p, {
      a: { shape: [2], dtype: 'float32', data: Float32Array.from([1, 2]), sourceDtype: 'float32' },
    });
    const before = readFileSync(p);
    const msg = await errorOf(
      writeSafetensors(p, {
        a: { shape: [3], dtype: 'float32', data: Float32Array.from([1, 2]), sourceDtype: 'float32' },
      }),
    );
    expect(msg).to.match(/tensor 'a' has shape \[3\] \(3 elements\) but 2 data elements/);
    expect(readFileSync(p).equals(before)).to.equal(true);
    expect(readdirSync(sub)).to.deep.equal(['w.safetensors']);
  });

  describe('safetensors headers that lie', () => {
    const t = (dtype: string, shape: number[], offs: [number, number]) => ({ dtype, shape, data_offsets: offs });
    const cases: [string, Uint8Array, RegExp][] = [
      [
        'offsets past the end',
        safetensors({ a: t('F32', [4], [0, 16]) }, new Uint8Array(8)),
        /ends at byte 16 of the buffer but the file holds only 8/,
      ],
      [
        'overlapping tensors',
        safetensors({ a: t('F32', [2], [0, 8]), b: t('F32', [2], [4, 12]) }, new Uint8Array(12)),
        /tensor 'b' data_offsets \[4, 12\] overlap the previous tensor/,
      ],
      [
        'a gap',
        safetensors({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [8, 12]) }, new Uint8Array(12)),
        /gap in the data buffer before tensor 'b'/,
      ],
      [
        'bytes not covered',
        safetensors({ a: t('F32', [1], [0, 4]) }, new Uint8Array(8)),
        /buffer has 8 bytes but the tensors cover only 4/,
      ],
      [
        'shape/dtype vs byte count',
        safetensors({ a: t('F16', [4], [0, 16]) }, new Uint8Array(16)),
        /tensor 'a' F16\[4\] needs 8 bytes but data_offsets \[0, 16\] span 16/,
      ],
      [
        'end before begin',
        safetensors({ a: t('F32', [0], [4, 0]) }, new Uint8Array(4)),
        /tensor 'a' has reversed data_offsets \[4, 0\]: the end lies before the begin/,
      ],
      ['unknown dtype', safetensors({ a: t('F7', [1], [0, 4]) }, new Uint8Array(4)), /unsupported dtype F7/],
      ['negative shape', safetensors({ a: t('F32', [-1], [0, 4]) }, new Uint8Array(4)), /invalid shape \[-1\]/],
      ['header length past the end', safetensors({}, new Uint8Array(0), 1000n), /header length 1000 runs past the end/],
      [
        'header over 100 MB',
        safetensors({}, new Uint8Array(0), 100_000_001n),
        /header length 100000001 exceeds the 100 MB limit/,
      ],
      ['not JSON', safetensors('{"a": [', new Uint8Array(0)), /header is not valid JSON|unrecognised/],
      [
        'metadata not strings',
        safetensors({ __metadata__: { a: 1 } }, new Uint8Array(0)),
        /__metadata__\.a must be a string/,
      ],
    ];
    for (const [name, bytes, re] of cases) {
      it(name, async () => {
        const p = join(dir, `st${count++}.safetensors`);
        writeFileSync(p, bytes);
        let msg = '';
        await readCheckpoint(p).catch((e: Error) => (msg = e.message));
        expect(msg).to.match(re);
      });
    }
  });
});
