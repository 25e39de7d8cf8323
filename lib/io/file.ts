/** Positional reads from a file (no whole-file buffering; works for files > 2 GiB). */
import { promises as fsp } from 'node:fs';
import { CheckpointError } from './types.js';

/** Largest single read() we issue (Node refuses reads of 2 GiB or more). */
const MAX_READ = 1 << 30;

export class PositionalFile {
  private constructor(
    readonly path: string,
    private readonly fh: fsp.FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<PositionalFile> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new CheckpointError(
        code === 'ENOENT'
          ? `checkpoint file ${path} does not exist`
          : `cannot open checkpoint file ${path}: ${(e as Error).message}`,
      );
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new CheckpointError(`${path} is not a regular file`);
    }
    return new PositionalFile(path, fh, st.size);
  }

  /** Read exactly `target.length` bytes at `offset` into `target` (in chunks below 2 GiB). */
  async readInto(target: Uint8Array, offset: number): Promise<void> {
    if (offset < 0 || offset + target.length > this.size)
      throw new CheckpointError(
        `${this.path}: needs bytes ${offset}..${offset + target.length} but the file has ${this.size} bytes (truncated or corrupt file)`,
      );
    let done = 0;
    while (done < target.length) {
      const len = Math.min(MAX_READ, target.length - done);
      const { bytesRead } = await this.fh.read(target, done, len, offset + done);
      if (bytesRead === 0) throw new CheckpointError(`${this.path}: unexpected end of file at byte ${offset + done}`);
      done += bytesRead;
    }
  }

  /** Read `length` bytes at `offset` into a new array. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(out, offset);
    return out;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
