/**
 * The experiments `diffguide experiment <name>` and `diffguide worker` know, loaded lazily. Add one
 * line per experiments/<name>.ts (it default-exports an `Experiment`, see experiments/README.md).
 * A path ending in .js/.ts (a module default-exporting an Experiment) works too, e.g. for your own.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { AnyExperiment } from '../lib/experiments/grid.js';

export const EXPERIMENTS: Record<string, () => Promise<AnyExperiment>> = {
  imagic: async () => (await import('./imagic.js')).default,
  sdedit: async () => (await import('./sdedit.js')).default,
  sdg: async () => (await import('./sdg.js')).default,
  diffusionclip: async () => (await import('./diffusionclip.js')).default,
  toy: async () => (await import('./toy.js')).default,
  unclip: async () => (await import('./unclip.js')).default,
};

/** An experiment by registered name or module path. */
export async function loadExperiment(nameOrPath: string): Promise<AnyExperiment> {
  const load = EXPERIMENTS[nameOrPath];
  if (load) return load();
  if (/\.(m?js|ts)$/.test(nameOrPath)) {
    const mod = (await import(pathToFileURL(resolve(nameOrPath)).href)) as { default?: AnyExperiment };
    if (!mod.default || typeof mod.default.runCell !== 'function')
      throw new Error(
        `${nameOrPath} does not default-export an experiment ({ name, summary, settings, cells, runCell, merge })`,
      );
    return mod.default;
  }
  throw new Error(
    `unknown experiment '${nameOrPath}'; experiments: ${Object.keys(EXPERIMENTS).join(', ')} (or a path to a module default-exporting one)`,
  );
}
