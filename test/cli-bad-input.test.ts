/**
 * Bad input (issue 18): every case gives an error that names the problem and the fix, exits non-zero,
 * loses nothing, and fails before the work starts. Most run the CLI in-process; the unwritable-output
 * cases run it as a child process, so a regression (Node's recursive mkdir looping under /proc) fails
 * the test on a timeout instead of hanging the suite.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { cli } from './cli_util.js';
import { joinNegativeValues, GLOBAL_OPTIONS } from '../lib/cli/command.js';
import { describeBackend, initBackend } from '../lib/backend.js';
import { OptionError } from '../lib/options.js';
import { OutputError, checkWritableDir, checkWritableFile, ensureWritableDir, makeDirs } from '../lib/output.js';
import { removeStaleTemporaries } from '../lib/train/checkpoint.js';
import { packageRoot } from '../lib/paths.js';
import { UNet } from '../nets/unet/index.js';
import { makeSchedule } from '../samplers/schedule.js';
import { sampleDdim } from '../samplers/ddim.js';
import { makeDiffuser, tinyUNetConfig, diffusionModelOf } from '../lib/methods/index.js';
import { sdedit, sdeditComposite } from '../lib/methods/sdedit.js';
import { sample } from '../lib/methods/sample.js';
import { writePng } from '../lib/image/png.js';

const ROOT = packageRoot();
const SUBSET = ['--data', 'test/data/emoji32-subset.json'];
const HAVE_PROC = existsSync('/proc/self');

/** Run the CLI from sources in a child process (cpu backend: nothing here computes much). */
function cliProcess(
  argv: string[],
  timeoutMs = 120000,
): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'lib/cli/run.ts', ...argv], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL', // the old hang ignored SIGTERM
    env: { ...process.env, DIFFGUIDE_BACKEND: 'cpu', DIFFGUIDE_QUIET: '1' },
  });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

async function rejects(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: Error) => e,
  );
}

describe('bad input: clear errors, non-zero exits, nothing lost', function () {
  this.timeout(300000);
  let dir: string;
  let guide: string;
  const quiet = process.env.DIFFGUIDE_QUIET;
  before(() => {
    delete process.env.DIFFGUIDE_QUIET; // the notes on stderr are part of what is tested
    dir = mkdtempSync(join(tmpdir(), 'dg-bad-'));
    guide = join(dir, 'g.png');
    const x = tf.zeros([1, 32, 32, 3]);
    writePng(guide, x);
    x.dispose();
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    if (quiet !== undefined) process.env.DIFFGUIDE_QUIET = quiet;
  });

  describe('unwritable outputs fail fast, before the work', () => {
    it('train --out /proc/x exits 2 at once, naming the folder (it used to loop at 100% CPU)', function () {
      if (!HAVE_PROC) this.skip(); // Linux's /proc: where recursive mkdir looped
      const r = cliProcess(['train', 'judge', ...SUBSET, '--out', '/proc/x', '--steps', '2', '--batch', '4']);
      expect(r.signal, 'killed on the timeout: the hang is back').to.equal(null);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.include(
        'diffguide train: --out /proc/x: cannot create /proc/x: /proc does not accept new entries',
      );
      expect(r.stderr).to.include('choose a folder you can write to');
      expect(r.stderr).to.not.match(/train judge: emoji/); // refused before the dataset loaded
    });

    it('sdedit -o /proc/x exits 2 before sampling', function () {
      if (!HAVE_PROC) this.skip(); // Linux's /proc: where recursive mkdir looped
      const r = cliProcess(['sdedit', guide, '--random-weights', '--steps', '2', '-o', '/proc/x']);
      expect(r.signal, 'killed on the timeout: the hang is back').to.equal(null);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.include('diffguide sdedit: --out /proc/x: cannot create /proc/x');
      expect(r.stderr).to.not.include('--random-weights: tiny RANDOM models'); // no model was made
    });

    it('the training loop (API) refuses /proc/x too, instead of hanging', function () {
      if (!HAVE_PROC) this.skip(); // Linux's /proc: where recursive mkdir looped
      const code = `import { train } from './lib/train/loop.ts';
        const task = { params: new Map(), nextBatch: () => 0, loss: () => { throw new Error('no'); } };
        train(task, { out: '/proc/x', steps: 1, lr: 1 }).then(() => process.exit(0), (e) => { console.error(e.name + ': ' + e.message); process.exit(3); });`;
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120000,
        killSignal: 'SIGKILL',
      });
      expect(r.signal, 'killed on the timeout: the hang is back').to.equal(null);
      expect(r.status, r.stderr).to.equal(3);
      expect(r.stderr).to.include('OutputError: training output folder /proc/x: cannot create the folder /proc/x');
    });

    it('a file in the way and a file given as a folder are named', async () => {
      const file = join(dir, 'a-file');
      writeFileSync(file, 'keep me');
      const r = await cli(['sample', '--random-weights', '--n', '1', '--steps', '1', '-o', join(file, 'sub')]);
      expect(r.code).to.equal(2);
      expect(r.err).to.include(`--out ${join(file, 'sub')}: ${file} is a file, not a folder; choose another path`);
      expect(readFileSync(file, 'utf8')).to.equal('keep me');
      expect(() => checkWritableFile(dir, 'x')).to.throw(OutputError, `x: ${dir} is a folder; give a file name`);
    });

    it('checking creates nothing; makeDirs creates each level without recursive mkdir', () => {
      const deep = join(dir, 'new', 'deeper', 'deepest');
      expect(checkWritableDir(deep)).to.equal(deep);
      expect(existsSync(join(dir, 'new'))).to.equal(false);
      expect(makeDirs(deep)).to.deep.equal([join(dir, 'new'), join(dir, 'new', 'deeper'), deep]);
      expect(readdirSync(deep)).to.deep.equal([]); // no probe file left
      expect(ensureWritableDir(deep)).to.equal(deep);
      expect(readdirSync(deep)).to.deep.equal([]);
      if (HAVE_PROC)
        expect(() => checkWritableDir('/proc/x/y', '--out /proc/x/y')).to.throw(
          OutputError,
          /--out \/proc\/x\/y: cannot create \/proc\/x\/y: \/proc does not accept new entries/,
        );
    });
  });

  describe('backend and threads', () => {
    it('--backend bogus is refused with the valid names (sample and info), and nothing switches', async () => {
      const before = describeBackend();
      for (const c of [['sample', '--random-weights'], ['info']]) {
        const r = await cli([...c, '--backend', 'bogus']);
        expect(r.code, r.err).to.equal(2);
        expect(r.err).to.include(
          `diffguide ${c[0]}: --backend "bogus" is not a backend; use one of: auto, tensorflow-gpu, tensorflow, webgpu, wasm, cpu`,
        );
        expect(r.err).to.not.include('Cannot convert undefined');
      }
      expect(describeBackend()).to.equal(before);
      const e = await rejects(initBackend({ backend: 'bogus' as never }));
      expect(e.message).to.equal(
        "backend 'bogus' is not a backend; use one of: auto, tensorflow-gpu, tensorflow, webgpu, wasm, cpu",
      );
    });

    it('--threads 0 names the flag, not an environment variable the user did not set', async () => {
      const saved = process.env.DIFFGUIDE_WASM_THREADS;
      delete process.env.DIFFGUIDE_WASM_THREADS;
      try {
        for (const v of ['0', '-2', '1.5', 'many']) {
          const r = await cli(['sample', '--random-weights', '--threads', v]);
          expect(r.code, v).to.equal(2);
          expect(r.err, v).to.match(/diffguide sample: --threads must be an integer( >= 1)?, got "/);
          expect(r.err).to.not.include('DIFFGUIDE_WASM_THREADS');
        }
        expect(process.env.DIFFGUIDE_WASM_THREADS).to.equal(undefined); // --threads no longer writes the environment
      } finally {
        if (saved !== undefined) process.env.DIFFGUIDE_WASM_THREADS = saved;
      }
    });
  });

  describe('counts, seeds, eta, steps, t0', () => {
    it('sample --n 0 and sdg --n 0 are count errors (not a reshape of NaN)', async () => {
      const r = await cli(['sample', '--random-weights', '--n', '0']);
      expect(r.code).to.equal(2);
      expect(r.err).to.include('diffguide sample: --n must be an integer >= 1, got "0"');
      const r2 = await cli(['sdg', '--random-weights', '--text', 'x', '--n', '0']);
      expect(r2.code).to.equal(2);
      expect(r2.err).to.include('diffguide sdg: --n must be an integer >= 1, got "0"');
      expect(r.err + r2.err).to.not.include('NaN');
    });

    it('seeds that 32 bits cannot hold are refused, both option forms; the largest one works', async () => {
      for (const [args, shown] of [
        [['--seed', '4294967297'], '4294967297'],
        [['--seed', '1e99'], '1e99'],
        [['--seed', '9007199254740993'], '9007199254740993'],
        [['--seed', '-1'], '-1'],
        [['--seed=-1'], '-1'],
        [['--seed', '1.5'], '1.5'],
        [['--seed='], ''],
      ] as const) {
        const r = await cli(['sample', '--random-weights', ...args]);
        expect(r.code, args.join(' ')).to.equal(2);
        expect(r.err, args.join(' ')).to.match(
          new RegExp(
            `--seed must be an integer( in \\[0, 4294967295\\] \\(seeds are 32-bit\\))?, got "${shown.replace('.', '\\.')}"`,
          ),
        );
      }
      const out = join(dir, 'seed-max');
      const ok = await cli([
        'sample',
        '--random-weights',
        '--n',
        '1',
        '--steps',
        '1',
        '--seed',
        '4294967295',
        '-o',
        out,
      ]);
      expect(ok.code, ok.err).to.equal(0);
      expect(JSON.parse(readFileSync(join(out, 'sample-settings.json'), 'utf8')).seed).to.equal(4294967295);
    });

    it('eta outside [0, 1] is refused (sample, unclip, the API and the sampler)', async () => {
      const r = await cli(['sample', '--random-weights', '--eta', '1e30']);
      expect(r.code).to.equal(2);
      expect(r.err).to.include(
        'diffguide sample: --eta must be a number in [0, 1] (0 = deterministic DDIM, 1 = DDPM-like noise), got "1e30"',
      );
      const r2 = await cli(['unclip', '--random-weights', '--text', 'x', '--eta', '-0.5']);
      expect(r2.code).to.equal(2);
      expect(r2.err).to.include('diffguide unclip: --eta must be a number in [0, 1]');
      const d = makeDiffuser(UNet.random(tinyUNetConfig({ imageSize: 16 }), 0), makeSchedule('linear', 100));
      const n0 = tf.memory().numTensors;
      expect((await rejects(sample(d, { n: 1, steps: 2, eta: 1e30 }))).message).to.equal(
        'eta must be a number in [0, 1] (0 = deterministic DDIM, 1 = DDPM-like noise), got 1e+30',
      );
      const x = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
      const e = await rejects(sampleDdim(diffusionModelOf(d), x, makeSchedule('linear', 100), { eta: 2 }));
      expect(e).to.be.instanceOf(OptionError);
      x.dispose();
      expect(tf.memory().numTensors).to.equal(n0);
      d.unet.dispose();
    });

    it('--steps beyond the schedule is refused; sdedit records the steps that ran for a small t0', async () => {
      const r = await cli(['sample', '--random-weights', '--steps', '1e9']);
      expect(r.code).to.equal(2);
      expect(r.err).to.include(
        "diffguide sample: steps must be an integer in [1, 1000] (the model's schedule has 1000 steps), got 1000000000",
      );
      const r2 = await cli(['sdedit', guide, '--random-weights', '--t0', '0.01', '--steps', '1000000000']);
      expect(r2.code).to.equal(2);
      expect(r2.err).to.include(
        "steps must be an integer in [1, 1000] (the model's schedule has 1000 steps), got 1000000000",
      );
      const out = join(dir, 'small-t0');
      const ok = await cli([
        'sdedit',
        guide,
        '--random-weights',
        '--t0',
        '0.01',
        '--steps',
        '1000',
        '--repeats',
        '1',
        '-o',
        out,
      ]);
      expect(ok.code, ok.err).to.equal(0);
      expect(ok.err).to.include("t0=0.01 spans 10 of the schedule's 1000 levels: 10 steps run instead of 1000");
      const s = JSON.parse(readFileSync(join(out, 'sdedit-settings.json'), 'utf8'));
      expect(s.steps).to.equal(10); // what ran, not what was asked
    });

    it('negative values after an option get the range error in both forms (not "ambiguous")', async () => {
      const cases: [string[], RegExp][] = [
        [
          ['sdedit', guide, '--random-weights', '--t0', '-0.2'],
          /--t0 must be a number in \(0, 1\] \(a fraction of the schedule: small = faithful, large = realistic\), got "-0\.2"/,
        ],
        [['sdedit', guide, '--random-weights', '--t0=-0.2'], /--t0 must be a number in \(0, 1\]/],
        [['sample', '--random-weights', '--steps', '-3'], /--steps must be an integer >= 1, got "-3"/],
        [['sample', '--random-weights', '--steps=-3'], /--steps must be an integer >= 1, got "-3"/],
        [['sample', '--random-weights', '--seed', '-1'], /--seed must be an integer in \[0, 4294967295\]/],
      ];
      for (const [argv, want] of cases) {
        const r = await cli(argv);
        expect(r.code, argv.join(' ')).to.equal(2);
        expect(r.err, argv.join(' ')).to.match(want);
        expect(r.err).to.not.include('ambiguous');
      }
      // only a value-taking option takes a negative number; a flag and a positional are left alone
      const opts = {
        ...GLOBAL_OPTIONS,
        t0: { type: 'string' as const, help: '' },
        out: { type: 'string' as const, short: 'o', help: '' },
      };
      expect(
        joinNegativeValues(['--t0', '-0.2', '-o', '-1', '--quiet', '-5', 'x.png', '--', '--t0', '-1'], opts),
      ).to.deep.equal(['--t0=-0.2', '-o-1', '--quiet', '-5', 'x.png', '--', '--t0', '-1']);
    });

    it('train --steps 0 / --steps=-5 / --steps -5 are range errors, before the dataset loads', async () => {
      for (const s of [['--steps', '0'], ['--steps=-5'], ['--steps', '-5']]) {
        const out = join(dir, 'never');
        const r = await cli(['train', 'judge', ...SUBSET, '--out', out, ...s]);
        expect(r.code, s.join(' ')).to.equal(2);
        expect(r.err).to.match(/diffguide train: --steps must be an integer >= 1, got "(0|-5)"/);
        expect(r.err).to.not.include('does not exist');
        expect(existsSync(out)).to.equal(false); // nothing made
      }
    });
  });

  describe('resume keeps the run', () => {
    it('keeps the saved target, batch and seed; says what a flag overrides or what is ignored; removes stale temporaries', async () => {
      const run = join(dir, 'judge-run');
      const base = ['train', 'judge', ...SUBSET, '--out', run, '--sample-every', '0'];
      const first = await cli([...base, '--steps', '4', '--batch', '4', '--seed', '3', '--max-steps-this-run', '2']);
      expect(first.code, first.err).to.equal(0);
      const state = () =>
        JSON.parse(readFileSync(join(run, 'state.json'), 'utf8')) as {
          step: number;
          seed: number;
          config: { batch: number };
          run: { steps: number; lr: number };
        };
      expect(state()).to.deep.include({ step: 2, seed: 3 });
      expect(state().run).to.deep.include({ steps: 4, lr: 2e-3 });
      // a write killed mid-way by a process that is gone leaves <checkpoint>.tmp-<pid>
      const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
      const stale = join(run, `checkpoint.safetensors.tmp-${gone}`);
      writeFileSync(stale, 'torn');
      // the resume hint's command: no --steps (the run keeps its target of 4, not the default 3000); --batch 8 and --seed 1 are ignored, said so
      const again = await cli(['train', 'judge', ...SUBSET, '--out', run, '--resume', '--batch', '8', '--seed', '1']);
      expect(again.code, again.err).to.equal(0);
      expect(again.err).to.include(
        'train judge: --batch 8 ignored: the run was trained with batch 4, kept on resume (use a new --out for a run with --batch 8)',
      );
      expect(again.err).to.include('train judge: --seed 1 ignored: the run was trained with seed 3');
      expect(again.err).to.include(`removed ${stale}: a checkpoint write that never finished`);
      expect(existsSync(stale)).to.equal(false);
      expect(state()).to.deep.include({ step: 4, seed: 3 });
      expect(state().config.batch).to.equal(4);
      // a flag given on resume overrides the saved value, and says so
      const more = await cli(['train', 'judge', ...SUBSET, '--out', run, '--resume', '--steps', '5', '--lr', '1e-3']);
      expect(more.code, more.err).to.equal(0);
      expect(more.err).to.include("train judge: --steps 5 overrides the run's saved steps 4");
      expect(more.err).to.include("train judge: --lr 0.001 overrides the run's saved lr 0.002");
      expect(state().run).to.deep.include({ steps: 5, lr: 1e-3 });
      expect(state().step).to.equal(5);
    });

    it('train unet: --channel-mult and --res-blocks shape a new run, are kept on resume, and bad values are usage errors', async () => {
      const run = join(dir, 'unet-mult');
      const base = ['train', 'unet', ...SUBSET, '--out', run, '--sample-every', '0', '--batch', '2'];
      const first = await cli([...base, '--steps', '1', '--channel-mult', '1,2', '--res-blocks', '2']);
      expect(first.code, first.err).to.equal(0);
      const net = () =>
        (
          JSON.parse(readFileSync(join(run, 'state.json'), 'utf8')) as {
            config: { net: { channelMult: number[]; numResBlocks: number } };
          }
        ).config.net;
      expect(net()).to.deep.include({ channelMult: [1, 2], numResBlocks: 2 });
      const again = await cli([...base, '--resume', '--steps', '2', '--channel-mult', '1,2,4']);
      expect(again.code, again.err).to.equal(0);
      expect(again.err).to.include(
        '--channel-mult 1,2,4 ignored: the run was trained with channel-mult 1,2, kept on resume',
      );
      expect(net()).to.deep.include({ channelMult: [1, 2], numResBlocks: 2 });
      for (const bad of ['1,x', '0,2', '']) {
        const r = await cli([...base.slice(0, 5), join(dir, 'never-mult'), '--channel-mult', bad]);
        expect(r.code, bad).to.equal(2);
        expect(r.err).to.include('--channel-mult must be comma-separated integers 1-16');
      }
    });

    it("the resume hint printed after SIGTERM continues to the run's target (it used to fall back to the default --steps)", async () => {
      const run = join(dir, 'term-run');
      const argv = [
        'train',
        'judge',
        ...SUBSET,
        '--out',
        run,
        '--steps',
        '2000',
        '--batch',
        '4',
        '--sample-every',
        '0',
        '--ckpt-every',
        '1',
      ];
      const proc = spawn(process.execPath, ['--import', 'tsx', 'lib/cli/run.ts', ...argv], {
        cwd: ROOT,
        env: { ...process.env, DIFFGUIDE_BACKEND: 'wasm', DIFFGUIDE_WASM_THREADS: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
      const until = Date.now() + 180000;
      while (!existsSync(join(run, 'state.json')) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      proc.kill('SIGTERM');
      expect(await exited, err).to.equal(143);
      const m = err.match(
        /stopped at step (\d+) of 2000 by SIGTERM; checkpoint written\. Resume \(keeps the run's settings, --steps included\): diffguide (train judge --out \S+ --resume)\n/,
      );
      expect(m, err).to.not.equal(null);
      const r = await cli([...m![2].split(' '), '--max-steps-this-run', '1']);
      expect(r.code, r.err).to.equal(0);
      const st = JSON.parse(readFileSync(join(run, 'state.json'), 'utf8')) as { step: number; run: { steps: number } };
      expect(st.run.steps).to.equal(2000); // not the judge's default 3000
      expect(st.step).to.equal(Number(m![1]) + 1);
    });

    it("removeStaleTemporaries keeps this process's and a live process's temporaries", () => {
      const d2 = join(dir, 'tmps');
      mkdirSync(d2);
      const ck = join(d2, 'checkpoint.safetensors');
      const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
      for (const pid of [gone, process.pid, process.ppid]) writeFileSync(`${ck}.tmp-${pid}`, 'x');
      writeFileSync(join(d2, 'other.tmp-1'), 'x');
      expect(removeStaleTemporaries(ck)).to.deep.equal([`${ck}.tmp-${gone}`]);
      expect(readdirSync(d2).sort()).to.deep.equal(
        [
          `checkpoint.safetensors.tmp-${process.pid}`,
          `checkpoint.safetensors.tmp-${process.ppid}`,
          'other.tmp-1',
        ].sort(),
      );
    });
  });

  describe('sdedit guides and failed calls', () => {
    it('refuses a non-finite or wildly out-of-range guide, and failed calls leave no tensors', async () => {
      const d = makeDiffuser(UNet.random(tinyUNetConfig({ imageSize: 16 }), 0), makeSchedule('linear', 100));
      const ok = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
      const huge = tf.fill([1, 16, 16, 3], 1e30) as tf.Tensor4D;
      const nan = tf.fill([1, 16, 16, 3], NaN) as tf.Tensor4D;
      const bytes = tf.fill([1, 16, 16, 3], 255) as tf.Tensor4D;
      const n0 = tf.memory().numTensors;
      const fails: [Promise<unknown>, RegExp][] = [
        [sdedit(d, huge, { steps: 2 }), /^guide has values in \[1\.00e\+30, 1\.00e\+30\]; images are in \[-1, 1\]/],
        [
          sdedit(d, bytes, { steps: 2 }),
          /^guide has values in \[255, 255\]; images are in \[-1, 1\] \(from \[0, 255\]: x \/ 127\.5 - 1/,
        ],
        [sdedit(d, nan, { steps: 2 }), /^guide has NaN or Inf values/],
        [sdedit(d, ok, { t0: 0 }), /^t0 must be a number in \(0, 1\]/],
        [sdedit(d, ok, { t0: 1.5 }), /^t0 must be a number in \(0, 1\]/],
        [sdedit(d, ok, { steps: 0 }), /^steps must be an integer in \[1, 100\]/],
        [sdedit(d, ok, { steps: 1e9 }), /^steps must be an integer in \[1, 100\]/],
        [sdedit(d, ok, { steps: 2, seed: 2 ** 32 }), /^seed must be an integer in \[0, 4294967295\]/],
        [
          sdeditComposite(d, ok, huge, tf.ones([1, 16, 16, 1]) as tf.Tensor4D, { steps: 2 }),
          /^overlay has values in \[1\.00e\+30, 1\.00e\+30\]/,
        ],
      ];
      for (const [p, want] of fails) {
        const e = await rejects(p);
        expect(e.message).to.match(want);
      }
      // the last case's region tensor is ours to free; everything else must be back to where it was
      expect(tf.memory().numTensors).to.equal(n0 + 1);
      // a net that returns NaN fails during sampling: still nothing left behind
      const key = [...d.unet.params.keys()].find((k) => k.startsWith('out.') && k.endsWith('bias'))!;
      d.unet.params.get(key)!.assign(tf.fill(d.unet.params.get(key)!.shape, NaN));
      const n1 = tf.memory().numTensors;
      for (let i = 0; i < 2; i++) expect((await rejects(sdedit(d, ok, { steps: 3 }))).message).to.match(/NaN or Inf/);
      expect(tf.memory().numTensors).to.equal(n1);
      tf.dispose([ok, huge, nan, bytes]);
      d.unet.dispose();
    });
  });
});
