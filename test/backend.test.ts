import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend } from '../lib/backend.js';
import { Rng, deriveSeed } from '../lib/random.js';

describe('backend', () => {
  it('reports the chosen backend, matching tfjs', () => {
    const b = backendInfo();
    expect(b).to.not.equal(null);
    expect(tf.getBackend()).to.equal(b!.tfBackend);
  });
  it('rejects an unknown DIFFGUIDE_BACKEND with the valid names', async () => {
    const saved = process.env.DIFFGUIDE_BACKEND;
    process.env.DIFFGUIDE_BACKEND = 'cuda';
    try {
      let err: Error | null = null;
      await initBackend({ verbose: false }).catch((e: Error) => (err = e));
      expect(err).to.be.instanceOf(Error);
      expect(String(err)).to.match(/not a backend.*wasm/);
    } finally {
      if (saved === undefined) delete process.env.DIFFGUIDE_BACKEND;
      else process.env.DIFFGUIDE_BACKEND = saved;
    }
  });
});

describe('seeds', () => {
  it('the same seed gives the same tensor, another seed another', () => {
    const a = new Rng(7).normal([64]).arraySync() as number[];
    const b = new Rng(7).normal([64]).arraySync() as number[];
    const c = new Rng(8).normal([64]).arraySync() as number[];
    expect(a).to.deep.equal(b);
    expect(a).to.not.deep.equal(c);
  });
  it('derived seeds differ across streams', () => {
    const s = new Set(Array.from({ length: 1000 }, (_, i) => deriveSeed(1, i)));
    expect(s.size).to.equal(1000);
  });
});

describe('backend selection in a fresh process', () => {
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'lib/cli/run.ts', 'info', '--json'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      env: { ...process.env, DIFFGUIDE_BACKEND: '', ...env },
      timeout: 120000,
    });
    expect(r.status, r.stderr).to.equal(0);
    return {
      info: JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        backend: string;
        threads: number;
        skipped: { name: string; reason: string }[];
      },
      stderr: r.stderr,
    };
  };
  it('auto mode without a Vulkan loader skips webgpu quietly (no Dawn warning)', function () {
    const hasVulkan = ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu'].some((d) =>
      existsSync(`${d}/libvulkan.so.1`),
    );
    if (hasVulkan || process.platform !== 'linux') this.skip();
    const { info, stderr } = run({});
    expect(stderr).to.not.match(/Couldn't load Vulkan/);
    expect(info.skipped.find((s) => s.name === 'webgpu')?.reason).to.match(/Vulkan loader/);
  });
  it('DIFFGUIDE_WASM_THREADS=2 starts the threaded build', () => {
    const { info } = run({ DIFFGUIDE_BACKEND: 'wasm', DIFFGUIDE_WASM_THREADS: '2' });
    expect(info.backend).to.equal('wasm');
    expect(info.threads).to.equal(2);
  });
});
