/**
 * `diffguide bench grid --json`: throughput of an experiment grid run by 1, 2 and 4 BullMQ workers
 * (separate processes, each single-threaded wasm) on this machine against the same grid run by one
 * plain process, and the queue's overhead per cell:
 *   {"cell_ms", "cells", "single": {cells_per_min, wall_ms, gap_ms_per_cell}, "queue": {"1": {...}, "2": ..., "4": ...},
 *    "overhead": {"per_cell_ms", "pct_of_cell", "empty_cell_ms", "empty_pct_of_cell"}, "load": [before, after], "cpus"}
 * The grid is the `toy` experiment (seeded tanh(A x) iterations, d 128) with `iters` per cell set so a
 * cell takes about a second. Walls: the single run from its first cell's start to its last cell's end
 * (read from the cell files); a queue run from the first job enqueued to the last result stored at the
 * submitter, with the workers started and ready beforehand. `gap_ms_per_cell`: wall time not spent
 * in cells, per cell (cell times come from the cell files). The queue's overhead per cell = the
 * 1-worker gap minus the single process's gap (other load on the machine changes cell times, not
 * these gaps); `empty_cell_ms` is the per-cell wall of 1 worker on cells with no work (iters=0), the
 * queue's own cost measured directly. Needs redis-server (apt-get install -y redis-server).
 * Other load on the machine slows every figure alike; `load` reports the 1-minute load average.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import type { CellRecord, GridOptions } from '../lib/experiments/grid.js';
import { findRedisServer, startLocalRedis } from '../lib/experiments/redis-local.js';
import toy from '../experiments/toy.js';

const ROOT = packageRoot();
/** The CLI as one node process: from sources via tsx, or bin/diffguide.js when this runs from dist/. */
const NODE = import.meta.url.endsWith('.ts')
  ? [process.execPath, '--import', 'tsx', join(ROOT, 'lib/cli/run.ts')]
  : [process.execPath, join(ROOT, 'bin/diffguide.js')];
const ENV = { ...process.env, DIFFGUIDE_WASM_THREADS: '1', DIFFGUIDE_QUIET: '1' };
const say = (msg: string) => {
  if (process.env.DIFFGUIDE_QUIET !== '1') process.stderr.write(`bench grid: ${msg}\n`);
};

function cellRecords(dir: string): CellRecord[] {
  const cells = join(dir, 'cells');
  return readdirSync(cells)
    .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
    .map((f) => JSON.parse(readFileSync(join(cells, f), 'utf8')) as CellRecord);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Worker {
  stop(): Promise<void>;
  ready: Promise<void>;
}

function startWorker(url: string, queueName: string, results: string): Worker {
  const p = spawn(
    NODE[0],
    [
      ...NODE.slice(1),
      'worker',
      '--queue',
      url,
      '--queue-name',
      queueName,
      '--results',
      results,
      '--events',
      '--backend',
      'wasm',
    ],
    { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  p.stderr.on('data', (d) => (err = (err + String(d)).slice(-2000)));
  const ready = new Promise<void>((res, rej) => {
    p.stdout.on('data', (d) => {
      if (String(d).includes('"event":"ready"')) res();
    });
    p.once('exit', (c) => rej(new Error(`worker exited (${c}) before it was ready:\n${err}`)));
  });
  return {
    ready,
    stop: () =>
      new Promise<void>((res) => {
        if (p.exitCode !== null || p.signalCode !== null) return res();
        p.once('exit', () => res());
        p.kill('SIGTERM');
      }),
  };
}

export async function run(): Promise<unknown> {
  if (!findRedisServer()) throw new Error('bench grid needs redis-server (apt-get install -y redis-server)');
  const { submitGrid } = await import('../lib/experiments/queue.js');
  const iters = Number(process.env.DIFFGUIDE_BENCH_GRID_ITERS ?? 2000);
  const seeds = 8;
  const opts: GridOptions = { quick: false, params: { iters: String(iters), seeds: String(seeds) } };
  const cells = toy.cells(opts).length;
  const tmp = mkdtempSync(join(tmpdir(), 'diffguide-bench-grid-'));
  const load0 = loadavg()[0];
  const redis = await startLocalRedis();
  try {
    // one plain process
    say(`single process: ${cells} cells`);
    const single = spawnSync(
      NODE[0],
      [
        ...NODE.slice(1),
        'experiment',
        'toy',
        '--param',
        `iters=${iters}`,
        '--param',
        `seeds=${seeds}`,
        '--results',
        join(tmp, 'single'),
        '--backend',
        'wasm',
      ],
      { cwd: ROOT, env: ENV, encoding: 'utf8' },
    );
    if (single.status !== 0) throw new Error(`single-process run failed:\n${single.stderr}`);
    const recs = cellRecords(join(tmp, 'single', 'toy'));
    const starts = recs.map((r) => Date.parse(r.meta.startedAt));
    const singleWall = Math.max(...recs.map((r, i) => starts[i] + r.meta.ms)) - Math.min(...starts);
    const cellMs = median(recs.map((r) => r.meta.ms));
    const singleGap = (singleWall - recs.reduce((a, r) => a + r.meta.ms, 0)) / cells;

    const queued = async (n: number, o: GridOptions, label: string) => {
      const results = join(tmp, label);
      const ws = Array.from({ length: n }, () => startWorker(redis.url, `bench-${label}`, results));
      try {
        await Promise.all(ws.map((w) => w.ready));
        say(`${n} worker(s): ${cells} cells (${label})`);
        const r = await submitGrid(toy, o, { url: redis.url, resultsRoot: results, queueName: `bench-${label}` });
        const ms = cellRecords(join(results, 'toy')).map((x) => x.meta.ms);
        const busy = ms.reduce((a, b) => a + b, 0) / n; // compute time per worker
        return {
          workers: n,
          wall_ms: Math.round(r.wallMs),
          cells_per_min: Math.round((cells / r.wallMs) * 60000 * 10) / 10,
          median_cell_ms: median(ms),
          // wall time not spent computing cells, per cell a worker ran (exact for 1 worker)
          gap_ms_per_cell: Math.round(((r.wallMs - busy) / (cells / n)) * 10) / 10,
        };
      } finally {
        await Promise.all(ws.map((w) => w.stop()));
      }
    };
    const queue: Record<string, unknown> = {};
    for (const n of [1, 2, 4]) queue[String(n)] = await queued(n, opts, `q${n}`);
    const empty = await queued(1, { quick: false, params: { iters: '0', seeds: String(seeds) } }, 'empty');
    const q1 = queue['1'] as { gap_ms_per_cell: number; median_cell_ms: number };
    // the queue's cost per cell: time between cells with 1 worker minus the same in one plain process
    // (robust to other load, which changes cell times, not the gaps between them)
    const perCell = q1.gap_ms_per_cell - singleGap;
    return {
      grid: `toy, d 128, iters ${iters}, ${cells} cells; every process single-threaded wasm (DIFFGUIDE_WASM_THREADS=1)`,
      cpus: cpus().length,
      cells,
      cell_ms: cellMs,
      single: {
        wall_ms: singleWall,
        cells_per_min: Math.round((cells / singleWall) * 60000 * 10) / 10,
        median_cell_ms: cellMs,
        gap_ms_per_cell: Math.round(singleGap * 10) / 10,
      },
      queue,
      overhead: {
        per_cell_ms: Math.round(perCell * 10) / 10,
        pct_of_cell: Math.round((perCell / q1.median_cell_ms) * 1000) / 10,
        empty_cell_ms: Math.round((empty.wall_ms / cells) * 10) / 10,
        empty_pct_of_cell: Math.round((empty.wall_ms / cells / cellMs) * 1000) / 10,
      },
      load: [Math.round(load0 * 100) / 100, Math.round(loadavg()[0] * 100) / 100],
    };
  } finally {
    await redis.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
