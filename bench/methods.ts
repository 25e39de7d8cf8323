/**
 * `diffguide bench methods --json`: one edit or sample per method with the method's default settings
 * on the shipped 32x32 models, on the chosen backend:
 *   {"backend", "weights", "methods": {"sdedit": {"wall_ms", "cpu_ms", "peak_rss_mb", "settings"}, "sdg", "diffusionclip", "unclip", "imagic"}}
 * `peak_rss_mb` is the highest resident set size sampled every 25 ms during that method's run (the
 * wasm heap never shrinks, so a method run after a memory-hungry one reports at least that one's peak;
 * the order is sdedit, sdg, diffusionclip, unclip, imagic). `cpu_ms` is this process's CPU time
 * (1 thread on wasm), a figure that other load on the machine does not inflate.
 * When a shipped model is missing, the run uses random weights of the same architecture (the cost of
 * a method depends on the architecture, not the values) and says so in `weights`.
 * Goals (issue 5): SDEdit < 1 s per image at 25 steps, SDG < 10 s per image at 100 steps, Imagic end to end < 5 min.
 */
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../lib/backend.js';
import { UNet } from '../nets/unet/index.js';
import { makeSchedule } from '../samplers/schedule.js';
import { smallUNetConfig } from '../lib/train/tasks/unet.js';
import { makeDiffuser, type Diffuser } from '../lib/models/diffuser.js';
import {
  disposeModels,
  loadClipModel,
  loadCondDiffuser,
  loadNoisyClipModel,
  loadPriorModel,
  loadUNetDiffuser,
  randomModels,
  type ModelSet,
} from '../lib/models/load.js';
import { sdedit } from '../lib/methods/sdedit.js';
import { sdg } from '../lib/methods/sdg.js';
import * as dclip from '../lib/methods/diffusionclip.js';
import * as unclip from '../lib/methods/unclip.js';
import { imagic } from '../lib/methods/imagic.js';
import { strokeGuides } from '../lib/demo/showcase.js';

export interface MethodBench {
  wall_ms: number;
  /** CPU time of this process during the run (user + system); robust to other load on the machine. */
  cpu_ms: number;
  peak_rss_mb: number;
  settings: Record<string, unknown>;
}

/** Time `f` and sample RSS while it runs. */
async function measure(f: () => Promise<Record<string, unknown>>): Promise<MethodBench> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 25);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  try {
    const settings = await f();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    peak = Math.max(peak, process.memoryUsage().rss);
    if (process.env.DIFFGUIDE_QUIET !== '1')
      process.stderr.write(`bench methods: ${String(settings.method ?? '')} ${Math.round(wall)} ms\n`);
    return {
      wall_ms: Math.round(wall),
      cpu_ms: Math.round((c.user + c.system) / 1000),
      peak_rss_mb: Math.round((peak / 2 ** 20) * 10) / 10,
      settings,
    };
  } finally {
    clearInterval(timer);
  }
}

/** Shipped models where present; random weights of the shipped architecture where not. */
async function benchModels(): Promise<{ m: Required<ModelSet>; weights: Record<string, string> }> {
  const r = randomModels(0, { imageSize: 32 });
  const weights: Record<string, string> = {};
  const m: ModelSet = {};
  const attempt = async <K extends keyof ModelSet>(
    key: K,
    load: () => Promise<NonNullable<ModelSet[K]>>,
    fallback: () => NonNullable<ModelSet[K]>,
  ) => {
    try {
      m[key] = await load();
      weights[key] = 'shipped';
    } catch {
      m[key] = fallback();
      weights[key] = 'random (shipped weights missing)';
    }
  };
  const shippedArch = (emb: number | null): Diffuser =>
    makeDiffuser(UNet.random({ ...smallUNetConfig(32), embCondDim: emb }, 0), makeSchedule('cosine', 1000), {
      source: 'random',
    });
  await attempt('unet', loadUNetDiffuser, () => shippedArch(null));
  await attempt('cond', loadCondDiffuser, () => shippedArch(r.clip.embedDim));
  await attempt('clip', loadClipModel, () => r.clip);
  await attempt('noisy', loadNoisyClipModel, () => r.noisy);
  await attempt('prior', loadPriorModel, () => r.prior);
  // dispose the random stand-ins that were not used
  if (m.clip !== r.clip) r.clip.dispose();
  if (m.noisy !== r.noisy) r.noisy.dispose();
  if (m.prior !== r.prior) r.prior.prior.dispose();
  r.unet.unet.dispose();
  r.cond.unet.dispose();
  if (m.cond!.unet.config.embCondDim !== m.clip!.embedDim)
    throw new Error(`cond-unet embCondDim ${m.cond!.unet.config.embCondDim} != CLIP width ${m.clip!.embedDim}`);
  return { m: m as Required<ModelSet>, weights };
}

export async function run(): Promise<unknown> {
  const { m, weights } = await benchModels();
  const methods: Record<string, MethodBench> = {};
  const guides = strokeGuides(32);
  const img = guides.slice(0, 1);
  try {
    // warm-up: one default edit (XNNPACK operator set-up, weight packing, heap growth: the first
    // ~6 forwards of a process take 2-5x the steady time), so the figures are per-image costs
    tf.dispose((await sdedit(m.unet, img, { seed: 1 })).images);
    methods.sdedit = await measure(async () => {
      const method = 'sdedit';
      const r = await sdedit(m.unet, img, { seed: 0 });
      r.images.dispose();
      return { method, ...r.settings, images: 1 };
    });
    methods.sdg = await measure(async () => {
      const method = 'sdg';
      const r = await sdg(
        m.unet,
        { noisy: m.noisy, image: m.clip, text: m.clip },
        { text: 'red heart', n: 1, seed: 0 },
      );
      r.images.dispose();
      return { method, ...r.settings };
    });
    methods.diffusionclip = await measure(async () => {
      const method = 'diffusionclip';
      const ft = await dclip.finetune(m.unet, m.clip, img, { source: 'grinning face', target: 'angry face' });
      const e = await dclip.edit(m.unet, ft.model, img, {});
      e.images.dispose();
      ft.model.unet.dispose();
      return { method, ...ft.settings, ...e.settings, images: 1, what: 'fine-tune on 1 image + 1 edit' };
    });
    methods.unclip = await measure(async () => {
      const method = 'unclip';
      const r = await unclip.textToImage(
        { decoder: m.cond, prior: m.prior.prior, priorSchedule: m.prior.schedule, clip: m.clip },
        ['red heart'],
        { seed: 0 },
      );
      tf.dispose([r.images, r.imageEmbeddings]);
      return { method, ...r.settings };
    });
    methods.imagic = await measure(async () => {
      const method = 'imagic';
      const r = await imagic(m.cond, m.clip, img, 'cat face', { seed: 0 });
      tf.dispose([r.images, r.embeddings, r.eOpt, r.eTarget]);
      return { method, ...r.settings };
    });
  } finally {
    tf.dispose([guides, img]);
    disposeModels(m);
  }
  const info = backendInfo();
  return { backend: info ? info.name : tf.getBackend(), threads: info?.threads, weights, methods };
}
