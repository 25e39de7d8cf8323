/** The typed UNet for guided-diffusion and DDPM checkpoints (+ embedding / token conditioning). */
export {
  UNet,
  timestepEmbedding,
  type UNetCond,
  type UNetApplyOptions,
  type UNetFromStateDictOptions,
  type UNetRandomOptions,
  type StateDictLike,
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
