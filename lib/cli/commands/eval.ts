/** `diffguide eval <model> [--n N] [--json]`: re-measure a model's quality bars with the judge. */
import type { Command, ParsedArgs } from '../command.js';
import { choice, count, flag, num, seed, str } from '../command.js';
import { withDefault } from '../method-args.js';
import { SDG_DEFAULTS, SDG_ON } from '../../methods/sdg.js';
import { UNCLIP_DEFAULTS } from '../../methods/unclip.js';
import { DIFFUSIONCLIP_DEFAULTS } from '../../methods/diffusionclip.js';
import { loadDataset } from '../../data/index.js';
import { weightsPath } from '../../paths.js';
import { evalJudge, evalUNet, loadJudge, loadUNet, type EvalReport } from '../../eval/unet.js';
import type { Parameterization } from '../../../samplers/model.js';
import { MODEL_EVALS } from '../../eval/registry.js';
import {
  evalMethods,
  METHOD_SECTIONS,
  METHODS_PROTOCOL,
  type MethodSection,
  type MethodsEvalOverrides,
} from '../../eval/methods.js';
import { readConfigBeside, resolveWeights, type ModelName } from '../../models/load.js';

const EVALUABLE = ['judge', 'unet', ...Object.keys(MODEL_EVALS), 'methods'];

/** `eval methods`' settings other than the methods' defaults (the flags given; resolve functions check them). */
export function methodOverrides(args: ParsedArgs): MethodsEvalOverrides {
  const given = <T>(name: string, parse: (name: string) => T): T | undefined =>
    args.values[name] === undefined ? undefined : parse(name);
  const opt = (name: string) => given(name, (n) => num(args, n));
  const int = (name: string) => given(name, (n) => count(args, n));
  const bool = (name: string) => given(name, (n) => choice(args, n, ['true', 'false'] as const, 'true') === 'true');
  return {
    sdg: {
      scale: opt('sdg-scale'),
      steps: int('sdg-steps'),
      on: given('sdg-on', (n) => choice(args, n, SDG_ON, SDG_DEFAULTS.on)),
      normalizeGrad: bool('sdg-normalize-grad'),
    },
    unclip: {
      decoderScale: opt('unclip-decoder-scale'),
      priorScale: opt('unclip-prior-scale'),
      variationEta: opt('unclip-eta'),
      variationInvert: bool('unclip-invert'),
    },
    diffusionclip: {
      lr: opt('diffusionclip-lr'),
      t0: opt('diffusionclip-t0'),
      modelRatio: opt('diffusionclip-model-ratio'),
      clipWeight: opt('diffusionclip-clip-weight'),
      l1Weight: opt('diffusionclip-l1-weight'),
      mode: given('diffusionclip-mode', (n) =>
        choice(args, n, ['full', 'perstep'] as const, DIFFUSIONCLIP_DEFAULTS.mode),
      ),
      iters: int('diffusionclip-iters'),
      inputs: int('diffusionclip-inputs'),
    },
  };
}

const evalCmd: Command = {
  name: 'eval',
  summary:
    'measure a model against the quality bars of its model card (judge accuracy; unet FID and category TV; CLIP zero-shot and retrieval; noisy-CLIP retrieval ratio; prompt category rates)',
  usage:
    'diffguide eval <unet|clip|noisy-clip|cond-unet|prior|judge|methods> [--n N] [--weights DIR] [--judge DIR] [--json]',
  examples: [
    'diffguide eval judge --json',
    'diffguide eval unet --n 1000 --json',
    'diffguide eval unet --weights runs/unet --n 200',
    'diffguide eval methods --only sdg,unclip --json',
    'diffguide eval methods --only sdg --sdg-scale 400 --json',
    'diffguide eval methods --only diffusionclip --diffusionclip-lr 3e-3 --diffusionclip-inputs 8 --json',
  ],
  options: {
    n: { type: 'string', help: 'samples for generative models (default 1000)' },
    steps: { type: 'string', help: 'DDIM steps for sampling (default 50)' },
    weights: {
      type: 'string',
      help: 'folder with <model>.safetensors + config.json (default: shipped weights/<model>)',
    },
    judge: { type: 'string', help: 'folder with the judge (default: shipped weights/judge)' },
    data: { type: 'string', help: 'dataset (default emoji32)' },
    seed: {
      type: 'string',
      help: "sampling seed (default 0); methods: added to every section's protocol seed, another draw of the same protocol",
    },
    json: { type: 'boolean', help: 'print one JSON object' },
    clip: { type: 'string', help: 'noisy-clip, cond-unet, prior: the CLIP folder (default weights/clip)' },
    partner: {
      type: 'string',
      help: 'cond-unet: the prior folder; prior: the cond-unet folder (defaults: weights/prior, weights/cond-unet)',
    },
    only: {
      type: 'string',
      help: `methods: comma-separated sections, of ${METHOD_SECTIONS.join(', ')} (default all; fixed n, steps and seeds: METHODS_PROTOCOL)`,
    },
    'sdg-scale': {
      type: 'string',
      help: `methods: SDG guidance scale: ${withDefault('with x0', SDG_DEFAULTS.scale.x0)}, ${withDefault('with xt', SDG_DEFAULTS.scale.xt)}`,
    },
    'sdg-steps': { type: 'string', help: withDefault('methods: SDG sampling steps', SDG_DEFAULTS.steps) },
    'sdg-normalize-grad': {
      type: 'string',
      help: withDefault(
        "methods: SDG rescales each sample's gradient to unit RMS (true | false)",
        SDG_DEFAULTS.normalizeGrad,
      ),
    },
    'sdg-on': { type: 'string', help: withDefault(`methods: SDG guidance on ${SDG_ON.join(' | ')}`, SDG_DEFAULTS.on) },
    'unclip-decoder-scale': {
      type: 'string',
      help: withDefault('methods: unCLIP decoder guidance scale', UNCLIP_DEFAULTS.decode.decoderScale),
    },
    'unclip-prior-scale': {
      type: 'string',
      help: withDefault('methods: unCLIP prior guidance scale', UNCLIP_DEFAULTS.prior.priorScale),
    },
    'unclip-eta': {
      type: 'string',
      help: withDefault('methods: unCLIP variations DDIM eta', UNCLIP_DEFAULTS.variations.eta),
    },
    'unclip-invert': {
      type: 'string',
      help: withDefault(
        'methods: unCLIP variations from the DDIM-inverted x_T (true | false)',
        UNCLIP_DEFAULTS.variations.invert,
      ),
    },
    'diffusionclip-lr': {
      type: 'string',
      help: withDefault('methods: DiffusionCLIP fine-tune lr', DIFFUSIONCLIP_DEFAULTS.lr),
    },
    'diffusionclip-t0': {
      type: 'string',
      help: withDefault('methods: DiffusionCLIP t0 (fine-tune and edit)', DIFFUSIONCLIP_DEFAULTS.t0),
    },
    'diffusionclip-model-ratio': {
      type: 'string',
      help: withDefault('methods: DiffusionCLIP edit model ratio', DIFFUSIONCLIP_DEFAULTS.modelRatio),
    },
    'diffusionclip-clip-weight': {
      type: 'string',
      help: withDefault('methods: DiffusionCLIP CLIP loss weight', DIFFUSIONCLIP_DEFAULTS.clipWeight),
    },
    'diffusionclip-l1-weight': {
      type: 'string',
      help: withDefault('methods: DiffusionCLIP L1 loss weight', DIFFUSIONCLIP_DEFAULTS.l1Weight),
    },
    'diffusionclip-mode': {
      type: 'string',
      help: withDefault('methods: DiffusionCLIP fine-tune mode full | perstep', DIFFUSIONCLIP_DEFAULTS.mode),
    },
    'diffusionclip-iters': {
      type: 'string',
      help: withDefault('methods: DiffusionCLIP fine-tune passes', DIFFUSIONCLIP_DEFAULTS.iters),
    },
    'diffusionclip-inputs': {
      type: 'string',
      help: `methods: DiffusionCLIP held-out inputs per edit, fewer for quick comparisons (default the protocol's ${METHODS_PROTOCOL.diffusionclip.inputs})`,
    },
  },
  async run(args) {
    const model = args.positionals[0];
    if (!model || !EVALUABLE.includes(model))
      throw new Error(`eval: unknown model '${model ?? ''}'; evaluable here: ${EVALUABLE.join(', ')}`);
    const ds = loadDataset(str(args, 'data', 'emoji32'));
    // The weights measured. For the judge --weights names it (--judge is accepted too).
    const measured =
      model === 'judge'
        ? str(args, 'weights', str(args, 'judge', weightsPath('judge')))
        : str(args, 'weights', weightsPath(model));
    let report: EvalReport;
    if (model === 'methods') {
      const only =
        args.values.only === undefined
          ? undefined
          : str(args, 'only')
              .split(',')
              .map((x) => x.trim());
      const bad = only?.filter((x) => !(METHOD_SECTIONS as readonly string[]).includes(x));
      if (bad?.length)
        throw new Error(
          `eval methods: unknown section${bad.length > 1 ? 's' : ''} ${bad.join(', ')}; use ${METHOD_SECTIONS.join(', ')}`,
        );
      report = await evalMethods({
        ds,
        weights: args.values.weights as string | undefined,
        judge: args.values.judge as string | undefined,
        clip: args.values.clip as string | undefined,
        only: only as MethodSection[] | undefined,
        overrides: methodOverrides(args),
        seedShift: seed(args),
        onProgress: (m) => process.env.DIFFGUIDE_QUIET === '1' || process.stderr.write(m + '\n'),
      });
    } else if (MODEL_EVALS[model]) {
      report = await MODEL_EVALS[model]({
        ds,
        weights: args.values.weights as string | undefined,
        judge: args.values.judge as string | undefined,
        clip: args.values.clip as string | undefined,
        partner: args.values.partner as string | undefined,
        n: args.values.n ? count(args, 'n') : undefined,
        steps: args.values.steps ? count(args, 'steps') : undefined,
        seed: seed(args),
        onProgress: (m) => process.env.DIFFGUIDE_QUIET === '1' || process.stderr.write(m + '\n'),
      });
    } else if (model === 'judge') {
      const judge = await loadJudge(measured);
      report = evalJudge(judge, ds);
    } else {
      const judge = await loadJudge(str(args, 'judge', weightsPath('judge')));
      const u = await loadUNet(measured);
      let last = -1;
      report = await evalUNet(u.net, u.schedule, u.timesteps, judge, ds, {
        n: count(args, 'n', 1000),
        steps: count(args, 'steps', 50),
        seed: seed(args),
        prediction: (u.config.prediction as Parameterization | undefined) ?? 'eps',
        onProgress: (d, t) => {
          if (process.env.DIFFGUIDE_QUIET === '1' || d === last) return;
          last = d;
          process.stderr.write(`sampling ${d}/${t}\n`);
        },
      });
    }
    // The training step of the weights measured, so that `train --ship --eval-json` can check that
    // it ships the checkpoint this report measured.
    const step =
      model === 'methods' ? undefined : readConfigBeside(resolveWeights(model as ModelName, measured), model)?.step;
    if (typeof step === 'number') report.step ??= step;
    if (flag(args, 'json')) console.log(JSON.stringify(report));
    else {
      console.log(`${report.model}:`);
      for (const [k, b] of Object.entries(report.bars))
        console.log(`  ${b.pass ? 'PASS' : 'FAIL'} ${k} = ${b.value.toFixed(4)}  (goal ${b.goal})`);
    }
    return 0;
  },
};
export default evalCmd;
