/**
 * `diffguide verify --weights FILE --io IO.json [--config CONFIG.json]`: load a checkpoint, build the
 * net, run the inputs of a reference io file and report the error of every output it holds.
 *
 * Generic over architectures: a small table of {detect, build, run} entries (UNet, CLIP). The io
 * format is the one of `../shared/parity`: IO.json maps name -> {dtype, shape, offset, nbytes} into
 * IO.bin (little-endian), tensors in PyTorch layout (NCHW images).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from '../command.js';
import { readStateDict, type StateDict } from '../../io/index.js';

// ---------------------------------------------------------------------------------------------
// The io file format.

/** One tensor of an io file, host-side, PyTorch layout. int64 becomes Int32Array; float64 Float32Array. */
export interface IoTensor {
  shape: number[];
  /** dtype as written in the json ('float32', 'int64', ...). */
  dtype: string;
  data: Float32Array | Int32Array;
}

/**
 * Read a reference io file (`NAME_io.json` + `NAME_io.bin` beside it).
 * @throws naming the file and the malformed entry
 */
export async function readIoFile(jsonPath: string): Promise<Map<string, IoTensor>> {
  let meta: Record<string, { dtype: string; shape: number[]; offset: number; nbytes: number }>;
  try {
    meta = JSON.parse(await fsp.readFile(jsonPath, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read io file ${jsonPath}: ${(e as Error).message}`);
  }
  const binPath = jsonPath.replace(/\.json$/, '') + '.bin';
  if (!existsSync(binPath)) throw new Error(`io file ${jsonPath} has no data file ${binPath} beside it`);
  const bin = await fsp.readFile(binPath);
  const out = new Map<string, IoTensor>();
  for (const [name, m] of Object.entries(meta)) {
    if (!m || !Array.isArray(m.shape) || typeof m.offset !== 'number' || typeof m.nbytes !== 'number')
      throw new Error(`io file ${jsonPath}: entry '${name}' lacks shape/offset/nbytes`);
    if (m.offset < 0 || m.offset + m.nbytes > bin.length)
      throw new Error(
        `io file ${jsonPath}: entry '${name}' needs bytes ${m.offset}..${m.offset + m.nbytes} but ${binPath} has ${bin.length}`,
      );
    const n = m.shape.reduce((a, b) => a * b, 1);
    const bytes = bin.subarray(m.offset, m.offset + m.nbytes);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const size: Record<string, number> = { float32: 4, float64: 8, int64: 8, int32: 4, float16: 2, uint8: 1, bool: 1 };
    const s = size[m.dtype];
    if (!s) throw new Error(`io file ${jsonPath}: entry '${name}' has unsupported dtype ${m.dtype}`);
    if (n * s !== m.nbytes)
      throw new Error(
        `io file ${jsonPath}: entry '${name}' shape [${m.shape}] x ${m.dtype} is ${n * s} bytes, nbytes says ${m.nbytes}`,
      );
    let data: Float32Array | Int32Array;
    switch (m.dtype) {
      case 'float32':
        data = new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
        break;
      case 'float64':
        data = new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getFloat64(8 * i, true);
        break;
      case 'int64':
        data = new Int32Array(n);
        for (let i = 0; i < n; i++) data[i] = Number(view.getBigInt64(8 * i, true));
        break;
      case 'int32':
        data = new Int32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getInt32(4 * i, true);
        break;
      default:
        data = new Int32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getUint8(i);
    }
    out.set(name, { shape: m.shape.slice(), dtype: m.dtype, data });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Architectures.

/** What one architecture provides to verify. */
export interface VerifyArchitecture<Net = unknown> {
  name: string;
  /** Does this state_dict belong to the architecture? */
  detect(sd: StateDict): boolean;
  /**
   * Build the net; `config` is the parsed config JSON (reference constructor arguments) or null to infer.
   * `note` receives one line for each config value inferred rather than read (the report lists them).
   */
  build(sd: StateDict, config: Record<string, unknown> | null, note: (line: string) => void): Promise<Net>;
  /** Run the io inputs; returns name -> tensor in PyTorch layout (the caller disposes). */
  run(net: Net, inputs: Map<string, IoTensor>): Map<string, tf.Tensor>;
  /** A short description of the built net's config. */
  describe(net: Net): string;
  dispose(net: Net): void;
}

const ARCHITECTURES: VerifyArchitecture<never>[] = [];

/** Register an architecture for `diffguide verify` (later registrations are tried first). */
export function registerVerifyArchitecture<Net>(arch: VerifyArchitecture<Net>): void {
  ARCHITECTURES.unshift(arch as unknown as VerifyArchitecture<never>);
}

registerVerifyArchitecture({
  name: 'unet',
  detect: (sd) => sd.has('time_embed.0.weight') || sd.has('temb.dense.0.weight'),
  async build(sd, config) {
    const { UNet, configFromReference } = await import('../../../nets/unet/index.js');
    return UNet.fromStateDict(sd, config ? configFromReference(config) : undefined);
  },
  run(net, inputs) {
    const x = inputs.get('x');
    const t = inputs.get('t');
    if (!x || !t) throw new Error("a UNet io file needs inputs 'x' [N, C, H, W] and 't' [N]");
    const y = inputs.get('y');
    const res = tf.tidy(() => {
      const xt = tf.tensor(x.data, x.shape, 'float32').transpose([0, 2, 3, 1]) as tf.Tensor4D;
      const tt = tf.tensor1d(Float32Array.from(t.data), 'float32');
      const cond = y ? { y: tf.tensor1d(Int32Array.from(y.data), 'int32') } : {};
      const { out, intermediates } = net.applyWithIntermediates(xt, tt, cond);
      const nchw = (a: tf.Tensor) => (a.rank === 4 ? a.transpose([0, 3, 1, 2]) : a.clone());
      const named: Record<string, tf.Tensor> = { out: nchw(out) };
      for (const [k, v] of Object.entries(intermediates)) named[k] = nchw(v);
      return named;
    });
    return new Map(Object.entries(res));
  },
  describe: (net) => `${net.config.kind} UNet (${net.numParams()} params)`,
  dispose: (net) => net.dispose(),
} satisfies VerifyArchitecture<import('../../../nets/unet/index.js').UNet>);

registerVerifyArchitecture({
  name: 'clip',
  detect: (sd) => sd.has('text_projection') || sd.has('visual.proj') || sd.has('visual.attnpool.c_proj.weight'),
  async build(sd, config, note) {
    const clip = await import('../../../nets/clip/index.js');
    return clip.CLIP.fromStateDict(sd, config ? clip.clipConfigFromJson(config, { onInferred: note }) : undefined, {
      onInferred: note,
    });
  },
  run(net, inputs) {
    return runClip(net, inputs);
  },
  describe: (net) =>
    `CLIP (${(net as unknown as { config: { visionWidth: number } }).config.visionWidth}-wide vision tower)`,
  dispose: (net) => net.dispose(),
} satisfies VerifyArchitecture<import('../../../nets/clip/index.js').CLIP>);

let clipOutputs: typeof import('../../../nets/clip/index.js').clipReferenceOutputs | null = null;
function runClip(
  net: import('../../../nets/clip/index.js').CLIP,
  inputs: Map<string, IoTensor>,
): Map<string, tf.Tensor> {
  if (!clipOutputs) throw new Error('CLIP module not loaded');
  return clipOutputs(net, inputs as never);
}

// ---------------------------------------------------------------------------------------------
// Comparison.

export interface OutputError {
  name: string;
  shape: number[];
  maxAbsErr: number;
  /** max|ours - ref| / max(1, max|ref|) */
  maxRelErr: number;
  maxAbsRef: number;
  pass: boolean;
}

/** Errors of `ours` against `ref` (same layout). */
export function compareTensors(name: string, ours: tf.Tensor, ref: IoTensor, tol: number): OutputError {
  if (ours.shape.join(',') !== ref.shape.join(','))
    return { name, shape: ref.shape, maxAbsErr: Infinity, maxRelErr: Infinity, maxAbsRef: NaN, pass: false };
  const [err, mx] = tf.tidy(() => {
    const r = tf.tensor(ref.data, ref.shape, 'float32');
    return [ours.cast('float32').sub(r).abs().max().dataSync()[0], r.abs().max().dataSync()[0]];
  });
  const rel = err / Math.max(1, mx);
  return {
    name,
    shape: ref.shape,
    maxAbsErr: err,
    maxRelErr: rel,
    maxAbsRef: mx,
    pass: Number.isFinite(rel) && rel <= tol,
  };
}

/** `NAME.config.json` beside the weights, trying the name with precision/format suffixes removed. */
export function findConfigBeside(weights: string): string | null {
  const dir = dirname(weights);
  let stem = basename(weights).replace(/\.(safetensors|pt|pth|ckpt|bin)$/i, '');
  const tried = new Set<string>();
  for (;;) {
    const p = join(dir, `${stem}.config.json`);
    if (!tried.has(p)) {
      tried.add(p);
      if (existsSync(p)) return p;
    }
    const next = stem.replace(/(\.jit|[._-](fp16|fp32|bf16|half|float16|ema|jit|image|text))$/i, '');
    if (next === stem) return null;
    stem = next;
  }
}

export interface VerifyReport {
  weights: string;
  io: string;
  architecture: string;
  net: string;
  config: string | null;
  sourceDtypes: string[];
  tolerance: number;
  outputs: OutputError[];
  /** Reference outputs of the io file that this net does not produce, so were not compared (not counted in `pass`). */
  skipped: { name: string; shape: number[]; reason: string }[];
  /** The names of `skipped` (kept for scripts that read it). */
  unchecked: string[];
  /** Config values inferred (from the weights' shapes or a rule) rather than read from a config, one line each. */
  inferred: string[];
  pass: boolean;
}

/** Run a verification (what the command does, as a function). */
export async function verify(opts: {
  weights: string;
  io: string;
  config?: string;
  tolerance?: number;
}): Promise<VerifyReport> {
  const sd = await readStateDict(opts.weights);
  const arch = ARCHITECTURES.find((a) => a.detect(sd));
  if (!arch)
    throw new Error(
      `${opts.weights}: not a known architecture (no guided-diffusion/DDPM UNet or CLIP keys; first keys: ${[...sd.keys()].slice(0, 4).join(', ')}). ` +
        'Run `diffguide inspect FILE` to see what it holds.',
    );
  const configPath = opts.config ?? findConfigBeside(opts.weights);
  let config: Record<string, unknown> | null = null;
  if (configPath) {
    try {
      config = JSON.parse(await fsp.readFile(configPath, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read config ${configPath}: ${(e as Error).message}`);
    }
  }
  if (arch.name === 'clip' && !clipOutputs)
    clipOutputs = (await import('../../../nets/clip/index.js')).clipReferenceOutputs;
  const sourceDtypes = [...new Set([...sd.values()].map((t) => t.sourceDtype))].sort();
  const lowPrecision = sourceDtypes.some((d) => d === 'float16' || d === 'bfloat16');
  const tolerance = opts.tolerance ?? (lowPrecision ? 2e-3 : 1e-4);
  const io = await readIoFile(opts.io);
  const inferred: string[] = [];
  const net = await arch.build(sd, config, (line) => inferred.push(line));
  sd.clear();
  try {
    const produced = arch.run(net as never, io);
    const outputs: OutputError[] = [];
    const skipped: VerifyReport['skipped'] = [];
    const inputs = new Set(['x', 't', 'y', 'image', 'text']);
    for (const [name, ref] of io) {
      if (inputs.has(name)) continue;
      const ours = produced.get(name);
      if (!ours) {
        skipped.push({ name, shape: ref.shape, reason: `not produced by this ${arch.name}` });
        continue;
      }
      outputs.push(compareTensors(name, ours, ref, tolerance));
    }
    for (const v of produced.values()) v.dispose();
    if (!outputs.length)
      throw new Error(`${opts.io} holds no output this ${arch.name} produces (entries: ${[...io.keys()].join(', ')})`);
    return {
      weights: opts.weights,
      io: opts.io,
      architecture: arch.name,
      net: arch.describe(net as never),
      config: configPath,
      sourceDtypes,
      tolerance,
      outputs,
      skipped,
      unchecked: skipped.map((k) => k.name),
      inferred,
      pass: outputs.every((o) => o.pass),
    };
  } finally {
    arch.dispose(net as never);
  }
}

const command: Command = {
  name: 'verify',
  summary: 'run a checkpoint on a reference io file and report max abs / relative error per output',
  usage: 'diffguide verify --weights FILE --io IO.json [--config CONFIG.json] [--tol T] [--json]',
  examples: [
    'diffguide verify --weights ../shared/parity/gd_tiny_a.pt --io ../shared/parity/gd_tiny_a_io.json',
    'diffguide verify --weights ../shared/parity/clip_tiny_fp16.safetensors --io ../shared/parity/clip_tiny_io.json --json',
  ],
  options: {
    weights: { type: 'string', help: 'checkpoint (.pt torch zip / legacy, TorchScript, .safetensors)' },
    io: { type: 'string', help: 'reference io file NAME_io.json (NAME_io.bin beside it)' },
    config: {
      type: 'string',
      help: 'reference constructor arguments JSON (default: NAME.config.json beside the weights, else inferred from the keys)',
    },
    tol: {
      type: 'string',
      help: 'relative tolerance max|err|/max(1,max|ref|) (default 1e-4; 2e-3 for fp16/bf16 weights)',
    },
    json: { type: 'boolean', help: 'print one JSON object' },
  },
  async run(args) {
    const weights = args.values.weights;
    const io = args.values.io;
    if (typeof weights !== 'string' || typeof io !== 'string') {
      console.error('diffguide verify: give --weights FILE and --io IO.json');
      return 2;
    }
    const tolRaw = args.values.tol;
    const tolerance = typeof tolRaw === 'string' ? Number(tolRaw) : undefined;
    if (tolerance !== undefined && !(tolerance > 0)) {
      console.error(`diffguide verify: --tol must be a positive number, got ${tolRaw}`);
      return 2;
    }
    const report = await verify({
      weights,
      io,
      config: typeof args.values.config === 'string' ? args.values.config : undefined,
      tolerance,
    });
    if (args.values.json) console.log(JSON.stringify(report));
    else {
      console.log(
        `${report.net} from ${report.weights} (${report.sourceDtypes.join(', ')}), config ${report.config ?? 'inferred from keys'}`,
      );
      console.log(`tolerance: max|err| <= ${report.tolerance} x max(1, max|ref|)`);
      for (const o of report.outputs)
        console.log(
          `  ${o.pass ? 'ok  ' : 'FAIL'} ${o.name.padEnd(22)} [${o.shape.join(', ')}]`.padEnd(50) +
            ` max abs ${o.maxAbsErr.toExponential(3)}  rel ${o.maxRelErr.toExponential(3)}  (max|ref| ${o.maxAbsRef.toPrecision(4)})`,
        );
      for (const k of report.skipped)
        console.log(`  skip ${k.name.padEnd(22)} [${k.shape.join(', ')}]`.padEnd(50) + ` ${k.reason}: not compared`);
      for (const line of report.inferred) console.log(`  note: ${line}`);
      const n = report.outputs.length;
      const skippedNote = report.skipped.length
        ? ` (${n} of ${n + report.skipped.length} reference outputs compared; skipped: ${report.skipped.map((k) => k.name).join(', ')})`
        : ` (all ${n} reference outputs compared)`;
      console.log((report.pass ? 'PASS' : 'FAIL') + skippedNote);
    }
    return report.pass ? 0 : 1;
  },
};
export default command;
