import { expect } from 'chai';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, truncateSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';
import {
  Dataset,
  BatchSampler,
  ensurePackage,
  ensurePackages,
  emojiPackage,
  prepareDataset,
  SHOWCASE_EMOJI,
  writeDataset,
  readDataset,
  loadFolder,
  buildEmoji,
  splitOf,
  emojiCaption,
  testSubsetPath,
} from '../lib/data/index.js';
import { encodePng } from '../lib/image/index.js';

const SUBSET = testSubsetPath(packageRoot());
const dir = mkdtempSync(join(tmpdir(), 'dg-data-'));

describe('lib/data', () => {
  const ds = Dataset.load(SUBSET);

  it('loads the committed emoji subset with metadata, both vendors, both splits', () => {
    expect(ds.size).to.equal(142);
    expect([ds.height, ds.width, ds.channels]).to.deep.equal([32, 32, 3]);
    expect(ds.categoryNames).to.have.length(9);
    expect(ds.vendorNames).to.deep.equal(['google', 'twitter']);
    expect(ds.indicesOf('test').length).to.be.greaterThan(0);
    expect(ds.indicesOf('train').length).to.be.greaterThan(0);
    ds.categoryIds.forEach((c) => expect(c).to.be.within(0, 8));
    expect(ds.captions[0]).to.match(/, (noto|twemoji) style$/);
  });

  it('keeps both vendors of an emoji in the same split', () => {
    const by = new Map<string, Set<string>>();
    ds.items.forEach((it) => by.set(it.group, (by.get(it.group) ?? new Set()).add(it.split)));
    for (const [g, s] of by) expect(s.size, g).to.equal(1);
    for (const it of ds.items) expect(it.split).to.equal(splitOf(it.group));
  });

  it('splitOf holds out about 10% of keys, deterministically', () => {
    let t = 0;
    for (let i = 0; i < 5000; i++) if (splitOf(`k${i}`) === 'test') t++;
    expect(t / 5000).to.be.within(0.08, 0.12);
    expect(splitOf('1f600')).to.equal(splitOf('1f600'));
  });

  it('images() gives [B, H, W, 3] in [-1, 1] matching the bytes; white background', () => {
    const x = ds.images([0, 5]);
    expect(x.shape).to.deep.equal([2, 32, 32, 3]);
    const v = x.dataSync();
    expect(v[0]).to.be.closeTo(ds.pixelsOf(0)[0] / 127.5 - 1, 1e-6);
    expect(Math.max(...v)).to.be.at.most(1);
    expect(Math.min(...v)).to.be.at.least(-1);
    // corners of emoji are background (white) for most images
    let white = 0;
    for (let i = 0; i < ds.size; i++) if (ds.pixelsOf(i)[0] === 255) white++;
    expect(white / ds.size).to.be.greaterThan(0.5);
    x.dispose();
  });

  it('the batch sampler is seeded, covers each epoch once, and resumes from its state', () => {
    const idx = ds.indicesOf('train');
    const a = new BatchSampler(idx, 16, 7);
    const seen: number[] = [];
    for (let i = 0; i < Math.floor(idx.length / 16); i++) seen.push(...a.next());
    expect(new Set(seen).size).to.equal(seen.length);
    const state = a.getState();
    const next1 = [a.next(), a.next(), a.next(), a.next(), a.next(), a.next()];
    const b = new BatchSampler(idx, 16, 7, state);
    const next2 = [b.next(), b.next(), b.next(), b.next(), b.next(), b.next()];
    expect(next2).to.deep.equal(next1);
    const c = new BatchSampler(idx, 16, 8);
    expect(c.next()).to.not.deep.equal(new BatchSampler(idx, 16, 7).next());
    expect(() => new BatchSampler([], 4, 1)).to.throw(/empty/);
  });

  it('subset() and pixelStats() work on splits', () => {
    const test = ds.subset('test');
    expect(test.split.every((s) => s === 'test')).to.equal(true);
    expect(test.categoryNames).to.deep.equal(ds.categoryNames);
    const { mean, variance } = test.pixelStats();
    expect(mean.length).to.equal(32 * 32 * 3);
    expect(mean[0]).to.be.within(-1, 1);
    expect(variance.every((v) => v >= 0)).to.equal(true);
  });

  it('round-trips the format and rejects truncated pixel files with the fix', () => {
    const p = join(dir, 'tiny.json');
    const items = [{ id: 'a', group: 'a', category: 'x', caption: 'a', split: 'train' as const }];
    writeDataset(
      p,
      {
        name: 'tiny',
        height: 2,
        width: 2,
        channels: 3,
        categories: ['x'],
        vendors: [''],
        source: 't',
        license: 't',
        items,
      },
      new Uint8Array(12).fill(7),
    );
    const { pixels } = readDataset(p);
    expect(Array.from(pixels)).to.deep.equal(new Array(12).fill(7));
    truncateSync(join(dir, 'tiny.bin'), 5);
    expect(() => readDataset(p)).to.throw(/tiny\.bin: 5 bytes, expected 12.*diffguide data prepare/);
    expect(() => readDataset(join(dir, 'nope.json'))).to.throw(/does not exist.*diffguide data prepare/);
    writeFileSync(join(dir, 'bad.json'), '{oops');
    expect(() => readDataset(join(dir, 'bad.json'))).to.throw(/not valid JSON/);
  });

  it('loads a folder of PNGs with categories from sub-folders, resized', () => {
    const root = join(dir, 'imgs');
    for (const cat of ['cats', 'dogs']) {
      mkdirSync(join(root, cat), { recursive: true });
      for (let i = 0; i < 3; i++) {
        const px = new Uint8Array(8 * 8 * 3).fill(cat === 'cats' ? 200 : 10);
        writeFileSync(join(root, cat, `img_${i}.png`), encodePng(px, 8, 8));
      }
    }
    const f = loadFolder(root, { size: 4 });
    expect(f.size).to.equal(6);
    expect(f.categoryNames).to.deep.equal(['cats', 'dogs']);
    expect(f.pixelsOf(0)[0]).to.equal(200);
    expect(f.pixelsOf(5)[0]).to.equal(10);
    expect(f.captions[0]).to.equal('img 0');
    writeFileSync(join(root, 'cats', 'broken.png'), 'nope');
    expect(() => loadFolder(root)).to.throw(/broken\.png is not a PNG/);
  });

  it('builds captions from name, short names, category, subcategory and vendor style', () => {
    const c = emojiCaption(
      { name: 'grinning face', shortNames: ['grinning'], category: 'Smileys & Emotion', subcategory: 'face-smiling' },
      'twitter',
    );
    expect(c).to.equal('grinning face (grinning), smileys & emotion, face smiling, twemoji style');
  });

  it('does not install packages when told not to, and says how to', () => {
    const old = process.env.DIFFGUIDE_CACHE;
    process.env.DIFFGUIDE_CACHE = join(dir, 'cache');
    try {
      expect(() => ensurePackage('emoji-datasource-google', '16', { noInstall: true })).to.throw(
        /not in the cache .*npm install .*--prefix .*emoji-datasource-google@16/,
      );
    } finally {
      if (old === undefined) delete process.env.DIFFGUIDE_CACHE;
      else process.env.DIFFGUIDE_CACHE = old;
    }
  });

  it('refuses the Apple and Facebook emoji sets', () => {
    expect(() => buildEmoji({ vendors: ['apple' as never] })).to.throw(/not licensed/);
  });

  describe('a fresh cache (real npm installs from the registry)', function () {
    // Each data package used to be installed with its own `npm install --prefix`, which prunes what
    // the folder's package.json does not list: the second vendor removed the first, and data
    // preparation (so train and eval) failed on every fresh machine.
    const cache = join(dir, 'fresh-cache');
    let old: string | undefined;
    before(() => {
      old = process.env.DIFFGUIDE_CACHE;
      process.env.DIFFGUIDE_CACHE = cache;
    });
    after(() => {
      if (old === undefined) delete process.env.DIFFGUIDE_CACHE;
      else process.env.DIFFGUIDE_CACHE = old;
    });
    const log: string[] = [];
    const quiet = { log: (l: string) => log.push(l) };

    it('installing one data package after another keeps both, recorded in the cache manifest', () => {
      const [g] = ensurePackages([emojiPackage('google')], quiet);
      const [t] = ensurePackages([emojiPackage('twitter')], quiet);
      expect(existsSync(join(g, 'img', 'google', '64', '1f600.png')), 'google kept').to.equal(true);
      expect(existsSync(join(t, 'img', 'twitter', '64', '1f600.png'))).to.equal(true);
      const manifest = JSON.parse(readFileSync(join(cache, 'pkgs', 'package.json'), 'utf8'));
      expect(Object.keys(manifest.dependencies).sort()).to.deep.equal([
        'emoji-datasource-google',
        'emoji-datasource-twitter',
      ]);
      expect(log.filter((l) => /installing data package/.test(l))).to.have.length(2);
    });

    it('a half-written package (files missing) is installed again, not fatal', () => {
      const g = join(cache, 'pkgs', 'node_modules', 'emoji-datasource-google');
      rmSync(join(g, 'img', 'google', '64', '1f600.png'));
      log.length = 0;
      ensurePackages([emojiPackage('google'), emojiPackage('twitter')], quiet);
      expect(log.join('\n')).to.match(
        /emoji-datasource-google .* is incomplete \(missing img\/google\/64\/1f600\.png\); installing it again/,
      );
      expect(existsSync(join(g, 'img', 'google', '64', '1f600.png'))).to.equal(true);
      expect(
        existsSync(join(cache, 'pkgs', 'node_modules', 'emoji-datasource-twitter', 'emoji.json')),
        'twitter kept',
      ).to.equal(true);
    });

    it('prepares the full emoji set: ~1,900 emoji per vendor, ~10% held out; a truncated one is rebuilt', () => {
      const p = prepareDataset('emoji', { size: 32, ...quiet });
      const full = Dataset.load(p);
      expect(full.vendors.filter((v) => v === 'google').length).to.be.within(1800, 2000);
      expect(full.vendors.filter((v) => v === 'twitter').length).to.be.within(1800, 2000);
      const frac = full.indicesOf('test').length / full.size;
      expect(frac).to.be.within(0.07, 0.13);
      truncateSync(p.replace(/\.json$/, '.bin'), 1000);
      log.length = 0;
      expect(Dataset.load(prepareDataset('emoji', { size: 32, ...quiet })).size).to.equal(full.size);
      expect(log.join('\n')).to.match(/is incomplete .*building it again/);
    });
  });

  it('the committed subset holds every showcase emoji, both vendors', () => {
    for (const [name, code] of Object.entries(SHOWCASE_EMOJI)) {
      expect(
        ds.items
          .filter((it) => it.group === code)
          .map((it) => it.vendor)
          .sort(),
        name,
      ).to.deep.equal(['google', 'twitter']);
    }
  });
});
