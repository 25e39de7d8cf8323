/** Run the CLI from sources (development): `npx tsx lib/cli/run.ts <command> ...`. */
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`diffguide: ${err instanceof Error ? err.message : err}`);
    if (process.env.DIFFGUIDE_DEBUG) console.error(err);
    process.exit(1);
  },
);
