/**
 * Each method default has one definition (its `*_DEFAULTS` object): the CLI's fallbacks and its
 * --help "(default X)" are read from it, the API without options runs with it and reports it, and
 * no command file restates a default as a literal.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { cli } from './cli_util.js';
import type { ParsedArgs } from '../lib/cli/command.js';
import { formatDefault } from '../lib/cli/method-args.js';
import { sampleOptionsFrom } from '../lib/cli/commands/sample.js';
import { sdeditOptionsFrom } from '../lib/cli/commands/sdedit.js';
import { sdgOptionsFrom } from '../lib/cli/commands/sdg.js';
import { unclipOptionsFrom } from '../lib/cli/commands/unclip.js';
import { invertOptionsFrom } from '../lib/cli/commands/invert.js';
import { DIFFUSIONCLIP_DEFAULTS, resolveDiffusionClipOptions } from '../lib/methods/diffusionclip.js';
import { DEFAULT_SEED } from '../lib/methods/common.js';
import { SAMPLE_DEFAULTS, resolveSampleOptions, sample } from '../lib/methods/sample.js';
import { SDEDIT_DEFAULTS, resolveSDEditOptions, sdedit } from '../lib/methods/sdedit.js';
import { SDG_DEFAULTS, resolveSDGOptions, sdg } from '../lib/methods/sdg.js';
import * as unclip from '../lib/methods/unclip.js';
import { OptionError } from '../lib/options.js';
import { DIFFUSION_DEFAULTS, disposeModels, randomModels, scheduleSpecFromConfig } from '../lib/models/load.js';

const U = unclip.UNCLIP_DEFAULTS;
const noArgs = (): ParsedArgs => ({ values: {}, positionals: [] });

/** Per command: each flag's "(default X)" values in --help, in order, as the defaults objects say. */
const HELP_DEFAULTS: Record<string, Record<string, unknown[]>> = {
  sample: {
    seed: [DEFAULT_SEED],
    steps: [SAMPLE_DEFAULTS.steps],
    n: [SAMPLE_DEFAULTS.n],
    sampler: [SAMPLE_DEFAULTS.sampler],
    eta: [SAMPLE_DEFAULTS.eta],
  },
  sdedit: {
    seed: [DEFAULT_SEED],
    steps: [SDEDIT_DEFAULTS.steps],
    t0: [SDEDIT_DEFAULTS.t0],
    repeats: [SDEDIT_DEFAULTS.repeats],
    sde: [SDEDIT_DEFAULTS.sde],
  },
  sdg: {
    seed: [DEFAULT_SEED],
    steps: [SDG_DEFAULTS.steps],
    mode: [SDG_DEFAULTS.imageMode],
    'text-weight': [SDG_DEFAULTS.textWeight],
    'image-weight': [SDG_DEFAULTS.imageWeight],
    scale: [SDG_DEFAULTS.scale.x0, SDG_DEFAULTS.scale.xt],
    on: [SDG_DEFAULTS.on],
    sampler: [SDG_DEFAULTS.sampler],
    n: [SDG_DEFAULTS.n],
  },
  unclip: {
    seed: [DEFAULT_SEED],
    steps: [U.decode.steps],
    n: [U.textToImage.n, U.variations.n],
    frames: [U.interpolate.frames],
    thetas: [U.textDiff.thetas],
    'prior-scale': [U.prior.priorScale],
    'decoder-scale': [U.decode.decoderScale],
    'prior-steps': [U.prior.priorSteps],
    'best-of': [U.prior.bestOf],
    eta: [U.decode.eta, U.variations.eta],
  },
  invert: {
    seed: [DEFAULT_SEED],
    steps: [DIFFUSIONCLIP_DEFAULTS.nInv],
    t0: [DIFFUSIONCLIP_DEFAULTS.t0],
    'n-inv': [DIFFUSIONCLIP_DEFAULTS.nInv],
  },
};

/** Flags whose defaults are not method settings (paths, the backend, threads). */
const NOT_METHOD = new Set(['weights', 'out', 'backend', 'threads', 'clip', 'noisy-clip', 'prior']);

/** flag -> the X of each "(default X)" in its --help row. */
async function helpDefaults(command: string): Promise<Map<string, string[]>> {
  const r = await cli([command, '--help']);
  expect(r.code).to.equal(0);
  const out = new Map<string, string[]>();
  for (const line of r.out.split('\n')) {
    const m = /^\s+(?:-\w, )?--([\w-]+)(?: VALUE)?\s{2,}(.*)$/.exec(line);
    if (!m) continue;
    out.set(
      m[1],
      [...m[2].matchAll(/\(default ([^)]*)\)/g)].map((x) => x[1]),
    );
  }
  return out;
}

/** Each typed option getter call in `src` (`count(args, 'n', FALLBACK, ...)`) with its fallback argument's text. */
function getterFallbacks(src: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const m of src.matchAll(/\b(count|numOpt|int|num|numList|choice|seed)\(\s*args\b/g)) {
    // the call's arguments, split at the commas of its top level
    const args: string[] = [];
    let depth = 0;
    let cur = '';
    let i = m.index! + m[0].length - 'args'.length;
    for (; i < src.length; i++) {
      const c = src[i];
      if ('([{'.includes(c)) depth++;
      if (')]}'.includes(c)) {
        if (depth === 0) break;
        depth--;
      }
      if (c === ',' && depth === 0) {
        args.push(cur);
        cur = '';
      } else cur += c;
    }
    args.push(cur);
    const at = m[1] === 'choice' ? 3 : 2; // choice(args, name, options, fallback)
    if (args[at] !== undefined) out.push([`${m[1]}(${args.slice(0, 2).join(',')})`, args[at]]);
  }
  return out;
}

describe('defaults: one definition per method default', function () {
  this.timeout(600000);

  for (const [command, table] of Object.entries(HELP_DEFAULTS)) {
    it(`${command} --help says each default as its defaults object does, and no other method default`, async () => {
      const got = await helpDefaults(command);
      for (const [flag, values] of Object.entries(table))
        expect(got.get(flag), `--${flag}`).to.deep.equal(values.map(formatDefault));
      for (const [flag, values] of got) {
        if (NOT_METHOD.has(flag) || flag in table) continue;
        expect(values, `--${flag} states a default the test does not know: add it to HELP_DEFAULTS`).to.deep.equal([]);
      }
    });
  }

  it('the method commands restate no default as a literal (fallbacks and help come from the defaults objects)', () => {
    for (const command of Object.keys(HELP_DEFAULTS)) {
      const src = readFileSync(new URL(`../lib/cli/commands/${command}.ts`, import.meta.url), 'utf8');
      const file = `lib/cli/commands/${command}.ts`;
      expect(src.match(/\(default [\d'"[]/g) ?? [], `${file}: a default typed into a help string`).to.deep.equal([]);
      const fallbacks = getterFallbacks(src);
      expect(fallbacks.length, `${file}: its option getters`).to.be.greaterThan(2);
      for (const [call, fallback] of fallbacks)
        expect(/^\s*(\[\s*)?-?\.?\d|^\s*['"`]/.test(fallback), `${file}: ${call} falls back to a literal`).to.equal(
          false,
        );
    }
  });

  it("the CLI's fallbacks are the resolved defaults", () => {
    const s = resolveSampleOptions();
    expect(sampleOptionsFrom(noArgs())).to.deep.equal({
      n: s.n,
      steps: s.steps,
      sampler: s.sampler,
      eta: s.eta,
      seed: s.seed,
    });
    const e = resolveSDEditOptions();
    expect(sdeditOptionsFrom(noArgs())).to.deep.equal({
      t0s: [e.t0],
      repeats: e.repeats,
      sde: e.sde,
      steps: e.steps,
      seed: e.seed,
    });
    const g = resolveSDGOptions({});
    expect(sdgOptionsFrom(noArgs())).to.deep.equal({
      on: g.on,
      sampler: g.sampler,
      n: g.n,
      steps: g.steps,
      seed: g.seed,
      imageMode: g.imageMode,
      textWeight: g.textWeight,
      imageWeight: g.imageWeight,
      scale: g.scale,
    });
    const t = unclip.resolveTextToImageOptions();
    const text = unclipOptionsFrom(noArgs(), 'text');
    for (const k of ['n', 'steps', 'decoderScale', 'eta', 'priorScale', 'priorSteps', 'bestOf', 'seed'] as const)
      expect(text[k], `text-to-image ${k}`).to.equal(t[k]);
    const v = unclip.resolveVariationsOptions();
    const vars = unclipOptionsFrom(noArgs(), 'variations');
    for (const k of ['n', 'steps', 'decoderScale', 'eta', 'seed'] as const)
      expect(vars[k], `variations ${k}`).to.equal(v[k]);
    expect(unclipOptionsFrom(noArgs(), 'interpolate').frames).to.equal(unclip.resolveInterpolateOptions().frames);
    expect(unclipOptionsFrom(noArgs(), 'textDiff').thetas).to.deep.equal(
      unclip.resolveTextDiffOptions({ source: 'a', target: 'b' }).thetas,
    );
    const c = resolveDiffusionClipOptions();
    expect(invertOptionsFrom(noArgs())).to.deep.equal({ t0: c.t0, nInv: c.nInv, nGen: c.nInv });
    // the modes differ where the entry points do
    expect(text.n).to.not.equal(vars.n);
    expect(unclipOptionsFrom(noArgs(), 'interpolate').eta).to.equal(U.decode.eta);
  });

  it('the resolvers fill in exactly the defaults objects and refuse bad values by name', () => {
    expect(resolveSampleOptions()).to.deep.equal({ ...SAMPLE_DEFAULTS });
    expect(resolveSDEditOptions()).to.deep.include({
      t0: SDEDIT_DEFAULTS.t0,
      steps: SDEDIT_DEFAULTS.steps,
      repeats: SDEDIT_DEFAULTS.repeats,
      sde: SDEDIT_DEFAULTS.sde,
      clipDenoised: SDEDIT_DEFAULTS.clipDenoised,
      seed: SDEDIT_DEFAULTS.seed,
    });
    // the scale is per `on`: the default on's, and the other's when on is given
    expect(resolveSDGOptions({})).to.deep.equal({ ...SDG_DEFAULTS, scale: SDG_DEFAULTS.scale[SDG_DEFAULTS.on] });
    expect(resolveSDGOptions({ on: 'xt' }).scale).to.equal(SDG_DEFAULTS.scale.xt);
    expect(resolveSDGOptions({ on: 'x0' }).scale).to.equal(SDG_DEFAULTS.scale.x0);
    expect(resolveSDGOptions({ on: 'xt', scale: 7 }).scale).to.equal(7);
    expect(unclip.resolveDecodeOptions({})).to.deep.equal({ ...U.decode });
    expect(unclip.resolvePriorOptions({})).to.deep.equal({ ...U.prior });
    expect(unclip.resolveVariationsOptions()).to.deep.include({ ...U.variations });
    const refused: Array<[() => unknown, string]> = [
      [() => resolveSampleOptions({ n: 0 }), 'n'],
      [() => resolveSampleOptions({ sampler: 'euler' as never }), 'sampler'],
      [() => resolveSampleOptions({ eta: 2 }), 'eta'],
      [() => resolveSDEditOptions({ t0: 0 }), 't0'],
      [() => resolveSDEditOptions({ sde: 'x' as never }), 'sde'],
      [() => resolveSDEditOptions({ repeats: 1.5 }), 'repeats'],
      [() => resolveSDGOptions({ sampler: 'x' as never }), 'sampler'],
      [() => resolveSDGOptions({ on: 'x' as never }), 'on'],
      [() => resolveSDGOptions({ scale: NaN }), 'scale'],
      [() => unclip.resolveInterpolateOptions({ frames: 1 }), 'frames'],
      [() => unclip.resolvePriorOptions({ bestOf: 0 }), 'bestOf'],
      [() => unclip.resolveTextDiffOptions({ source: 'a', target: 'b', thetas: [] }), 'thetas'],
      [() => unclip.resolveDecodeOptions({ decoderScale: Infinity }), 'decoderScale'],
    ];
    for (const [f, option] of refused) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err, option).to.be.instanceOf(OptionError);
      expect((err as OptionError).option, option).to.equal(option);
    }
  });

  it('each defaults entry has a doc comment', () => {
    const files = ['sample', 'sdedit', 'sdg', 'unclip'].map((f) => `../lib/methods/${f}.ts`);
    files.push('../lib/models/weights-config.ts');
    for (const f of files) {
      const src = readFileSync(new URL(f, import.meta.url), 'utf8');
      const blocks = [...src.matchAll(/export const (\w+_DEFAULTS) = \{\n([\s\S]*?)\n\} as const;/g)];
      expect(blocks.length, f).to.be.greaterThan(0);
      for (const [, name, body] of blocks) {
        const lines = body.split('\n');
        lines.forEach((line, i) => {
          if (!/^\s+\w+: /.test(line)) return;
          const prev = lines[i - 1]?.trim() ?? '';
          // an entry of a one-line sub-object ({ n: 1 }) is covered by that line's comment
          expect(prev.endsWith('*/') || prev.endsWith('{'), `${name}: ${line.trim()} has no doc comment`).to.equal(
            true,
          );
        });
      }
    }
  });

  it('a model config naming no diffusion means DIFFUSION_DEFAULTS; the shipped UNets name theirs', () => {
    expect(scheduleSpecFromConfig(null)).to.deep.equal({
      schedule: DIFFUSION_DEFAULTS.unet.schedule,
      timesteps: DIFFUSION_DEFAULTS.unet.timesteps,
    });
    expect(scheduleSpecFromConfig({ diffusion: { schedule: 'cosine', timesteps: 500 } })).to.deep.equal({
      schedule: 'cosine',
      timesteps: 500,
    });
    for (const model of ['unet', 'cond-unet']) {
      const cfg = JSON.parse(readFileSync(new URL(`../weights/${model}/config.json`, import.meta.url), 'utf8'));
      expect(cfg.schedule, `weights/${model}/config.json names its schedule`).to.be.a('string');
      expect(scheduleSpecFromConfig(cfg).schedule).to.equal(cfg.schedule);
    }
    const r = randomModels(0, { imageSize: 16 });
    try {
      expect(r.unet.prediction).to.equal(DIFFUSION_DEFAULTS.unet.prediction);
      expect(r.unet.schedule.length).to.equal(DIFFUSION_DEFAULTS.unet.timesteps);
    } finally {
      disposeModels(r);
    }
  });

  describe('the API called without options reports the resolved defaults (tiny random models)', () => {
    const m = randomModels(0, { imageSize: 16 });
    const um: unclip.UnclipModels = {
      decoder: m.cond,
      prior: m.prior.prior,
      priorSchedule: m.prior.schedule,
      clip: m.clip,
    };
    const img = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
    after(() => {
      img.dispose();
      disposeModels(m);
    });

    it('sample', async () => {
      const r = await sample(m.unet);
      const o = resolveSampleOptions({}, m.unet);
      expect(r.settings).to.deep.equal({ n: o.n, steps: o.steps, sampler: o.sampler, eta: o.eta, seed: o.seed });
      expect(r.images.shape[0]).to.equal(SAMPLE_DEFAULTS.n);
      r.images.dispose();
    });

    it('sdedit', async () => {
      const r = await sdedit(m.unet, img);
      const o = resolveSDEditOptions({}, m.unet);
      expect(r.settings).to.deep.include({ t0: o.t0, steps: o.steps, repeats: o.repeats, sde: o.sde, seed: o.seed });
      expect(r.images.shape[0]).to.equal(SDEDIT_DEFAULTS.repeats);
      r.images.dispose();
    });

    it('sdg', async () => {
      const r = await sdg(m.unet, { noisy: m.noisy, image: m.clip, text: m.clip }, { text: 'red heart' });
      const o = resolveSDGOptions({ text: 'red heart' }, m.unet);
      expect(r.settings).to.deep.equal({
        n: o.n,
        steps: o.steps,
        sampler: o.sampler,
        scale: o.scale,
        on: o.on,
        seed: o.seed,
        text: 'red heart',
        textWeight: o.textWeight,
      });
      r.images.dispose();
    });

    it('unCLIP: text-to-image, variations, interpolation, text diff', async () => {
      const t = await unclip.textToImage(um, ['red heart']);
      const to = unclip.resolveTextToImageOptions({}, um);
      expect(t.settings).to.deep.equal({
        prompts: 'red heart',
        n: to.n,
        priorScale: to.priorScale,
        priorSteps: to.priorSteps,
        bestOf: to.bestOf,
        decoderScale: to.decoderScale,
        steps: to.steps,
        eta: to.eta,
        seed: to.seed,
      });
      tf.dispose([t.images, t.imageEmbeddings]);
      const v = await unclip.variations(um, img);
      const vo = unclip.resolveVariationsOptions({}, um.decoder);
      expect(v.settings).to.deep.equal({
        n: vo.n,
        eta: vo.eta,
        invert: vo.invert,
        steps: vo.steps,
        decoderScale: vo.decoderScale,
        seed: vo.seed,
      });
      expect(v.images.shape[0]).to.equal(U.variations.n);
      tf.dispose([v.images, v.embedding]);
      const i = await unclip.interpolate(um, img, img);
      const io = unclip.resolveInterpolateOptions({}, um.decoder);
      expect(i.settings).to.deep.equal({
        frames: io.frames,
        steps: io.steps,
        decoderScale: io.decoderScale,
        seed: io.seed,
      });
      expect(i.thetas.length).to.equal(U.interpolate.frames);
      tf.dispose([i.images, i.embeddings, i.endpoints]);
      const d = await unclip.textDiff(um, img, { source: 'cat face', target: 'dog face' });
      const dOpts = unclip.resolveTextDiffOptions({ source: 'cat face', target: 'dog face' }, um.decoder);
      expect(d.settings).to.deep.equal({
        source: 'cat face',
        target: 'dog face',
        thetas: dOpts.thetas.join(','),
        invert: dOpts.invert,
        steps: dOpts.steps,
        decoderScale: dOpts.decoderScale,
        seed: dOpts.seed,
      });
      expect(d.thetas).to.deep.equal([...U.textDiff.thetas]);
      tf.dispose([d.images, d.embeddings]);
    });
  });
});
