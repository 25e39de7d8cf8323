/**
 * The five methods (SDG, SDEdit, DiffusionCLIP, unCLIP, Imagic), plain sampling, and the model
 * bundle that loads shipped or converted weights.
 */
export * from './common.js';
export * from '../models/load.js';
export * from './sample.js';
export * from './sdedit.js';
export * from './sdg.js';
export * as diffusionclip from './diffusionclip.js';
export * as unclip from './unclip.js';
export * from './imagic.js';
