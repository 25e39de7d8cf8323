#!/usr/bin/env node
// Runs the compiled CLI (npm install builds dist/ via the `prepare` script).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
const compiled = fileURLToPath(new URL('../dist/lib/cli/main.js', import.meta.url));
if (!existsSync(compiled)) {
  console.error('diffguide: dist/ is missing; run `npm run build` (npm install does it) first.');
  process.exit(2);
}
warnIfStale(compiled);
const { runCli } = await import(compiled);
runCli(process.argv.slice(2));

/** In a source checkout, say so when a TypeScript source is newer than dist/ (stale build). */
function warnIfStale(built) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  if (!existsSync(join(root, 'tsconfig.json'))) return; // an installed package: no sources
  const builtAt = statSync(built).mtimeMs;
  const newer = (dir) => {
    if (!existsSync(dir)) return null;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        const hit = newer(p);
        if (hit) return hit;
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && statSync(p).mtimeMs > builtAt) return p;
    }
    return null;
  };
  for (const d of ['lib', 'nets', 'samplers', 'guidance', 'bench', 'experiments']) {
    const hit = newer(join(root, d));
    if (hit) {
      console.error(
        `diffguide: dist/ is older than ${hit.slice(root.length)}; run \`npm run build\` to use the current sources (running the old build)`,
      );
      return;
    }
  }
}
