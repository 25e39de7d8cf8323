/**
 * Experiment grids that survive interruption (issue 16) and split across processes (issue 15).
 *
 * An experiment is a grid of independent cells (a JSON key such as `{ t0: 0.3, seed: 1 }`). Each
 * cell's result is written atomically to its own file,
 *
 *   <results>/<name>[-quick]/cells/<cellId>.json      (written to a temp file, then linked into place)
 *
 * so a rerun skips finished cells, a killed run loses at most the cell in flight, `--shard K/N`
 * runs every N-th cell, and `merge` assembles the table from whatever cells exist. A cell file is
 * created at most once (first writer wins: `link(2)` refuses an existing name), so two processes
 * that ran the same cell (a queue retry, overlapping shards) never count it twice.
 *
 * Every cell file records the grid's settings key (a hash of `settings(opts)`, which names the
 * weights): results made with other settings or weights are refused, never mixed.
 *
 * This layer may import lib/methods and lib/metrics; they never import it. Definitions live in
 * experiments/<name>.ts and are listed in experiments/index.ts; experiments/README.md documents the API.
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { packageRoot } from '../paths.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };
/** A cell's key: flat, JSON-able; its values name the cell (`{ t0: 0.3, seed: 1 }` -> `t0=0.3_seed=1`). */
export type CellKey = { [k: string]: string | number | boolean };

/** What a run was asked for: the same options give the same cells and settings on every host. */
export interface GridOptions {
  /** The small grid the test suite runs (a couple of minutes). */
  quick: boolean;
  /** Free-form `--param k=v` values an experiment may read (sizes, counts); part of the settings. */
  params: Record<string, string>;
}

/** What `runCell` gets besides its key. */
export interface CellContext<S> {
  /** `settings(opts)` of this run. */
  settings: JsonObject;
  /** What `setup` returned (models, data), made once per process and shared by its cells. */
  shared: S;
  /**
   * Report progress inside the cell and yield to the event loop (queue workers renew their job lock
   * there). Call it at least every few seconds of work, e.g. from a sampler's per-step callback.
   */
  progress(step: number, total: number): Promise<void>;
}

/** One stored cell. */
export interface CellRecord<C extends CellKey = CellKey, R extends Json = Json> {
  experiment: string;
  cellId: string;
  cell: C;
  settingsKey: string;
  result: R;
  meta: {
    commit: string | null;
    dirty?: boolean;
    host: string;
    pid: number;
    worker?: string;
    startedAt: string;
    ms: number;
  };
}

export interface MergeInfo {
  settings: JsonObject;
  /** Ids of the grid's cells that have no result yet (the table is then partial). */
  missing: string[];
}

/**
 * An experiment definition. Only `name`, `summary`, `settings`, `cells`, `runCell` and `merge` are
 * required; `setup`/`dispose` load and free what every cell of a process shares.
 */
export interface Experiment<C extends CellKey = CellKey, R extends Json = Json, S = unknown> {
  name: string;
  /** One line for `diffguide experiment --help` and results.json. */
  summary: string;
  /** Everything the results depend on besides the cell (steps, sizes, weights and their hashes). JSON. */
  settings(opts: GridOptions): JsonObject;
  /** The grid, in table order; each key must give a distinct `cellId`. */
  cells(opts: GridOptions): C[];
  setup?(settings: JsonObject, opts: GridOptions): Promise<S>;
  dispose?(shared: S): void;
  /** Compute one cell. Deterministic given the cell and settings (seeded), so reruns agree. */
  runCell(cell: C, ctx: CellContext<S>): Promise<R>;
  /**
   * Results in grid order (missing cells left out) -> a markdown table, a JSON summary and optional
   * files (plots from lib/experiments/plot.ts `plotFiles`, sample sheets), by name relative to the
   * results folder, which the engine writes atomically beside table.md.
   */
  merge(
    results: CellRecord<C, R>[],
    info: MergeInfo,
  ): { table: string; json: Json; files?: Record<string, string | Uint8Array> };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyExperiment = Experiment<any, any, any>;

/** A cell's file name: `k=v` pairs in key order joined by `_`; characters outside [A-Za-z0-9.+-] become `-`. */
export function cellId(cell: CellKey): string {
  const parts = Object.entries(cell).map(([k, v]) => `${k}=${String(v)}`.replace(/[^A-Za-z0-9.+=-]/g, '-'));
  if (!parts.length) throw new Error('a cell key needs at least one field, e.g. { seed: 0 }');
  return parts.join('_');
}

/** JSON with object keys sorted (for hashing). */
export function stableJson(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** First 12 hex digits of sha256 of the settings (stable key order). */
export function settingsKeyOf(settings: JsonObject): string {
  return createHash('sha256').update(stableJson(settings)).digest('hex').slice(0, 12);
}

/** sha256 (first 16 hex digits) of a file, for naming weights in settings. */
export function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

let commitCache: { commit: string | null; dirty: boolean; dirtyFiles: string[] } | undefined;
/**
 * `git rev-parse HEAD` of the package checkout (null outside git), whether tracked files differ from
 * it, and which (at most 50). The committed results (`experiments/results/`) are outputs, not code:
 * a rerun that replaces them is not a dirty tree.
 */
export function gitCommit(): { commit: string | null; dirty: boolean; dirtyFiles: string[] } {
  if (commitCache) return commitCache;
  const cwd = packageRoot();
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8' });
  const commit = r.status === 0 ? r.stdout.trim() : null;
  const s = commit
    ? spawnSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)experiments/results'], {
        cwd,
        encoding: 'utf8',
      })
    : null;
  const dirtyFiles =
    s && s.status === 0
      ? s.stdout
          .split('\n')
          .filter((l) => l.trim())
          .map((l) => l.slice(3))
          .slice(0, 50)
      : [];
  commitCache = { commit, dirty: dirtyFiles.length > 0, dirtyFiles };
  return commitCache;
}

// ---------------------------------------------------------------------------------------------
// Sharding

export interface Shard {
  /** 1-based: shard `index` of `count` runs cells i with i % count == index - 1. */
  index: number;
  count: number;
}

/**
 * `--shard K/N` (1 <= K <= N), or `auto`: a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN, _STEP,
 * _COUNT) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, 0-based, and JOB_COMPLETIONS, which the
 * Job's env must set to `.spec.completions`); `auto` outside both is the whole grid (null).
 */
export function parseShard(spec: string | undefined, env: NodeJS.ProcessEnv = process.env): Shard | null {
  if (spec === undefined || spec === '') return null;
  if (spec === 'auto') {
    if (env.SLURM_ARRAY_TASK_ID !== undefined) {
      const id = Number(env.SLURM_ARRAY_TASK_ID);
      const min = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
      const step = Number(env.SLURM_ARRAY_TASK_STEP ?? 1);
      const count = Number(env.SLURM_ARRAY_TASK_COUNT);
      const k = (id - min) / step;
      if (!Number.isInteger(count) || count < 1)
        throw new Error(
          `SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is ${JSON.stringify(env.SLURM_ARRAY_TASK_COUNT)}; submit with sbatch --array=0-(N-1)`,
        );
      if (!Number.isInteger(k) || k < 0 || k >= count)
        throw new Error(
          `Slurm array task ${id} (min ${min}, step ${step}, count ${count}) is not one of a contiguous range; submit with sbatch --array=0-${count - 1}`,
        );
      return { index: k + 1, count };
    }
    if (env.JOB_COMPLETION_INDEX !== undefined) {
      const i = Number(env.JOB_COMPLETION_INDEX);
      const count = Number(env.JOB_COMPLETIONS);
      if (!Number.isInteger(count) || count < 1)
        throw new Error(
          `JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is ${JSON.stringify(env.JOB_COMPLETIONS)}; set env JOB_COMPLETIONS to the Job's .spec.completions (see experiments/cluster/k8s-indexed-job.yaml)`,
        );
      if (!Number.isInteger(i) || i < 0 || i >= count)
        throw new Error(
          `JOB_COMPLETION_INDEX ${env.JOB_COMPLETION_INDEX} is outside 0..${count - 1} (JOB_COMPLETIONS ${count})`,
        );
      return { index: i + 1, count };
    }
    return null;
  }
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count)
    throw new Error(
      `--shard ${spec}: give K/N with 1 <= K <= N (e.g. --shard 2/4), or auto (Slurm array / Kubernetes Indexed Job)`,
    );
  return { index, count };
}

/** The cells of one shard: every `count`-th cell, starting at `index - 1`. */
export function shardCells<T>(cells: T[], shard: Shard | null): T[] {
  return shard ? cells.filter((_, i) => i % shard.count === shard.index - 1) : cells;
}

// ---------------------------------------------------------------------------------------------
// The store: one folder per experiment and variant

/** The default results root: `experiments/results` under the current directory. */
export function defaultResultsRoot(): string {
  return resolve('experiments', 'results');
}

/** `<root>/<name>` for the full grid, `<root>/<name>-quick` for `--quick`. */
export function experimentDir(root: string, name: string, quick: boolean): string {
  return join(root, quick ? `${name}-quick` : name);
}

/** Cell files of one experiment folder: atomic, created at most once. */
export class CellStore {
  readonly cellsDir: string;
  constructor(readonly dir: string) {
    this.cellsDir = join(dir, 'cells');
  }

  path(id: string): string {
    return join(this.cellsDir, `${id}.json`);
  }

  has(id: string): boolean {
    return existsSync(this.path(id));
  }

  read(id: string): CellRecord | null {
    const p = this.path(id);
    if (!existsSync(p)) return null;
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as CellRecord;
    } catch (e) {
      throw new Error(
        `${p} is not a readable cell result (${(e as Error).message}); delete it and rerun to recompute that cell`,
      );
    }
  }

  /** Ids of the stored cells. */
  list(): string[] {
    if (!existsSync(this.cellsDir)) return [];
    return readdirSync(this.cellsDir)
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -5));
  }

  /**
   * Store a record: written and synced to a temp file in the same folder, then linked to its name,
   * which fails when the name exists ('exists': another writer won; the file is left as it was).
   * Filesystems without hard links fall back to rename (atomic, but the last writer wins there).
   */
  write(rec: CellRecord): 'written' | 'exists' {
    mkdirSync(this.cellsDir, { recursive: true });
    const final = this.path(rec.cellId);
    if (existsSync(final)) return 'exists';
    const tmp = join(this.cellsDir, `.${rec.cellId}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    writeFileSynced(tmp, `${JSON.stringify(rec, null, 1)}\n`);
    try {
      linkSync(tmp, final);
      return 'written';
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return 'exists';
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        if (existsSync(final)) return 'exists';
        renameSync(tmp, final);
        return 'written';
      }
      throw e;
    } finally {
      if (existsSync(tmp)) unlinkSync(tmp);
    }
  }
}

function writeFileSynced(path: string, text: string | Uint8Array): void {
  const fd = openSync(path, 'w');
  try {
    const buf = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write a whole file atomically (temp + rename; last writer wins), for table.md / results.json / grid.json. */
export function writeFileAtomic(path: string, text: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSynced(tmp, text);
  renameSync(tmp, path);
}

// ---------------------------------------------------------------------------------------------
// A prepared grid: settings, cells, store, checked against what is already stored

export interface PreparedGrid<C extends CellKey = CellKey> {
  exp: AnyExperiment;
  opts: GridOptions;
  settings: JsonObject;
  settingsKey: string;
  cells: C[];
  ids: string[];
  store: CellStore;
}

/**
 * Compute the grid's settings and cells and open its folder; refuses a folder holding another
 * settings key (other weights, steps or params): delete it or pass another --results.
 */
export function prepareGrid(exp: AnyExperiment, opts: GridOptions, resultsRoot = defaultResultsRoot()): PreparedGrid {
  const settings = exp.settings(opts);
  const settingsKey = settingsKeyOf(settings);
  const cells = exp.cells(opts) as CellKey[];
  const ids = cells.map(cellId);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) throw new Error(`experiment ${exp.name}: two cells share the id ${dup}; make the cell keys distinct`);
  const dir = experimentDir(resultsRoot, exp.name, opts.quick);
  const store = new CellStore(dir);
  const gridPath = join(dir, 'grid.json');
  if (existsSync(gridPath)) {
    const prev = JSON.parse(readFileSync(gridPath, 'utf8')) as { settingsKey?: string };
    if (prev.settingsKey !== settingsKey) {
      throw new Error(
        `${dir} holds results of experiment ${exp.name} made with other settings (key ${prev.settingsKey}, now ${settingsKey}: ` +
          `weights, steps or --param differ; see its grid.json); move or delete that folder, or pass --results DIR elsewhere`,
      );
    }
  } else {
    mkdirSync(dir, { recursive: true });
    writeFileAtomic(
      gridPath,
      `${JSON.stringify({ experiment: exp.name, quick: opts.quick, params: opts.params, settingsKey, settings, cells: ids }, null, 1)}\n`,
    );
  }
  return { exp, opts, settings, settingsKey, cells, ids, store };
}

/** A stored cell, checked to belong to this grid. */
function readChecked(g: PreparedGrid, id: string): CellRecord | null {
  const rec = g.store.read(id);
  if (rec && rec.settingsKey !== g.settingsKey) {
    throw new Error(
      `${g.store.path(id)} was made with settings key ${rec.settingsKey}, this grid's is ${g.settingsKey}; delete it (or the folder) and rerun`,
    );
  }
  return rec;
}

/** Yield to the event loop (timers, sockets: a queue worker's lock renewal). */
export function yieldNow(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Run one cell and build its record (nothing stored). */
export async function computeCell<S>(
  g: PreparedGrid,
  cell: CellKey,
  shared: S,
  opts: { worker?: string; onProgress?: (step: number, total: number) => void } = {},
): Promise<CellRecord> {
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const result = (await g.exp.runCell(cell, {
    settings: g.settings,
    shared,
    progress: async (step, total) => {
      opts.onProgress?.(step, total);
      await yieldNow();
    },
  })) as Json;
  const ms = Math.round(performance.now() - t0);
  return {
    experiment: g.exp.name,
    cellId: cellId(cell),
    cell,
    settingsKey: g.settingsKey,
    result,
    meta: {
      commit: gitCommit().commit,
      dirty: gitCommit().dirty,
      host: hostname(),
      pid: process.pid,
      ...(opts.worker ? { worker: opts.worker } : {}),
      startedAt,
      ms,
    },
  };
}

export interface GridProgress {
  stage: string;
  step: number;
  total: number;
}

export interface RunGridOptions {
  shard?: Shard | null;
  resultsRoot?: string;
  /** Cells done / cells to run (a progress bar). */
  onProgress?: (p: GridProgress) => void;
  /** One-line notes (what is skipped, where results went). */
  log?: (msg: string) => void;
}

export interface RunGridResult {
  dir: string;
  ran: string[];
  skipped: string[];
  /** Set when every cell of the grid now exists (the table was written). */
  merged: MergeResult | null;
  /** Cells of the whole grid still missing (other shards). */
  missing: string[];
}

/** Run the grid (or one shard) in this process, skipping stored cells; merge when the grid is complete. */
export async function runGrid(exp: AnyExperiment, opts: GridOptions, ro: RunGridOptions = {}): Promise<RunGridResult> {
  const log = ro.log ?? (() => {});
  const g = prepareGrid(exp, opts, ro.resultsRoot);
  const mine = shardCells(
    g.cells.map((c, i) => ({ c, id: g.ids[i] })),
    ro.shard ?? null,
  );
  const skipped: string[] = [];
  const todo: { c: CellKey; id: string }[] = [];
  for (const x of mine) {
    if (readChecked(g, x.id)) skipped.push(x.id);
    else todo.push(x);
  }
  log(
    `experiment ${exp.name}${opts.quick ? ' (quick)' : ''}: ${g.cells.length} cells` +
      (ro.shard ? `, shard ${ro.shard.index}/${ro.shard.count}: ${mine.length}` : '') +
      `; ${skipped.length} already stored, ${todo.length} to run -> ${g.store.dir}`,
  );
  const ran: string[] = [];
  if (todo.length) {
    const shared = exp.setup ? await exp.setup(g.settings, opts) : undefined;
    try {
      ro.onProgress?.({ stage: 'cells', step: 0, total: todo.length });
      let done = 0;
      for (const { c, id } of todo) {
        if (g.store.has(id))
          skipped.push(id); // another process (shard, worker) stored it meanwhile
        else {
          const rec = await computeCell(g, c, shared);
          if (g.store.write(rec) === 'written') ran.push(id);
          else skipped.push(id); // stored by another process while this one computed it; its file is kept
        }
        ro.onProgress?.({ stage: 'cells', step: ++done, total: todo.length });
      }
    } finally {
      if (shared !== undefined) exp.dispose?.(shared);
    }
  }
  const missing = g.ids.filter((id) => !g.store.has(id));
  const merged = missing.length ? null : mergePrepared(g);
  if (missing.length)
    log(
      `${missing.length} of ${g.cells.length} cells still missing (other shards); when they are stored: diffguide experiment ${exp.name}${opts.quick ? ' --quick' : ''} --merge`,
    );
  return { dir: g.store.dir, ran, skipped, merged, missing };
}

export interface MergeResult {
  dir: string;
  /** table.md's text. */
  table: string;
  missing: string[];
  /** The files merge returned (plots, sample sheets), as written in `dir`. */
  files: string[];
  results: JsonObject;
}

/** Merge whatever cells exist into table.md and results.json; the missing cells are named in both. */
export function mergeGrid(exp: AnyExperiment, opts: GridOptions, resultsRoot?: string): MergeResult {
  return mergePrepared(prepareGrid(exp, opts, resultsRoot));
}

function mergePrepared(g: PreparedGrid): MergeResult {
  const records: CellRecord[] = [];
  const missing: string[] = [];
  for (const id of g.ids) {
    const rec = readChecked(g, id);
    if (rec) records.push(rec);
    else missing.push(id);
  }
  const m = g.exp.merge(records, { settings: g.settings, missing });
  const table =
    `${m.table.trimEnd()}\n` +
    (missing.length
      ? `\n**Partial: ${missing.length} of ${g.ids.length} cells missing:** ${missing.join(', ')}\n`
      : '');
  const { commit, dirty, dirtyFiles } = gitCommit();
  const cellCommits = [...new Set(records.map((r) => r.meta.commit ?? 'unknown'))];
  const results: JsonObject = {
    experiment: g.exp.name,
    summary: g.exp.summary,
    quick: g.opts.quick,
    params: g.opts.params,
    commit,
    dirty,
    ...(dirty ? { dirtyFiles } : {}),
    cellCommits,
    settingsKey: g.settingsKey,
    settings: g.settings,
    cells: { total: g.ids.length, stored: records.length, missing },
    cellSeconds: Math.round(records.reduce((a, r) => a + r.meta.ms, 0) / 100) / 10,
    results: m.json,
  };
  const files = Object.keys(m.files ?? {});
  for (const f of files) {
    if (
      !/^[A-Za-z0-9][A-Za-z0-9._+=-]*(\/[A-Za-z0-9][A-Za-z0-9._+=-]*)*$/.test(f) ||
      /(^|\/)\.\.?(\/|$)/.test(f) ||
      ['table.md', 'results.json', 'grid.json'].includes(f) ||
      f.startsWith('cells/')
    ) {
      throw new Error(
        `experiment ${g.exp.name}: merge returned a file named ${JSON.stringify(f)}; give a relative name inside the results folder (letters, digits, . _ + = -), not table.md, results.json, grid.json or cells/`,
      );
    }
  }
  if (files.length) results.files = files;
  for (const f of files) {
    const path = join(g.store.dir, f);
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, m.files![f]);
  }
  writeFileAtomic(join(g.store.dir, 'table.md'), table);
  writeFileAtomic(join(g.store.dir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  return { dir: g.store.dir, table, missing, files, results };
}
