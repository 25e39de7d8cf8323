/** diffguide public API. */
export * from './backend.js';
export * from './random.js';
export * from './paths.js';
export * from './io/index.js';
