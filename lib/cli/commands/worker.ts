/** `diffguide worker --queue redis://...`: take experiment cells from a BullMQ queue, run them, store each result. */
import type { Command } from '../command.js';
import { note } from '../progress.js';
import { defaultResultsRoot } from '../../experiments/grid.js';
import { loadExperiment } from '../../../experiments/index.js';

const cmd: Command = {
  name: 'worker',
  summary: 'run experiment cells from a BullMQ queue (diffguide experiment NAME --queue ...) until stopped',
  usage: 'diffguide worker --queue redis://host:port [--results DIR] [--lock-ms MS] [--idle-exit S] [--events]',
  examples: [
    'diffguide worker --queue redis://10.0.0.5:6379 --results /shared/results',
    'diffguide worker --queue redis://127.0.0.1:6379 --idle-exit 60',
  ],
  options: {
    queue: { type: 'string', help: 'redis://host:port[/db] of the queue (required)' },
    'queue-name': { type: 'string', help: 'BullMQ queue name (default diffguide-grid)' },
    results: {
      type: 'string',
      help: 'results root every host can reach, as for `experiment --results` (default ./experiments/results)',
    },
    'lock-ms': {
      type: 'string',
      help: "job lock in ms (default 30000): a killed worker's cell is retried after about 1-2x this; must exceed a cell's longest synchronous stretch",
    },
    'idle-exit': {
      type: 'string',
      help: 'exit after this many seconds with no cell to run (default: run until SIGINT/SIGTERM)',
    },
    id: { type: 'string', help: 'worker name in logs and cell records (default host:pid)' },
    events: {
      type: 'boolean',
      help: 'print one JSON line per event (ready, start, stored, duplicate, failed) on stdout',
    },
  },
  async run(args) {
    const url = args.values.queue;
    if (typeof url !== 'string') throw new Error('give the queue: diffguide worker --queue redis://host:port');
    const { runWorker } = await import('../../experiments/queue.js');
    const num = (k: string) => {
      const v = args.values[k];
      if (v === undefined) return undefined;
      const n = Number(v);
      if (typeof v !== 'string' || !(n > 0))
        throw new Error(`--${k} must be a positive number, got ${JSON.stringify(v)}`);
      return n;
    };
    const idle = num('idle-exit');
    const events = args.values.events === true;
    const r = await runWorker({
      url,
      queueName: typeof args.values['queue-name'] === 'string' ? args.values['queue-name'] : undefined,
      resultsRoot: typeof args.values.results === 'string' ? args.values.results : defaultResultsRoot(),
      lockMs: num('lock-ms'),
      idleExitMs: idle === undefined ? undefined : idle * 1000,
      id: typeof args.values.id === 'string' ? args.values.id : undefined,
      load: loadExperiment,
      log: note,
      onEvent: events
        ? (e) => process.stdout.write(`${JSON.stringify({ ...e, pid: process.pid, t: Date.now() })}\n`)
        : undefined,
    });
    note(`worker: stopped after ${r.ran} cell(s)`);
    return 0;
  },
};
export default cmd;
