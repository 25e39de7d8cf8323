/**
 * `diffguide bench scale`: the real-size models a researcher runs — openai's guided-diffusion
 * 256x256 unconditional UNet (552.8M parameters) and CLIP ViT-B/32 — with random weights built from
 * their key lists' shapes (`../shared/parity/gd_256_uncond.full.keys.json`, `clip_vit_b32.full.keys.json`;
 * the config below is openai's 256x256 uncond flags, checked against the key list), at 32, 64, 128
 * and 256 px (`--sizes`, `--quick` = 32,64):
 * - fwd_ms: one UNet forward (no tape), batch 1, t = 500;
 * - guided_ms: one SDG-style guided step: the UNet forward, then the gradient w.r.t. x_t of
 *   cos(CLIP_image(x0), e_text) through the predicted x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) with
 *   eps held fixed (the samplers' default 'linear' guidance: no UNet backward), CLIP's bicubic resize
 *   to 224 px inside; e_text a fixed random unit embedding (text is encoded once per run, not per step).
 * Weights: `weights` says resident (tf variables on the backend) or streamed (lib/models/stream.ts:
 * the UNet's weights in JS memory, each block's uploaded just before it runs and freed after; CLIP's
 * image tower stays resident). Auto: streamed on wasm when the UNet's weights would leave under 2 GiB
 * of the 4 GB heap, as the 256 px UNet's 2.06 GiB do; `DIFFGUIDE_WEIGHTS=stream|resident` forces it.
 * `DIFFGUIDE_SCALE_HOST_F16=1` keeps the streamed weights as fp16 in host memory (half the RSS; the random
 * draw rounded to fp16, computed in fp32 as a fp16 checkpoint would be). `rss_mib`: our process's resident set after the row (host memory: streamed weights live there).
 * Memory: `heap_mib` is the wasm heap's size after the row (it only grows: the high-water mark of
 * the process so far, weights and caches included), `tensor_peak_mib` the tfjs-counted tensor bytes
 * live at the end of each call before its intermediates go (weights included; a lower bound of the
 * true peak, which tf.profile would measure at the cost of slowing every kernel), `cache_mib` the wasm caches granted
 * (lib/fastgrad/wasm.ts `cacheAllowed`). PyTorch CPU (bench/scale_torch.py, the same
 * architectures in plain torch, 2 threads, OpenBLAS on 1) runs the same shapes right after each of
 * our rows; `torch_rss_mib` is its process's peak RSS. A row that does not fit says so and why.
 * SDG end to end (env `DIFFGUIDE_SCALE_SDG_STEPS=N`, e.g. 100): after the rows, `sdg()` (lib/methods/sdg.ts:
 * DDPM, CLIP image-content guidance on the predicted x0, one sample) for N respaced steps at the
 * largest size (or `DIFFGUIDE_SCALE_SDG_SIZE`), timed whole: the report's `sdg`. Dry runs of tooling
 * (scripts/gpu-check.sh --dry-run) can shrink the UNet with `DIFFGUIDE_SCALE_CHANNELS=N` (num_channels;
 * the key list is then not compared and `key_check` says so): numbers of such a run are not the model's.
 * Times are single calls; a first row of at most 64 px runs one untimed forward and guided step first on both sides
 * (packing and caching weights, tiering up code): a 256 px forward takes minutes here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { BenchOptions } from '../lib/cli/commands/bench.js';
import { backendInfo, BACKEND_ORDER } from '../lib/backend.js';
import { packageRoot } from '../lib/paths.js';
import { UNet, configFromReference, unetParamShapes } from '../nets/unet/index.js';
import { diffKeys } from '../nets/unet/config.js';
import { CLIP, inferClipConfig } from '../nets/clip/index.js';
import { WASM_HEAP_MAX, WasmHeapError, assertFitsWasm, wasmCacheStats } from '../lib/fastgrad/wasm.js';
import { PythonServer, torchAvailable, torchBlas, warnReferenceBlas } from './util.js';
import { sdg } from '../lib/methods/sdg.js';
import { makeDiffuser } from '../lib/models/diffuser.js';
import { makeSchedule } from '../samplers/schedule.js';
import { assertFitsStreamed, chooseWeightMode, largestBlockBytes, type WeightMode } from '../lib/models/stream.js';

/** openai/guided-diffusion's 256x256 unconditional model flags (README: MODEL_FLAGS for 256x256_diffusion_uncond). */
export const GD_256_UNCOND_FLAGS = {
  image_size: 256,
  num_channels: 256,
  num_res_blocks: 2,
  attention_resolutions: '32,16,8',
  num_head_channels: 64,
  learn_sigma: true,
  resblock_updown: true,
  use_scale_shift_norm: true,
  channel_mult: '',
  class_cond: false,
  use_fp16: false,
};

export interface ScaleRow {
  backend: string;
  size: number;
  fits: boolean;
  /** Why the row did not run (does not fit, or the backend did not start). */
  reason?: string;
  fwd_ms?: number;
  guided_ms?: number;
  heap_mib?: number;
  tensor_peak_mib?: number;
  cache_mib?: number;
  /** Our process's resident set (MiB) after the row. */
  rss_mib?: number;
  torch_fwd_ms?: number | null;
  torch_guided_ms?: number | null;
  torch_rss_mib?: number | null;
  fwd_ratio?: number | null;
  guided_ratio?: number | null;
  torch_error?: string;
}

export interface ScaleReport {
  unet: { params: number; weight_mib: number; key_check: string };
  /** CLIP ViT-B/32's image tower (the guided step's; the text tower is not loaded). */
  clip: { params: number; weight_mib: number };
  backend: string;
  /** The UNet's weights: resident on the backend, or streamed from JS memory per block (and why). */
  weights: WeightMode;
  weights_reason: string;
  /** Streamed weights' dtype in host memory (`DIFFGUIDE_SCALE_HOST_F16=1`: fp16, the random draw rounded to it). */
  host_dtype: 'float32' | 'float16';
  threads: number;
  torch: string | null;
  torch_blas: string | null;
  /** Load average (1 min) at the start and end: the machine is shared. */
  load: [number, number];
  rows: ScaleRow[];
  /** `DIFFGUIDE_SCALE_SDG_STEPS`: one SDG sample of `steps` respaced steps at `size`, timed whole (or why it failed). */
  sdg?: { size: number; steps: number; ms?: number; ms_per_step?: number; error?: string };
  skipped: { backend: string; reason: string }[];
  /** Seconds to build the random weights. */
  build_s: number;
}

function envInt(name: string): number | null {
  const v = process.env[name];
  if (v === undefined || v === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function parityDir(): string {
  return resolve(process.env.DIFFGUIDE_SHARED ?? join(packageRoot(), '..', 'shared'), 'parity');
}

function readKeys(name: string): Record<string, { shape: number[] }> | null {
  const p = join(parityDir(), name);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, { shape: number[] }>) : null;
}

const MiB = 2 ** 20;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

function torchScript(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'scale_torch.py'), join(here, '..', '..', 'bench', 'scale_torch.py')])
    if (existsSync(p)) return p;
  return null;
}

function heapBytes(): number | null {
  if (tf.getBackend() !== 'wasm') return null;
  const w = (tf.backend() as unknown as { wasm: { wasmMemory?: WebAssembly.Memory; HEAPU8: Uint8Array } }).wasm;
  return (w.wasmMemory?.buffer ?? w.HEAPU8.buffer).byteLength;
}

/** One timed call of `fn` (its tensors read back and disposed), and the tensor bytes live at its end (before disposal). */
function timeOnce(fn: () => tf.Tensor[]): { ms: number; peak: number } {
  const t0 = performance.now();
  let peak = 0;
  tf.tidy(() => {
    const out = fn();
    for (const t of out) t.dataSync();
    peak = tf.memory().numBytes;
  });
  return { ms: performance.now() - t0, peak };
}

/** Why the other backends have no rows here. */
function otherBackends(current: string): { backend: string; reason: string }[] {
  const tried = new Map((backendInfo()?.skipped ?? []).map((s) => [s.name as string, s.reason]));
  return BACKEND_ORDER.filter((b) => b !== current).map((b) => {
    if (tried.has(b)) return { backend: b, reason: `did not start: ${tried.get(b)}` };
    if (b === 'cpu')
      return {
        backend: b,
        reason:
          "not run: tfjs's pure-JS reference kernels (about 1 GMAC/s) would take hours for the 256 px UNet's ~1,120 GMAC; run with --backend cpu --sizes 32 to see it",
      };
    return { backend: b, reason: `not started in this run (run with --backend ${b} where it is installed)` };
  });
}

/** CLIP's image tower with random weights (uniform, scale 0.02; norm weights 1) of the key list's shapes. */
function randomImageTower(keys: Record<string, { shape: number[] }>): CLIP {
  let state = 0x9e3779b9;
  const sd = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of Object.entries(keys)) {
    if (!k.startsWith('visual.')) continue;
    const data = new Float32Array(numel(v.shape));
    if (/ln_\w*\.weight$/.test(k)) data.fill(1);
    else {
      for (let i = 0; i < data.length; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        data[i] = ((state >>> 0) / 4294967296 - 0.5) * 0.04;
      }
    }
    sd.set(k, { shape: v.shape, data });
  }
  return CLIP.fromStateDict(sd, undefined, { towers: 'image' });
}

export async function run(opts: BenchOptions): Promise<ScaleReport> {
  const sizes = opts.sizes ?? (opts.quick ? [32, 64] : [32, 64, 128, 256]);
  const load0 = (await import('node:os')).loadavg()[0];
  const backend = backendInfo()?.name ?? tf.getBackend();
  // The UNet: openai's flags, checked against the released checkpoint's key list.
  const channels = envInt('DIFFGUIDE_SCALE_CHANNELS');
  const config = configFromReference(
    channels ? { ...GD_256_UNCOND_FLAGS, num_channels: channels } : GD_256_UNCOND_FLAGS,
  );
  const shapes = unetParamShapes(config);
  const keys = readKeys('gd_256_uncond.full.keys.json');
  let keyCheck = 'key list absent (../shared/parity): built from the flags alone';
  if (channels)
    keyCheck = `DIFFGUIDE_SCALE_CHANNELS=${channels}: num_channels overridden, not the released model (key list not compared)`;
  else if (keys) {
    const d = diffKeys(shapes, new Map(Object.entries(keys).map(([k, v]) => [k, v.shape])));
    if (d.missing.length || d.unexpected.length || d.mismatched.length)
      throw new Error(
        `bench scale: the 256x256 uncond flags do not build the key list's state_dict (missing ${d.missing.slice(0, 3)}, unexpected ${d.unexpected.slice(0, 3)}, mismatched ${d.mismatched.slice(0, 3)})`,
      );
    keyCheck = `all ${shapes.size} keys and shapes equal gd_256_uncond.full.keys.json`;
  }
  const clipKeys = readKeys('clip_vit_b32.full.keys.json');
  if (!clipKeys)
    throw new Error(
      'bench scale needs ../shared/parity/clip_vit_b32.full.keys.json (CLIP ViT-B/32 shapes); set DIFFGUIDE_SHARED to the shared folder',
    );
  const clipConfig = inferClipConfig(clipKeys);
  const unetParams = [...shapes.values()].reduce((a, s) => a + numel(s), 0);
  // The guided step runs CLIP's image tower; the text is encoded once per sampling run (here: a
  // fixed random embedding), so the text tower (63M parameters) is not loaded.
  const clipParams = Object.entries(clipKeys)
    .filter(([k]) => k.startsWith('visual.'))
    .reduce((a, [, v]) => a + numel(v.shape), 0);
  const weightBytes = 4 * (unetParams + clipParams);

  let server: PythonServer | null = null;
  let torch: string | null = null;
  let blas: { path: string; reference: boolean } | null = null;
  const script = torchScript();
  if (opts.torch && script && torchAvailable()) {
    try {
      server = new PythonServer(script, ['--serve', '--keys', parityDir()]);
      torch = (await server.hello<{ torch: string }>()).torch;
      blas = torchBlas();
      if (blas?.reference) warnReferenceBlas('bench scale', blas.path, 'so torch_* understate PyTorch');
    } catch (e) {
      process.stderr.write(
        `diffguide bench scale: PyTorch side failed to start, torch_* left null: ${e instanceof Error ? e.message : String(e)}\n`,
      );
      server?.close();
      server = null;
    }
  }

  const rows: ScaleRow[] = [];
  let sdgReport: ScaleReport['sdg'];
  const t0 = performance.now();
  let unet: UNet | null = null;
  let clip: CLIP | null = null;
  let buildError: string | null = null;
  const unetBytes = 4 * unetParams;
  const clipBytes = 4 * clipParams;
  const choice = chooseWeightMode(unetBytes + clipBytes);
  // DIFFGUIDE_SCALE_HOST_F16=1: streamed weights kept as fp16 in host memory (the random draw rounded to fp16).
  const hostF16 = choice.mode === 'streamed' && process.env.DIFFGUIDE_SCALE_HOST_F16 === '1';
  process.stderr.write(`bench scale: UNet weights ${choice.mode} (${choice.reason})\n`);
  {
    try {
      if (choice.mode === 'streamed')
        assertFitsStreamed(
          largestBlockBytes([...shapes].map(([k, s]) => [k, numel(s)])),
          clipBytes,
          'the 256 px guided-diffusion UNet and CLIP ViT-B/32',
        );
      else assertFitsWasm(weightBytes, 'the 256 px guided-diffusion UNet and CLIP ViT-B/32');
      unet = UNet.random(config, 1, { referenceInit: false, stream: choice.mode === 'streamed', streamF16: hostF16 });
      clip = randomImageTower(clipKeys);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      buildError =
        e instanceof WasmHeapError || /wasm backend's heap/.test(msg)
          ? `does not fit: ${msg}`
          : `building the models failed: ${msg}`;
    }
  }
  const buildS = (performance.now() - t0) / 1000;
  const text = tf.tidy(() => {
    const e = tf.randomNormal([1, clipConfig.embedDim], 0, 1, 'float32', 3);
    return e.div(e.norm()) as tf.Tensor2D;
  });
  const T = 500;
  // guided-diffusion's linear schedule (1000 steps, beta 1e-4 .. 0.02): alpha_bar at t = 500.
  let abar = 1;
  for (let i = 0; i <= T; i++) abar *= 1 - (1e-4 + ((0.02 - 1e-4) * i) / 999);
  try {
    for (const size of sizes) {
      const row: ScaleRow = { backend, size, fits: true };
      if (buildError || !unet || !clip) {
        Object.assign(row, { fits: false, reason: buildError ?? 'models not built' });
        rows.push(row);
        continue;
      }
      const u = unet;
      const c = clip;
      const x = tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
      const t = tf.tensor1d([T], 'float32');
      const fwd = () => [u.apply(x, t)];
      const guided = () => {
        const out = u.apply(x, t);
        const eps = tf.slice(out, [0, 0, 0, 0], [-1, -1, -1, 3]);
        const g = tf.grad((xt: tf.Tensor) => {
          const x0 = xt.sub(eps.mul(Math.sqrt(1 - abar))).div(Math.sqrt(abar)) as tf.Tensor4D;
          const emb = c.encodeImage(x0).embedding;
          return emb.matMul(text, false, true).div(emb.norm()).sum();
        })(x);
        return [out, g];
      };
      // Warm-up calls in the first row only (both sides): they pack and cache the weights and tier up
      // the code; a 256 px forward takes minutes here. Later rows' first calls still transform the
      // filters of convolutions that only take Winograd at that size (a few seconds at 256 px).
      const warm = rows.length === 0 && size <= 64;
      try {
        if (warm) {
          timeOnce(fwd);
          timeOnce(guided);
        }
        const f = timeOnce(fwd);
        const gStep = timeOnce(guided);
        row.fwd_ms = round(f.ms);
        row.guided_ms = round(gStep.ms);
        row.tensor_peak_mib = round(Math.max(f.peak, gStep.peak) / MiB, 0);
      } catch (e) {
        row.fits = false;
        const msg = e instanceof Error ? e.message : String(e);
        const hb = heapBytes();
        // An allocation inside XNNPACK that fails returns null and the kernel then faults: on a heap
        // within 64 MiB of its maximum that is the heap running out, not a bug.
        const full = hb !== null && hb >= WASM_HEAP_MAX - 64 * MiB;
        row.reason =
          e instanceof WasmHeapError
            ? `does not fit: ${msg}`
            : full && /out of bounds/.test(msg)
              ? `does not fit: a wasm kernel faulted ("${msg}") with the heap at ${round(hb / MiB, 0)} of ${round(WASM_HEAP_MAX / MiB, 0)} MiB (an allocation inside XNNPACK failed); backends without the 4 GB limit: --backend tensorflow, tensorflow-gpu, webgpu`
              : `failed: ${msg}`;
      } finally {
        tf.dispose([x, t]);
      }
      const hb = heapBytes();
      if (hb !== null) row.heap_mib = round(hb / MiB, 0);
      row.cache_mib = round(wasmCacheStats().usedBytes / MiB, 0);
      row.rss_mib = round(process.memoryUsage().rss / MiB, 0);
      if (server) {
        try {
          const r = await server.request<{ fwd_ms?: number; guided_ms?: number; rss_mib?: number; error?: string }>({
            size,
            t: T,
            abar,
            warm,
          });
          if (r.error) row.torch_error = r.error;
          row.torch_fwd_ms = r.fwd_ms ?? null;
          row.torch_guided_ms = r.guided_ms ?? null;
          row.torch_rss_mib = r.rss_mib ?? null;
          row.fwd_ratio = row.fwd_ms && r.fwd_ms ? round(row.fwd_ms / r.fwd_ms, 2) : null;
          row.guided_ratio = row.guided_ms && r.guided_ms ? round(row.guided_ms / r.guided_ms, 2) : null;
        } catch (e) {
          row.torch_error = e instanceof Error ? e.message : String(e);
        }
      }
      rows.push(row);
      process.stderr.write(`bench scale: ${JSON.stringify(row)}\n`);
    }
    const sdgSteps = envInt('DIFFGUIDE_SCALE_SDG_STEPS');
    if (sdgSteps && unet && clip) {
      const size = envInt('DIFFGUIDE_SCALE_SDG_SIZE') ?? Math.max(...sizes);
      sdgReport = { size, steps: sdgSteps };
      const noise = tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
      const ref = tf.tidy(() => tf.randomUniform([1, size, size, 3], -1, 1, 'float32', 6) as tf.Tensor4D);
      try {
        const d = makeDiffuser(unet, makeSchedule('linear', 1000), { source: 'random (bench scale)' });
        const t1 = performance.now();
        const r = await sdg(d, { image: clip }, { image: ref, on: 'x0', n: 1, steps: sdgSteps, noise, seed: 0 });
        r.images.dataSync();
        const ms = performance.now() - t1;
        r.images.dispose();
        sdgReport.ms = round(ms);
        sdgReport.ms_per_step = round(ms / sdgSteps);
      } catch (e) {
        sdgReport.error = e instanceof Error ? e.message : String(e);
      } finally {
        tf.dispose([noise, ref]);
      }
      process.stderr.write(`bench scale: sdg ${JSON.stringify(sdgReport)}\n`);
    }
  } finally {
    server?.close();
    unet?.dispose();
    clip?.dispose();
    text.dispose();
  }
  const b = backendInfo();
  return {
    unet: { params: unetParams, weight_mib: round((4 * unetParams) / MiB, 0), key_check: keyCheck },
    clip: { params: clipParams, weight_mib: round((4 * clipParams) / MiB, 0) },
    backend,
    weights: choice.mode,
    weights_reason: choice.reason,
    host_dtype: hostF16 ? 'float16' : 'float32',
    threads: b?.threads ?? 1,
    torch,
    torch_blas: blas?.path ?? null,
    load: [round(load0, 2), round((await import('node:os')).loadavg()[0], 2)],
    rows,
    ...(sdgReport ? { sdg: sdgReport } : {}),
    skipped: otherBackends(backend),
    build_s: round(buildS),
  };
}
