export * from '../cli/method-args.js';
