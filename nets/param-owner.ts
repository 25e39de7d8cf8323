/**
 * What every net shares: reference-keyed variables it owns, counting them, and disposing them once.
 */
import type * as tf from '@tensorflow/tfjs';

export abstract class ParamOwner {
  private released = false;

  /** @param params reference state_dict key -> variable (our layout) */
  protected constructor(readonly params: Map<string, tf.Variable>) {}

  /** Number of scalars in all variables (buffers such as BatchNorm statistics included). */
  numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /** Whether `dispose` has run: a forward pass afterwards is an error. */
  protected get disposed(): boolean {
    return this.released;
  }

  /** Free the variables; later calls do nothing. */
  dispose(): void {
    if (this.released) return;
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.released = true;
  }
}
