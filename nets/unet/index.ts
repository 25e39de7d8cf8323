/** The typed UNet for guided-diffusion and DDPM checkpoints (+ embedding / token conditioning). */
export {
  UNet,
  timestepEmbedding,
  type UNetCond,
  type UNetApplyOptions,
  type UNetFromStateDictOptions,
  type UNetRandomOptions,
  type StateDictLike as UNetStateDictLike,
} from './unet.js';
export {
  configFromReference,
  inferUNetConfig,
  detectUNetKind,
  unetParamShapes,
  describeConfig as describeUNetConfig,
  validateConfig as validateUNetConfig,
  defaultConfig as defaultUNetConfig,
  type UNetConfig,
  type UNetKind,
  type ShapeSource as UNetShapeSource,
} from './config.js';

import { registerArchitectureDetector, type ShapeMap } from '../../lib/io/arch.js';
import { detectUNetKind, inferUNetConfig } from './config.js';

// `diffguide inspect` names UNet checkpoints through these detectors (the config is inferred from keys and shapes).
registerArchitectureDetector('guided-diffusion-unet', (sd: ShapeMap) =>
  detectUNetKind(sd) === 'guided-diffusion' ? { config: inferUNetConfig(sd) } : null,
);
registerArchitectureDetector('ddpm-unet', (sd: ShapeMap) =>
  detectUNetKind(sd) === 'ddpm' ? { config: inferUNetConfig(sd) } : null,
);
