/**
 * diffguide samplers: schedules, the model wrapper, samplers and net combinators.
 *
 * Every sampler has one signature:
 *   sample(model: DiffusionModel, x: tf.Tensor4D, schedule: Schedule, opts) => Promise<tf.Tensor4D>
 * where x is [N, H, W, C] at `opts.startIndex` (default: the last index, i.e. pure noise) and the
 * result is [N, H, W, C] at `opts.endIndex` (default -1: the clean image). Vectors (embeddings for a
 * prior) are sampled as [N, 1, 1, D].
 *
 *   sampleDdpm           ancestral; fixed small / fixed large / learned-range variance
 *   sampleDdim           DDIM with eta;   ddimInvert: its exact inverse;   ddimStep: one pure step
 *                        (ddimUpdate: its maths, shared with sampleDdim); ddimChainSync: the synchronous chain
 *   sampleEulerMaruyama  VP or VE SDE (SDEdit's formulation)
 *   sampleMasked         known region kept each step (SDEdit masks, RePaint resampling jumps)
 *
 * Shared options (`SamplerOptions`): seed/rng, startIndex/endIndex, cond, clipDenoised, callback,
 * guidance (+ guidanceScale, guidanceMode, guidanceX0, normalizeGrad, clipGradNorm), stepHook,
 * refNoise/refSeed, checkFinite.
 */
export * from './schedule.js';
export * from './model.js';
export * from './combinators.js';
export * from './core.js';
export * from './ddpm.js';
export * from './ddim.js';
export * from './sde.js';
export * from './hooks.js';
export * from './masked.js';
export * from './analytic.js';
