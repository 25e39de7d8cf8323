export * from '../models/tfjs-convert.js';
