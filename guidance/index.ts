/**
 * diffguide guidance: differentiable callbacks `(x_t [N,H,W,C], t [N], ctx) => tf.Scalar` to
 * MAXIMISE (sum over the batch), their combinators, and the ILVR step hook.
 */
export * from './types.js';
export * from './combinators.js';
export * from './encoders.js';
export * from './pixel.js';
export * from './ilvr.js';
