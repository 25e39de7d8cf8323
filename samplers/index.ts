/**
 * diffguide samplers: schedules, the model wrapper, samplers and net combinators.
 *
 * Every sampler has the signature `(model: DiffusionModel, x: tf.Tensor4D /* [N,H,W,C] x_t at
 * startIndex *\/, schedule: Schedule, opts) => Promise<tf.Tensor4D /* [N,H,W,C] *\/>`.
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
