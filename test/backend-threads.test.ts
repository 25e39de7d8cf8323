import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultWasmThreads, wasmThreadsRequest } from '../lib/backend.js';
import { MAX_WASM_THREADS, availableCpus, selfCheckBackend, threadedBuildMismatch } from '../lib/fastgrad/threads.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

/** Run `args` with tsx in a fresh process whose TMPDIR is a new empty folder; return it and the result. */
function runFresh(args: string[], env: Record<string, string>) {
  const tmp = mkdtempSync(join(tmpdir(), 'diffguide-threads-test-'));
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, DIFFGUIDE_BACKEND: '', DIFFGUIDE_QUIET: '', ...env, TMPDIR: tmp },
      timeout: 120000,
    });
    return { r, leftInTmp: readdirSync(tmp).filter((f) => f.startsWith('diffguide-')) }; // (tsx keeps its cache there too)
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const lastJson = (out: string) =>
  JSON.parse(out.trim().split('\n').pop()!) as {
    threads: number;
    details: Record<string, string>;
    center?: number;
    gradBits?: string;
    sameAfterGrowth?: boolean;
  };

describe('wasm threads: request parsing', () => {
  const saved = process.env.DIFFGUIDE_WASM_THREADS;
  afterEach(() => {
    if (saved === undefined) delete process.env.DIFFGUIDE_WASM_THREADS;
    else process.env.DIFFGUIDE_WASM_THREADS = saved;
  });
  it('option beats env; env beats the default; 1 opts out', () => {
    process.env.DIFFGUIDE_WASM_THREADS = '3';
    expect(wasmThreadsRequest(1)).to.deep.include({ threads: 1 });
    expect(wasmThreadsRequest().threads).to.equal(3);
    expect(wasmThreadsRequest().why).to.equal('DIFFGUIDE_WASM_THREADS=3');
  });
  it('the default is the idle CPUs at start-up, 1..4: 1 on one core or a busy machine', () => {
    const t = (cpus: number, load: number) => defaultWasmThreads(cpus, load).threads;
    expect(t(1, 0)).to.equal(1);
    expect(t(2, 0.3)).to.equal(2);
    expect(t(2, 1.2)).to.equal(1);
    expect(t(2, 6.6)).to.equal(1);
    expect(t(8, 0.5)).to.equal(4);
    expect(t(8, 5.2)).to.equal(3);
    expect(t(16, 0)).to.equal(4);
    expect(defaultWasmThreads(2, 6.6).why).to.match(
      /machine busy: load 6\.6 on 2 CPUs.*DIFFGUIDE_WASM_THREADS=2 forces them/,
    );
    expect(defaultWasmThreads(1, 0).why).to.equal('one CPU core available');
    delete process.env.DIFFGUIDE_WASM_THREADS;
    const { threads } = wasmThreadsRequest();
    expect(threads).to.be.within(1, Math.min(availableCpus(), 4));
  });
  it('rejects values that are not positive integers, naming the variable', () => {
    process.env.DIFFGUIDE_WASM_THREADS = 'two';
    expect(() => wasmThreadsRequest()).to.throw(/DIFFGUIDE_WASM_THREADS=two is not a positive integer/);
    expect(() => wasmThreadsRequest(0)).to.throw(/positive integer/);
    expect(() => wasmThreadsRequest(1.5)).to.throw(/positive integer/);
  });
  it(`caps requests at the worker pool (${MAX_WASM_THREADS}) and says so`, () => {
    const r = wasmThreadsRequest(64);
    expect(r.threads).to.equal(MAX_WASM_THREADS);
    expect(r.why).to.match(/capped/);
  });
});

describe('wasm threads: build guard and self-check', () => {
  it('accepts the installed tfjs-backend-wasm (the exact build the shim was written for)', () => {
    expect(threadedBuildMismatch()).to.equal(null);
  });
  it('refuses another version, and a modified build of the same version, saying why', () => {
    const src = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    const tmp = mkdtempSync(join(tmpdir(), 'diffguide-wasm-pkg-'));
    try {
      cpSync(join(src, 'wasm-out'), join(tmp, 'wasm-out'), { recursive: true });
      const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { version: string };
      writeFileSync(join(tmp, 'package.json'), JSON.stringify({ ...pkg, version: '4.23.0' }));
      expect(threadedBuildMismatch(tmp)).to.match(
        /tfjs-backend-wasm 4\.23\.0 is installed; the thread shim is written for 4\.22\.0/,
      );
      writeFileSync(join(tmp, 'package.json'), JSON.stringify(pkg));
      expect(threadedBuildMismatch(tmp)).to.equal(null);
      const js = join(tmp, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
      writeFileSync(js, `${readFileSync(js, 'utf8')}\n// patched\n`);
      expect(threadedBuildMismatch(tmp)).to.match(/threaded-simd\.js .* differs/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
  it('the start-up self-check (conv + matmul vs float64 references) passes on the test backend', () => {
    selfCheckBackend();
  });
});

describe('wasm threads in a fresh process', () => {
  it('DIFFGUIDE_WASM_THREADS=2 starts the threaded build, says so, and leaves no temp files', async () => {
    const { r, leftInTmp } = runFresh(['lib/cli/run.ts', 'info', '--json'], {
      DIFFGUIDE_BACKEND: 'wasm',
      DIFFGUIDE_WASM_THREADS: '2',
    });
    expect(r.status, r.stderr).to.equal(0);
    const info = lastJson(r.stdout);
    expect(info.threads).to.equal(2);
    expect(info.details.threads).to.match(/^2, threaded wasm build/);
    // the shipped weights and their quality as config.json says
    const { readFileSync } = await import('node:fs');
    const q = JSON.parse(readFileSync('weights/clip/config.json', 'utf8')).quality;
    expect(info.weights.clip).to.equal(q === 'meets-bars' ? 'meets-bars' : 'work-in-progress');
    expect(Object.keys(info.weights)).to.have.members(['unet', 'clip', 'noisy-clip', 'cond-unet', 'prior', 'judge']);
    expect(leftInTmp).to.deep.equal([]);
  });
  it('without a request, wasm runs the default thread count and info says why', () => {
    const { r } = runFresh(['lib/cli/run.ts', 'info', '--json', '--backend', 'wasm'], { DIFFGUIDE_WASM_THREADS: '' });
    expect(r.status, r.stderr).to.equal(0);
    const info = lastJson(r.stdout);
    expect(info.threads).to.be.within(1, Math.min(availableCpus(), 4));
    if (info.threads === 1)
      expect(info.details.threads).to.match(/^1 \((one CPU core available|machine busy: load [\d.]+ on \d+ CPUs.*)\)$/);
    else
      expect(info.details.threads).to.match(
        /^\d, threaded wasm build .*\(default: idle CPUs .*; DIFFGUIDE_WASM_THREADS=1 or --threads 1 for one\)$/,
      );
  });
  it('--threads 1 opts out and info says why', () => {
    const { r } = runFresh(['lib/cli/run.ts', 'info', '--json', '--backend', 'wasm', '--threads', '1'], {
      DIFFGUIDE_WASM_THREADS: '2',
    });
    expect(r.status, r.stderr).to.equal(0);
    const info = lastJson(r.stdout);
    expect(info.threads).to.equal(1);
    expect(info.details.threads).to.equal('1 (--threads 1)'); // the flag wins over the environment, and is named
  });
  it('a process on the threaded backend ends by itself (no process.exit), also after an uncaught error; gradients are bit-identical to 1 thread', () => {
    const ok = runFresh(['test/threads_child.ts'], { DIFFGUIDE_WASM_THREADS: '2' });
    expect(ok.r.signal, 'killed by the timeout: the process hung').to.equal(null);
    expect(ok.r.status, ok.r.stderr).to.equal(0);
    const out = lastJson(ok.r.stdout);
    expect(out.threads).to.equal(2);
    expect(out.center).to.equal(72); // 3x3 taps x 8 channels of ones
    expect(out.sameAfterGrowth, 'gradients changed after the wasm heap grew').to.equal(true);
    // Winograd's kernels work on the threaded build's shared memory too (bit-identical to 1 thread below).
    expect(out.winograd).to.equal(true);
    expect(ok.leftInTmp).to.deep.equal([]);
    // XNNPACK splits work by output tiles, so the thread count does not change a single bit.
    const one = runFresh(['test/threads_child.ts'], { DIFFGUIDE_WASM_THREADS: '1' });
    expect(one.r.status, one.r.stderr).to.equal(0);
    expect(lastJson(one.r.stdout).threads).to.equal(1);
    expect(lastJson(one.r.stdout).winograd).to.equal(true);
    expect(out.gradBits).to.be.a('string');
    expect(out.gradBits, 'conv + matmul gradients differ between 1 and 2 threads').to.equal(
      lastJson(one.r.stdout).gradBits,
    );
    const bad = runFresh(['test/threads_child.ts', '--throw'], { DIFFGUIDE_WASM_THREADS: '2' });
    expect(bad.r.signal, 'killed by the timeout: the process hung').to.equal(null);
    expect(bad.r.status, 'exit code 7: an Emscripten error handler is still installed').to.equal(1); // Node's own handling: the error printed, exit 1
    expect(bad.r.stderr).to.match(/deliberate error/);
    const badOne = runFresh(['test/threads_child.ts', '--throw'], { DIFFGUIDE_WASM_THREADS: '1' }); // the stock wasm build
    expect(badOne.r.status, 'exit code 7: an Emscripten error handler is still installed').to.equal(1);
    expect(badOne.r.stderr).to.match(/deliberate error/);
    expect(bad.leftInTmp).to.deep.equal([]);
  });
  it('a threaded start that fails falls back to one thread with a one-line note, exits, and cleans up', () => {
    // A 1 ms start-up deadline: the pool's workers cannot load in time, so the start fails while
    // they are loading (the hardest moment to clean up after).
    const { r, leftInTmp } = runFresh(['test/threads_child.ts'], {
      DIFFGUIDE_WASM_THREADS: '2',
      DIFFGUIDE_WASM_THREADS_TIMEOUT_MS: '1',
    });
    expect(r.signal, 'killed by the timeout: the process hung').to.equal(null);
    expect(r.status, r.stderr).to.equal(0);
    const out = lastJson(r.stdout);
    expect(out.threads).to.equal(1);
    expect(out.center).to.equal(72);
    expect(out.details.threads).to.match(
      /^1, because the threaded build is unavailable: the threaded wasm module did not start within 0\.001 s/,
    );
    const notes = r.stderr.split('\n').filter((l) => /wasm threads/.test(l));
    expect(notes).to.have.length(1);
    expect(notes[0]).to.match(
      /^diffguide: wasm threads off \(the threaded wasm module did not start within 0\.001 s\); running single-threaded$/,
    );
    expect(leftInTmp).to.deep.equal([]);
  });
});
