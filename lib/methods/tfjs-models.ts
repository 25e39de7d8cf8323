export * from '../models/tfjs.js';
