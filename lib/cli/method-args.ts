/**
 * Glue shared by the method commands (`diffguide sample | sdg | sdedit | diffusionclip | unclip |
 * imagic | invert`): common options, model loading (shipped, by path, or tiny random for
 * development), input images, and output writing (PNGs, a labelled grid, settings.json).
 */
import { writeFileSync } from 'node:fs';
import { makeDirs } from '../output.js';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  UsageError,
  choice,
  count,
  int,
  isUsageError,
  num,
  numList,
  outDir as cliOutDir,
  seed,
  type OptionSpec,
  type ParsedArgs,
} from './command.js';
import { note } from './progress.js';
import { readPng, writePng } from '../image/png.js';
import type { CLIP, NoisyCLIPImageEncoder } from '../../nets/clip/index.js';
import type { Prior } from '../../nets/prior/index.js';
import type { Schedule } from '../../samplers/schedule.js';
import { writeLabelledGrid } from '../image/labels.js';
import {
  WeightsError,
  loadClipModel,
  loadCondDiffuser,
  loadNoisyClipModel,
  loadPriorModel,
  loadUNetDiffuser,
  randomModels,
} from '../models/load.js';
import type { Diffuser } from '../models/diffuser.js';
import { DEFAULT_SEED } from '../methods/common.js';

/** How a default reads in --help: as the value is written, lists comma-separated. */
export function formatDefault(value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}

/**
 * `help` with "(default X)" appended, X the method's defaults-object entry: the help text never
 * restates a default by hand (test/defaults.test.ts reads these back).
 */
export function withDefault(help: string, value: unknown): string {
  return `${help} (default ${formatDefault(value)})`;
}

/** A command's --steps with its method's default in the help. */
export function stepsOption(value: number, what = 'sampling steps (respaced)'): OptionSpec {
  return { type: 'string', help: withDefault(what, value) };
}

/** Options every method command takes (plus the global --backend/--quiet/--help). */
export const METHOD_OPTIONS: Record<string, OptionSpec> = {
  seed: { type: 'string', help: withDefault('random seed', DEFAULT_SEED) },
  steps: { type: 'string', help: 'sampling steps (respaced; default per method)' },
  weights: { type: 'string', help: "the main model's weights (file or folder; default: the shipped weights/)" },
  out: { type: 'string', short: 'o', help: 'output folder (default diffguide-out/<command>)' },
  'random-weights': {
    type: 'boolean',
    help: 'DEV/TEST ONLY: tiny random models instead of weights (outputs are noise)',
  },
};

export function seedOf(args: ParsedArgs): number {
  return seed(args, 'seed', DEFAULT_SEED);
}

// The typed option getters live in lib/cli/command.ts (ranges in lib/options.ts); these names are kept for the method commands.
export { int as intOpt, count, num as numOpt, numList, choice, UsageError };

export function strOpt(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** Where the command writes: --out (default diffguide-out/<command>), proved writable now, before any work (made when written). */
export function outDir(args: ParsedArgs, command: string): string {
  return cliOutDir(args, 'out', join('diffguide-out', command));
}

/** Read an input PNG as [1, H, W, 3] in [-1, 1], resized to `size` with a note when it differs. */
export function readInput(path: string, size: number, what = 'image'): tf.Tensor4D {
  const x = readPng(path);
  if (x.shape[1] === size && x.shape[2] === size) return x;
  note(`${what} ${path} is ${x.shape[2]}x${x.shape[1]}; resized to ${size}x${size} (the model's size)`);
  x.dispose();
  return readPng(path, { size });
}

/** A mask PNG as [1, S, S, 1] in {0, 1}: white (> 50% gray) = 1. */
export function readMask(path: string, size: number): tf.Tensor4D {
  const x = readInput(path, size, 'mask');
  const m = tf.tidy(() => tf.mean(x, 3, true).greater(0).toFloat()) as tf.Tensor4D;
  x.dispose();
  return m;
}

/** The models a command needs, by role. */
export interface CliModels {
  unet?: Diffuser;
  cond?: Diffuser;
  clip?: CLIP;
  noisy?: NoisyCLIPImageEncoder;
  prior?: { prior: Prior; schedule: Schedule };
  dispose(): void;
}

export type Role = 'unet' | 'cond' | 'clip' | 'noisy' | 'prior';

/**
 * Load the models for `roles`. The first role is the main model (--weights); others come from
 * --clip / --noisy-clip / --prior / --cond-weights when given, else the shipped weights.
 * With --random-weights, all are tiny random models (development only).
 */
export async function loadModels(args: ParsedArgs, roles: Role[]): Promise<CliModels> {
  if (args.values['random-weights']) {
    note('--random-weights: tiny RANDOM models (development/testing only; outputs are not meaningful)');
    const r = randomModels(seedOf(args));
    const keep = new Set(roles);
    const out: CliModels = { dispose: () => undefined };
    if (keep.has('unet')) out.unet = r.unet;
    else r.unet.unet.dispose();
    if (keep.has('cond')) out.cond = r.cond;
    else r.cond.unet.dispose();
    if (keep.has('clip')) out.clip = r.clip;
    else r.clip.dispose();
    if (keep.has('noisy')) out.noisy = r.noisy;
    else r.noisy.dispose();
    if (keep.has('prior')) out.prior = r.prior;
    else r.prior.prior.dispose();
    out.dispose = () => disposeCli(out);
    return out;
  }
  const main = roles[0];
  const pathFor = (role: Role): string | undefined => {
    if (role === main) return strOpt(args, 'weights');
    const flagName = { unet: 'unet-weights', cond: 'cond-weights', clip: 'clip', noisy: 'noisy-clip', prior: 'prior' }[
      role
    ];
    return strOpt(args, flagName);
  };
  const out: CliModels = { dispose: () => disposeCli(out) };
  try {
    for (const role of roles) {
      if (role === 'unet') out.unet = await loadUNetDiffuser(pathFor(role));
      else if (role === 'cond') out.cond = await loadCondDiffuser(pathFor(role));
      else if (role === 'clip') out.clip = await loadClipModel(pathFor(role));
      else if (role === 'noisy') out.noisy = await loadNoisyClipModel(pathFor(role));
      else if (role === 'prior') out.prior = await loadPriorModel(pathFor(role));
    }
  } catch (e) {
    disposeCli(out);
    throw e;
  }
  return out;
}

function disposeCli(m: CliModels): void {
  m.unet?.unet.dispose();
  m.cond?.unet.dispose();
  m.clip?.dispose();
  m.noisy?.dispose();
  m.prior?.prior.dispose();
}

/**
 * Write each image as `<name>-<i>.png`, a labelled grid `<name>-grid.png` (inputs first when given),
 * and `<name>-settings.json`. Prints the grid path on stdout. Returns the paths.
 */
export function writeOutputs(
  dir: string,
  name: string,
  images: tf.Tensor4D,
  labels: string[],
  settings: Record<string, unknown>,
  inputs?: { images: tf.Tensor4D; labels: string[] },
): { files: string[]; grid: string } {
  makeDirs(dir, `output folder ${dir}`);
  const files: string[] = [];
  const n = images.shape[0];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `${name}-${i}.png`);
    const one = images.slice(i, 1);
    writePng(p, one);
    one.dispose();
    files.push(p);
  }
  const grid = join(dir, `${name}-grid.png`);
  const all = inputs ? (tf.concat([inputs.images, images]) as tf.Tensor4D) : images;
  writeLabelledGrid(grid, all, inputs ? [...inputs.labels, ...labels] : labels, {
    title: `${name}: ${summarise(settings)}`,
  });
  if (all !== images) all.dispose();
  writeFileSync(join(dir, `${name}-settings.json`), JSON.stringify(settings, null, 2) + '\n');
  console.log(grid);
  return { files, grid };
}

function summarise(s: Record<string, unknown>): string {
  return Object.entries(s)
    .filter(([, v]) => typeof v !== 'object')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** Run a command body, turning known errors into messages and exit codes (weights: 1, usage: 2). */
export async function guarded(cmd: string, body: () => Promise<number | void>): Promise<number> {
  try {
    return (await body()) ?? 0;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (isUsageError(e)) {
      console.error(`diffguide ${cmd}: ${msg}\nSee 'diffguide ${cmd} --help'.`);
      return 2;
    }
    if (e instanceof WeightsError) {
      console.error(`diffguide ${cmd}: ${msg}`);
      return 1;
    }
    console.error(`diffguide ${cmd}: ${msg}`);
    return 1;
  }
}
