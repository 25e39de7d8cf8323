import { initBackend } from './lib/backend.js';
import { loadDataset } from './lib/data/index.js';
import { loadJudge } from './lib/train/evaluate.js';
import { totalVariation } from './lib/train/metrics.js';
await initBackend();
const ds = loadDataset('emoji32');
const judge = await loadJudge(process.argv[2] ?? 'weights/judge');
for (const split of ['test', 'train'] as const) {
  const idx = ds.indicesOf(split).slice(0, 1000);
  const x = ds.images(idx, { rgb: true });
  const p = judge.predict(x);
  x.dispose();
  const K = ds.categoryNames.length;
  const pred = new Array(K).fill(0), lab = new Array(K).fill(0), all = new Array(K).fill(0);
  idx.forEach((i, k) => { pred[p.category[k]]++; lab[ds.categoryIds[i]]++; });
  ds.categoryIds.forEach((c) => all[c]++);
  let acc = 0; idx.forEach((i, k) => { if (p.category[k] === ds.categoryIds[i]) acc++; });
  console.log(split, 'acc', (acc / idx.length).toFixed(3), 'TV(pred, labels of split)', totalVariation(pred, lab).toFixed(3), 'TV(pred, all data)', totalVariation(pred, all).toFixed(3));
  console.log(ds.categoryNames.map((c, i) => `${c}: pred ${pred[i]} lab ${lab[i]} all ${all[i]}`).join('\n'));
}
