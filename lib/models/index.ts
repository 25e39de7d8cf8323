/**
 * The model layer beneath training and the methods: the `Diffuser` bundle, the loaders of the shipped
 * and converted weights (safetensors in Node, TF.js manifests anywhere), and tiny random stand-ins.
 * `tfjs-convert.ts` (Node, writes files) is imported by path, not from here.
 */
export * from './diffuser.js';
export * from './load.js';
export * from './tfjs.js';
export * from './sample-batched.js';
