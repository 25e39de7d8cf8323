/**
 * The registry of `diffguide` subcommands, loaded lazily so `--help` stays fast.
 * Add one line per command; the command's module default-exports a `Command`.
 */
import type { Command } from './command.js';

export const COMMANDS: Record<string, () => Promise<Command>> = {
  info: async () => (await import('./commands/info.js')).default,
  bench: async () => (await import('./commands/bench.js')).default,
  data: async () => (await import('./commands/data.js')).default,
};
