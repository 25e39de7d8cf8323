/**
 * Grids across machines on BullMQ over Redis (issue 15). The submitting side enqueues the grid's
 * missing cells (one job per cell, job id = experiment + settings key + cell id, so resubmitting never
 * duplicates a queued cell); workers on any number of hosts take cells, run them, store each result in
 * their results folder (a folder every host mounts: NFS, a cluster filesystem, a bind mount) and
 * return it as the job's value, which the submitter also stores in its own folder, so hosts
 * without a shared folder work too (the results then travel through Redis; `removeOnComplete` keeps them).
 *
 * A worker killed mid-cell (SIGKILL, a lost host) stops renewing its job's lock; after `lockMs` the
 * job counts as stalled and a live worker's stalled check (every `lockMs`) puts it back in the queue
 * (at most `maxStalled` times). A cell is never counted twice: results are files keyed by cell id,
 * created at most once (CellStore.write), and a worker given a cell that is already stored returns
 * the stored record without running it. A cell's synchronous stretches (one network forward) must
 * be shorter than `lockMs`: `ctx.progress` yields to the event loop, where the lock is renewed.
 *
 * BullMQ and ioredis are optional dependencies, imported here lazily: importing diffguide or running
 * an experiment locally needs neither, nor a Redis server.
 */
import { hostname } from 'node:os';
import type { Job, Queue as BullQueue, QueueEvents as BullQueueEvents, Worker as BullWorker } from 'bullmq';
import {
  computeCell,
  prepareGrid,
  type AnyExperiment,
  type CellKey,
  type CellRecord,
  type GridOptions,
  type GridProgress,
  type MergeResult,
  type PreparedGrid,
} from './grid.js';
import { mergeGrid } from './grid.js';

type BullMQ = typeof import('bullmq');

async function loadBullMQ(): Promise<BullMQ> {
  try {
    const m = (await import('bullmq')) as BullMQ & { default?: BullMQ };
    return m.Queue ? m : m.default!;
  } catch (e) {
    throw new Error(
      `--queue needs the optional npm packages bullmq and ioredis (npm install bullmq ioredis); running experiments without --queue needs neither (${(e as Error).message.split('\n')[0]})`,
    );
  }
}

/** BullMQ/ioredis connection options from `redis://[user:password@]host:port[/db]` (rediss:// for TLS). */
export function redisConnection(url: string): {
  host: string;
  port: number;
  db?: number;
  username?: string;
  password?: string;
  tls?: object;
  maxRetriesPerRequest: null;
} {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue ${url}: give a Redis URL such as redis://127.0.0.1:6379`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`--queue ${url}: the scheme must be redis:// or rediss://`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : undefined;
  if (db !== undefined && !Number.isInteger(db))
    throw new Error(`--queue ${url}: the path must be a database number (redis://host:port/0)`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(db !== undefined ? { db } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

/** What a job carries: enough for any worker to rebuild the grid and check it is the same one. */
export interface CellJobData {
  /** Name (or module path) of the experiment, resolved by the worker. */
  experiment: string;
  quick: boolean;
  params: Record<string, string>;
  settingsKey: string;
  cellId: string;
  cell: CellKey;
}

export const DEFAULT_QUEUE_NAME = 'diffguide-grid';
/** BullMQ's default lock (30 s); a killed worker's cell is retried within about twice this. */
export const DEFAULT_LOCK_MS = 30000;

export function jobIdOf(d: { experiment: string; quick: boolean; settingsKey: string; cellId: string }): string {
  // BullMQ ids may not contain ':'; '.' and '=' are fine
  return `${d.experiment.replace(/[^A-Za-z0-9_.-]/g, '-')}${d.quick ? '-quick' : ''}.${d.settingsKey}.${d.cellId}`;
}

export interface SubmitOptions {
  url: string;
  queueName?: string;
  resultsRoot?: string;
  /** Name or module path workers resolve (default exp.name). */
  spec?: string;
  /** Attempts per cell when runCell throws (default 2). */
  attempts?: number;
  /** Return after enqueueing (merge later with --merge). */
  detach?: boolean;
  onProgress?: (p: GridProgress) => void;
  log?: (msg: string) => void;
}

export interface SubmitResult {
  dir: string;
  enqueued: number;
  alreadyStored: number;
  merged: MergeResult | null;
  /** Wall time from the first job enqueued to the last result stored, ms. */
  wallMs: number;
}

function parseReturn(v: unknown): CellRecord | null {
  if (v === undefined || v === null || v === '') return null;
  const r = typeof v === 'string' ? (JSON.parse(v) as unknown) : v;
  return r && typeof r === 'object' && 'cellId' in r ? (r as CellRecord) : null;
}

/**
 * Enqueue the grid's missing cells and (unless detached) wait: one progress bar for the whole grid,
 * the table merged when the last cell lands. Cells whose jobs already completed earlier are taken
 * from Redis; failed ones are retried.
 */
export async function submitGrid(exp: AnyExperiment, opts: GridOptions, so: SubmitOptions): Promise<SubmitResult> {
  const log = so.log ?? (() => {});
  const g = prepareGrid(exp, opts, so.resultsRoot);
  const { Queue, QueueEvents } = await loadBullMQ();
  const connection = redisConnection(so.url);
  const name = so.queueName ?? DEFAULT_QUEUE_NAME;
  const queue: BullQueue = new Queue(name, { connection });
  let events: BullQueueEvents | undefined;
  const pending = new Map<string, string>(); // jobId -> cellId
  let wake = () => {};
  const nap = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  const harvest = (rec: CellRecord | null) => {
    if (!rec || rec.settingsKey !== g.settingsKey || !g.ids.includes(rec.cellId)) return;
    g.store.write(rec);
  };
  try {
    await queue.waitUntilReady();
    if (!so.detach) {
      events = new QueueEvents(name, { connection });
      await events.waitUntilReady();
      events.on('completed', ({ jobId, returnvalue }) => {
        if (pending.has(jobId)) harvest(parseReturn(returnvalue));
        wake();
      });
    }
    const missing = g.ids.map((id, i) => ({ id, cell: g.cells[i] })).filter((x) => !g.store.has(x.id));
    const toAdd: {
      name: string;
      data: CellJobData;
      opts: {
        jobId: string;
        attempts: number;
        backoff: { type: 'fixed'; delay: number };
        removeOnComplete: { age: number };
        removeOnFail: { age: number };
      };
    }[] = [];
    for (const { id, cell } of missing) {
      const data: CellJobData = {
        experiment: so.spec ?? exp.name,
        quick: opts.quick,
        params: opts.params,
        settingsKey: g.settingsKey,
        cellId: id,
        cell,
      };
      const jobId = jobIdOf({ ...data, experiment: exp.name });
      pending.set(jobId, id);
      const old = await queue.getJob(jobId);
      if (old) {
        const state = await old.getState();
        if (state === 'completed') {
          harvest(parseReturn(old.returnvalue));
          if (g.store.has(id)) continue;
          await old.remove(); // completed, but its result is gone: run it again
        } else if (state === 'failed') {
          await old.retry('failed');
          continue;
        } else if (state !== 'unknown') continue; // waiting, active, delayed: already on its way
      }
      toAdd.push({
        name: exp.name,
        data,
        opts: {
          jobId,
          attempts: so.attempts ?? 2,
          backoff: { type: 'fixed', delay: 1000 },
          removeOnComplete: { age: 7 * 86400 },
          removeOnFail: { age: 7 * 86400 },
        },
      });
    }
    const t0 = performance.now();
    if (toAdd.length) await queue.addBulk(toAdd);
    log(
      `experiment ${exp.name}${opts.quick ? ' (quick)' : ''}: ${g.ids.length} cells, ${g.ids.length - missing.length} already stored, ${missing.length} queued on ${so.url} (queue ${name}) -> ${g.store.dir}`,
    );
    if (so.detach || !missing.length) {
      const merged = missing.length ? null : mergeGrid(exp, opts, so.resultsRoot);
      if (so.detach && missing.length)
        log(
          `start workers: diffguide worker --queue ${so.url}${so.resultsRoot ? ` --results ${so.resultsRoot}` : ''}; then: diffguide experiment ${exp.name}${opts.quick ? ' --quick' : ''} --merge`,
        );
      return {
        dir: g.store.dir,
        enqueued: toAdd.length,
        alreadyStored: g.ids.length - missing.length,
        merged,
        wallMs: 0,
      };
    }
    const total = missing.length;
    so.onProgress?.({ stage: 'cells', step: 0, total });
    let lastDone = -1;
    let lastCheck = 0;
    let lastChange = performance.now();
    let warned = 0;
    for (;;) {
      const left = missing.filter((x) => !g.store.has(x.id));
      const done = total - left.length;
      if (done !== lastDone) {
        so.onProgress?.({ stage: 'cells', step: done, total });
        lastDone = done;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > 60000 * (warned + 1)) {
        warned++;
        const n = await queue.getWorkersCount();
        log(
          `no cell stored for ${warned} min; ${n} worker connection(s) on queue ${name}${n ? '' : `: start workers with diffguide worker --queue ${so.url}${name !== DEFAULT_QUEUE_NAME ? ` --queue-name ${name}` : ''}`}`,
        );
      }
      if (!left.length) break;
      if (performance.now() - lastCheck > 5000) {
        // a result may have landed while no event reached us (reconnects); and cells out of attempts end the wait
        lastCheck = performance.now();
        const failed: string[] = [];
        for (const x of left) {
          const job = await queue.getJob(
            jobIdOf({ experiment: exp.name, quick: opts.quick, settingsKey: g.settingsKey, cellId: x.id }),
          );
          if (!job) continue;
          const state = await job.getState();
          if (state === 'completed') harvest(parseReturn(job.returnvalue));
          else if (state === 'failed') failed.push(`${x.id}: ${job.failedReason}`);
        }
        if (failed.length)
          throw new Error(
            `experiment ${exp.name}: ${failed.length} cell(s) failed on the workers after all attempts:\n  ${failed.join('\n  ')}\nfix the cause and resubmit (failed cells are retried; stored ones are kept)`,
          );
      }
      await nap(500); // or until a 'completed' event
    }
    const wallMs = performance.now() - t0;
    const merged = mergeGrid(exp, opts, so.resultsRoot);
    return { dir: g.store.dir, enqueued: toAdd.length, alreadyStored: g.ids.length - missing.length, merged, wallMs };
  } finally {
    await events?.close();
    await queue.close();
  }
}

export interface WorkerOptions {
  url: string;
  queueName?: string;
  resultsRoot?: string;
  /** Job lock (ms): a killed worker's cell is retried after about this, plus up to one stalled-check interval (the same). */
  lockMs?: number;
  /** Times a cell may stall (its worker died) before it fails; default 3. */
  maxStalled?: number;
  /** A name in the logs and cell records (default host:pid). */
  id?: string;
  /** Resolve a job's experiment name or path. */
  load: (spec: string) => Promise<AnyExperiment>;
  log?: (msg: string) => void;
  /** Machine-readable events: start / stored / duplicate / failed (tests and bench count them). */
  onEvent?: (e: {
    event: 'ready' | 'start' | 'stored' | 'duplicate' | 'failed';
    cellId?: string;
    ms?: number;
    error?: string;
  }) => void;
  /** Stop after this many idle ms with nothing to do (default: run until signalled). */
  idleExitMs?: number;
}

/**
 * Take cells from the queue until SIGINT/SIGTERM (the cell in flight is finished first; a second
 * signal quits) or `idleExitMs` without work. Models are set up once per (experiment, settings).
 */
export async function runWorker(wo: WorkerOptions): Promise<{ ran: number }> {
  const log = wo.log ?? (() => {});
  const emit = wo.onEvent ?? (() => {});
  const { Worker } = await loadBullMQ();
  const id = wo.id ?? `${hostname()}:${process.pid}`;
  const lockMs = wo.lockMs ?? DEFAULT_LOCK_MS;
  const grids = new Map<string, { g: PreparedGrid; shared: unknown }>();
  let ran = 0;
  let lastActivity = performance.now();
  let busy = false;
  const gridOf = async (d: CellJobData) => {
    const key = `${d.experiment}|${d.quick}|${d.settingsKey}`;
    let e = grids.get(key);
    if (!e) {
      const exp = await wo.load(d.experiment);
      const opts: GridOptions = { quick: d.quick, params: d.params };
      const g = prepareGrid(exp, opts, wo.resultsRoot);
      if (g.settingsKey !== d.settingsKey) {
        throw new Error(
          `worker ${id}: experiment ${exp.name} here has settings key ${g.settingsKey}, the submitter's is ${d.settingsKey}: code, weights or data differ between hosts (compare grid.json); run the same commit and weights everywhere`,
        );
      }
      const shared = exp.setup ? await exp.setup(g.settings, opts) : undefined;
      e = { g, shared };
      grids.set(key, e);
    }
    return e;
  };
  const processor = async (job: Job<CellJobData>): Promise<CellRecord> => {
    busy = true;
    try {
      const d = job.data;
      const { g, shared } = await gridOf(d);
      const stored = g.store.read(d.cellId);
      if (stored && stored.settingsKey === d.settingsKey) {
        emit({ event: 'duplicate', cellId: d.cellId });
        return stored; // done before (by another worker, or by an attempt that died after storing)
      }
      emit({ event: 'start', cellId: d.cellId });
      const rec = await computeCell(g, d.cell, shared, { worker: id });
      if (g.store.write(rec) === 'exists') {
        emit({ event: 'duplicate', cellId: d.cellId });
        return g.store.read(d.cellId)!;
      }
      ran++;
      emit({ event: 'stored', cellId: d.cellId, ms: rec.meta.ms });
      log(`worker ${id}: ${g.exp.name} ${d.cellId} stored (${(rec.meta.ms / 1000).toFixed(1)} s; ${ran} this worker)`);
      return rec;
    } finally {
      busy = false;
      lastActivity = performance.now();
    }
  };
  const worker: BullWorker<CellJobData, CellRecord> = new Worker<CellJobData, CellRecord>(
    wo.queueName ?? DEFAULT_QUEUE_NAME,
    processor,
    {
      connection: redisConnection(wo.url),
      concurrency: 1,
      lockDuration: lockMs,
      stalledInterval: lockMs,
      maxStalledCount: wo.maxStalled ?? 3,
      autorun: false,
    },
  );
  worker.on('failed', (job, err) => {
    emit({ event: 'failed', cellId: job?.data.cellId, error: err.message });
    log(`worker ${id}: ${job?.data.cellId ?? '?'} failed: ${err.message}`);
  });
  worker.on('error', (err) => log(`worker ${id}: ${err.message}`));
  let stopping = false;
  const stop = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    stopping = true;
    log(`worker ${id}: ${sig}: finishing the cell in flight, then stopping (again to quit now)`);
    void worker.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const running = worker.run();
  await worker.waitUntilReady();
  log(`worker ${id}: ready on ${wo.url} (queue ${wo.queueName ?? DEFAULT_QUEUE_NAME}, lock ${lockMs} ms)`);
  emit({ event: 'ready' });
  let idleTimer: NodeJS.Timeout | undefined;
  if (wo.idleExitMs) {
    idleTimer = setInterval(() => {
      if (!busy && performance.now() - lastActivity > wo.idleExitMs!) void worker.close();
    }, 250);
  }
  try {
    await running;
  } finally {
    if (idleTimer) clearInterval(idleTimer);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    for (const { g, shared } of grids.values()) if (shared !== undefined) g.exp.dispose?.(shared);
  }
  return { ran };
}
