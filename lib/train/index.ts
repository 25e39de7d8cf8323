/** Training: Adam + warm-up/cosine, EMA, clipping, atomic resumable checkpoints, the generic loop. */
export * from '../optim/adam.js';
export * from './checkpoint.js';
export * from './loop.js';
export * from '../metrics/frechet.js';
export * from './interrupt.js';
