/** `diffguide eval <model> [--n N] [--json]`: re-measure a model's quality bars with the judge. */
import type { Command } from '../command.js';
import { count, flag, seed, str } from '../command.js';
import { loadDataset } from '../../data/index.js';
import { weightsPath } from '../../paths.js';
import { evalJudge, evalUNet, loadJudge, loadUNet, type EvalReport } from '../../eval/unet.js';
import type { Parameterization } from '../../../samplers/model.js';
import { MODEL_EVALS } from '../../eval/registry.js';
import { evalMethods, METHOD_SECTIONS, type MethodSection } from '../../eval/methods.js';
import { readConfigBeside, resolveWeights, type ModelName } from '../../models/load.js';

const EVALUABLE = ['judge', 'unet', ...Object.keys(MODEL_EVALS), 'methods'];

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
    seed: { type: 'string', help: 'sampling seed (default 0)' },
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
