/** Bench suites known to `diffguide bench`; one line per suite in bench/. */
import { registerSuite } from './commands/bench.js';

void registerSuite;
