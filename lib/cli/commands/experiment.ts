/** `diffguide experiment <name>`: run an experiment grid (resumable, shardable, or on a BullMQ queue) and merge its table. */
import type { Command, ParsedArgs } from '../command.js';
import { note, progressBar } from '../progress.js';
import { defaultResultsRoot, mergeGrid, parseShard, runGrid, type GridOptions } from '../../experiments/grid.js';
import { EXPERIMENTS, loadExperiment } from '../../../experiments/index.js';

/** `--param k=v` values. */
export function paramsOf(args: ParsedArgs): Record<string, string> {
  const raw = args.values.param;
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : [];
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--param ${kv}: give key=value (e.g. --param n=8)`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

const cmd: Command = {
  name: 'experiment',
  summary:
    'run an experiment grid: resumable cells, --shard K/N|auto, --merge, or --queue redis://... for BullMQ workers',
  usage:
    'diffguide experiment <name> [--quick] [--shard K/N|auto] [--merge] [--results DIR] [--queue redis://host:port [--detach]] [--param k=v]',
  examples: [
    'diffguide experiment sdedit --quick',
    'diffguide experiment sdedit --shard 2/4            # every 4th cell, starting at the 2nd',
    'diffguide experiment sdedit --merge                # table from the cells stored so far',
    'diffguide experiment sdedit --queue redis://10.0.0.5:6379 --results /shared/results',
    'diffguide experiment toy --quick --param iters=50',
  ],
  options: {
    quick: {
      type: 'boolean',
      help: 'the small grid (a couple of minutes; what the tests run), stored apart as <name>-quick',
    },
    shard: {
      type: 'string',
      help: 'K/N: run every N-th cell starting at the K-th (1 <= K <= N); auto: from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX + JOB_COMPLETIONS',
    },
    merge: {
      type: 'boolean',
      help: 'only assemble table.md + results.json from the stored cells and name the missing ones',
    },
    results: {
      type: 'string',
      help: 'results root; cells go to DIR/<name>[-quick]/cells/<cellId>.json (default ./experiments/results)',
    },
    queue: {
      type: 'string',
      help: 'redis://host:port[/db]: enqueue the missing cells on BullMQ for `diffguide worker`s and wait for them',
    },
    'queue-name': { type: 'string', help: 'BullMQ queue name (default diffguide-grid)' },
    detach: { type: 'boolean', help: 'with --queue: return after enqueueing (merge later with --merge)' },
    param: {
      type: 'string',
      multiple: true,
      help: 'experiment parameter key=value (repeatable; part of the settings key)',
    },
  },
  async run(args) {
    const name = args.positionals[0];
    if (!name) {
      console.log(`experiments: ${Object.keys(EXPERIMENTS).join(', ')} (or a path to a module default-exporting one)`);
      for (const [n, load] of Object.entries(EXPERIMENTS)) console.log(`  ${n.padEnd(10)} ${(await load()).summary}`);
      return 2;
    }
    const exp = await loadExperiment(name);
    const opts: GridOptions = { quick: args.values.quick === true, params: paramsOf(args) };
    const resultsRoot = typeof args.values.results === 'string' ? args.values.results : defaultResultsRoot();
    const bar = progressBar(`experiment ${exp.name}`);
    const print = (table: string, missing: string[], dir: string) => {
      console.log(table.trimEnd());
      note(
        missing.length
          ? `${missing.length} cell(s) missing; table.md and results.json in ${dir} are partial`
          : `table.md and results.json written to ${dir}`,
      );
    };
    if (args.values.merge === true) {
      const m = mergeGrid(exp, opts, resultsRoot);
      print(m.table, m.missing, m.dir);
      return 0;
    }
    if (typeof args.values.queue === 'string') {
      if (args.values.shard !== undefined)
        throw new Error(
          '--queue and --shard do not combine: the queue hands every missing cell to whichever worker is free',
        );
      const { submitGrid } = await import('../../experiments/queue.js');
      const r = await submitGrid(exp, opts, {
        url: args.values.queue,
        queueName: typeof args.values['queue-name'] === 'string' ? args.values['queue-name'] : undefined,
        resultsRoot,
        spec: name,
        detach: args.values.detach === true,
        onProgress: bar,
        log: note,
      });
      if (r.merged) print(r.merged.table, r.merged.missing, r.merged.dir);
      return 0;
    }
    const shard = parseShard(typeof args.values.shard === 'string' ? args.values.shard : undefined);
    if (args.values.shard === 'auto' && !shard)
      note('--shard auto: no Slurm array or Kubernetes Indexed Job found in the environment; running the whole grid');
    const r = await runGrid(exp, opts, { shard, resultsRoot, onProgress: bar, log: note });
    if (r.merged) print(r.merged.table, r.merged.missing, r.merged.dir);
    return 0;
  },
};
export default cmd;
