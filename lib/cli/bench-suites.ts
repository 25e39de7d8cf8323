/** Bench suites known to `diffguide bench`; one line per suite in bench/. */
import { registerSuite } from './commands/bench.js';

void registerSuite;
registerSuite('io', () => import('../../bench/io.js'));
registerSuite('nets', () => import('../../bench/nets.js'));
registerSuite('sampling', () => import('../../bench/sampling.js'));
registerSuite('ops', () => import('../../bench/ops.js'));
registerSuite('methods', () => import('../../bench/methods.js'));
registerSuite('grid', () => import('../../bench/grid.js'));
registerSuite('scale', () => import('../../bench/scale.js'));
