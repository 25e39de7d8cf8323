/** Run the CLI from sources (development): `npx tsx lib/cli/run.ts <command> ...`. */
import { runCli } from './main.js';

runCli(process.argv.slice(2));
