/**
 * The backend-parametrised subset (test/webgpu.test.ts): the library's main paths on tiny random
 * models, each case a function returning named host arrays. The same code runs on wasm (the test
 * process) and on webgpu (test/backend_child.ts in a child process), from identical inputs:
 * weights from seeded init and xorshift data are host-side, and tfjs's seeded random ops draw on
 * the host too, so the two results differ only by the backends' arithmetic.
 */
import * as tf from '@tensorflow/tfjs';
import { respace } from '../samplers/schedule.js';
import { sampleDdpm } from '../samplers/ddpm.js';
import { ddimInvert, sampleDdim } from '../samplers/ddim.js';
import { sampleEulerMaruyama } from '../samplers/sde.js';
import { sampleMasked } from '../samplers/masked.js';
import { xorshiftUniform } from '../lib/random.js';
import { diffusionModelOf, disposeModels, randomModels, type ModelSet } from '../lib/methods/index.js';
import { sdedit } from '../lib/methods/sdedit.js';
import { sdg } from '../lib/methods/sdg.js';

export type CaseResult = Record<string, Float32Array>;

/** Host data [shape] in [-amp, amp) from a seed (no tfjs RNG). */
function data(shape: number[], seed: number, amp = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    xorshiftUniform(n, seed).map((v) => v * amp),
    shape,
  );
}

function host(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync());
}

const SIZE = 16;

let models: Required<ModelSet> | null = null;
function m(): Required<ModelSet> {
  models ??= randomModels(0, { imageSize: SIZE, modelChannels: 32, embedDim: 32 });
  return models;
}

/** Dispose the shared models (call after the last case). */
export function disposeCaseModels(): void {
  if (models) disposeModels(models);
  models = null;
}

/** A smooth image [1, S, S, 3] in [-0.8, 0.8]. */
function image(seed: number): tf.Tensor4D {
  return tf.tidy(() => tf.image.resizeBilinear(data([1, 4, 4, 3], seed, 0.8) as tf.Tensor4D, [SIZE, SIZE]));
}

/** Runs sampler `run` for exactly one step (respaced schedule of 10; start at index 6). */
async function oneStep(run: 'ddpm' | 'ddim' | 'em' | 'masked' | 'invert'): Promise<CaseResult> {
  const d = m().unet;
  const s = respace(d.schedule, '10');
  const model = diffusionModelOf(d);
  const x = data([1, SIZE, SIZE, 3], 31) as tf.Tensor4D;
  const one = { startIndex: 6, endIndex: 5, seed: 7 };
  let y: tf.Tensor4D;
  switch (run) {
    case 'ddpm':
      y = await sampleDdpm(model, x, s, one);
      break;
    case 'ddim':
      y = await sampleDdim(model, x, s, { ...one, eta: 0.5 });
      break;
    case 'em':
      y = await sampleEulerMaruyama(model, x, s, { ...one, sde: 'vp' });
      break;
    case 'masked': {
      const reference = image(32);
      const mask = tf.tidy(() =>
        tf.concat([tf.ones([1, SIZE, SIZE / 2, 1]), tf.zeros([1, SIZE, SIZE / 2, 1])], 2),
      ) as tf.Tensor4D;
      y = await sampleMasked(model, x, s, { ...one, reference, mask });
      tf.dispose([reference, mask]);
      break;
    }
    case 'invert':
      y = await ddimInvert(model, x, s, { fromIndex: 5, toIndex: 6 });
      break;
  }
  const out = { x: host(y) };
  tf.dispose([x, y]);
  return out;
}

/** Inputs of the 'Sin, Cos, Log' case (the test compares its outputs with Math.sin/cos/log of these float32s). */
export function mathInputs(): { trig: Float32Array; log: Float32Array } {
  const n = 20000;
  const trig = Float32Array.from({ length: n }, (_, i) => -1000 + (2000 * i) / n);
  const log = Float32Array.from({ length: n }, (_, i) => Math.exp(-87 + (174 * i) / n));
  return { trig, log };
}

/** The cases, by name. Each disposes what it makes (the shared models stay). */
export const CASES: Record<string, () => Promise<CaseResult>> = {
  'Sin, Cos, Log': async () => {
    const { trig, log } = mathInputs();
    const a = tf.tensor1d(trig);
    const b = tf.tensor1d(log);
    const ys = [tf.sin(a), tf.cos(a), tf.log(b)];
    const out = { sin: host(ys[0]), cos: host(ys[1]), log: host(ys[2]) };
    tf.dispose([a, b, ...ys]);
    return out;
  },
  'UNet forward': async () => {
    const x = data([2, SIZE, SIZE, 3], 1);
    const t = tf.tensor1d([10, 900]);
    const eps = m().unet.unet.apply(x as tf.Tensor4D, t);
    const out = { eps: host(eps) };
    tf.dispose([x, t, eps]);
    return out;
  },
  'UNet input gradient': async () => {
    const x = data([2, SIZE, SIZE, 3], 2);
    const t = tf.tensor1d([250, 600]);
    const w = data([2, SIZE, SIZE, 3], 3);
    const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(m().unet.unet.apply(xx as tf.Tensor4D, t), w)))(x);
    const out = { dx: host(g) };
    tf.dispose([x, t, w, g]);
    return out;
  },
  'UNet parameter gradients (DiffusionCLIP / Imagic fine-tuning)': async () => {
    const unet = m().unet.unet;
    const x = data([1, SIZE, SIZE, 3], 6);
    const t = tf.tensor1d([400]);
    const w = data([1, SIZE, SIZE, 3], 7);
    const vars = [...unet.params.values()];
    const { grads, value } = tf.variableGrads(
      () => tf.sum(tf.mul(unet.apply(x as tf.Tensor4D, t), w)) as tf.Scalar,
      vars,
    );
    const out: CaseResult = {};
    for (const [k, v] of unet.params) out[k] = host(grads[v.name]);
    tf.dispose([x, t, w, value, ...Object.values(grads)]);
    return out;
  },
  'UNet embedding-conditioning gradient (Imagic stage 1)': async () => {
    const x = data([2, SIZE, SIZE, 3], 8);
    const t = tf.tensor1d([100, 700]);
    const emb = data([2, 32], 9);
    const w = data([2, SIZE, SIZE, 3], 10);
    const g = tf.grad((e: tf.Tensor) =>
      tf.sum(tf.mul(m().cond.unet.apply(x as tf.Tensor4D, t, { emb: e as tf.Tensor2D }), w)),
    )(emb);
    const out = { demb: host(g) };
    tf.dispose([x, t, emb, w, g]);
    return out;
  },
  'CLIP forward (image and text)': async () => {
    const x = data([2, 32, 32, 3], 4) as tf.Tensor4D;
    const enc = m().clip.encodeImage(x);
    const txt = m().clip.encodeText(['a red heart', 'a cat']);
    const out = { image: host(enc.embedding), text: host(txt) };
    tf.dispose([x, txt, enc.embedding, ...enc.features]);
    return out;
  },
  'CLIP image gradient (cosine to a text)': async () => {
    const x = data([2, 32, 32, 3], 5) as tf.Tensor4D;
    const txt = m().clip.encodeText(['a cat']);
    const g = tf.grad((xx: tf.Tensor) =>
      tf.tidy(() => {
        const e = m().clip.encodeImage(xx as tf.Tensor4D).embedding;
        const en = tf.div(e, tf.norm(e, 'euclidean', 1, true));
        const tn = tf.div(txt, tf.norm(txt, 'euclidean', 1, true));
        return tf.sum(tf.mul(en, tn));
      }),
    )(x);
    const out = { dx: host(g) };
    tf.dispose([x, txt, g]);
    return out;
  },
  'one DDPM step': () => oneStep('ddpm'),
  'one DDIM step (eta 0.5)': () => oneStep('ddim'),
  'one Euler-Maruyama step (VP)': () => oneStep('em'),
  'one masked (RePaint) step': () => oneStep('masked'),
  'one DDIM inversion step': () => oneStep('invert'),
  'SDEdit (t0 0.5, 3 steps)': async () => {
    const guide = image(41);
    const r = await sdedit(m().unet, guide, { t0: 0.5, steps: 3, seed: 5 });
    const out = { images: host(r.images) };
    tf.dispose([guide, r.images]);
    return out;
  },
  'SDG, 2 steps (text + image content, noisy CLIP on x_t; one step has variance to guide with)': async () => {
    const ref = image(42);
    const enc = { noisy: m().noisy, image: m().clip, text: m().clip };
    const r = await sdg(m().unet, enc, { text: 'a cat', image: ref, n: 1, steps: 2, seed: 3 });
    const u = await sdg(m().unet, enc, { text: 'a cat', image: ref, n: 1, steps: 2, seed: 3, scale: 0 });
    // what the guidance gradient moved, on its own scale (the images saturate at +-1)
    const moved = tf.sub(r.images, u.images);
    const out = { images: host(r.images), guidanceMoved: host(moved) };
    tf.dispose([ref, r.images, u.images, moved]);
    return out;
  },
};
