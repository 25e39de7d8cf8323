/**
 * Child process of test/webgpu.test.ts: starts one backend (argv[2]; its own process, so the
 * suite's wasm setup is untouched; 'auto' only reports the choice), runs every case of test/backend_cases.ts and writes the results
 * to argv[3] as JSON ({backend, details, cases: {name: {ms, outputs: {key: number[]}} | {error}}}).
 */
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../lib/backend.js';
import { CASES, disposeCaseModels } from './backend_cases.js';

const [name, outPath] = process.argv.slice(2);
const report: { backend?: string; details?: Record<string, string>; error?: string; cases: Record<string, unknown> } = {
  cases: {},
};
try {
  const b = await initBackend({ backend: name as BackendName | 'auto', verbose: false });
  report.backend = b.name;
  report.details = b.details;
  if (name === 'auto') {
    // only the choice: which backend auto picks here and why the others were skipped
    writeFileSync(outPath, JSON.stringify({ ...report, skipped: b.skipped }));
    process.exit(0);
  }
  if (b.name !== name)
    throw new Error(`asked for ${name}, got ${b.name} (${b.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})`);
  for (const [c, run] of Object.entries(CASES)) {
    const t0 = performance.now();
    try {
      const outputs = await run();
      report.cases[c] = {
        ms: Math.round(performance.now() - t0),
        outputs: Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, Array.from(v)])),
      };
    } catch (e) {
      report.cases[c] = { error: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e) };
    }
    process.stderr.write(`backend_child ${name}: ${c} ${Math.round(performance.now() - t0)} ms\n`);
  }
  disposeCaseModels();
  report.cases['tensors left'] = { count: tf.memory().numTensors };
} catch (e) {
  report.error = e instanceof Error ? e.message : String(e);
}
writeFileSync(outPath, JSON.stringify(report));
process.exit(0);
