/** Schedules and respacing against guided-diffusion's tables (../shared/parity/gd_schedules.json). */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { parity } from './fixtures.js';
import {
  cosineBetas,
  linearBetas,
  makeSchedule,
  respace,
  Schedule,
  scaledLinearBetas,
  spaceTimesteps,
  uniformSkip,
} from '../samplers/schedule.js';

function maxRel(a: ArrayLike<number>, b: number[]): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 1e-300));
  return m;
}

describe('schedules: guided-diffusion parity (gd_schedules.json)', function () {
  const file = parity('gd_schedules.json');
  const have = existsSync(file);
  type Table = {
    betas: number[];
    alphas_cumprod?: number[];
    timestep_map?: number[];
    posterior_log_variance_clipped?: number[];
  };
  const tables: Record<string, Table> = have ? JSON.parse(readFileSync(file, 'utf8')) : {};
  before(function () {
    if (!have) {
      console.log(`    (skipped: ${file} not found; set DIFFGUIDE_SHARED to the fixtures folder)`);
      this.skip();
    }
  });

  const baseFor: Record<string, () => Schedule> = {
    linear_1000: () => new Schedule(scaledLinearBetas(1000)),
    cosine_1000: () => new Schedule(cosineBetas(1000)),
    linear_250: () => new Schedule(scaledLinearBetas(250)),
  };

  it('every table in the file is covered by a test here', () => {
    for (const k of Object.keys(tables)) expect(k in baseFor || k.startsWith('respaced_'), k).to.equal(true);
    expect(Object.keys(tables).filter((k) => k.startsWith('respaced_')).length).to.be.greaterThan(0);
  });

  for (const name of ['linear_1000', 'cosine_1000', 'linear_250']) {
    it(`${name}: betas and alphas_cumprod`, () => {
      const t = tables[name];
      const s = baseFor[name]();
      expect(maxRel(s.betas, t.betas)).to.be.lessThan(1e-9);
      expect(maxRel(s.alphasCumprod, t.alphas_cumprod!)).to.be.lessThan(1e-9);
    });
  }

  it('respaced tables (ddimN, section counts, comma sections): map, betas, clipped posterior log variance', () => {
    const base = baseFor.linear_1000();
    const names = Object.keys(tables).filter((k) => k.startsWith('respaced_'));
    for (const name of names) {
      const t = tables[name];
      const r = respace(base, name.slice('respaced_'.length));
      expect(Array.from(r.timestepMap), name).to.deep.equal(t.timestep_map);
      expect(maxRel(r.betas, t.betas), name).to.be.lessThan(1e-9);
      expect(maxRel(r.posteriorLogVarianceClipped, t.posterior_log_variance_clipped!), name).to.be.lessThan(1e-9);
    }
  });
});

describe('schedules: derived quantities and respacing rules', () => {
  const s = makeSchedule('linear', 1000);

  it("DDPM 'linear' equals guided-diffusion's scaled linear at T = 1000 and differs elsewhere", () => {
    expect(maxRel(linearBetas(1000), Array.from(scaledLinearBetas(1000)))).to.equal(0);
    expect(linearBetas(250)[0]).to.equal(1e-4);
    expect(scaledLinearBetas(250)[0]).to.be.closeTo(4e-4, 1e-15);
  });

  it('posterior coefficients reproduce q(x_{t-1} | x_t, x_0) (mean and variance identities)', () => {
    for (const i of [1, 10, 500, 999]) {
      const ab = s.alphasCumprod[i];
      const abp = s.alphasCumprodPrev[i];
      // x_{t-1} = sqrt(abp) x0 + ... : the posterior mean at x_t = sqrt(ab) x0 (zero noise) is sqrt(abp) x0
      expect(s.posteriorMeanCoef1[i] + s.posteriorMeanCoef2[i] * Math.sqrt(ab)).to.be.closeTo(Math.sqrt(abp), 1e-12);
      // variance: beta (1 - abp) / (1 - ab)
      expect(s.posteriorVariance[i]).to.be.closeTo((s.betas[i] * (1 - abp)) / (1 - ab), 1e-15);
      expect(s.sqrtRecipm1AlphasCumprod[i]).to.be.closeTo(Math.sqrt(1 / ab - 1), 1e-12);
    }
    expect(s.posteriorVariance[0]).to.equal(0);
    expect(s.posteriorLogVarianceClipped[0]).to.equal(Math.log(s.posteriorVariance[1]));
    expect(s.alphasCumprodPrev[0]).to.equal(1);
    expect(s.alphasCumprodNext[999]).to.equal(0);
  });

  it('respacing keeps alpha_bar at kept steps, composes maps, and rescales timesteps', () => {
    const r = respace(s, [0, 250, 500, 750, 999]);
    [0, 250, 500, 750, 999].forEach((i, k) =>
      expect(r.alphasCumprod[k] / s.alphasCumprod[i] - 1).to.be.closeTo(0, 1e-12),
    );
    const rr = respace(r, [1, 3]);
    expect(Array.from(rr.timestepMap)).to.deep.equal([250, 750]);
    expect(rr.alphasCumprod[1] / s.alphasCumprod[750] - 1).to.be.closeTo(0, 1e-12);
    expect(rr.betas[0]).to.be.closeTo(1 - s.alphasCumprod[250], 1e-15);
    const q = makeSchedule('scaled-linear', 4000, { rescaleTimesteps: true });
    const qr = respace(q, '10');
    expect(qr.modelT(qr.length - 1)).to.equal((3999 * 1000) / 4000);
    expect(r.modelT(2)).to.equal(500);
    expect(r.indexOfTimestep(750)).to.equal(3);
  });

  it('space_timesteps: ddimN strides, sections with banker rounding, and its errors', () => {
    expect(spaceTimesteps(1000, 'ddim25')).to.deep.equal(Array.from({ length: 25 }, (_, k) => k * 40));
    expect(spaceTimesteps(10, '4')).to.deep.equal([0, 3, 6, 9]);
    // (size-1)/(count-1) = 1.5: round(1.5) = 2, round(4.5) = 4 (half to even)
    expect(spaceTimesteps(7, '5')).to.deep.equal([0, 2, 3, 4, 6]);
    expect(() => spaceTimesteps(1000, 'ddim600')).to.throw(/exactly 600 steps/);
    expect(() => spaceTimesteps(10, '11')).to.throw(/cannot divide/);
  });

  it("DiffusionCLIP's uniform skip matches [int(s) for s in np.linspace(0, 1, n) * t0]", () => {
    // expected lists computed with numpy 2.4
    expect(uniformSkip(300, 7)).to.deep.equal([0, 50, 100, 150, 200, 249, 300]);
    expect(uniformSkip(500, 40)).to.deep.equal([
      0, 12, 25, 38, 51, 64, 76, 89, 102, 115, 128, 141, 153, 166, 179, 192, 205, 217, 230, 243, 256, 269, 282, 294,
      307, 320, 333, 346, 358, 371, 384, 397, 410, 423, 435, 448, 461, 474, 487, 500,
    ]);
    const u = uniformSkip(600, 100);
    expect(u.slice(15, 20)).to.deep.equal([90, 96, 103, 109, 115]);
    expect(u.slice(-3)).to.deep.equal([587, 593, 600]);
    expect(uniformSkip(999, 50).slice(0, 5)).to.deep.equal([0, 20, 40, 61, 81]);
  });

  it('cosine schedule caps betas at 0.999; invalid betas are rejected with the index', () => {
    const c = cosineBetas(1000);
    expect(c[999]).to.equal(0.999);
    expect(() => new Schedule([0.1, 0, 0.2])).to.throw(/beta\[1\] = 0/);
    expect(() => makeSchedule('quadratic' as never)).to.throw(/use one of/);
  });
});
