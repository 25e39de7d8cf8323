/** `diffguide info`: backend, threads, SIMD, versions — what a bug report needs. */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Command } from '../command.js';
import { initBackend } from '../../backend.js';
import { fastGradientsInstalled } from '../../fastgrad/index.js';
import { winogradEnabled } from '../../fastgrad/winograd.js';
import type { WasmBackend } from '../../fastgrad/wasm.js';
import { packageVersion } from '../../paths.js';
import { shippedModels, shippedQuality, type ModelName } from '../../models/load.js';

const require = createRequire(import.meta.url);

function version(pkg: string): string | null {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

const info: Command = {
  name: 'info',
  summary: 'show the chosen backend, threads, SIMD, package versions and the shipped weights',
  usage: 'diffguide info [--json] [--backend NAME]',
  examples: ['diffguide info', 'diffguide info --backend cpu --json'],
  options: { json: { type: 'boolean', help: 'print one JSON object' } },
  async run(args) {
    const b = await initBackend({ verbose: false });
    const report = {
      diffguide: packageVersion(),
      backend: b.name,
      tfBackend: b.tfBackend,
      chosenBy: b.chosenBy,
      threads: b.threads,
      simd: b.simd,
      skipped: b.skipped,
      details: b.details,
      fastgrad: [...fastGradientsInstalled()],
      // 3x3 convs as Winograd on wasm (null on other backends; false: DIFFGUIDE_WINOGRAD=0 or the SIMD module failed)
      winograd: b.tfBackend === 'wasm' ? winogradEnabled(tf.backend() as unknown as WasmBackend) : null,
      versions: {
        node: process.versions.node,
        tfjs: tf.version.tfjs ?? version('@tensorflow/tfjs'),
        'tfjs-backend-wasm': version('@tensorflow/tfjs-backend-wasm'),
        'tfjs-backend-webgpu': version('@tensorflow/tfjs-backend-webgpu'),
        'tfjs-node': version('@tensorflow/tfjs-node'),
        'tfjs-node-gpu': version('@tensorflow/tfjs-node-gpu'),
        webgpu: version('webgpu'),
      },
      // Shipped weights and whether each meets its quality bars (config.json `quality`; see MODEL_CARD.md).
      weights: Object.fromEntries(
        Object.entries(shippedModels()).map(([m, have]) => [m, have ? shippedQuality(m as ModelName) : 'missing']),
      ),
      machine: {
        platform: `${os.platform()} ${os.arch()}`,
        cpus: os.cpus().length,
        memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
      },
    };
    if (args.values.json) {
      console.log(JSON.stringify(report));
      return;
    }
    console.log(`diffguide ${report.diffguide}`);
    console.log(
      `backend     ${b.name} (tfjs '${b.tfBackend}', chosen ${b.chosenBy})${b.simd ? ', SIMD' : ''}, ${b.threads} thread(s)`,
    );
    for (const s of b.skipped) console.log(`  skipped   ${s.name}: ${s.reason}`);
    for (const [k, v] of Object.entries(b.details)) console.log(`  ${k.padEnd(9)} ${v}`);
    const fg = report.fastgrad;
    if (fg.length)
      console.log(
        `fastgrad    ${fg.filter((k) => k.startsWith('kernel')).length} wasm kernels, ${fg.filter((k) => k.startsWith('gradient')).length} gradients replaced (diffguide)`,
      );
    if (report.winograd !== null)
      console.log(
        `winograd    3x3 stride-1 convs ${report.winograd ? 'on (Winograd F(2x2, 3x3))' : 'off (direct convolution)'}`,
      );
    console.log(
      `versions    ${Object.entries(report.versions)
        .filter(([, v]) => v)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log(
      `weights     ${Object.entries(report.weights)
        .map(([m, q]) => `${m} (${q})`)
        .join(', ')}`,
    );
    console.log(
      `machine     ${report.machine.platform}, ${report.machine.cpus} cores, ${report.machine.memoryGiB} GiB`,
    );
  },
};
export default info;
