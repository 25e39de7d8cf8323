/**
 * `npm run build:playground`: the static playground in playground/dist/, built from the library's
 * sources with esbuild: main.js (page), worker.js (the library: methods, nets, samplers, fastgrad),
 * sw.js (service worker: the page works offline once loaded), tfjs-backend-wasm's .wasm files beside
 * them, the shipped weights converted to the TF.js format (weights/<model>/model.json + shards, from
 * the safetensors), CLIP's BPE merges, and example emoji from the committed test subset.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import * as tf from '@tensorflow/tfjs';
import { convertToTfjs } from '../lib/models/tfjs-convert.js';
import { emojiInputs } from '../lib/demo/showcase.js';
import { SHOWCASE_EMOJI } from '../lib/data/index.js';
import { writePng } from '../lib/image/png.js';
import { weightsPath } from '../lib/paths.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'playground');
/** The models the playground's methods use. */
export const PLAYGROUND_MODELS = ['unet', 'cond-unet', 'clip', 'noisy-clip', 'prior'] as const;

/**
 * Library modules that only Node code paths load dynamically (`await import(...)` of lib/io, which
 * reads and writes files: e.g. CLIP's `save`). They stay unbundled imports that a browser never runs.
 */
const nodeOnlyDynamic: esbuild.Plugin = {
  name: 'node-only-dynamic-imports',
  setup(b) {
    b.onResolve({ filter: /lib\/io\/index\.js$/ }, (args) =>
      args.kind === 'dynamic-import' ? { path: args.path, external: true } : undefined,
    );
  },
};

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) =>
    statSync(join(dir, f)).isDirectory() ? listFiles(join(dir, f)) : [join(dir, f)],
  );
}

export async function buildPlayground(
  out = join(src, 'dist'),
  log: (s: string) => void = (s) => console.error(s),
): Promise<string> {
  const t0 = Date.now();
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const common: esbuild.BuildOptions = {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    // lib/fastgrad reads optional DIFFGUIDE_* switches from process.env; a page has no environment
    define: { 'process.env': '{}' },
    plugins: [nodeOnlyDynamic],
    logLevel: 'warning',
  };
  await esbuild.build({
    ...common,
    format: 'esm',
    entryPoints: { main: join(src, 'src', 'main.ts'), worker: join(src, 'src', 'worker.ts') },
    outdir: out,
  });
  for (const f of ['index.html', 'style.css']) copyFileSync(join(src, f), join(out, f));
  const wasmDir = join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
  for (const f of readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) copyFileSync(join(wasmDir, f), join(out, f));
  copyFileSync(weightsPath('bpe_simple_vocab_16e6.txt.gz'), join(out, 'bpe_simple_vocab_16e6.txt.gz'));

  // weights: safetensors (the source of truth) -> TF.js format
  const index: Record<string, { sha256: string; bytes: number; tensors: number }> = {};
  for (const m of PLAYGROUND_MODELS) {
    const r = await convertToTfjs(weightsPath(m), join(out, 'weights', m));
    index[m] = { sha256: r.sourceSha256, bytes: r.bytes, tensors: r.tensors };
  }
  writeFileSync(join(out, 'weights', 'index.json'), JSON.stringify(index, null, 1));

  // example inputs: the showcase emoji (Noto) from the committed test subset
  mkdirSync(join(out, 'examples'));
  const names = Object.keys(SHOWCASE_EMOJI);
  const ex = emojiInputs(names, 32);
  const examples: { name: string; file: string }[] = [];
  if (ex) {
    names.forEach((name, i) => {
      const file = `${name.replace(/\W+/g, '-')}.png`;
      const one = ex.images.slice(i, 1);
      writePng(join(out, 'examples', file), one);
      one.dispose();
      examples.push({ name, file });
    });
    ex.images.dispose();
  }
  writeFileSync(join(out, 'examples', 'index.json'), JSON.stringify(examples));

  // the service worker precaches everything but the weights (the worker keeps those in IndexedDB)
  const shell = listFiles(out)
    .map((f) => relative(out, f))
    .filter((f) => !/^weights\/[^/]+\//.test(f) && !f.endsWith('.map'));
  const id = createHash('sha256');
  for (const f of shell.sort()) id.update(f).update(readFileSync(join(out, f)));
  for (const m of Object.values(index)) id.update(m.sha256);
  await esbuild.build({
    ...common,
    format: 'iife',
    entryPoints: { sw: join(src, 'src', 'sw.ts') },
    outdir: out,
    define: {
      ...common.define,
      __BUILD__: JSON.stringify({ id: id.digest('hex').slice(0, 16), files: ['./', ...shell] }),
    },
  });
  const size = listFiles(out).reduce((a, f) => a + statSync(f).size, 0);
  log(
    `playground built in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${relative(process.cwd(), out) || '.'} (${(size / 1e6).toFixed(1)} MB, weights ${PLAYGROUND_MODELS.join(', ')})`,
  );
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await tf.setBackend('cpu'); // the example images only need tensor slicing
  await buildPlayground();
}
