/**
 * The gradient -> Adam loop the methods run (Imagic's two stages, DiffusionCLIP's fine-tune modes and
 * latent optimisation): `steps` times, the gradient of `loss` with respect to `vars`, one Adam update,
 * the loss read back and checked finite. Training's loop (lib/train/loop.ts) has its own (schedules,
 * clipping, EMA, checkpoints).
 */
import * as tf from '@tensorflow/tfjs';
import { Adam } from './adam.js';

export interface OptimizeOptions {
  /** Number of updates. */
  steps: number;
  /** Adam learning rate. */
  lr: number;
  /** After each update: the 1-based step and its loss (the loss before the update). */
  onStep?: (step: number, loss: number) => void;
  /**
   * The optimiser to update (its moments carry over between calls, e.g. DiffusionCLIP's batches);
   * the caller owns and disposes it. Default: a fresh `Adam(vars)`, disposed on return.
   */
  adam?: Adam;
  /** Names the run and the option to lower in the divergence error, e.g. { what: 'Imagic stage 1', lrOption: 'embLr' }. */
  what?: string;
  lrOption?: string;
}

/**
 * Minimise `loss(step)` (step 0-based; a scalar built from `vars`) over `vars` (by name, as Adam keys
 * them). Returns the losses. Throws, naming the step, when the loss is NaN or Inf (after that step's
 * update, as every copy of this loop did). Tensors made inside `loss` are disposed by the gradient's scope.
 */
export function optimize(
  vars: Map<string, tf.Variable>,
  loss: (step: number) => tf.Scalar,
  opts: OptimizeOptions,
): number[] {
  const varList = [...vars.values()];
  const keyOf = new Map([...vars].map(([k, v]) => [v.name, k]));
  const adam = opts.adam ?? new Adam(vars);
  const losses: number[] = [];
  try {
    for (let s = 0; s < opts.steps; s++) {
      const { value, grads } = tf.variableGrads(() => loss(s), varList);
      const v = value.dataSync()[0];
      value.dispose();
      const g = new Map<string, tf.Tensor>();
      for (const [name, t] of Object.entries(grads)) g.set(keyOf.get(name) ?? name, t);
      adam.step(g, opts.lr);
      tf.dispose(Object.values(grads));
      if (!Number.isFinite(v))
        throw new Error(
          `${opts.what ?? 'optimisation'}: loss became ${v} at step ${s + 1}; lower ${opts.lrOption ?? 'lr'}`,
        );
      losses.push(v);
      opts.onStep?.(s + 1, v);
    }
  } finally {
    if (!opts.adam) adam.dispose();
  }
  return losses;
}
