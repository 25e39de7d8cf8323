/**
 * The experiment grid engine (lib/experiments/grid.ts): atomic per-cell files, resume after a kill,
 * --shard K/N and auto (Slurm arrays, Kubernetes Indexed Jobs), --merge, and one real experiment
 * (sdedit --quick) end to end.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CellStore,
  cellId,
  mergeGrid,
  parseShard,
  runGrid,
  shardCells,
  type CellRecord,
} from '../lib/experiments/grid.js';
import { packageRoot } from '../lib/paths.js';
import { shippedModels } from '../lib/methods/index.js';
import toy from '../experiments/toy.js';
import sdeditExp from '../experiments/sdedit.js';

const ROOT = packageRoot();
/** The CLI from sources as one node process (a SIGKILL then kills the real process, not a wrapper). */
const CLI = [process.execPath, '--import', 'tsx', join(ROOT, 'lib/cli/run.ts')];
const childEnv = (extra: Record<string, string> = {}) => ({
  ...process.env,
  DIFFGUIDE_WASM_THREADS: '1',
  DIFFGUIDE_QUIET: '',
  ...extra,
});
function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(CLI[0], [...CLI.slice(1), ...args, '--backend', 'wasm'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: childEnv(env),
  });
  if (r.status !== 0) throw new Error(`diffguide ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
}
const cellFiles = (dir: string) =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
        .sort()
    : [];

describe('experiment grids', function () {
  this.timeout(300000);
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'diffguide-grid-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('cellId names a cell by its key; --shard K/N and auto (Slurm, Kubernetes) parse, and bad ones are named', () => {
    expect(cellId({ t0: 0.3, seed: 1 })).to.equal('t0=0.3_seed=1');
    expect(cellId({ name: 'a/b c' })).to.equal('name=a-b-c');
    expect(parseShard('2/4')).to.deep.equal({ index: 2, count: 4 });
    expect(parseShard(undefined)).to.equal(null);
    expect(() => parseShard('0/4')).to.throw(/1 <= K <= N/);
    expect(() => parseShard('5/4')).to.throw(/1 <= K <= N/);
    expect(() => parseShard('x')).to.throw(/K\/N/);
    expect(
      parseShard('auto', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_COUNT: '8' }),
    ).to.deep.equal({ index: 4, count: 8 });
    expect(
      parseShard('auto', {
        SLURM_ARRAY_TASK_ID: '6',
        SLURM_ARRAY_TASK_MIN: '2',
        SLURM_ARRAY_TASK_STEP: '2',
        SLURM_ARRAY_TASK_COUNT: '3',
      }),
    ).to.deep.equal({ index: 3, count: 3 });
    expect(() => parseShard('auto', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '0' })).to.throw(
      /SLURM_ARRAY_TASK_COUNT/,
    );
    expect(parseShard('auto', { JOB_COMPLETION_INDEX: '0', JOB_COMPLETIONS: '5' })).to.deep.equal({
      index: 1,
      count: 5,
    });
    expect(() => parseShard('auto', { JOB_COMPLETION_INDEX: '0' })).to.throw(/JOB_COMPLETIONS/);
    expect(parseShard('auto', {})).to.equal(null);
    // the shards of a grid cover every cell exactly once
    const cells = Array.from({ length: 11 }, (_, i) => i);
    const parts = [1, 2, 3].map((k) => shardCells(cells, { index: k, count: 3 }));
    expect(parts[1]).to.deep.equal([1, 4, 7, 10]);
    expect(parts.flat().sort((a, b) => a - b)).to.deep.equal(cells);
  });

  it('a cell file is created once: a second writer is refused and the first file kept', () => {
    const store = new CellStore(join(tmp, 'store'));
    const rec = (v: number): CellRecord => ({
      experiment: 'x',
      cellId: 'seed=0',
      cell: { seed: 0 },
      settingsKey: 'k',
      result: v,
      meta: { commit: null, host: 'h', pid: 1, startedAt: '', ms: 0 },
    });
    expect(store.write(rec(1))).to.equal('written');
    expect(store.write(rec(2))).to.equal('exists');
    expect(store.read('seed=0')!.result).to.equal(1);
    expect(readdirSync(store.cellsDir)).to.deep.equal(['seed=0.json']); // no temp files left
  });

  it('a rerun skips stored cells without rewriting them; --shard splits the grid; --merge names the missing cells; other settings are refused', async () => {
    const opts = { quick: true, params: {} };
    const whole = await runGrid(toy, opts, { resultsRoot: join(tmp, 'whole') });
    expect(whole.ran).to.have.length(6);
    expect(whole.merged!.missing).to.deep.equal([]);
    const cellsDir = join(whole.dir, 'cells');
    const before = Object.fromEntries(cellFiles(cellsDir).map((f) => [f, statSync(join(cellsDir, f)).mtimeMs]));
    const again = await runGrid(toy, opts, { resultsRoot: join(tmp, 'whole') });
    expect(again.ran).to.deep.equal([]);
    expect(again.skipped).to.have.length(6);
    for (const f of cellFiles(cellsDir)) expect(statSync(join(cellsDir, f)).mtimeMs).to.equal(before[f]);
    expect(again.merged!.table).to.equal(whole.merged!.table);

    // three shards, one after another: only the one that completes the grid merges, with the same table
    const root = join(tmp, 'sharded');
    const s1 = await runGrid(toy, opts, { resultsRoot: root, shard: { index: 1, count: 3 } });
    expect(s1.ran).to.deep.equal(['gain=1.1_seed=0', 'gain=1.5_seed=1']);
    expect(s1.merged).to.equal(null);
    expect(s1.missing).to.have.length(4);
    const partial = mergeGrid(toy, opts, root);
    expect(partial.missing).to.have.length(4);
    expect(partial.table).to.match(/Partial: 4 of 6 cells missing:.*gain=1.1_seed=1/);
    expect(JSON.parse(readFileSync(join(root, 'toy-quick', 'results.json'), 'utf8')).cells.missing).to.have.length(4);
    await runGrid(toy, opts, { resultsRoot: root, shard: { index: 2, count: 3 } });
    const s3 = await runGrid(toy, opts, { resultsRoot: root, shard: { index: 3, count: 3 } });
    expect(s3.merged!.table).to.equal(whole.merged!.table);

    // results.json names the commit, the settings and the cells
    const res = JSON.parse(readFileSync(join(root, 'toy-quick', 'results.json'), 'utf8'));
    expect(res.commit).to.match(/^[0-9a-f]{40}$/);
    expect(res.settings).to.deep.equal({ d: 128, iters: 20, seeds: 2 });
    expect(res.cells).to.deep.equal({ total: 6, stored: 6, missing: [] });

    // a folder holding another grid's settings is refused, not mixed
    let err: Error | undefined;
    await runGrid(toy, { quick: true, params: { iters: '21' } }, { resultsRoot: root }).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/other settings .*--results DIR/);
  });

  it('a run killed mid-grid (SIGKILL) resumes: finished cells are not rewritten, the rest are run, the table equals an uninterrupted run', async () => {
    const root = join(tmp, 'killed');
    const args = ['experiment', 'toy', '--param', 'iters=150', '--results', root];
    const cellsDir = join(root, 'toy', 'cells');
    const proc = spawn(CLI[0], [...CLI.slice(1), ...args, '--backend', 'wasm'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: childEnv(),
    });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += String(d)));
    const exited = new Promise((r) => proc.once('exit', r));
    // kill once 3 of its 12 cells are stored
    for (let i = 0; cellFiles(cellsDir).length < 3; i++) {
      if (proc.exitCode !== null) throw new Error(`the run ended before it could be killed:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    proc.kill('SIGKILL');
    await exited;
    const done = cellFiles(cellsDir);
    expect(done.length, 'the run should have been killed mid-grid').to.be.within(3, 11);
    const stamp = Object.fromEntries(
      done.map((f) => [
        f,
        {
          ino: statSync(join(cellsDir, f)).ino,
          mtime: statSync(join(cellsDir, f)).mtimeMs,
          text: readFileSync(join(cellsDir, f), 'utf8'),
        },
      ]),
    );
    expect(existsSync(join(root, 'toy', 'table.md'))).to.equal(false);

    const r = cli(args);
    expect(r.stderr).to.contain(`${done.length} already stored, ${12 - done.length} to run`);
    expect(cellFiles(cellsDir)).to.have.length(12);
    for (const f of done) {
      const st = statSync(join(cellsDir, f));
      expect({ ino: st.ino, mtime: st.mtimeMs, text: readFileSync(join(cellsDir, f), 'utf8') }).to.deep.equal(stamp[f]);
    }
    const straight = await runGrid(
      toy,
      { quick: false, params: { iters: '150' } },
      { resultsRoot: join(tmp, 'straight') },
    );
    expect(readFileSync(join(root, 'toy', 'table.md'), 'utf8')).to.equal(straight.merged!.table);
    expect(r.stdout).to.contain(straight.merged!.table.trimEnd());
  });

  it('--shard auto takes its shard from a Slurm array task or a Kubernetes Indexed Job; the example files agree with it; the CLI --merge reports what is missing', () => {
    const root = join(tmp, 'cluster');
    const base = ['experiment', 'toy', '--quick', '--shard', 'auto', '--results', root];
    const cellsDir = join(root, 'toy-quick', 'cells');
    const ids = toy.cells({ quick: true, params: {} }).map(cellId);
    // Slurm: task 1 of an array 0-2 is shard 2/3
    cli(base, {
      SLURM_ARRAY_TASK_ID: '1',
      SLURM_ARRAY_TASK_MIN: '0',
      SLURM_ARRAY_TASK_MAX: '2',
      SLURM_ARRAY_TASK_COUNT: '3',
    });
    expect(cellFiles(cellsDir)).to.deep.equal(
      shardCells(ids, { index: 2, count: 3 })
        .map((id) => `${id}.json`)
        .sort(),
    );
    const m = cli(['experiment', 'toy', '--quick', '--merge', '--results', root]);
    expect(m.stdout).to.contain('Partial: 4 of 6 cells missing');
    expect(m.stderr).to.contain('4 cell(s) missing');
    // Kubernetes: completion index 0 and 2 of 3 complete the grid; the last one merges
    cli(base, { JOB_COMPLETION_INDEX: '0', JOB_COMPLETIONS: '3' });
    const last = cli(base, { JOB_COMPLETION_INDEX: '2', JOB_COMPLETIONS: '3' });
    expect(cellFiles(cellsDir)).to.have.length(6);
    expect(last.stdout).to.contain('| gain | seeds |');
    expect(readFileSync(join(root, 'toy-quick', 'table.md'), 'utf8')).not.to.contain('Partial');

    const sbatch = readFileSync(join(ROOT, 'experiments/cluster/slurm.sbatch'), 'utf8');
    expect(sbatch).to.match(/^#SBATCH --array=0-\d+$/m);
    expect(sbatch).to.match(/diffguide experiment .*--shard auto/);
    const yaml = readFileSync(join(ROOT, 'experiments/cluster/k8s-indexed-job.yaml'), 'utf8');
    expect(yaml).to.match(/completionMode: Indexed/);
    const completions = /^\s*completions: (\d+)$/m.exec(yaml)?.[1];
    expect(yaml).to.match(new RegExp(`name: JOB_COMPLETIONS\\s+value: "${completions}"`));
    expect(yaml).to.match(/"--shard", "auto"/);
  });

  it('experiment and worker --help show usage, each option and an example', () => {
    for (const c of ['experiment', 'worker']) {
      const r = cli([c, '--help']);
      expect(r.stdout).to.match(new RegExp(`Usage: diffguide ${c}`));
      expect(r.stdout).to.match(/Examples:\n\s+diffguide /);
      const rows = r.stdout.split('\n').filter((l) => /^\s+(-\w, )?--[a-z]/.test(l));
      expect(rows.length, c).to.be.greaterThan(4);
      for (const l of rows) expect(l, `${c}: ${l}`).to.match(/^\s+(-\w, )?--[\w-]+( VALUE)?\s{2,}\S/);
    }
  });

  it('sdedit --quick end to end: one cell file per (t0, seed), the table, and L2 to the guide growing with t0', async function () {
    const have = shippedModels();
    if (!have.unet || !have.judge) {
      console.log('      (skipped: shipped unet or judge missing; make them with diffguide train unet / judge)');
      this.skip();
    }
    const r = await runGrid(sdeditExp, { quick: true, params: {} }, { resultsRoot: join(tmp, 'sdedit') });
    expect(r.ran).to.deep.equal([
      't0=0_seed=0',
      't0=0.3_seed=0',
      't0=0.6_seed=0',
      't0=0.9_seed=0',
      'composite=paste_t0=0_seed=0',
      'composite=masked_t0=0.5_seed=0',
      'composite=full_t0=0.5_seed=0',
    ]);
    const res = r.merged!.results as {
      settings: { weights: { unet: { sha256: string } } };
      results: { rows: { t0: number; l2Guide: number; judgeConfidence: number }[] };
    };
    expect(res.settings.weights.unet.sha256).to.match(/^[0-9a-f]{16}$/);
    const l2 = res.results.rows.map((x) => x.l2Guide);
    console.log(
      `      L2 to guide by t0 (0, 0.3, 0.6, 0.9): ${l2.map((v) => v.toFixed(3)).join(', ')}; judge confidence ${res.results.rows.map((x) => x.judgeConfidence.toFixed(3)).join(', ')}`,
    );
    for (let i = 1; i < l2.length; i++) expect(l2[i]).to.be.greaterThan(l2[i - 1]);
    expect(r.merged!.table).to.contain('| real source images |');
    unlinkSync(join(r.dir, 'cells', 't0=0.6_seed=0.json'));
    const again = await runGrid(sdeditExp, { quick: true, params: {} }, { resultsRoot: join(tmp, 'sdedit') });
    expect(again.ran).to.deep.equal(['t0=0.6_seed=0']);
    expect(again.merged!.table).to.equal(r.merged!.table);
  });
});
