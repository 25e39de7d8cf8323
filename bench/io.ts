/**
 * `diffguide bench io`: load a synthetic > 2 GiB F32 safetensors file in a child process and report its peak
 * RSS (VmHWM) over the file size. Target: ratio < 1.3 (tensors are read straight into their arrays).
 *
 * Returns `{file_bytes, peak_rss_bytes, ratio, baseline_rss_bytes, load_s, tensors}`.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync, statfsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface IoBenchResult {
  file_bytes: number;
  peak_rss_bytes: number;
  ratio: number;
  /** RSS of the child before loading (node + module code). */
  baseline_rss_bytes: number;
  load_s: number;
  tensors: number;
}

/** Tensors of [64, 1024, 1024] F32 (256 MiB each); 9 make 2.25 GiB. */
const ROWS = 64;
const ROW = 1024 * 1024;
const COUNT = 9;

/** Value of element i of tensor k (exact in fp32), for the child's spot checks. */
function value(k: number, i: number): number {
  return k * 1000 + (i % 997);
}

/** Write the synthetic 2.25 GiB F32 file; returns its size in bytes. */
export async function writeSynthetic(path: string): Promise<number> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'diffguide bench io synthetic' } };
  const nbytes = ROWS * ROW * 4;
  for (let k = 0; k < COUNT; k++)
    header[`blocks.${k}.weight`] = { dtype: 'F32', shape: [ROWS, ROW], data_offsets: [k * nbytes, (k + 1) * nbytes] };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fh = await fsp.open(path, 'w');
  try {
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) {
        const { bytesWritten } = await fh.write(b, done, b.length - done, pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    };
    await write(len);
    await write(Buffer.from(json));
    const chunk = new Float32Array(ROW); // one 4 MiB row at a time
    for (let k = 0; k < COUNT; k++) {
      for (let r = 0; r < ROWS; r++) {
        const base = r * ROW;
        for (let i = 0; i < ROW; i++) chunk[i] = value(k, base + i);
        await write(new Uint8Array(chunk.buffer));
      }
    }
    return pos;
  } finally {
    await fh.close();
  }
}

function statusBytes(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Child side: load the file, spot-check values, print one JSON line. */
async function child(path: string): Promise<void> {
  const { readCheckpoint } = await import('../lib/io/index.js');
  const baseline = statusBytes('VmRSS');
  const t0 = performance.now();
  const ck = await readCheckpoint(path);
  const loadS = (performance.now() - t0) / 1000;
  const peak = statusBytes('VmHWM');
  let k = 0;
  for (const [name, t] of ck.tensors) {
    for (const i of [0, 1, 996, 997, t.data.length - 1]) {
      if (t.data[i] !== value(k, i)) throw new Error(`bench io: ${name}[${i}] = ${t.data[i]}, expected ${value(k, i)}`);
    }
    k++;
  }
  process.stdout.write(`${JSON.stringify({ peak, baseline, loadS, tensors: ck.tensors.size })}\n`);
}

export async function run(): Promise<IoBenchResult> {
  const dir = mkdtempSync(join(os.tmpdir(), 'diffguide-bench-io-'));
  const path = join(dir, 'synthetic.safetensors');
  const need = COUNT * ROWS * ROW * 4;
  try {
    const fs = statfsSync(dir);
    const free = fs.bavail * fs.bsize;
    if (free < need + (1 << 30))
      throw new Error(
        `bench io: needs ${(need / 2 ** 30).toFixed(2)} GiB + 1 GiB free in ${os.tmpdir()}, has ${(free / 2 ** 30).toFixed(2)} GiB`,
      );
    if (os.freemem() < need * 1.5)
      throw new Error(
        `bench io: needs ${((need * 1.5) / 2 ** 30).toFixed(1)} GiB free memory, has ${(os.freemem() / 2 ** 30).toFixed(1)} GiB`,
      );
    const fileBytes = await writeSynthetic(path);
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--io-child', path], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (r.status !== 0) throw new Error(`bench io: child failed (status ${r.status}): ${r.stderr.slice(-2000)}`);
    const line = r.stdout.trim().split('\n').pop() ?? '';
    const c = JSON.parse(line) as { peak: number; baseline: number; loadS: number; tensors: number };
    return {
      file_bytes: fileBytes,
      peak_rss_bytes: c.peak,
      ratio: +(c.peak / fileBytes).toFixed(4),
      baseline_rss_bytes: c.baseline,
      load_s: +c.loadS.toFixed(3),
      tensors: c.tensors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--io-child' && process.argv[3]) {
  child(process.argv[3]).catch((e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  });
}
