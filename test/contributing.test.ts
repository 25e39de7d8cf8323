/** CONTRIBUTING.md's layout table names every folder and top-level library module that exists, and only those. */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

/** The paths in the table's "folder" column (`lib/io/`, `lib/paths.ts`, ...). */
function tablePaths(): string[] {
  const md = readFileSync(join(root, 'CONTRIBUTING.md'), 'utf8');
  const rows = md.split('\n').filter((l) => /^\| (\d+|-) \|/.test(l));
  expect(rows.length).to.be.greaterThan(10);
  return rows.flatMap((r) => [...r.split('|')[2].matchAll(/`([^`]+)`/g)].map((m) => m[1]));
}

describe("CONTRIBUTING's layout table", () => {
  it('every path it names exists', () => {
    for (const p of tablePaths()) expect(existsSync(join(root, p)), p).to.equal(true);
  });

  it('names every code folder and every module directly under lib/', () => {
    const named = new Set(tablePaths().map((p) => p.replace(/\/$/, '')));
    const folders = ['bench', 'bin', 'experiments', 'guidance', 'nets', 'notebooks', 'playground', 'samplers'];
    const expected = [
      ...folders.concat(['scripts', 'test', 'weights', '.ci']),
      ...readdirSync(join(root, 'lib'))
        .filter((f) => statSync(join(root, 'lib', f)).isDirectory() || f.endsWith('.ts'))
        .map((f) => `lib/${f}`),
    ];
    for (const p of expected) expect(named.has(p), `${p} is not in CONTRIBUTING.md's layout table`).to.equal(true);
  });
});
