/**
 * `diffguide bench ops`: forward and gradient speed of the spine's ops on the active backend, with
 * PyTorch CPU measured side by side in the same run (bench/ops_torch.py; null when torch is absent).
 *
 * Cases (the same shapes on both sides):
 * - conv_stack: 8 x (3x3 conv 64->64 + bias, SiLU), x [4, 32, 32, 64]
 * - conv_s2:    3x3 conv stride 2 (PyTorch padding 1) 64->128 + bias, x [4, 32, 32, 64]
 * - vit_block:  pre-LN transformer block, width 256, 4 heads, QuickGELU MLP 4x, x [8, 65, 256]
 * - attention:  softmax(q kᵀ / √d) v, 8 heads, 256 tokens, head dim 64, batch 1;
 *               dx = d/dq, dxdw = d/d(q, k, v) (k, v play the parameters' part)
 * - attention_small: the same op at the emoji UNet's 8x8 attention in training: batch 16, 4 heads,
 *               64 tokens, head dim 32 (64 small products per matmul)
 * - conv1024_8: 3x3 conv 1024->1024 + bias, x [1, 8, 8, 1024] (the 256 px guided-diffusion UNet's
 *               lowest level: few pixels, a 37.7 MB filter)
 * `DIFFGUIDE_BENCH_OPS=conv_stack,conv1024_8` runs only those cases.
 * fwd_ms: forward without a tape; dx_ms: forward + gradient of sum(output) w.r.t. the input;
 * dxdw_ms: forward + gradients w.r.t. the input and all parameters. Medians of `reps`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { BenchOptions } from '../lib/cli/commands/bench.js';
import { backendInfo } from '../lib/backend.js';
import { conv2d } from '../lib/ops/conv.js';
import { attention } from '../lib/ops/nn.js';
import { residualAttentionBlock } from '../nets/clip/layers.js';
import { median, PythonServer, timeTf, torchAvailable, torchBlas, warnReferenceBlas } from './util.js';

export interface OpsCase {
  name: string;
  fwd_ms: number;
  dx_ms: number;
  dxdw_ms: number;
  torch_fwd_ms: number | null;
  torch_dx_ms: number | null;
  torch_dxdw_ms: number | null;
}

export interface OpsReport {
  backend: string;
  threads: number;
  simd: boolean | null;
  torch: string | null;
  /** The BLAS library PyTorch maps (null without the torch side); the reference BLAS is warned about. */
  torch_blas: string | null;
  cases: OpsCase[];
}

interface CaseDef {
  name: string;
  /** Differentiated inputs (first) and parameters. */
  make: () => { inputs: tf.Tensor[]; params: tf.Tensor[] };
  f: (inputs: tf.Tensor[], params: tf.Tensor[]) => tf.Tensor;
}

const randn = (shape: number[], scale = 1) => tf.randomNormal(shape, 0, scale, 'float32', 7);

const CASES: CaseDef[] = [
  {
    name: 'conv_stack',
    make: () => ({
      inputs: [randn([4, 32, 32, 64])],
      params: Array.from({ length: 8 }, () => [randn([3, 3, 64, 64], 0.04), randn([64], 0.01)]).flat(),
    }),
    f: ([x], p) => {
      let h = x as tf.Tensor4D;
      for (let i = 0; i < 8; i++)
        h = conv2d(h, p[2 * i] as tf.Tensor4D, p[2 * i + 1] as tf.Tensor1D, { activation: 'silu' });
      return h;
    },
  },
  {
    name: 'conv_s2',
    make: () => ({ inputs: [randn([4, 32, 32, 64])], params: [randn([3, 3, 64, 128], 0.04), randn([128], 0.01)] }),
    f: ([x], [w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b as tf.Tensor1D, { stride: 2, pad: 1 }),
  },
  {
    name: 'vit_block',
    make: () => {
      const c = 256;
      return {
        inputs: [randn([8, 65, c])],
        params: [
          tf.ones([c]),
          tf.zeros([c]),
          randn([c, 3 * c], 0.05),
          randn([3 * c], 0.01),
          randn([c, c], 0.05),
          randn([c], 0.01),
          tf.ones([c]),
          tf.zeros([c]),
          randn([c, 4 * c], 0.05),
          randn([4 * c], 0.01),
          randn([4 * c, c], 0.03),
          randn([c], 0.01),
        ],
      };
    },
    f: ([x], p) => vitBlock(x as tf.Tensor3D, p, 4),
  },
  {
    name: 'attention',
    make: () => ({ inputs: [randn([1, 8, 256, 64])], params: [randn([1, 8, 256, 64]), randn([1, 8, 256, 64])] }),
    f: ([q], [k, v]) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D),
  },
  {
    name: 'attention_small',
    make: () => ({ inputs: [randn([16, 4, 64, 32])], params: [randn([16, 4, 64, 32]), randn([16, 4, 64, 32])] }),
    f: ([q], [k, v]) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D),
  },
  {
    name: 'conv1024_8',
    make: () => ({ inputs: [randn([1, 8, 8, 1024])], params: [randn([3, 3, 1024, 1024], 0.01), randn([1024], 0.01)] }),
    f: ([x], [w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b as tf.Tensor1D),
  },
];

/** CLIP's own pre-LN transformer block (nets/clip/layers.ts): x + proj(attn(ln1 x)); x + out(quickGelu(fc(ln2 x))). */
const VIT_BLOCK_PARAMS = [
  'ln_1.weight',
  'ln_1.bias',
  'attn.in_proj_weight',
  'attn.in_proj_bias',
  'attn.out_proj.weight',
  'attn.out_proj.bias',
  'ln_2.weight',
  'ln_2.bias',
  'mlp.c_fc.weight',
  'mlp.c_fc.bias',
  'mlp.c_proj.weight',
  'mlp.c_proj.bias',
];

function vitBlock(x: tf.Tensor3D, p: tf.Tensor[], heads: number): tf.Tensor3D {
  const byName = new Map(VIT_BLOCK_PARAMS.map((name, i) => [name, p[i]]));
  return residualAttentionBlock((key) => byName.get(key)!, '', x, heads);
}

function torchScript(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'ops_torch.py'), join(here, '..', '..', 'bench', 'ops_torch.py')])
    if (existsSync(p)) return p;
  return null;
}

type Mode = 'fwd' | 'dx' | 'dxdw';
const MODES: Mode[] = ['fwd', 'dx', 'dxdw'];

export async function run(opts: BenchOptions): Promise<OpsReport> {
  const reps = Math.max(1, opts.reps || 5);
  const warmup = Math.max(3, Math.ceil(reps / 2));
  const script = torchScript();
  let server: PythonServer | null = null;
  let torch: string | null = null;
  let blas: { path: string; reference: boolean } | null = null;
  if (opts.torch && script && torchAvailable()) {
    try {
      server = new PythonServer(script, ['--serve']);
      torch = (await server.hello<{ torch: string }>()).torch;
      blas = torchBlas();
      if (blas?.reference)
        warnReferenceBlas('bench ops', blas.path, 'so torch_* understate PyTorch on vit_block and attention');
    } catch (e) {
      process.stderr.write(
        `diffguide bench ops: PyTorch side failed to start, torch_* left null: ${e instanceof Error ? e.message : String(e)}\n`,
      );
      server?.close();
      server = null;
    }
  }
  const cases: OpsCase[] = [];
  try {
    const only = process.env.DIFFGUIDE_BENCH_OPS?.split(',')
      .map((n) => n.trim())
      .filter(Boolean);
    const unknown = only?.filter((n) => !CASES.some((c) => c.name === n)) ?? [];
    if (unknown.length)
      throw new Error(
        `DIFFGUIDE_BENCH_OPS names unknown case(s) ${unknown.join(', ')}; known: ${CASES.map((c) => c.name).join(', ')}`,
      );
    for (const c of CASES.filter((c) => !only?.length || only.includes(c.name))) {
      const { inputs, params } = c.make();
      const all = [...inputs, ...params];
      const fns: Record<Mode, () => tf.Tensor | tf.Tensor[]> = {
        fwd: () => c.f(inputs, params),
        dx: () => tf.grads((...xs: tf.Tensor[]) => c.f(xs, params).sum())(inputs),
        dxdw: () =>
          tf.grads((...xs: tf.Tensor[]) => c.f(xs.slice(0, inputs.length), xs.slice(inputs.length)).sum())(all),
      };
      const ours: Record<Mode, number[]> = { fwd: [], dx: [], dxdw: [] };
      const theirs: Record<Mode, number[]> = { fwd: [], dx: [], dxdw: [] };
      for (const m of MODES) {
        timeTf(fns[m], { reps: 0, warmup });
        if (server) await server.request({ case: c.name, mode: m, n: warmup });
      }
      // Interleave both sides, rep by rep, so they see the same machine load.
      for (let r = 0; r < reps; r++) {
        for (const m of MODES) {
          ours[m].push(timeTf(fns[m], { reps: 1, warmup: 1 })); // one untimed call first: caches and thread pools warm again after the torch call
          if (server) theirs[m].push(...(await server.request<{ ms: number[] }>({ case: c.name, mode: m, n: 1 })).ms);
        }
      }
      tf.dispose(all);
      const med = (xs: number[]) => (xs.length ? round(median(xs)) : null);
      cases.push({
        name: c.name,
        fwd_ms: med(ours.fwd)!,
        dx_ms: med(ours.dx)!,
        dxdw_ms: med(ours.dxdw)!,
        torch_fwd_ms: med(theirs.fwd),
        torch_dx_ms: med(theirs.dx),
        torch_dxdw_ms: med(theirs.dxdw),
      });
    }
  } finally {
    server?.close();
  }
  const b = backendInfo();
  return {
    backend: b?.name ?? tf.getBackend(),
    threads: b?.threads ?? 1,
    simd: b?.simd ?? null,
    torch,
    torch_blas: blas?.path ?? null,
    cases,
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
