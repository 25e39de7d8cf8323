/** Optimisers beneath training and the methods: Adam (fused on wasm), EMA, LR schedules, and the methods' `optimize` loop. */
export * from './adam.js';
export * from './optimize.js';
