/** diffguide public API. */
export * from './backend.js';
export { WasmHeapError, WASM_HEAP_MAX } from './fastgrad/wasm.js';
export * from './random.js';
export * from './paths.js';
export * from './io/index.js';
export * from './image/index.js';
export * from './data/index.js';
// lib/train's checkpoint reader is not re-exported here (lib/io's readCheckpoint reads model files).
export {
  train,
  loadTrainedWeights,
  progressBar,
  type TrainTask,
  type TrainOptions,
  type TrainProgress,
  type TrainResult,
} from './train/loop.js';
export { Adam, Ema, lrAt, clipByGlobalNorm, withWeights, type AdamOptions, type LrSchedule } from './optim/adam.js';
// Fréchet distance and friends live in lib/metrics (the whole module: 'diffguide/metrics').
export {
  frechetDistance,
  frechetDistanceOfFeatures,
  meanCov,
  symmetricEigen,
  sqrtmPsd,
  totalVariation,
} from './metrics/frechet.js';
export * from './methods/index.js';
export { runDemo, type DemoOptions, type DemoResult } from './demo/index.js';
