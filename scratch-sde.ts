import * as tf from '@tensorflow/tfjs';
import { initBackend } from './lib/backend.js';
import { weightsPath } from './lib/paths.js';
import { loadJudge } from './lib/train/evaluate.js';
import { loadUNetDiffuser, mae } from './lib/methods/index.js';
import { sdedit } from './lib/methods/sdedit.js';
import { strokeGuides } from './lib/demo/showcase.js';
await initBackend();
const judge = await loadJudge(weightsPath('judge'));
for (const w of process.argv.slice(2)) {
  const unet = await loadUNetDiffuser(w);
  const g = strokeGuides(32);
  const conf = (x: tf.Tensor4D) => tf.tidy(() => { const p = tf.softmax(judge.apply(x).category).max(1).dataSync(); return Array.from(p); });
  console.log(w, 'guides conf', conf(g).map((v) => v.toFixed(2)).join(' '));
  for (const t0 of [0.3, 0.5, 0.8, 1.0]) {
    const r = await sdedit(unet, g, { t0, repeats: 2, seed: 1 });
    const c = conf(r.images);
    console.log(' t0', t0, 'conf', (c.reduce((a, b) => a + b) / c.length).toFixed(3), c.map((v) => v.toFixed(2)).join(' '));
    r.images.dispose();
  }
}
