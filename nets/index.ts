/** diffguide nets: `diffguide/nets`. */
export * from './unet/index.js';
export * from './clip/index.js';
export * from './prior/index.js';
