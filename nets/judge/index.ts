/** The judge classifier (category + vendor) used by metrics. */
export * from './model.js';
