#!/usr/bin/env node
// Runs the compiled CLI (npm install builds dist/ via the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const compiled = fileURLToPath(new URL('../dist/lib/cli/main.js', import.meta.url));
if (!existsSync(compiled)) {
  console.error('diffguide: dist/ is missing; run `npm run build` (npm install does it) first.');
  process.exit(2);
}
const { main } = await import(compiled);
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`diffguide: ${err instanceof Error ? err.message : err}`);
    if (process.env.DIFFGUIDE_DEBUG) console.error(err);
    process.exit(1);
  },
);
