export * from '../models/load.js';
