/**
 * `diffguide bench nets`: forward and forward+input-gradient time of the nets on the chosen backend,
 * for the models in `../shared/bench` (gd_bench32, gd_bench64, ddpm_bench32, clip_bench image / text),
 * next to the TorchScript model's times on the same inputs in the same run (when `/usr/bin/python3`
 * has torch), plus the > 2 GiB safetensors load of bench/io.ts.
 *
 * Output: `{cases: [{name, fwd_ms, dx_ms, torch_fwd_ms, torch_dx_ms, max_rel_err, ...}], load, backend}`;
 * PyTorch is timed by an inline script (`TORCH_PY`: the TorchScript `.jit.pt`, OpenBLAS pinned to one
 * thread, warmed up to its steady state) right after each of our cases, at the README's 2 threads and at 1 thread; `torch_fwd_ms` is
 * the faster (under load torch's two OpenMP threads spin-wait for each other). `torch_blas` names the
 * BLAS that torch maps: Debian's `libblas.so.3` is the unoptimised reference BLAS unless
 * `libopenblas0-pthread` is installed, which makes torch 10-15x slower on GEMMs (the bench warns).
 * The machine is shared, so each case also carries CPU time per call (ours, and PyTorch's on one thread via
 * an inline script, forward and forward + input gradient), a like-for-like ratio that wall-clock load
 * distorts less (with 2 wasm threads ours includes their spin-waits: compare at DIFFGUIDE_WASM_THREADS=1);
 * `max_rel_err` is max|ours - reference| / max(1, max|reference|) of the forward output, `grad_rel_err`
 * the same for the input gradient where the io file holds it. Times are medians of `reps` calls after
 * two warm-up calls.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import os from 'node:os';
import { packageRoot } from '../lib/paths.js';
import { backendInfo } from '../lib/backend.js';
import { readStateDict } from '../lib/io/index.js';
import { readIoFile, type IoTensor } from '../lib/cli/commands/verify.js';
import { UNet, configFromReference } from '../nets/unet/index.js';
import { torchBlas, warnReferenceBlas } from './util.js';

export interface NetsBenchOptions {
  /** Repetitions per measurement (median reported). Default 5. */
  reps?: number;
  /** Run the PyTorch side when available. Default true. */
  torch?: boolean;
  /** Also run bench/io.ts (synthetic > 2 GiB load). Default true unless DIFFGUIDE_BENCH_NO_LOAD=1. */
  load?: boolean;
  /** Threads for PyTorch (default 2, as the shared README's figures); 1 thread is always timed too. */
  torchThreads?: number;
  /** Cases to run (default all of `NET_CASES`; env DIFFGUIDE_BENCH_NETS=a,b). */
  cases?: string[];
}

export interface NetsBenchCase {
  name: string;
  fwd_ms: number;
  dx_ms: number | null;
  /** PyTorch's fastest forward over the thread counts timed (see `torch_by_threads`). */
  torch_fwd_ms: number | null;
  torch_dx_ms: number | null;
  /** The thread count of `torch_fwd_ms`. */
  torch_fwd_threads?: number;
  /** PyTorch's medians per thread count (`TORCH_PY`). */
  torch_by_threads?: Record<string, { fwd_ms: number; dx_ms: number | null }>;
  max_rel_err: number;
  grad_rel_err?: number | null;
  /** Our CPU time per call (the wasm backend runs on one thread; robust to other load on the machine). */
  fwd_cpu_ms?: number;
  dx_cpu_ms?: number | null;
  /** PyTorch CPU time per forward on one thread (same measure as fwd_cpu_ms, like for like). */
  torch_fwd_cpu_ms_1thread?: number | null;
  /** fwd_cpu_ms / torch_fwd_cpu_ms_1thread */
  fwd_cpu_ratio_1thread?: number | null;
  /** PyTorch CPU time per forward + input gradient on one thread (like `torch_fwd_cpu_ms_1thread`). */
  torch_dx_cpu_ms_1thread?: number | null;
  /** dx_cpu_ms / torch_dx_cpu_ms_1thread */
  dx_cpu_ratio_1thread?: number | null;
  fwd_ratio?: number | null;
  dx_ratio?: number | null;
  torch_error?: string;
}

function benchDir(): string {
  return resolve(process.env.DIFFGUIDE_SHARED ?? join(packageRoot(), '..', 'shared'), 'bench');
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** CPU ms (user + system) of this process per call, measured over the timed calls of the last `timeIt`. */
let lastCpuMs = 0;

/** Median wall ms of `fn` (which returns tensors to read back and dispose); sets `lastCpuMs`. */
function timeIt(fn: () => tf.Tensor | tf.Tensor[], reps: number): number {
  const once = () => {
    const t0 = performance.now();
    const r = fn();
    const list = Array.isArray(r) ? r : [r];
    for (const t of list) t.dataSync();
    const dt = performance.now() - t0;
    tf.dispose(list);
    return dt;
  };
  once();
  once();
  const ts: number[] = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) ts.push(once());
  const c = process.cpuUsage(c0);
  lastCpuMs = (c.user + c.system) / 1000 / reps;
  return median(ts);
}

function relErr(ours: tf.Tensor, ref: IoTensor | undefined): number | null {
  if (!ref) return null;
  return tf.tidy(() => {
    const o = ours.rank === 4 && ref.shape.length === 4 ? ours.transpose([0, 3, 1, 2]) : ours;
    const r = tf.tensor(ref.data, ref.shape, 'float32');
    return o.sub(r).abs().max().dataSync()[0] / Math.max(1, r.abs().max().dataSync()[0]);
  });
}

/** Whether /usr/bin/python3 imports torch and numpy (5 minutes allowed: on a machine at load 40 the import took over 1). */
function haveTorch(): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 300000 });
  return r.status === 0;
}

/**
 * Inline measurement script: one TorchScript model at one thread count (OpenBLAS pinned to one thread,
 * as ../shared/bench/time_torch.py does): median wall ms and CPU ms per call of the forward (no_grad)
 * and of forward + input gradient. Warm-up runs the gradient first, then the forward: measured here
 * (gd_bench32, 1 thread), a no_grad forward timed right after 5 forward warm-ups took 115-220 ms per
 * call, more than forward + backward (~116 ms); after a few gradient calls the same forward takes 50 ms,
 * steadily. Timing it cold (time_torch.py's order: forward, then gradient) made PyTorch look ~3x slower.
 * The gradient's first calls after forwards are slow again (441, 237, 152, then ~117 ms), so it is warmed
 * up again before it is timed.
 */
const TORCH_PY = `
import os, sys, json, time, statistics
os.environ["OPENBLAS_NUM_THREADS"] = "1"; os.environ["MKL_NUM_THREADS"] = "1"
jit, io, reps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.environ["OMP_NUM_THREADS"] = str(threads)
import numpy as np, torch
torch.set_num_threads(threads)
extra = {"fixture.json": ""}
m = torch.jit.load(jit, map_location="cpu", _extra_files=extra).eval()
names = json.loads(extra["fixture.json"])["inputs"]
meta = json.load(open(io)); raw = open(io[:-5] + ".bin", "rb").read()
def tensor(n):
    d = meta[n]; dt = np.dtype(d["dtype"]).newbyteorder("<")
    a = np.frombuffer(raw, dtype=dt, count=d["nbytes"] // dt.itemsize, offset=d["offset"]).reshape(d["shape"])
    return torch.from_numpy(a.astype(a.dtype.newbyteorder("="), copy=True))
inp = [tensor(n) for n in names]
for p in m.parameters(): p.requires_grad_(False)
fidx = [i for i, t in enumerate(inp) if t.is_floating_point()]
gin = [t.clone().requires_grad_(True) if i in fidx else t for i, t in enumerate(inp)]
def fwd():
    with torch.no_grad(): m(*inp)
def dx():
    out = m(*gin)
    out = out[0] if isinstance(out, (tuple, list)) else out
    return torch.autograd.grad(out.sum(), [gin[i] for i in fidx])
def timed(f):
    ts = []; c0 = time.process_time()
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), (time.process_time() - c0) / reps * 1e3
for _ in range(8 if fidx else 0): dx()
for _ in range(5): fwd()
res = {"threads": threads}
res["fwd_ms"], res["fwd_cpu_ms"] = timed(fwd)
for _ in range(8 if fidx else 0): dx()
if fidx: res["dx_ms"], res["dx_cpu_ms"] = timed(dx)
print(json.dumps(res))
`;

type TorchTimes = { threads: number; fwd_ms: number; fwd_cpu_ms: number; dx_ms?: number; dx_cpu_ms?: number };

/** PyTorch's times for one TorchScript model at one thread count (`TORCH_PY`). */
function torchTimes(jit: string, io: string, reps: number, threads: number): TorchTimes | { error: string } {
  const r = spawnSync('/usr/bin/python3', ['-c', TORCH_PY, jit, io, String(Math.max(reps, 3)), String(threads)], {
    encoding: 'utf8',
    timeout: 600000,
  });
  if (r.status !== 0)
    return { error: `torch timing exited ${r.status}: ${(r.stderr || '').trim().split('\n').slice(-2).join(' ')}` };
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as TorchTimes;
  } catch {
    return { error: `torch timing printed no JSON: ${last.slice(0, 200)}` };
  }
}

async function unetCase(name: string, reps: number): Promise<{ c: NetsBenchCase; jit: string; io: string }> {
  const dir = benchDir();
  const sd = await readStateDict(join(dir, `${name}.pt`));
  const net = UNet.fromStateDict(
    sd,
    configFromReference(JSON.parse(readFileSync(join(dir, `${name}.config.json`), 'utf8'))),
  );
  const ioPath = join(dir, `${name}_io.json`);
  const io = await readIoFile(ioPath);
  const x = tf.tidy(
    () => tf.tensor(io.get('x')!.data, io.get('x')!.shape, 'float32').transpose([0, 2, 3, 1]) as tf.Tensor4D,
  );
  const t = tf.tensor1d(Float32Array.from(io.get('t')!.data), 'float32');
  try {
    const out = net.apply(x, t);
    const maxRel = relErr(out, io.get('out'))!;
    out.dispose();
    const grad = tf.grad((xx: tf.Tensor) => net.apply(xx as tf.Tensor4D, t).sum());
    const g = grad(x);
    const gradRel = relErr(g, io.get('grad_x'));
    g.dispose();
    const fwd = timeIt(() => net.apply(x, t), reps);
    const fwdCpu = lastCpuMs;
    const dx = timeIt(() => grad(x), reps);
    return {
      c: {
        name,
        fwd_ms: fwd,
        dx_ms: dx,
        torch_fwd_ms: null,
        torch_dx_ms: null,
        max_rel_err: maxRel,
        grad_rel_err: gradRel,
        fwd_cpu_ms: fwdCpu,
        dx_cpu_ms: lastCpuMs,
      },
      jit: join(dir, `${name}.jit.pt`),
      io: ioPath,
    };
  } finally {
    tf.dispose([x, t]);
    net.dispose();
  }
}

async function clipCases(reps: number): Promise<{ c: NetsBenchCase; jit: string; io: string }[]> {
  const dir = benchDir();
  let clip: typeof import('../nets/clip/index.js');
  try {
    clip = await import('../nets/clip/index.js');
  } catch {
    return [];
  }
  const sd = await readStateDict(join(dir, 'clip_bench.pt'));
  const model = clip.CLIP.fromStateDict(
    sd,
    clip.clipConfigFromJson(JSON.parse(readFileSync(join(dir, 'clip_bench.config.json'), 'utf8'))),
  );
  const ioPath = join(dir, 'clip_bench_io.json');
  const io = await readIoFile(ioPath);
  const image = io.get('image')!;
  const pixels = tf.tidy(() => tf.tensor(image.data, image.shape, 'float32').transpose([0, 2, 3, 1]) as tf.Tensor4D);
  const ids = tf.tensor2d(Int32Array.from(io.get('text')!.data), io.get('text')!.shape as [number, number], 'int32');
  try {
    const enc = (p: tf.Tensor4D) => tf.tidy(() => model.encodeImagePixels(p).embedding);
    const e = enc(pixels);
    const imgRel = relErr(e, io.get('image_features'))!;
    e.dispose();
    const grad = tf.grad((p: tf.Tensor) => enc(p as tf.Tensor4D).sum());
    const g = grad(pixels);
    const gradRel = relErr(g, io.get('grad_image'));
    g.dispose();
    const tfeat = model.encodeTokens(ids);
    const txtRel = relErr(tfeat, io.get('text_features'))!;
    tfeat.dispose();
    const imgFwd = timeIt(() => enc(pixels), reps);
    const imgFwdCpu = lastCpuMs;
    const imgDx = timeIt(() => grad(pixels), reps);
    const imgDxCpu = lastCpuMs;
    const txtFwd = timeIt(() => model.encodeTokens(ids), reps);
    return [
      {
        c: {
          name: 'clip_bench_image',
          fwd_ms: imgFwd,
          dx_ms: imgDx,
          torch_fwd_ms: null,
          torch_dx_ms: null,
          max_rel_err: imgRel,
          grad_rel_err: gradRel,
          fwd_cpu_ms: imgFwdCpu,
          dx_cpu_ms: imgDxCpu,
        },
        jit: join(dir, 'clip_bench_image.jit.pt'),
        io: ioPath,
      },
      {
        c: {
          name: 'clip_bench_text',
          fwd_ms: txtFwd,
          dx_ms: null,
          torch_fwd_ms: null,
          torch_dx_ms: null,
          max_rel_err: txtRel,
          fwd_cpu_ms: lastCpuMs,
          dx_cpu_ms: null,
        },
        jit: join(dir, 'clip_bench_text.jit.pt'),
        io: ioPath,
      },
    ];
  } finally {
    tf.dispose([pixels, ids]);
    model.dispose();
  }
}

/** Which torch thread counts each case is timed at: the README's setting (2, or `torchThreads`) and 1. */
function torchThreadCounts(threads: number): number[] {
  return [...new Set([threads, 1])];
}

/**
 * Time the PyTorch side of one case at each thread count, right after ours (so both see the same
 * machine load). `torch_fwd_ms` / `torch_dx_ms` are PyTorch's best (fastest) setting: on an idle
 * machine that is 2 threads, the README's figures; with other processes on both cores, torch's
 * OpenMP threads spin-wait for each other and 1 thread is several times faster, so the ratio is
 * always taken against the faster PyTorch, never against a slowed one.
 */
function torchCase(c: NetsBenchCase, jit: string, io: string, reps: number, threads: number): void {
  const per: Record<string, { fwd_ms: number; dx_ms: number | null }> = {};
  const errors: string[] = [];
  let one: TorchTimes | null = null;
  for (const th of torchThreadCounts(threads)) {
    const tt = torchTimes(jit, io, reps, th);
    if ('error' in tt) {
      errors.push(`${th} threads: ${tt.error}`);
      continue;
    }
    if (th === 1) one = tt;
    per[th] = { fwd_ms: +tt.fwd_ms.toFixed(1), dx_ms: tt.dx_ms == null ? null : +tt.dx_ms.toFixed(1) };
  }
  c.torch_by_threads = per;
  const ths = Object.keys(per);
  if (ths.length) {
    const bestFwd = ths.reduce((x, y) => (per[y].fwd_ms < per[x].fwd_ms ? y : x));
    c.torch_fwd_ms = per[bestFwd].fwd_ms;
    c.torch_fwd_threads = Number(bestFwd);
    const dxs = ths.filter((t) => per[t].dx_ms !== null);
    c.torch_dx_ms = dxs.length ? Math.min(...dxs.map((t) => per[t].dx_ms as number)) : null;
  }
  if (errors.length) c.torch_error = errors.join('; ');
  c.torch_fwd_cpu_ms_1thread = one === null ? null : +one.fwd_cpu_ms.toFixed(1);
  c.torch_dx_cpu_ms_1thread = one?.dx_cpu_ms == null || c.dx_ms === null ? null : +one.dx_cpu_ms.toFixed(1);
}

/** Case names: gd_bench32, gd_bench64, ddpm_bench32, clip_bench (image and text). */
export const NET_CASES = ['gd_bench32', 'gd_bench64', 'ddpm_bench32', 'clip_bench'];

export async function run(opts: NetsBenchOptions = {}): Promise<{
  backend: unknown;
  load_avg: number;
  torch: boolean;
  torch_threads: number[];
  torch_blas: string | null;
  cases: NetsBenchCase[];
  load: unknown;
}> {
  const reps = opts.reps && opts.reps > 0 ? opts.reps : 5;
  const dir = benchDir();
  if (!existsSync(join(dir, 'README.md')))
    throw new Error(
      `bench nets needs the shared bench models at ${dir} (set DIFFGUIDE_SHARED to the folder holding bench/)`,
    );
  const threads = opts.torchThreads ?? Number(process.env.DIFFGUIDE_TORCH_THREADS ?? 2);
  const only =
    opts.cases ?? (process.env.DIFFGUIDE_BENCH_NETS ? process.env.DIFFGUIDE_BENCH_NETS.split(',') : NET_CASES);
  const unknown = only.filter((n) => !NET_CASES.includes(n));
  if (unknown.length)
    throw new Error(`bench nets: unknown case(s) ${unknown.join(', ')}; choose from ${NET_CASES.join(', ')}`);
  const useTorch = (opts.torch ?? true) && haveTorch();
  const blas = useTorch ? torchBlas() : null;
  if (blas?.reference) warnReferenceBlas('bench nets', blas.path, 'so no ratios are given');
  const runs: NetsBenchCase[] = [];
  for (const name of only) {
    const got = name === 'clip_bench' ? await clipCases(reps) : [await unetCase(name, reps)];
    for (const r of got) {
      if (useTorch) torchCase(r.c, r.jit, r.io, reps, threads);
      if (blas?.reference)
        r.c.torch_error = `${r.c.torch_error ? r.c.torch_error + '; ' : ''}PyTorch uses the reference BLAS (${blas.path}): not comparable`;
      process.stderr.write(`bench nets: ${JSON.stringify(r.c)}\n`);
      runs.push(r.c);
    }
  }
  // No ratio against a PyTorch slowed by the reference BLAS (its times stay in the record).
  const comparable = !blas?.reference;
  for (const c of runs) {
    c.fwd_ratio = comparable && c.torch_fwd_ms ? +(c.fwd_ms / c.torch_fwd_ms).toFixed(2) : null;
    c.dx_ratio = comparable && c.torch_dx_ms && c.dx_ms ? +(c.dx_ms / c.torch_dx_ms).toFixed(2) : null;
    c.fwd_cpu_ratio_1thread =
      comparable && c.torch_fwd_cpu_ms_1thread && c.fwd_cpu_ms
        ? +(c.fwd_cpu_ms / c.torch_fwd_cpu_ms_1thread).toFixed(2)
        : null;
    c.dx_cpu_ratio_1thread =
      comparable && c.torch_dx_cpu_ms_1thread && typeof c.dx_cpu_ms === 'number'
        ? +(c.dx_cpu_ms / c.torch_dx_cpu_ms_1thread).toFixed(2)
        : null;
    c.fwd_ms = +c.fwd_ms.toFixed(1);
    if (c.dx_ms !== null) c.dx_ms = +c.dx_ms.toFixed(1);
    if (c.fwd_cpu_ms !== undefined) c.fwd_cpu_ms = +c.fwd_cpu_ms.toFixed(1);
    if (typeof c.dx_cpu_ms === 'number') c.dx_cpu_ms = +c.dx_cpu_ms.toFixed(1);
  }
  let load: unknown = null;
  if (opts.load ?? process.env.DIFFGUIDE_BENCH_NO_LOAD !== '1') {
    try {
      load = await (await import('./io.js')).run();
    } catch (e) {
      load = { error: (e as Error).message };
    }
  }
  const b = backendInfo();
  return {
    backend: b ? { name: b.name, threads: b.threads, simd: b.simd } : tf.getBackend(),
    /** 1-minute load average at the end (the machine is shared; wall times inflate with load). */
    load_avg: +os.loadavg()[0].toFixed(2),
    torch: useTorch,
    torch_threads: torchThreadCounts(threads),
    torch_blas: blas ? blas.path : null,
    cases: runs,
    load,
  };
}
