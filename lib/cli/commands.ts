/**
 * The registry of `diffguide` subcommands, loaded lazily so `--help` stays fast.
 * Add one line per command; the command's module default-exports a `Command`.
 */
import type { Command } from './command.js';

export const COMMANDS: Record<string, () => Promise<Command>> = {
  info: async () => (await import('./commands/info.js')).default,
  bench: async () => (await import('./commands/bench.js')).default,
  data: async () => (await import('./commands/data.js')).default,
  train: async () => (await import('./commands/train.js')).default,
  eval: async () => (await import('./commands/eval.js')).default,
  inspect: async () => (await import('./commands/inspect.js')).default,
  convert: async () => (await import('./commands/convert.js')).default,
  verify: async () => (await import('./commands/verify.js')).default,
  sample: async () => (await import('./commands/sample.js')).default,
  sdg: async () => (await import('./commands/sdg.js')).default,
  sdedit: async () => (await import('./commands/sdedit.js')).default,
  diffusionclip: async () => (await import('./commands/diffusionclip.js')).default,
  unclip: async () => (await import('./commands/unclip.js')).default,
  imagic: async () => (await import('./commands/imagic.js')).default,
  invert: async () => (await import('./commands/invert.js')).default,
  demo: async () => (await import('./commands/demo.js')).default,
  experiment: async () => (await import('./commands/experiment.js')).default,
  worker: async () => (await import('./commands/worker.js')).default,
};
