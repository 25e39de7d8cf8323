/** `diffguide data prepare|info|subset`: build and inspect the cached datasets. */
import { join } from 'node:path';
import type { Command } from '../command.js';
import { str, flag, outDir, outFile, outPath } from '../command.js';
import {
  Dataset,
  loadDataset,
  prepareDataset,
  writeDataset,
  cacheDir,
  SHOWCASE_EMOJI,
  type DatasetName,
  type EmojiVendor,
} from '../../data/index.js';
import { makeGrid, writePng } from '../../image/index.js';
import * as tf from '@tensorflow/tfjs';

function bar(label: string): (d: number, t: number) => void {
  let last = -1;
  return (d, t) => {
    if (process.env.DIFFGUIDE_QUIET === '1') return;
    const pct = Math.floor((100 * d) / t);
    if (pct === last && d !== t) return;
    last = pct;
    const w = 30;
    const f = Math.round((w * d) / t);
    process.stderr.write(`\r${label} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${d}/${t}${d === t ? '\n' : ''}`);
  };
}

function summary(ds: Dataset): Record<string, unknown> {
  const perCat: Record<string, number> = {};
  ds.categories.forEach((c) => (perCat[c] = (perCat[c] ?? 0) + 1));
  const perVendor: Record<string, number> = {};
  ds.vendors.forEach((v) => (perVendor[v] = (perVendor[v] ?? 0) + 1));
  return {
    name: ds.name,
    size: ds.size,
    shape: [ds.height, ds.width, ds.channels],
    train: ds.indicesOf('train').length,
    test: ds.indicesOf('test').length,
    categories: perCat,
    vendors: perVendor,
  };
}

const data: Command = {
  name: 'data',
  summary: 'prepare (download once, cache) and inspect datasets: emoji (Noto + Twemoji), mnist',
  usage: 'diffguide data prepare [emoji|mnist] [--size 32|64] [--out DIR] | data info DATASET | data subset OUT.json',
  examples: [
    'diffguide data prepare --size 32',
    'diffguide data prepare mnist',
    'diffguide data info emoji64 --grid emoji64.png',
  ],
  options: {
    size: { type: 'string', default: '32', help: 'emoji image size, 32 or 64 (default 32)' },
    out: { type: 'string', help: 'output folder (default $DIFFGUIDE_CACHE/datasets or ~/.cache/diffguide/datasets)' },
    vendors: {
      type: 'string',
      default: 'google,twitter',
      help: 'emoji vendors (google,twitter; apple/facebook are refused)',
    },
    force: { type: 'boolean', help: 'rebuild even if the cached dataset exists' },
    grid: { type: 'string', help: 'info: also write a PNG grid of the first 64 images' },
    json: { type: 'boolean', help: 'info: print JSON' },
  },
  async run(args) {
    const [sub, what] = args.positionals;
    const size = Number(str(args, 'size', '32'));
    if (size !== 32 && size !== 64) throw new Error(`--size must be 32 or 64, got ${size}`);
    if (sub === 'prepare') {
      if (typeof args.values.out === 'string') outDir(args, 'out', args.values.out); // writable, before any download
      const names: DatasetName[] = what ? [what as DatasetName] : ['emoji'];
      for (const name of names) {
        if (name !== 'emoji' && name !== 'mnist')
          throw new Error(`data prepare: unknown dataset '${name}'; use emoji or mnist`);
        const path = prepareDataset(name, {
          size: size as 32 | 64,
          out: args.values.out as string | undefined,
          vendors: str(args, 'vendors', 'google,twitter').split(',') as EmojiVendor[],
          force: flag(args, 'force'),
          onProgress: bar(`preparing ${name}`),
        });
        const ds = Dataset.load(path);
        console.log(
          `${path}: ${ds.size} images ${ds.height}x${ds.width}x${ds.channels}, train ${ds.indicesOf('train').length}, test ${ds.indicesOf('test').length}, ${ds.categoryNames.length} categories`,
        );
      }
      return 0;
    }
    if (sub === 'info') {
      if (!what) throw new Error('data info: name a dataset (emoji32, emoji64, mnist, a .json index or a folder)');
      outFile(args, 'grid');
      const ds = loadDataset(what, { out: args.values.out as string | undefined });
      const s = summary(ds);
      console.log(flag(args, 'json') ? JSON.stringify(s) : JSON.stringify(s, null, 2));
      if (typeof args.values.grid === 'string') {
        const n = Math.min(64, ds.size);
        const g = tf.tidy(() =>
          makeGrid(
            ds.images(
              Array.from({ length: n }, (_, i) => Math.floor((i * ds.size) / n)),
              { rgb: true },
            ),
            8,
          ),
        );
        writePng(args.values.grid, g);
        g.dispose();
      }
      return 0;
    }
    if (sub === 'subset') {
      // Build the small committed test subset: 64 emoji (stratified over categories, including
      // held-out ones) x both vendors at 32x32.
      const out = what ?? join('test', 'data', 'emoji32-subset.json');
      outPath(out, `data subset ${out}`);
      const ds = loadDataset('emoji32');
      const groups = new Map<string, number[]>();
      ds.items.forEach((it, i) => groups.set(it.group, [...(groups.get(it.group) ?? []), i]));
      const full = [...groups.entries()].filter(([, v]) => v.length === 2);
      const byCat = new Map<string, [string, number[]][]>();
      for (const g of full) {
        const c = ds.categories[g[1][0]];
        byCat.set(c, [...(byCat.get(c) ?? []), g]);
      }
      const chosen: number[] = [];
      const cats = [...byCat.keys()].sort();
      let k = 0;
      while (chosen.length < 128) {
        for (const c of cats) {
          const list = byCat.get(c)!;
          // every 7th group of the category, alternating test and train picks
          const wantTest = k % 3 === 0;
          const g = list.filter(([, v]) => (ds.split[v[0]] === 'test') === wantTest && !chosen.includes(v[0]))[k % 5];
          if (g && chosen.length < 128) chosen.push(...g[1]);
        }
        k++;
      }
      chosen.sort((a, b) => a - b);
      // then the showcase emoji (both vendors), appended so the stratified part keeps its order
      for (const [name, code] of Object.entries(SHOWCASE_EMOJI)) {
        const group = full.find(([g]) => g === code);
        if (!group)
          throw new Error(`data subset: the showcase emoji '${name}' (${code}) is not in emoji32 with both vendors`);
        for (const i of group[1]) if (!chosen.includes(i)) chosen.push(i);
      }
      const sub2 = ds.subset(chosen);
      writeDataset(
        out,
        {
          name: 'emoji-32-subset',
          height: 32,
          width: 32,
          channels: 3,
          categories: ds.categoryNames,
          vendors: ds.vendorNames,
          source: 'subset of emoji-32 (diffguide data subset)',
          license: (await import('../../data/emoji.js')).EMOJI_LICENSE,
          items: sub2.items,
        },
        sub2.pixels,
        true,
      );
      console.log(`${out}: ${sub2.size} images`);
      return 0;
    }
    throw new Error(`data: unknown subcommand '${sub ?? ''}'; use prepare, info or subset (cache: ${cacheDir()})`);
  },
};
export default data;
