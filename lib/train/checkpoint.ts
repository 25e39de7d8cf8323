/**
 * Training checkpoints: one safetensors file (fp32, our internal NHWC-side layout) holding the
 * parameters (`params/<name>`), EMA weights (`ema/<name>`), Adam moments (`adam_m/…`, `adam_v/…`)
 * and, in `__metadata__.diffguide_state`, the JSON training state (step, Adam t, sampler position,
 * seed, loss history tail, config). Written atomically: temp file, fsync, rename, so a SIGKILL at any
 * moment leaves either the previous or the new checkpoint, never a torn one.
 *
 * (Shipped weights are different files: PyTorch layout and reference key names, via the net's
 * `toStateDict`.)
 */
import * as tf from '@tensorflow/tfjs';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { makeDirs } from '../output.js';

export interface CheckpointTensors {
  [group: string]: Map<string, tf.Tensor>;
}

/** Write `groups` (each a name -> tensor map) and a JSON `state` atomically to `path`. */
export function writeCheckpoint(path: string, groups: CheckpointTensors, state: unknown): void {
  const header: Record<string, unknown> = {
    __metadata__: { format: 'diffguide-train-checkpoint', diffguide_state: JSON.stringify(state) },
  };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [g, m] of Object.entries(groups)) {
    for (const [k, t] of m) {
      const data = t.dataSync();
      const f = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
      const bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
      header[`${g}/${k}`] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
  }
  let hjson = JSON.stringify(header);
  hjson += ' '.repeat((8 - (Buffer.byteLength(hjson) % 8)) % 8);
  const hbuf = Buffer.from(hjson, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbuf.length));
  makeDirs(dirname(path), `checkpoint folder ${dirname(path)}`);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, hbuf);
    for (const c of chunks) writeSync(fd, c);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  try {
    const dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // directory fsync is not supported everywhere
  }
}

/** Whether process `pid` is running (EPERM: it is, under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove the temporaries `writeCheckpoint` leaves when its process is killed mid-write
 * (`<path>.tmp-<pid>` of a process that is gone; this process's own and a live writer's are kept).
 * Returns the files removed.
 */
export function removeStaleTemporaries(path: string): string[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(join(dir, name));
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}

export interface LoadedCheckpoint {
  groups: Record<string, Map<string, { shape: number[]; data: Float32Array }>>;
  state: unknown;
}

/** Read a checkpoint written by `writeCheckpoint`. */
export function readCheckpoint(path: string): LoadedCheckpoint {
  if (!existsSync(path))
    throw new Error(`checkpoint ${path} does not exist (nothing to resume; start without --resume)`);
  const buf = readFileSync(path);
  if (buf.length < 8) throw new Error(`checkpoint ${path} is truncated (${buf.length} bytes)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8)
    throw new Error(
      `checkpoint ${path}: header length ${n} exceeds the file (${buf.length} bytes); the file is truncated`,
    );
  let header: Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
  >;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    throw new Error(`checkpoint ${path}: header is not JSON (${e instanceof Error ? e.message : e})`);
  }
  const meta = header.__metadata__ as Record<string, string> | undefined;
  if (meta?.format !== 'diffguide-train-checkpoint')
    throw new Error(`${path} is not a diffguide training checkpoint (no diffguide_state metadata)`);
  const base = 8 + n;
  const groups: LoadedCheckpoint['groups'] = {};
  for (const [key, e] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const info = e as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [a, b] = info.data_offsets;
    if (base + b > buf.length)
      throw new Error(`checkpoint ${path}: tensor ${key} lies past the end of the file; the file is truncated`);
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset + base + a, buf.byteOffset + base + b));
    const slash = key.indexOf('/');
    const g = key.slice(0, slash);
    (groups[g] ??= new Map()).set(key.slice(slash + 1), { shape: info.shape, data });
  }
  return { groups, state: JSON.parse(meta.diffguide_state) };
}

/** Assign checkpoint values to variables by name; every variable must be present with its shape. */
export function assignGroup(
  vars: Map<string, tf.Variable>,
  group: Map<string, { shape: number[]; data: Float32Array }> | undefined,
  what: string,
  path: string,
): void {
  if (!group) throw new Error(`checkpoint ${path} has no ${what} tensors`);
  for (const [k, v] of vars) {
    const e = group.get(k);
    if (!e)
      throw new Error(
        `checkpoint ${path} has no ${what} '${k}'; it was written for another model or config (start a new --out folder)`,
      );
    if (e.shape.join(',') !== v.shape.join(',')) {
      throw new Error(
        `checkpoint ${path}: ${what} '${k}' has shape [${e.shape}], the model has [${v.shape}]; the config changed (use the checkpoint's config or a new --out folder)`,
      );
    }
    tf.tidy(() => v.assign(tf.tensor(e.data, e.shape, v.dtype)));
  }
}
