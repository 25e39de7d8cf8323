/**
 * The code is formatted by Prettier (config in .prettierrc.json; .prettierignore leaves data, prose and the
 * generated wasm alone). `npm run format` fixes what this finds.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { packageRoot } from '../lib/paths.js';

describe('formatting', () => {
  it('every source file is as Prettier writes it (npm run format fixes it)', function () {
    this.timeout(120_000);
    const bin = createRequire(import.meta.url).resolve('prettier/bin/prettier.cjs');
    const r = spawnSync(process.execPath, [bin, '--list-different', '.'], { cwd: packageRoot(), encoding: 'utf8' });
    expect(r.stderr, r.stderr).to.equal('');
    const unformatted = r.stdout.split('\n').filter(Boolean);
    expect(unformatted, `not formatted (run npm run format): ${unformatted.join(', ')}`).to.deep.equal([]);
    expect(r.status).to.equal(0);
  });
});
