/**
 * A read-only ZIP reader over positional reads: parses the (ZIP64) end record and the central directory,
 * takes sizes from the central directory (torch.save writes local headers with data descriptors), and reads
 * an entry's bytes at their offset. Stored entries are read in place; deflated ones (not written by torch)
 * are inflated in memory.
 */
import { inflateRawSync } from 'node:zlib';
import { PositionalFile } from './file.js';
import { CheckpointError } from './types.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOC = 0x07064b50;
const SIG_CDH = 0x02014b50;
const SIG_LFH = 0x04034b50;

function u64(dv: DataView, off: number): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(`zip field at ${off} is too large (${v})`);
  return Number(v);
}

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  private readonly dataOffsets = new Map<string, number>();

  private constructor(readonly file: PositionalFile) {}

  /** Parse the central directory of an already opened file. Throws CheckpointError on malformed archives. */
  static async open(file: PositionalFile): Promise<ZipArchive> {
    const z = new ZipArchive(file);
    await z.parse();
    return z;
  }

  private fail(what: string): never {
    throw new CheckpointError(`${this.file.path}: not a readable zip archive: ${what}`);
  }

  private async parse(): Promise<void> {
    const size = this.file.size;
    if (size < 22) this.fail(`only ${size} bytes (truncated file?)`);
    const tailLen = Math.min(size, 22 + 65535 + 20);
    const tail = await this.file.read(size - tailLen, tailLen);
    const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) === tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) this.fail('no end-of-central-directory record at the end (file truncated or not a zip)');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    // ZIP64: locator 20 bytes before the EOCD.
    if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_EOCD64_LOC) {
      const recOff = u64(tv, eocd - 20 + 8);
      if (recOff + 56 > size) this.fail('ZIP64 end record points past the end of the file (truncated?)');
      const rec = await this.file.read(recOff, 56);
      const rv = new DataView(rec.buffer);
      if (rv.getUint32(0, true) !== SIG_EOCD64) this.fail('bad ZIP64 end-of-central-directory record');
      count = u64(rv, 32);
      cdSize = u64(rv, 40);
      cdOffset = u64(rv, 48);
    } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      this.fail('ZIP64 sizes without a ZIP64 end record');
    }
    if (cdOffset + cdSize > size)
      this.fail(`central directory (${cdOffset}+${cdSize}) lies past the end of the ${size}-byte file (truncated?)`);
    if (cdSize > 1 << 30) this.fail(`central directory of ${cdSize} bytes is implausibly large`);
    const cd = await this.file.read(cdOffset, cdSize);
    const dv = new DataView(cd.buffer);
    const dec = new TextDecoder();
    let p = 0;
    for (let n = 0; n < count; n++) {
      if (p + 46 > cdSize || dv.getUint32(p, true) !== SIG_CDH) this.fail(`central directory entry ${n} is malformed`);
      const flags = dv.getUint16(p + 8, true);
      const method = dv.getUint16(p + 10, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let usize = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let lho = dv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdSize)
        this.fail(`central directory entry ${n} overruns the directory`);
      const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extended information extra field.
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = dv.getUint16(e, true);
        const len = dv.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          if (usize === 0xffffffff) ((usize = u64(dv, q)), (q += 8));
          if (compressedSize === 0xffffffff) ((compressedSize = u64(dv, q)), (q += 8));
          if (lho === 0xffffffff) ((lho = u64(dv, q)), (q += 8));
        }
        e += 4 + len;
      }
      if (flags & 1) this.fail(`entry ${name} is encrypted`);
      if (method !== 0 && method !== 8)
        this.fail(`entry ${name} uses compression method ${method} (only stored and deflate are supported)`);
      if (method === 0 && compressedSize !== usize)
        this.fail(`stored entry ${name} has different sizes ${compressedSize} and ${usize}`);
      if (lho + 30 + compressedSize > size) this.fail(`entry ${name} lies past the end of the file (truncated?)`);
      this.entries.set(name, { name, method, compressedSize, size: usize, localHeaderOffset: lho });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  /** File offset where the entry's (stored) bytes begin. */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const known = this.dataOffsets.get(entry.name);
    if (known !== undefined) return known;
    const h = await this.file.read(entry.localHeaderOffset, 30);
    const dv = new DataView(h.buffer);
    if (dv.getUint32(0, true) !== SIG_LFH)
      this.fail(`no local header for entry ${entry.name} at ${entry.localHeaderOffset}`);
    const off = entry.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
    if (off + entry.compressedSize > this.file.size)
      this.fail(`entry ${entry.name} lies past the end of the file (truncated?)`);
    this.dataOffsets.set(entry.name, off);
    return off;
  }

  get(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /** The whole (decompressed) entry in memory; for small entries (pickles, code). */
  async readEntry(entry: ZipEntry): Promise<Uint8Array> {
    const off = await this.dataOffset(entry);
    const raw = await this.file.read(off, entry.compressedSize);
    if (entry.method === 0) return raw;
    const out = inflateRawSync(raw);
    if (out.length !== entry.size)
      this.fail(`entry ${entry.name} inflates to ${out.length} bytes, expected ${entry.size}`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  /** Read `target.length` bytes starting `start` bytes into the entry. */
  async readRange(entry: ZipEntry, start: number, target: Uint8Array): Promise<void> {
    if (start + target.length > entry.size)
      this.fail(`entry ${entry.name} has ${entry.size} bytes; a tensor needs bytes ${start}..${start + target.length}`);
    if (entry.method === 0) {
      await this.file.readInto(target, (await this.dataOffset(entry)) + start);
      return;
    }
    const all = await this.readEntry(entry);
    target.set(all.subarray(start, start + target.length));
  }
}
