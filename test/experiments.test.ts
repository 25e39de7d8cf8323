/**
 * The paper experiments end to end (`--quick`): SDG and DiffusionCLIP write their table, results.json,
 * plot (SVG + PNG, vega-lite rendered headless) and sample sheets, and their figures go the way the
 * methods make them go; the plot helper and the engine's merge files on their own. (sdedit --quick
 * runs in test/grid.test.ts; its plot is checked here through the same engine path.) Imagic and unCLIP
 * the same way.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGrid, mergeGrid, fileHash, type Experiment } from '../lib/experiments/grid.js';
import { plotFiles, renderPlots } from '../lib/experiments/plot.js';
import { decodePng } from '../lib/image/png.js';
import { shippedModels } from '../lib/methods/index.js';
import sdgExp from '../experiments/sdg.js';
import dclipExp from '../experiments/diffusionclip.js';
import sdeditExp from '../experiments/sdedit.js';
import imagicExp from '../experiments/imagic.js';
import unclipExp from '../experiments/unclip.js';
import { packageRoot } from '../lib/paths.js';
import { DIFFUSIONCLIP_DEFAULTS } from '../lib/methods/diffusionclip.js';

const PNG_SIG = [0x89, 0x50, 0x4e, 0x47];
type Row = Record<string, number | string | null>;

describe('experiments (--quick)', function () {
  this.timeout(600000);
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'diffguide-exp-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('renderPlots: a vega-lite spec becomes SVG text with its title and a PNG twice its size', () => {
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'a test plot',
      width: 200,
      height: 100,
      data: {
        values: [
          { x: 1, y: 2 },
          { x: 2, y: 3 },
        ],
      },
      mark: 'line',
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
    } as const;
    const [p] = renderPlots([spec]);
    expect(p.svg.startsWith('<svg')).to.equal(true);
    expect(p.svg).to.contain('a test plot');
    expect([...p.png.slice(0, 4)]).to.deep.equal(PNG_SIG);
    const w = Number(/width="(\d+)"/.exec(p.svg)![1]);
    const img = decodePng(p.png);
    expect(img.width).to.equal(2 * w);
    // not blank: the line and the text leave dark pixels
    expect(img.data.some((v) => v < 100)).to.equal(true);
    expect(Object.keys(plotFiles({ a: spec }))).to.deep.equal(['a.svg', 'a.png']);
  });

  it("merge's files are written beside table.md and listed in results.json; a name outside the folder is refused", async () => {
    const mk = (files: Record<string, string>): Experiment<{ seed: number }, number> => ({
      name: 'files',
      summary: 'merge files',
      settings: () => ({ v: 1 }),
      cells: () => [{ seed: 0 }],
      runCell: async (c) => c.seed + 1,
      merge: (rs) => ({ table: `| n |\n| --- |\n| ${rs.length} |`, json: rs.length, files }),
    });
    const root = join(tmp, 'files');
    const r = await runGrid(
      mk({ 'plot.svg': '<svg/>', 'sheets/a.png': 'x' }),
      { quick: true, params: {} },
      { resultsRoot: root },
    );
    expect(r.merged!.files).to.deep.equal(['plot.svg', 'sheets/a.png']);
    expect(readFileSync(join(r.dir, 'plot.svg'), 'utf8')).to.equal('<svg/>');
    expect(JSON.parse(readFileSync(join(r.dir, 'results.json'), 'utf8')).files).to.deep.equal([
      'plot.svg',
      'sheets/a.png',
    ]);
    expect(() => mergeGrid(mk({ '../escape.svg': 'x' }), { quick: true, params: {} }, root)).to.throw(
      /relative name inside the results folder/,
    );
    expect(() => mergeGrid(mk({ 'results.json': 'x' }), { quick: true, params: {} }, root)).to.throw(
      /not table.md, results.json/,
    );
    expect(existsSync(join(root, 'escape.svg'))).to.equal(false);
  });

  it('sdg --quick: table, results.json, plot and sheets; ILVR samples resemble their reference more than unguided ones; reruns skip', async function () {
    const have = shippedModels();
    if (!have.unet || !have.clip || !have['noisy-clip'] || !have.judge) return this.skip();
    const root = join(tmp, 'sdg');
    const r = await runGrid(sdgExp, { quick: true, params: {} }, { resultsRoot: root });
    expect(r.missing).to.deep.equal([]);
    for (const f of [
      'table.md',
      'results.json',
      'comparison.svg',
      'comparison.png',
      'image.png',
      'text.png',
      'style.png',
    ])
      expect(existsSync(join(r.dir, f)), f).to.equal(true);
    expect([...readFileSync(join(r.dir, 'comparison.png')).subarray(0, 4)]).to.deep.equal(PNG_SIG);
    const res = JSON.parse(readFileSync(join(r.dir, 'results.json'), 'utf8'));
    expect(res.commit === null || /^[0-9a-f]{40}$/.test(res.commit)).to.equal(true);
    expect(res.settings.extractor).to.match(/judge/);
    expect(res.settings.weights.unet.sha256).to.match(/^[0-9a-f]{16}$/);
    // the references are distinct emoji (never one emoji in two vendors' artwork)
    const emoji = (res.settings.data.references as string[]).map((id) => id.split('/')[0]);
    expect(new Set(emoji).size).to.equal(emoji.length);
    const rows = res.results.image as Row[];
    expect(rows.map((x) => x.method)).to.deep.equal(['sdg', 'ilvr-4', 'ilvr-8', 'unguided']);
    const by = (m: string) => rows.find((x) => x.method === m)!;
    for (const x of rows) {
      expect(x.fd as number).to.be.greaterThan(0);
      expect(x.diversity as number).to.be.greaterThan(0);
    }
    // ILVR keeps the reference's 8x8 low-pass: its samples sit nearer the reference than unguided ones
    expect(by('ilvr-4').cosToRef as number).to.be.greaterThan(by('unguided').cosToRef as number);
    expect(by('ilvr-4').lpipsToRef as number).to.be.lessThan(by('unguided').lpipsToRef as number);
    expect((res.results.text as Row[]).map((x) => x.mode)).to.deep.equal(['xt', 'x0', 'unguided']);
    const table = readFileSync(join(r.dir, 'table.md'), 'utf8');
    expect(table).to.contain('14.37'); // the paper's SDG FID beside ours
    expect(table).to.contain('judge-LPIPS');
    const again = await runGrid(sdgExp, { quick: true, params: {} }, { resultsRoot: root });
    expect(again.ran).to.deep.equal([]);
    expect(again.merged!.table).to.equal(r.merged!.table);
  });

  it('sdedit --quick: KID and judge realism per t0, the trade-off plot, masked compositing keeps the background, sheets', async function () {
    const have = shippedModels();
    if (!have.unet || !have.judge) return this.skip();
    const r = await runGrid(sdeditExp, { quick: true, params: {} }, { resultsRoot: join(tmp, 'sdedit') });
    expect(r.merged!.files).to.deep.equal(['tradeoff.svg', 'tradeoff.png', 'samples.png', 'composite.png']);
    const svg = readFileSync(join(r.dir, 'tradeoff.svg'), 'utf8');
    for (const t0 of ['t0=0.3', 't0=0.6', 't0=0.9']) expect(svg).to.contain(t0);
    expect(svg).to.contain('KID');
    const sheet = decodePng(readFileSync(join(r.dir, 'samples.png')));
    // title + the guides/sources row + one row per t0 (each 32 px tiles at zoom 2)
    expect(sheet.height).to.be.greaterThan(4 * 64);
    const res = JSON.parse(readFileSync(join(r.dir, 'results.json'), 'utf8'));
    expect(res.settings.extractor).to.match(/judge/);
    expect(res.settings.kid.reference.n).to.equal(16);
    // the KID reference set holds no guide source
    for (const id of res.settings.guides.ids as string[]) expect(res.settings.kid.reference.ids).to.not.include(id);
    const rows = res.results.rows as Row[];
    expect(rows.map((x) => x.t0)).to.deep.equal([0, 0.3, 0.6, 0.9]);
    for (const x of rows) expect(Number.isFinite(x.kid as number), `KID at t0 ${x.t0}`).to.equal(true);
    expect(Number.isFinite(res.results.real.kid)).to.equal(true);
    const comp = res.results.composite as Row[];
    expect(comp.map((x) => `${x.method} ${x.t0}`)).to.deep.equal(['paste 0', 'masked 0.5', 'full 0.5']);
    const by = (m: string) => comp.find((x) => x.method === m)!;
    // the paste is the patch inside and the background outside; masked SDEdit keeps the background
    // exactly and changes the patch; SDEdit without the mask changes both
    expect(by('paste').l2Inside as number).to.be.lessThan(1e-6);
    expect(by('paste').l2Outside as number).to.be.lessThan(1e-6);
    expect(by('masked').l2Outside as number).to.be.lessThan(1e-6);
    expect(by('masked').l2Inside as number).to.be.greaterThan(0.05);
    expect(by('full').l2Outside as number).to.be.greaterThan(0.05);
    for (const x of comp) expect(Number.isFinite(x.kid as number)).to.equal(true);
    expect(r.merged!.table).to.contain('| naive paste |');
    const csheet = decodePng(readFileSync(join(r.dir, 'composite.png')));
    // title + inputs (2 rows of tiles) + paste + masked + full
    expect(csheet.height).to.be.greaterThan(5 * 64);
  });

  it('diffusionclip --quick: DDIM inversion reconstructs better than stochastic encoding; edits and the mix are scored; plot and sheets', async function () {
    const have = shippedModels();
    if (!have.unet || !have.clip || !have.judge) return this.skip();
    const r = await runGrid(dclipExp, { quick: true, params: {} }, { resultsRoot: join(tmp, 'dclip') });
    expect(r.missing).to.deep.equal([]);
    for (const f of ['table.md', 'results.json', 'reconstruction.svg', 'reconstruction.png', 'recon.png', 'edit.png'])
      expect(existsSync(join(r.dir, f)), f).to.equal(true);
    const res = JSON.parse(readFileSync(join(r.dir, 'results.json'), 'utf8')).results;
    const recon = res.recon as { t0: number; steps: number; enc: string; mae: number; ssim: number }[];
    for (const steps of [6, 10]) {
      const d = recon.find((x) => x.steps === steps && x.enc === 'ddim')!;
      const s = recon.find((x) => x.steps === steps && x.enc === 'stochastic')!;
      expect(d.mae).to.be.lessThan(s.mae);
      expect(d.ssim).to.be.greaterThan(s.ssim);
    }
    expect(recon.find((x) => x.steps === 10 && x.enc === 'ddim')!.ssim).to.be.greaterThan(0.9);
    expect((res.edits as Row[]).map((e) => e.edit)).to.deep.equal([
      'Smileys & Emotion -> Animals & Nature',
      'Animals & Nature -> Food & Drink',
    ]);
    for (const e of res.edits as Row[]) {
      expect(e.ssim as number).to.be.within(0, 1);
      expect(e.p as number).to.be.within(0, 1);
    }
    expect(res.mix.rows).to.have.length(5);
  });
  it('diffusionclip --param: the fine-tune / edit keys reach the cells and the settings key; bad values are refused', function () {
    const have = shippedModels();
    if (!have.unet || !have.clip || !have.judge) return this.skip();
    const opts = (params: Record<string, string>) => ({ quick: true, params });
    const edits = (params: Record<string, string>) =>
      (dclipExp.cells(opts(params)) as { part: string; t0: number; ft: string }[]).filter((c) => c.part !== 'recon');
    const base = edits({});
    const tuned = edits({ lr: '3e-3', t0: '0.6', modelRatio: '0.8', clipWeight: '6', l1Weight: '1', mode: 'perstep' });
    expect(base.map((c) => c.t0)).to.deep.equal(base.map(() => DIFFUSIONCLIP_DEFAULTS.t0));
    expect(tuned.map((c) => c.t0)).to.deep.equal(tuned.map(() => 0.6));
    // each key alone changes the cells' fine-tune hash (another key, another result file)
    for (const [k, v] of Object.entries({
      lr: '3e-3',
      modelRatio: '0.8',
      clipWeight: '6',
      l1Weight: '1',
      mode: 'perstep',
    }))
      expect(edits({ [k]: v })[0].ft, k).to.not.equal(base[0].ft);
    const settings = dclipExp.settings(opts({ lr: '3e-3' })) as { tuningParams?: Record<string, string> };
    expect(settings.tuningParams).to.deep.equal({ lr: '3e-3' });
    expect((dclipExp.settings(opts({})) as { tuningParams?: unknown }).tuningParams).to.equal(undefined);
    expect(() => dclipExp.cells(opts({ lr: '0' }))).to.throw(/--param lr=0/);
    expect(() => dclipExp.cells(opts({ t0: 'abc' }))).to.throw(/--param t0=abc/);
    expect(() => dclipExp.cells(opts({ mode: 'chain' }))).to.throw(/--param mode=chain/);
  });
  it('imagic --quick: the benchmark has >= 20 judge-scorable pairs; Imagic over eta and SDEdit over t0 are scored; SDEdit drifts from the input as t0 grows', async function () {
    const have = shippedModels();
    if (!have['cond-unet'] || !have.clip || !have.judge) return this.skip();
    const bench = JSON.parse(readFileSync(join(packageRoot(), 'experiments/imagic-pairs.json'), 'utf8')) as {
      pairs: { id: string; from: string; to: string; text: string }[];
    };
    expect(bench.pairs.length).to.be.at.least(20);
    expect(new Set(bench.pairs.map((p) => p.id)).size).to.equal(bench.pairs.length);
    for (const p of bench.pairs) {
      expect(p.to).to.not.equal(p.from);
      expect(p.text.toLowerCase()).to.contain(p.to.split(' ')[0].toLowerCase());
    }
    const r = await runGrid(imagicExp, { quick: true, params: {} }, { resultsRoot: join(tmp, 'imagic') });
    expect(r.missing).to.deep.equal([]);
    for (const f of ['table.md', 'results.json', 'tradeoff.svg', 'tradeoff.png', 'samples.png'])
      expect(existsSync(join(r.dir, f)), f).to.equal(true);
    expect([...readFileSync(join(r.dir, 'tradeoff.png')).subarray(0, 4)]).to.deep.equal(PNG_SIG);
    const res = JSON.parse(readFileSync(join(r.dir, 'results.json'), 'utf8'));
    expect(res.settings.weights.condUnet.sha256).to.match(/^[0-9a-f]{16}$/);
    expect(res.settings.extractor).to.match(/judge-LPIPS/);
    const rows = res.results.rows as {
      method: string;
      knob: number;
      pairs: number;
      clip: number;
      pTarget: number;
      ssim: number;
      lpips: number;
    }[];
    expect(rows.map((x) => `${x.method} ${x.knob}`)).to.deep.equal([
      'imagic 0',
      'imagic 0.6',
      'imagic 1.2',
      'sdedit 0.4',
      'sdedit 0.8',
    ]);
    for (const x of rows) {
      expect(x.pairs).to.equal(2);
      expect(x.clip).to.be.within(-1, 1);
      expect(x.pTarget).to.be.within(0, 1);
      expect(x.ssim).to.be.within(-1, 1);
      expect(x.lpips).to.be.greaterThan(0);
    }
    const sd = rows.filter((x) => x.method === 'sdedit');
    expect(sd[0].ssim).to.be.greaterThan(sd[1].ssim);
    expect(sd[0].lpips).to.be.lessThan(sd[1].lpips);
    expect(readFileSync(join(r.dir, 'table.md'), 'utf8')).to.contain('| input (no edit) |');
  });

  it('unclip --quick: diversity and FD per (mode, decoder scale), unCLIP vs the text-conditioned decoder (text-unet); prompts judged above chance; variations, interpolation and text-diff sheets', async function () {
    const have = shippedModels();
    if (!have['cond-unet'] || !have.prior || !have.clip || !have.judge) return this.skip();
    if (!existsSync(join(packageRoot(), 'weights', 'text-unet', 'text-unet.safetensors'))) return this.skip();
    const r = await runGrid(unclipExp, { quick: true, params: {} }, { resultsRoot: join(tmp, 'unclip') });
    expect(r.missing).to.deep.equal([]);
    for (const f of [
      'table.md',
      'results.json',
      'guidance.svg',
      'guidance.png',
      'samples.png',
      'variations.png',
      'interpolation.png',
      'textdiff.png',
    ])
      expect(existsSync(join(r.dir, f)), f).to.equal(true);
    const res = JSON.parse(readFileSync(join(r.dir, 'results.json'), 'utf8'));
    expect(res.settings.weights.prior.sha256).to.match(/^[0-9a-f]{16}$/);
    // the GLIDE-like baseline is the decoder trained on text embeddings, not the image decoder
    expect(res.settings.weights.textDecoder.file).to.equal('weights/text-unet/text-unet.safetensors');
    // its hash keys the glide cells (retraining it reruns only those)
    const sha = fileHash(join(packageRoot(), res.settings.weights.textDecoder.file));
    expect(sha).to.not.equal(res.settings.weights.decoder.sha256);
    expect(existsSync(join(r.dir, 'cells', `kind=glide_scale=4_weights=${sha}.json`))).to.equal(true);
    expect(res.settings.modes).to.deep.equal(['unclip', 'glide']);
    const g = res.results.guidance as {
      mode: string;
      scale: number;
      diversity: number;
      fd: number;
      categoryRate: number;
    }[];
    expect(g.map((x) => x.scale)).to.deep.equal([1, 4, 1, 4]);
    expect(g.map((x) => x.mode.split(' ')[0])).to.deep.equal([
      'unCLIP',
      'unCLIP',
      'text-conditioned',
      'text-conditioned',
    ]);
    for (const x of g) {
      expect(x.diversity).to.be.greaterThan(0);
      expect(x.fd).to.be.greaterThan(0);
    }
    // prior + decoder at scale 4: the judge sees the prompt's category well above chance (1/9)
    expect(g.find((x) => x.mode.startsWith('unCLIP') && x.scale === 4)!.categoryRate).to.be.greaterThan(1 / 9 + 0.15);
    // the guidance scale changes the images (the same x_T and embeddings at both scales)
    expect(g[0].diversity).to.not.equal(g[1].diversity);
    expect(g[2].diversity).to.not.equal(g[3].diversity);
    // the two decoders make different images from the same x_T
    expect(g[2].fd).to.not.equal(g[0].fd);
    expect(res.results.variations.categoryAgreement).to.be.within(0, 1);
    expect(res.results.textDiff.pTarget).to.have.length(5);
    const table = readFileSync(join(r.dir, 'table.md'), 'utf8');
    expect(table).to.contain('GLIDE-like');
    expect(table).to.contain('weights/text-unet/text-unet.safetensors');
    expect(table).to.contain('Change from decoder scale 1 to 4');
    expect(table).to.not.contain('image decoder on text embedding'); // the stand-in runs only with --param standin=1
  });
});
