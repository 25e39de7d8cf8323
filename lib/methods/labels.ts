export * from '../image/labels.js';
