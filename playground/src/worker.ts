/**
 * The playground's worker: starts a tfjs backend, loads the shipped weights (TF.js format, over HTTP
 * the first time, from IndexedDB after that) and runs the library's methods, posting progress per step.
 * Everything here is the library code Node runs (lib/methods, nets, samplers, guidance, lib/fastgrad).
 */
import * as tf from '@tensorflow/tfjs';
import { initBrowserBackend, type BrowserBackendName } from '../../lib/backend-browser.js';
import { loadClipTfjs, loadDiffuserTfjs, loadNoisyClipTfjs, loadPriorTfjs } from '../../lib/models/tfjs.js';
import { setMergesText } from '../../nets/clip/tokenizer.js';
import { imageSizeOf, type Diffuser, type MethodProgress } from '../../lib/methods/common.js';
import { SDEDIT_DEFAULTS, sdedit } from '../../lib/methods/sdedit.js';
import { SDG_DEFAULTS, sdg } from '../../lib/methods/sdg.js';
import * as unclip from '../../lib/methods/unclip.js';
import { imagic } from '../../lib/methods/imagic.js';
import type { CLIP } from '../../nets/clip/model.js';
import type { NoisyCLIPImageEncoder } from '../../nets/clip/noisy.js';
import type { FromWorker, Images, Job, ToWorker } from './protocol.js';

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

let base = '';
let index: Record<string, { sha256: string; bytes: number }> = {};
const from: Record<string, string> = {};
const loaded = new Map<string, Promise<unknown>>();

/** A model, loaded once: IndexedDB when cached (keyed by the safetensors' SHA-256), else over HTTP, then cached. */
function model<T>(
  name: string,
  load: (url: string, opts: Parameters<typeof loadDiffuserTfjs>[1]) => Promise<T>,
): Promise<T> {
  let p = loaded.get(name) as Promise<T> | undefined;
  if (!p) {
    const entry = index[name];
    if (!entry)
      throw new Error(
        `the playground build has no '${name}' weights (weights/index.json); rebuild with: npm run playground`,
      );
    post({ type: 'status', text: `loading ${name} (${(entry.bytes / 1e6).toFixed(1)} MB)...` });
    p = load(new URL(`weights/${name}/model.json`, base).href, {
      cache: `indexeddb://diffguide-${name}-${entry.sha256.slice(0, 16)}`,
      onLoaded: (w) => (from[name] = w === 'cache' ? 'cache' : 'network'),
    });
    loaded.set(name, p);
    p.catch(() => loaded.delete(name));
  }
  return p;
}

const unet = () => model('unet', (u, o) => loadDiffuserTfjs(u, { ...o, name: 'unet' }));
const cond = () => model('cond-unet', (u, o) => loadDiffuserTfjs(u, { ...o, name: 'cond-unet' }));
const noisy = () => model<NoisyCLIPImageEncoder>('noisy-clip', loadNoisyClipTfjs);
const prior = () => model('prior', loadPriorTfjs);
let merges: Promise<void> | null = null;
async function clip(): Promise<CLIP> {
  merges ??= (async () => {
    // CLIP's BPE merges, as shipped (gzip), for the text tower's tokenizer
    const res = await fetch(new URL('bpe_simple_vocab_16e6.txt.gz', base));
    if (!res.ok || !res.body)
      throw new Error(`cannot fetch the BPE merges (HTTP ${res.status}); rebuild with: npm run playground`);
    setMergesText(await new Response(res.body.pipeThrough(new DecompressionStream('gzip'))).text());
  })();
  await merges;
  return model<CLIP>('clip', loadClipTfjs);
}

const toTensor = (im: Images) => tf.tensor4d(im.data, im.shape);

async function run(id: number, job: Job): Promise<void> {
  const onProgress = (p: MethodProgress) =>
    post({ type: 'progress', id, stage: p.stage, step: p.step, total: p.total, loss: p.loss });
  const startedMs = performance.now();
  const owned: tf.Tensor[] = [];
  const own = <T extends tf.Tensor>(t: T): T => (owned.push(t), t);
  try {
    let images: tf.Tensor4D;
    let labels: string[];
    let settings: Record<string, unknown> = {};
    switch (job.type) {
      case 'sdedit': {
        const d = await unet();
        const r = await sdedit(d, own(toTensor(job.guide)), {
          t0: job.t0,
          steps: job.steps,
          repeats: job.repeats,
          seed: job.seed,
          mask: job.mask ? own(toTensor(job.mask)) : undefined,
          onProgress,
        });
        images = r.images;
        labels = Array.from({ length: job.repeats }, (_, i) => `#${i + 1}`);
        settings = r.settings;
        break;
      }
      case 'sdg': {
        const [d, c, n] = [await unet(), job.text !== undefined ? await clip() : undefined, await noisy()];
        const r = await sdg(
          d,
          { noisy: n, image: c, text: c },
          {
            text: job.text,
            image: job.image ? own(toTensor(job.image)) : undefined,
            imageMode: job.imageMode,
            scale: job.scale,
            steps: job.steps,
            n: job.n,
            seed: job.seed,
            onProgress,
          },
        );
        images = r.images;
        labels = Array.from({ length: job.n }, (_, i) => `#${i + 1}`);
        settings = r.settings;
        break;
      }
      case 'unclip': {
        const [dec, c, p] = [await cond(), await clip(), await prior()];
        const r = await unclip.interpolate(
          { decoder: dec, prior: p.prior, priorSchedule: p.schedule, clip: c },
          own(toTensor(job.a)),
          own(toTensor(job.b)),
          { frames: job.frames, steps: job.steps, seed: job.seed, onProgress },
        );
        own(r.embeddings);
        own(r.endpoints);
        images = r.images;
        labels = r.thetas.map((t) => `θ = ${t.toFixed(2)}`);
        settings = r.settings;
        break;
      }
      case 'imagic': {
        const [dec, c] = [await cond(), await clip()];
        const r = await imagic(dec, c, own(toTensor(job.image)), job.text, {
          etas: job.etas,
          embSteps: job.embSteps,
          ftSteps: job.ftSteps,
          steps: job.steps,
          seed: job.seed,
          onProgress,
        });
        [r.embeddings, r.eTarget, r.eOpt].forEach(own);
        images = r.images;
        labels = r.etas.map((e) => `η = ${e.toFixed(2)}`);
        settings = { ...r.settings, lossEmbedding: r.losses.embedding.at(-1), lossFinetune: r.losses.finetune.at(-1) };
        break;
      }
      case 'check': {
        const d = await unet();
        const x = own(toTensor(job.x));
        const t = own(tf.tensor1d(job.t, 'float32'));
        images = tf.tidy(() => d.unet.apply(x, t));
        labels = job.t.map((v) => `t = ${v}`);
        settings = { backend: tf.getBackend() };
        break;
      }
    }
    const data = images.dataSync() as Float32Array;
    const shape = images.shape as [number, number, number, number];
    images.dispose();
    const copy = new Float32Array(data);
    post(
      {
        type: 'result',
        id,
        images: { data: copy, shape },
        labels,
        ms: performance.now() - startedMs,
        settings: { ...settings, numTensors: tf.memory().numTensors, weightsFrom: { ...from } },
      },
      [copy.buffer],
    );
  } finally {
    tf.dispose(owned);
  }
}

async function init(backend: string, b: string): Promise<void> {
  base = b;
  post({ type: 'status', text: `starting the ${backend} backend...` });
  const info = await initBrowserBackend({
    backend: backend as BrowserBackendName | 'auto',
    wasmPath: new URL('./', base).href,
  });
  const res = await fetch(new URL('weights/index.json', base));
  if (!res.ok)
    throw new Error(`cannot fetch weights/index.json (HTTP ${res.status}); rebuild with: npm run playground`);
  index = (await res.json()) as typeof index;
  const d: Diffuser = await unet(); // SDEdit's model first; the others load when a method needs them
  post({
    type: 'ready',
    info: {
      backend: info.name,
      simd: info.simd,
      threads: info.threads,
      ourSimdKernels: info.ourSimdKernels,
      skipped: info.skipped,
      models: { ...from },
      imageSize: imageSizeOf(d),
      defaults: { sdedit: SDEDIT_DEFAULTS, sdg: SDG_DEFAULTS },
    },
  });
}

let queue: Promise<void> = Promise.resolve();
self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  // one job at a time, in order
  queue = queue.then(async () => {
    try {
      if (m.type === 'init') await init(m.backend, m.base);
      else await run(m.id, m.job);
    } catch (e) {
      post({
        type: 'error',
        id: m.type === 'run' ? m.id : null,
        message: e instanceof Error ? `${e.message}` : String(e),
      });
    }
  });
};
