/**
 * Shared benchmark helpers: median timing of tfjs work and a PyTorch-side runner.
 *
 * PyTorch (Debian's python3-torch at /usr/bin/python3) is only ever used to measure, never as a
 * dependency: `torchAvailable()` is false when it is missing and suites report null.
 */
import { spawn, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';

export const PYTHON = '/usr/bin/python3';

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface TimeOptions {
  /** Timed repetitions (median reported). */
  reps: number;
  /** Untimed calls first (wasm tiers up its code during the first calls). */
  warmup?: number;
}

/**
 * Median wall-clock milliseconds of `fn`, which must return the tensors it produced: they are
 * read back (so the work has finished) and disposed. Runs inside tf.tidy.
 */
export function timeTf(fn: () => tf.Tensor | tf.Tensor[], opts: TimeOptions): number {
  const once = () => {
    const t0 = performance.now();
    tf.tidy(() => {
      const out = fn();
      for (const t of Array.isArray(out) ? out : [out]) t.dataSync();
    });
    return performance.now() - t0;
  };
  for (let i = 0; i < (opts.warmup ?? 3); i++) once();
  const ts: number[] = [];
  for (let i = 0; i < opts.reps; i++) ts.push(once());
  return median(ts);
}

let torchOk: boolean | null = null;

/** Whether `/usr/bin/python3 -c "import torch"` works (cached). */
export function torchAvailable(): boolean {
  if (torchOk === null) {
    const r = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 120000 });
    torchOk = r.status === 0;
  }
  return torchOk;
}

/**
 * Run a python script with PyTorch's usual bench settings (2 intra-op threads, OpenBLAS/MKL pinned
 * to 1 thread so the two pools do not oversubscribe the cores) and parse the last stdout line as
 * JSON. Throws with stderr when the script fails.
 */
export function runPythonJson<T = unknown>(
  script: string,
  args: string[] = [],
  opts: { threads?: number; timeoutMs?: number } = {},
): T {
  const threads = String(opts.threads ?? 2);
  const r = spawnSync(PYTHON, [script, ...args], {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 600000,
    env: { ...process.env, OMP_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
  });
  if (r.status !== 0)
    throw new Error(
      `${script} failed (status ${r.status}): ${(r.stderr || '').trim().split('\n').slice(-5).join('\n')}`,
    );
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/**
 * A long-running python process answering one JSON request per line with one JSON line, so a
 * bench can interleave its tfjs and PyTorch measurements under the same machine load.
 * Same thread settings as `runPythonJson`. The first line the script prints is its greeting.
 */
/** Pause after each PyTorch request before measuring our side (see `PythonServer.request`). */
const SETTLE_MS = 100;

export class PythonServer {
  private child: import('node:child_process').ChildProcessWithoutNullStreams;
  private lines: string[] = [];
  private waiters: ((line: string) => void)[] = [];
  private stderr = '';
  private exited: string | null = null;

  constructor(script: string, args: string[] = [], opts: { threads?: number } = {}) {
    const threads = String(opts.threads ?? 2);
    this.child = spawn(PYTHON, [script, ...args], {
      env: { ...process.env, OMP_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.child.on('exit', (code) => {
      this.exited = `python exited (code ${code}): ${this.stderr.trim().split('\n').slice(-5).join('\n')}`;
      for (const w of this.waiters.splice(0)) w('');
    });
  }

  private next(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((res, rej) =>
      this.waiters.push((line) => (this.exited && !line ? rej(new Error(this.exited)) : res(line))),
    );
  }

  /** The greeting line the script prints first, parsed. */
  async hello<T = unknown>(): Promise<T> {
    return JSON.parse(await this.next()) as T;
  }

  /**
   * Send one request and parse the answer; then wait `SETTLE_MS` before returning: PyTorch's OpenMP
   * threads spin-wait after each parallel region (libgomp's GOMP_SPINCOUNT), and a measurement that
   * starts at once shares the cores with them (measured: conv_stack fwd 45.6 ms right after a torch
   * request vs 36.9 ms without torch in the run).
   */
  async request<T = unknown>(req: unknown): Promise<T> {
    if (this.exited) throw new Error(this.exited);
    this.child.stdin.write(JSON.stringify(req) + '\n');
    const answer = JSON.parse(await this.next()) as T;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return answer;
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

/**
 * The BLAS library PyTorch's process actually maps (`libblas.so.3` is a Debian alternative: OpenBLAS
 * when `libopenblas0-*` is installed, else the unoptimised reference BLAS of `libblas3`, which runs
 * PyTorch's GEMMs 10-15x slower and makes every ratio against it meaningless).
 */
export function torchBlas(): { path: string; reference: boolean } | null {
  const py =
    'import torch\nprint(";".join(sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.split()[-1]})))';
  const r = spawnSync('/usr/bin/python3', ['-c', py], {
    encoding: 'utf8',
    timeout: 60000,
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
  });
  if (r.status !== 0) return null;
  const paths = r.stdout
    .trim()
    .split(';')
    .filter(Boolean)
    .map((p) => {
      try {
        return realpathSync(p);
      } catch {
        return p;
      }
    });
  if (!paths.length) return null;
  // The library behind libblas.so.3 (what torch links) decides; LAPACK may come from elsewhere.
  const optimised = (p: string) => /openblas|mkl|blis|atlas/i.test(p);
  const blas = paths.find((p) => /(^|\/)libblas[^/]*$/.test(p));
  if (blas) return { path: blas, reference: !optimised(blas) };
  const other = paths.find((p) => /(^|\/)lib(openblas|mkl|blis)[^/]*$/.test(p));
  return { path: other ?? paths[0], reference: !other };
}

/** One stderr warning that PyTorch runs on the reference BLAS (`consequence`: what the bench does about it). */
export function warnReferenceBlas(bench: string, path: string, consequence: string): void {
  process.stderr.write(
    `${bench}: WARNING: PyTorch here links the reference BLAS (${path}), 10-15x slower than OpenBLAS on matrix products; ` +
      `its times are not PyTorch's, ${consequence}. Install OpenBLAS (apt-get install libopenblas0-pthread) and rerun.\n`,
  );
}
