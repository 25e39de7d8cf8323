/**
 * Grids on BullMQ (lib/experiments/queue.ts) against a real redis-server on a loopback port: three
 * workers as separate processes, one SIGKILLed mid-cell; every cell must be stored exactly once and
 * the merged table must equal a single-process run's. Skips (with a message) only where redis-server
 * is not installed (Debian: apt-get install -y redis-server).
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGrid, type CellRecord } from '../lib/experiments/grid.js';
import { jobIdOf, redisConnection, submitGrid } from '../lib/experiments/queue.js';
import { findRedisServer, startLocalRedis, type LocalRedis } from '../lib/experiments/redis-local.js';
import { packageRoot } from '../lib/paths.js';
import toy from '../experiments/toy.js';

const ROOT = packageRoot();

interface WorkerEvent {
  event: string;
  cellId?: string;
  pid: number;
}

/** A `diffguide worker --events` process (node itself, so SIGKILL reaches the worker, not a wrapper). */
class WorkerProc {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly events: WorkerEvent[] = [];
  stderr = '';
  private listeners: ((e: WorkerEvent) => void)[] = [];
  constructor(url: string, results: string, name: string) {
    this.proc = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'lib/cli/run.ts'),
        'worker',
        '--queue',
        url,
        '--results',
        results,
        '--lock-ms',
        '2000',
        '--events',
        '--id',
        name,
        '--backend',
        'wasm',
      ],
      { cwd: ROOT, env: { ...process.env, DIFFGUIDE_WASM_THREADS: '1' } },
    );
    let buf = '';
    this.proc.stdout.on('data', (d) => {
      buf += String(d);
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.startsWith('{')) continue;
        const e = JSON.parse(line) as WorkerEvent;
        this.events.push(e);
        for (const l of this.listeners) l(e);
      }
    });
    this.proc.stderr.on('data', (d) => (this.stderr = (this.stderr + String(d)).slice(-4000)));
  }
  on(f: (e: WorkerEvent) => void): void {
    this.listeners.push(f);
  }
  waitFor(pred: (e: WorkerEvent) => boolean, what: string, ms = 120000): Promise<WorkerEvent> {
    const hit = this.events.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((res, rej) => {
      const t = setTimeout(
        () => rej(new Error(`worker ${this.proc.pid}: no ${what} within ${ms} ms:\n${this.stderr}`)),
        ms,
      );
      this.on((e) => {
        if (pred(e)) {
          clearTimeout(t);
          res(e);
        }
      });
      this.proc.once('exit', (code) =>
        rej(new Error(`worker ${this.proc.pid} exited (${code}) before ${what}:\n${this.stderr}`)),
      );
    });
  }
  stop(): Promise<void> {
    return new Promise((res) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return res();
      this.proc.once('exit', () => res());
      this.proc.kill('SIGTERM');
    });
  }
}

describe('experiment grids on a BullMQ queue', function () {
  this.timeout(300000);

  it('redis URLs become connection options; bad ones are named', () => {
    expect(redisConnection('redis://10.0.0.5:6380/2')).to.deep.include({
      host: '10.0.0.5',
      port: 6380,
      db: 2,
      maxRetriesPerRequest: null,
    });
    expect(redisConnection('rediss://u:p%40ss@h')).to.deep.include({
      host: 'h',
      port: 6379,
      username: 'u',
      password: 'p@ss',
      tls: {},
    });
    expect(() => redisConnection('http://h:1')).to.throw(/redis:\/\//);
    expect(() => redisConnection('nonsense')).to.throw(/Redis URL/);
    expect(jobIdOf({ experiment: 'toy', quick: true, settingsKey: 'abc', cellId: 'gain=1_seed=0' }))
      .to.equal('toy-quick.abc.gain=1_seed=0')
      .and.not.contain(':');
  });

  it('importing diffguide and running an experiment locally need neither bullmq nor ioredis; --queue without them says what to install', function () {
    const tmp = mkdtempSync(join(tmpdir(), 'diffguide-nobull-'));
    try {
      const node = (args: string[]) =>
        spawnSync(process.execPath, ['--import', 'tsx', '--import', join(ROOT, 'test/no_bullmq.mjs'), ...args], {
          cwd: ROOT,
          encoding: 'utf8',
          env: { ...process.env, DIFFGUIDE_WASM_THREADS: '1' },
        });
      const imp = node([
        '-e',
        "import('./lib/index.ts').then(() => import('./lib/experiments/grid.ts')).then(() => import('./experiments/index.ts')).then(() => console.log('core loaded')).then(() => import('bullmq')).then(() => console.log('bullmq loaded'), (e) => console.log(e.message))",
      ]);
      expect(imp.stdout).to.contain('core loaded');
      expect(imp.stdout).to.contain('no bullmq here'); // the hook works
      const run = node([
        join(ROOT, 'lib/cli/run.ts'),
        'experiment',
        'toy',
        '--quick',
        '--results',
        tmp,
        '--backend',
        'wasm',
      ]);
      expect(run.status, run.stderr).to.equal(0);
      expect(run.stdout).to.contain('| gain | seeds |');
      const q = node([
        join(ROOT, 'lib/cli/run.ts'),
        'experiment',
        'toy',
        '--quick',
        '--results',
        tmp,
        '--backend',
        'wasm',
        '--queue',
        'redis://127.0.0.1:1',
      ]);
      expect(q.status).to.equal(1);
      expect(q.stderr).to.contain('npm install bullmq ioredis');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  describe('with a real redis-server', () => {
    let redis: LocalRedis | undefined;
    let tmp: string;
    const workers: WorkerProc[] = [];
    before(async function () {
      if (!findRedisServer()) {
        console.log('      (skipped: redis-server not found; install it: apt-get install -y redis-server)');
        this.skip();
      }
      redis = await startLocalRedis();
      tmp = mkdtempSync(join(tmpdir(), 'diffguide-queue-'));
    });
    after(async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await redis?.stop();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    it('3 workers, one SIGKILLed mid-cell: its cell is retried elsewhere, every cell is stored exactly once, and the table equals a single-process run', async () => {
      const results = join(tmp, 'shared');
      const opts = { quick: false, params: { iters: '400' } }; // 12 cells of ~1 s
      for (const name of ['w0', 'w1', 'w2']) workers.push(new WorkerProc(redis!.url, results, name));
      await Promise.all(workers.map((w) => w.waitFor((e) => e.event === 'ready', 'ready')));
      // the victim: the first worker to start its second cell, killed right then (its cells take ~1 s)
      let victim: { w: WorkerProc; cellId: string } | undefined;
      const killed = new Promise<void>((res) => {
        for (const w of workers) {
          w.on((e) => {
            if (victim || e.event !== 'start' || w.events.filter((x) => x.event === 'stored').length < 1) return;
            victim = { w, cellId: e.cellId! };
            w.proc.kill('SIGKILL');
            res();
          });
        }
      });
      const submitted = submitGrid(toy, opts, { url: redis!.url, resultsRoot: results });
      await killed;
      const r = await submitted;
      expect(victim!.w.proc.signalCode).to.equal('SIGKILL');

      const cellsDir = join(results, 'toy', 'cells');
      const files = readdirSync(cellsDir).filter((f) => !f.startsWith('.'));
      expect(files).to.have.length(12);
      const stored = workers.flatMap((w) => w.events.filter((e) => e.event === 'stored').map((e) => e.cellId!));
      const counts = new Map<string, number>();
      for (const id of stored) counts.set(id, (counts.get(id) ?? 0) + 1);
      expect([...counts.keys()].sort()).to.deep.equal(files.map((f) => f.slice(0, -5)).sort());
      expect(
        [...counts.values()].every((c) => c === 1),
        `stored counts: ${JSON.stringify([...counts])}`,
      ).to.equal(true);
      // the killed worker's cell was finished by another worker
      const rec = JSON.parse(readFileSync(join(cellsDir, `${victim!.cellId}.json`), 'utf8')) as CellRecord;
      expect(rec.meta.pid).to.not.equal(victim!.w.proc.pid);
      expect(victim!.w.events.some((e) => e.event === 'stored' && e.cellId === victim!.cellId)).to.equal(false);
      const survivors = workers.filter((w) => w !== victim!.w);
      expect(survivors.some((w) => w.events.some((e) => e.event === 'stored' && e.cellId === victim!.cellId))).to.equal(
        true,
      );
      console.log(
        `      cells stored per worker: ${workers.map((w) => `${w === victim!.w ? 'killed ' : ''}${w.events.filter((e) => e.event === 'stored').length}`).join(', ')}; grid wall ${(r.wallMs / 1000).toFixed(1)} s`,
      );

      const single = await runGrid(toy, opts, { resultsRoot: join(tmp, 'single') });
      expect(r.merged!.missing).to.deep.equal([]);
      expect(r.merged!.table).to.equal(single.merged!.table);
      expect(readFileSync(join(results, 'toy', 'table.md'), 'utf8')).to.equal(single.merged!.table);

      // resubmitting the finished grid queues nothing and merges the same table
      const again = await submitGrid(toy, opts, { url: redis!.url, resultsRoot: results });
      expect(again.enqueued).to.equal(0);
      expect(again.merged!.table).to.equal(single.merged!.table);
    });

    it('without a shared folder the results travel through Redis: the submitter stores what workers return', async () => {
      const workerDir = join(tmp, 'worker-local');
      const submitterDir = join(tmp, 'submitter-local');
      const live = workers.filter((w) => w.proc.exitCode === null && w.proc.signalCode === null);
      // a fresh worker with its own folder (the live ones use the shared one of the previous test)
      const w = new WorkerProc(redis!.url, workerDir, 'w-local');
      workers.push(w);
      await w.waitFor((e) => e.event === 'ready', 'ready');
      await Promise.all(live.map((x) => x.stop()));
      const r = await submitGrid(toy, { quick: true, params: {} }, { url: redis!.url, resultsRoot: submitterDir });
      expect(r.merged!.missing).to.deep.equal([]);
      expect(readdirSync(join(submitterDir, 'toy-quick', 'cells'))).to.have.length(6);
      expect(readdirSync(join(workerDir, 'toy-quick', 'cells'))).to.have.length(6);
      const single = await runGrid(toy, { quick: true, params: {} }, { resultsRoot: join(tmp, 'single') });
      expect(r.merged!.table).to.equal(single.merged!.table);
    });
  });
});
