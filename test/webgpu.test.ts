/**
 * The webgpu backend against wasm on the library's main paths (test/backend_cases.ts): UNet forward,
 * input / parameter / embedding gradients, CLIP forward and image gradient, one step of each
 * sampler, SDEdit and SDG end to end. webgpu runs in a child process (test/backend_child.ts) so
 * that it starts on its own, away from this suite's wasm backend; the wasm results are computed
 * here, from the same inputs.
 *
 * Without a GPU this runs on SwiftShader's software Vulkan (lib/webgpu.ts finds it): on Debian /
 * Ubuntu `apt-get install --no-install-recommends libvulkan1 chromium-common`. On Linux a missing
 * driver fails the test with that line (it can always be installed); it skips only where it
 * cannot be: the optional `webgpu` package absent, or another OS without an adapter.
 *
 * Tolerance: each output within 1e-4 of max|wasm output|, where outputs more than 100x smaller
 * than the case's largest (gradients that are zero up to rounding, e.g. a conv bias feeding a
 * GroupNorm) are measured against 1/100 of that largest.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CASES, disposeCaseModels, mathInputs, type CaseResult } from './backend_cases.js';
import { SOFTWARE_VULKAN_HINT } from '../lib/webgpu.js';

interface ChildReport {
  backend?: string;
  details?: Record<string, string>;
  error?: string;
  skipped?: { name: string; reason: string }[];
  cases: Record<string, { ms?: number; outputs?: Record<string, number[]>; error?: string; count?: number }>;
}

const CHILD_TIMEOUT_MS = 20 * 60 * 1000;
const REL = 1e-4;

function runChild(backend: string, dir: string): Promise<{ report: ChildReport; stderr: string; ms: number }> {
  const out = join(dir, `${backend}.json`);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join('test', 'backend_child.ts'), backend, out],
      { timeout: CHILD_TIMEOUT_MS, maxBuffer: 16 << 20, env: { ...process.env, DIFFGUIDE_QUIET: '1' } },
      (err, _stdout, stderr) => {
        let report: ChildReport;
        try {
          report = JSON.parse(readFileSync(out, 'utf8')) as ChildReport;
        } catch {
          reject(
            new Error(
              `backend_child ${backend} wrote no report (${err?.message ?? 'no error'}); stderr:\n${stderr.slice(-4000)}`,
            ),
          );
          return;
        }
        resolve({ report, stderr, ms: performance.now() - t0 });
      },
    );
  });
}

/** Why webgpu may be skipped here (it cannot be installed), or null when its absence is a failure. */
function skipReason(error: string): string | null {
  if (/Cannot find (module|package) '(webgpu|@tensorflow\/tfjs-backend-webgpu)'/.test(error))
    return `the optional webgpu packages are not installed (${error.split('\n')[0]})`;
  if (process.platform !== 'linux')
    return `no WebGPU adapter on ${process.platform} (${error}); SwiftShader via apt is a Linux fallback`;
  return null;
}

describe("webgpu (SwiftShader or a GPU) against wasm: the library's paths", function () {
  this.timeout(CHILD_TIMEOUT_MS + 60000);
  let dir: string;
  let gpu: ChildReport | null = null;
  let auto: ChildReport | null = null;
  let gpuMs = 0;
  const wasm: Record<string, CaseResult> = {};

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'diffguide-webgpu-'));
    const child = runChild('webgpu', dir); // runs beside the wasm cases below
    const autoChild = child.then(() => runChild('auto', dir));
    for (const [name, run] of Object.entries(CASES)) wasm[name] = await run();
    disposeCaseModels();
    const r = await child;
    gpuMs = r.ms;
    if (r.report.error) {
      const why = skipReason(r.report.error);
      if (why) {
        console.log(`    skipping the webgpu subset: ${why}`);
        this.skip();
      }
      throw new Error(
        `webgpu did not start: ${r.report.error}. On Linux without a GPU install SwiftShader's software Vulkan: ${SOFTWARE_VULKAN_HINT}`,
      );
    }
    gpu = r.report;
    auto = (await autoChild).report;
    const per = Object.entries(gpu.cases)
      .filter(([, c]) => c.ms !== undefined)
      .map(([n, c]) => `${n} ${(c.ms! / 1000).toFixed(1)}s`);
    console.log(
      `    webgpu child: ${(gpuMs / 1000).toFixed(1)} s in all on ${gpu.details?.adapter}; ${per.join(', ')}`,
    );
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts on a named adapter and driver; auto skips a software adapter', () => {
    expect(gpu!.backend).to.equal('webgpu');
    expect(gpu!.details?.adapter, 'adapter described').to.match(/\S/);
    expect(gpu!.details?.driver, 'driver described').to.match(/\S/);
    if (/\(software\)/.test(gpu!.details!.adapter)) {
      expect(auto!.backend, 'auto on a machine with only software Vulkan').to.not.equal('webgpu');
      const s = auto!.skipped?.find((k) => k.name === 'webgpu');
      expect(s?.reason, 'why auto skipped webgpu').to.match(/software|no hardware/);
    }
  });

  it("Sin, Cos and Log are accurate on webgpu (diffguide's kernels, not the drivers' builtins)", () => {
    const c = gpu!.cases['Sin, Cos, Log'];
    expect(c.error, c.error).to.equal(undefined);
    const { trig, log } = mathInputs();
    const worst = (got: number[], x: Float32Array, f: (v: number) => number) => {
      let w = 0;
      for (let i = 0; i < x.length; i++) w = Math.max(w, Math.abs(got[i] - f(x[i])) / Math.max(1, Math.abs(f(x[i]))));
      return w;
    };
    expect(worst(c.outputs!.sin, trig, Math.sin), 'sin on |x| <= 1000').to.be.below(2e-7);
    expect(worst(c.outputs!.cos, trig, Math.cos), 'cos on |x| <= 1000').to.be.below(2e-7);
    expect(worst(c.outputs!.log, log, Math.log), 'log on 1e-38..1e38').to.be.below(3e-7);
  });

  for (const name of Object.keys(CASES)) {
    it(`${name}: webgpu within ${REL} (relative) of wasm`, () => {
      const c = gpu!.cases[name];
      expect(c, `case ${name} missing from the child's report`).to.not.equal(undefined);
      expect(c.error, `webgpu: ${c.error}`).to.equal(undefined);
      const ref = wasm[name];
      const caseMax = Math.max(...Object.values(ref).map((v) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0)));
      expect(caseMax, 'the wasm result is not all zeros').to.be.greaterThan(0);
      for (const [k, want] of Object.entries(ref)) {
        const got = c.outputs![k];
        expect(got.length, k).to.equal(want.length);
        let err = 0;
        let scale = 0;
        for (let i = 0; i < want.length; i++) {
          err = Math.max(err, Math.abs(got[i] - want[i]));
          scale = Math.max(scale, Math.abs(want[i]));
        }
        expect(Number.isFinite(err), `${k}: finite`).to.equal(true);
        expect(err, `${k}: max|webgpu - wasm| (max|wasm| ${scale.toExponential(3)})`).to.be.at.most(
          REL * Math.max(scale, caseMax / 100),
        );
      }
    });
  }

  it('the SDG case measures guidance: its guided and unguided samples differ', () => {
    const name = Object.keys(CASES).find((n) => n.startsWith('SDG'))!;
    const moved = wasm[name].guidanceMoved;
    expect(moved.reduce((m, x) => Math.max(m, Math.abs(x)), 0)).to.be.greaterThan(1e-5);
  });

  it('no tensors left on webgpu after the cases', () => {
    expect(gpu!.cases['tensors left'].count).to.equal(0);
  });
});
