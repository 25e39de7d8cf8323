export * from '../models/weights-config.js';
