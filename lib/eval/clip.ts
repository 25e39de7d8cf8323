export * from '../metrics/clip-dataset.js';
