export * from '../optim/adam.js';
