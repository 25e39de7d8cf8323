/**
 * `npm run test:browser`: the playground in Debian's Chromium, headless, driven by playwright-core
 * (which never downloads a browser here: it launches /usr/bin/chromium, `apt-get install chromium`).
 * Builds playground/dist, serves it on localhost, paints strokes, runs SDEdit, SDG, unCLIP and Imagic
 * in the page's worker, checks a UNet forward against Node's, reloads offline, and saves
 * playground/screenshot.png. Set CHROMIUM=/path to use another Chromium build.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildPlayground } from '../../scripts/build-playground.js';
import { servePlayground } from '../../scripts/serve-playground.js';
import { loadUNetDiffuser } from '../../lib/models/load.js';
import { packageRoot } from '../../lib/paths.js';
import { Rng } from '../../lib/random.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface Shown {
  n: number;
  pixels: number[][];
  input: number[] | null;
}

/** Pixels (RGB, 0..255) of the output canvases of a panel, and of its input figure if any. */
async function shown(page: Page, panel: string): Promise<Shown> {
  // a string, not a function: tsx's transform would add helpers (__name) the page does not have
  return page.evaluate(`(() => {
    const px = (c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, i) => i % 4 !== 3);
    const outs = [...document.querySelectorAll('#${panel} figure.output canvas')];
    const inp = document.querySelector('#${panel} figure.input canvas');
    return { n: outs.length, pixels: outs.map(px), input: inp ? px(inp) : null };
  })()`);
}

const meanAbs = (a: number[], b: number[]) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
const spread = (a: number[]) => {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of a) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return hi - lo;
};

describe('playground in headless Chromium', function () {
  this.timeout(900_000);
  let server: Server;
  let url: string;
  let ctx: BrowserContext;
  let page: Page;
  let profile: string;
  const consoleErrors: string[] = [];
  const progressSeen = new Set<string>();

  before(async function () {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `no Chromium at ${CHROMIUM}: install it with 'apt-get install -y chromium' (or set CHROMIUM=/path/to/chromium)`,
      );
    const dist = await buildPlayground(join(packageRoot(), 'playground', 'dist'), () => undefined);
    ({ server, url } = await servePlayground(dist, 0));
    profile = mkdtempSync(join(tmpdir(), 'diffguide-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1100, height: 900 },
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    await page.exposeFunction('__progress', (t: string) => void progressSeen.add(t));
    await page.goto(url);
  });

  after(async () => {
    await ctx?.close();
    server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('starts the wasm backend with SIMD and our SIMD kernels, and loads the UNet over HTTP', async () => {
    const info = await page.evaluate(() => (window as any).playground.ready);
    expect(info.backend).to.equal('wasm');
    expect(info.simd).to.equal(true);
    expect(info.ourSimdKernels, 'lib/fastgrad SIMD module instantiated on tfjs memory').to.equal(true);
    expect(info.models.unet).to.equal('network');
    expect(info.imageSize).to.equal(32);
    await page.waitForFunction(() => /^ready/.test(document.getElementById('status')!.textContent ?? ''));
  });

  it('SDEdit on painted strokes: outputs appear, differ from the painting, progress shown per step', async () => {
    await page.evaluate(() => (window as any).playground.examplesReady);
    const box = (await page.locator('#paint').boundingBox())!;
    const strokeAt = async (colour: string, pts: [number, number][], size: number) => {
      await page.click(`#palette button[data-colour="${colour}"]`);
      await page.fill('#brush', String(size));
      await page.mouse.move(box.x + pts[0][0], box.y + pts[0][1]);
      await page.mouse.down();
      for (const [x, y] of pts.slice(1)) await page.mouse.move(box.x + x, box.y + y, { steps: 8 });
      await page.mouse.up();
    };
    // a yellow disc-ish scribble with two dark eyes: a face
    const ring = Array.from(
      { length: 25 },
      (_, i) =>
        [128 + 70 * Math.cos((i / 24) * 2 * Math.PI), 128 + 70 * Math.sin((i / 24) * 2 * Math.PI)] as [number, number],
    );
    await strokeAt('#fac828', ring, 60);
    await strokeAt(
      '#fac828',
      [
        [100, 128],
        [156, 128],
        [128, 100],
        [128, 156],
      ],
      70,
    );
    await strokeAt(
      '#000000',
      [
        [100, 105],
        [102, 107],
      ],
      16,
    );
    await strokeAt(
      '#000000',
      [
        [156, 105],
        [158, 107],
      ],
      16,
    );
    await strokeAt(
      '#e6262e',
      [
        [100, 160],
        [128, 172],
        [156, 160],
      ],
      10,
    );
    await page.fill('#sdSteps', '12');
    await page.fill('#repeats', '3');
    await page.evaluate(() => {
      // record the progress line as the page shows it, from the main thread, while the worker runs
      new MutationObserver(() =>
        (window as any).__progress(document.getElementById('progressText')!.textContent),
      ).observe(document.getElementById('progressText')!, { childList: true, characterData: true, subtree: true });
    });
    await page.click('#runSdedit');
    await page.waitForSelector('#sdeditOut figure.output canvas', { timeout: 600_000 });
    const s = await shown(page, 'sdeditOut');
    expect(s.n).to.equal(3);
    expect(s.input).to.not.equal(null);
    expect(spread(s.input!), 'the painting has strokes').to.be.greaterThan(150);
    for (const p of s.pixels) {
      expect(meanAbs(p, s.input!), 'output differs from the painting').to.be.greaterThan(3);
      expect(spread(p), 'output is an image, not a flat field').to.be.greaterThan(60);
    }
    expect(meanAbs(s.pixels[0], s.pixels[1]), 'repeats differ').to.be.greaterThan(1);
    const steps = [...progressSeen].filter((t) => /^sdedit: step \d+\/12/.test(t));
    expect(
      steps.length,
      `per-step progress seen by the page: ${[...progressSeen].join(' | ')}`,
    ).to.be.greaterThanOrEqual(6);
    await page.screenshot({ path: join(packageRoot(), 'playground', 'screenshot.png'), fullPage: true });
  });

  it('SDG with a prompt: guided samples appear', async () => {
    await page.click('#tabs button[data-tab=sdg]');
    await page.fill('#prompt', 'red heart');
    await page.fill('#sdgSteps', '10');
    await page.fill('#sdgN', '2');
    await page.click('#runSdg');
    await page.waitForSelector('#sdgOut figure.output canvas', { timeout: 600_000 });
    const s = await shown(page, 'sdgOut');
    expect(s.n).to.equal(2);
    for (const p of s.pixels) expect(spread(p)).to.be.greaterThan(60);
    expect(meanAbs(s.pixels[0], s.pixels[1])).to.be.greaterThan(1);
  });

  it('unCLIP interpolation and Imagic (fine-tune, then the eta slider) run in the worker', async () => {
    await page.click('#tabs button[data-tab=unclip]');
    await page.fill('#frames', '3');
    await page.fill('#unSteps', '5');
    await page.click('#runUnclip');
    await page.waitForSelector('#unclipOut figure.output canvas', { timeout: 600_000 });
    expect((await shown(page, 'unclipOut')).n).to.equal(3);
    await page.click('#tabs button[data-tab=imagic]');
    await page.fill('#embSteps', '2');
    await page.fill('#ftSteps', '2');
    await page.fill('#imagicSteps', '4');
    await page.click('#runImagic');
    await page.waitForSelector('#imagicOut figure.output canvas', { timeout: 600_000 });
    const outs = await shown(page, 'imagicOut');
    expect(outs.n).to.equal(11);
    expect(await page.textContent('#imagicOut .meta')).to.match(/lossFinetune \d/);
    const view = async () =>
      page.evaluate(
        `Array.from(document.getElementById('etaView').getContext('2d').getImageData(0, 0, 32, 32).data).filter((_, i) => i % 4 !== 3)`,
      ) as Promise<number[]>;
    // the slider shows the finished fine-tune's sample for each eta (0, 0.1, ..., 1)
    for (const k of [0, 4, 10]) {
      await page.fill('#eta', String(k));
      expect(await view(), `eta ${k / 10}`).to.deep.equal(outs.pixels[k]);
    }
    await page.click('#tabs button[data-tab=sdedit]');
  });

  it("a UNet forward in the browser (the library's code on wasm) matches Node's to 1e-5", async () => {
    const x = new Rng(11).normal<tf.Rank.R4>([2, 32, 32, 3]);
    const xs = Array.from(x.dataSync());
    const ts = [900, 250];
    const d = await loadUNetDiffuser();
    const t = tf.tensor1d(ts, 'float32');
    const want = d.unet.apply(x, t);
    const node = Array.from(want.dataSync());
    tf.dispose([x, t, want]);
    d.unet.dispose();
    const got = await page.evaluate(
      async ([data, t]) => {
        const r = await (window as any).playground.run(
          { type: 'check', x: { data: new Float32Array(data), shape: [2, 32, 32, 3] }, t },
          'check',
        );
        return { out: Array.from(r.images.data as Float32Array), backend: r.settings.backend };
      },
      [xs, ts] as const,
    );
    expect(got.backend).to.equal('wasm');
    expect(got.out.length).to.equal(node.length);
    let maxDiff = 0;
    for (let i = 0; i < node.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got.out[i] - node[i]));
    expect(maxDiff, `max |browser - node| = ${maxDiff}`).to.be.at.most(1e-5);
    expect(spread(node)).to.be.greaterThan(0.5);
  });

  it('works offline once loaded: reload without network, weights from IndexedDB, SDEdit runs', async () => {
    expect(await page.evaluate(() => (window as any).playground.offline)).to.equal(true);
    await ctx.setOffline(true);
    try {
      await page.reload();
      const info = await page.evaluate(() => (window as any).playground.ready);
      expect(info.models.unet).to.equal('cache');
      await page.evaluate(() => (window as any).playground.examplesReady);
      await page.click('#loadExample');
      await page.fill('#sdSteps', '6');
      await page.fill('#repeats', '2');
      await page.click('#runSdedit');
      await page.waitForSelector('#sdeditOut figure.output canvas', { timeout: 600_000 });
      expect((await shown(page, 'sdeditOut')).n).to.equal(2);
    } finally {
      await ctx.setOffline(false);
    }
  });

  it('?backend=webgpu without a WebGPU adapter falls back to wasm, saying why, with no console error', async () => {
    const p2 = await ctx.newPage();
    p2.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`webgpu page: ${m.text()}`);
    });
    try {
      await p2.goto(`${url}?backend=webgpu`);
      const info = await p2.evaluate(() => (window as any).playground.ready);
      expect(info.backend).to.equal('wasm');
      expect(info.skipped.map((s: { name: string }) => s.name)).to.include('webgpu');
      await p2.waitForFunction(() => /skipped webgpu/.test(document.getElementById('status')!.textContent ?? ''));
    } finally {
      await p2.close();
    }
  });

  it('the console showed no errors', () => {
    expect(consoleErrors).to.deep.equal([]);
  });
});
