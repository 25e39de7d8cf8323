/**
 * The published package as a consumer gets it: `npm pack`, installed into an empty project with
 * nothing else but TypeScript, type-checked with `--strict` (no skipLibCheck) and imported at run
 * time. A type that a published .d.ts needs from a devDependency (as @types/ndarray was) fails here.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

describe('the published package in a consumer project', function () {
  const dir = mkdtempSync(join(tmpdir(), 'dg-consumer-'));
  const root = packageRoot();

  before(function () {
    // `npm pack` runs `prepare` (tsc), so dist/ is built from the sources under test.
    execFileSync(npm, ['pack', '--pack-destination', dir, '--silent'], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error(`npm pack wrote no tarball into ${dir}`);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const ts =
      (JSON.parse(
        execFileSync(npm, ['pkg', 'get', 'devDependencies.typescript'], { cwd: root, encoding: 'utf8' }),
      ) as string) || 'latest';
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', `./${tgz}`, `typescript@${ts}`], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  });

  it('type-checks under tsc --strict with only the package and TypeScript installed', () => {
    writeFileSync(
      join(dir, 'index.ts'),
      [
        "import * as dg from 'diffguide';",
        "import * as nets from 'diffguide/nets';",
        "import * as samplers from 'diffguide/samplers';",
        "import * as guidance from 'diffguide/guidance';",
        "import * as metrics from 'diffguide/metrics';",
        'export const counts: number[] = [dg, nets, samplers, guidance, metrics].map((m) => Object.keys(m).length);',
        'export const ssim: typeof metrics.ssim = metrics.ssim;',
        'export const toNd: typeof dg.toNdarray = dg.toNdarray;',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          noEmit: true,
        },
        files: ['index.ts'],
      }),
    );
    let out = '';
    try {
      execFileSync(join(dir, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { cwd: dir, encoding: 'utf8' });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    // tfjs-layers' own .d.ts files do not pass --strict without skipLibCheck (not ours to fix);
    // every error in our files or the consumer's is.
    const ours = out.split('\n').filter((l) => /^(node_modules\/diffguide\/|index\.ts)/.test(l));
    expect(ours, ours.join('\n')).to.deep.equal([]);
  });

  it('imports at run time from a fresh install', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const m = await import('diffguide'); const mt = await import('diffguide/metrics'); console.log(typeof m.initBackend, typeof m.sdedit, typeof mt.kid)",
      ],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
    expect(out.trim()).to.equal('function function function');
  });
});
