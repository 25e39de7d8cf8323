export * from '../eval/unet.js';
