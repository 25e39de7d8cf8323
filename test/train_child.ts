/**
 * Child process for the SIGKILL-resume and SIGTERM tests (test/train.test.ts): trains a tiny judge on the committed
 * emoji subset. Args: OUT STEPS [MAX_STEPS_THIS_RUN] [DUMP.json] [SLEEP_MS]. Prints one JSON result line.
 */
import { writeFileSync } from 'node:fs';
import { initBackend } from '../lib/backend.js';
import { Dataset, testSubsetPath } from '../lib/data/index.js';
import { packageRoot } from '../lib/paths.js';
import { Judge } from '../nets/judge/model.js';
import { JudgeTask } from '../lib/train/tasks/judge.js';
import { train } from '../lib/train/loop.js';
import { stopOnSignals } from '../lib/train/interrupt.js';

const [out, steps, maxRun, dump, sleepMs] = process.argv.slice(2);
await initBackend({ backend: 'wasm', verbose: false });
const ds = Dataset.load(testSubsetPath(packageRoot()));
const cfg = {
  imageSize: 32,
  widths: [8, 16],
  strides: [2, 2],
  groups: 4,
  categories: ds.categoryNames,
  vendors: ds.vendorNames,
};
const judge = Judge.random(cfg, 3);
const task = new JudgeTask(judge, ds, { batch: 8, seed: 5 });
const sleep = Number(sleepMs ?? 0);
const stop = stopOnSignals();
const r = await train(task, {
  signal: stop.signal,
  out,
  steps: Number(steps),
  lr: 3e-3,
  warmup: 3,
  decay: 'cosine',
  seed: 5,
  checkpointEvery: 5,
  sampleEvery: 0,
  logEvery: 1,
  resume: true,
  config: { tiny: true },
  maxStepsThisRun: maxRun && maxRun !== '-' ? Number(maxRun) : undefined,
  onProgress: (p) => {
    if (sleep) {
      const until = Date.now() + sleep;
      while (Date.now() < until) {
        /* slow down so the parent can kill mid-run */
      }
    }
    process.stdout.write(`step ${p.step}\n`);
  },
});
if (dump && dump !== '-')
  writeFileSync(
    dump,
    JSON.stringify(Object.fromEntries([...judge.params].map(([k, v]) => [k, Array.from(v.dataSync())]))),
  );
console.log(JSON.stringify(r));
process.exitCode = stop.exitCode();
