/**
 * The wasm backend's own kernel functions, captured before we register replacements. Its own module so
 * that kernels wasm.ts calls (transpose.ts) can fall back to the stock kernel without an import cycle.
 */
import * as tf from '@tensorflow/tfjs';
import type { Info } from './wasm.js';

export type KernelFunc = (args: {
  inputs: Record<string, Info>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}) => Info | Info[];

const originals = new Map<string, KernelFunc>();

/** Capture the stock wasm kernel `name` (call before overriding it). */
export function captureOriginal(name: string): KernelFunc | undefined {
  if (!originals.has(name)) {
    const k = tf.getKernel(name, 'wasm');
    if (k) originals.set(name, k.kernelFunc as unknown as KernelFunc);
  }
  return originals.get(name);
}
