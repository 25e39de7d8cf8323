/** Types shared by the checkpoint readers and writers. */

/** Element types a tensor has in host memory after loading (fp16/bf16/fp64 become float32, int64 int32). */
export type HostDtype = 'float32' | 'int32' | 'uint8' | 'bool';

/** A tensor in host memory, in the file's (PyTorch) layout: row-major, `shape` as in the state_dict. */
export interface HostTensor {
  shape: number[];
  dtype: HostDtype;
  /** Row-major elements; `bool` uses a Uint8Array of 0/1. Length = product(shape) (1 for a scalar). */
  data: Float32Array | Int32Array | Uint8Array;
  /** The dtype stored in the file, e.g. 'float16', 'int64', 'bfloat16' (PyTorch names). */
  sourceDtype: string;
}

/** Tensors by reference key name, in file order. */
export type StateDict = Map<string, HostTensor>;

export type CheckpointFormat = 'torch-zip' | 'torch-legacy' | 'torchscript' | 'safetensors';

export interface Checkpoint {
  format: CheckpointFormat;
  tensors: StateDict;
  /** safetensors `__metadata__`; for torch files: source format, archive name, scalar fields of a wrapper dict. */
  metadata: Record<string, string>;
  /** The wrapper key path that was unwrapped, e.g. 'state_dict' or 'model_ema'; absent for a bare state_dict. */
  unwrapped?: string;
}

export interface ReadOptions {
  /** Keep only keys for which this returns true (applied after `stripPrefix`); others are never read from disk. */
  filter?: (key: string) => boolean;
  /** Remove this prefix from keys that start with it, e.g. 'module.' for DataParallel checkpoints. */
  stripPrefix?: string;
  /**
   * Which entry of a wrapper dict holds the weights ('state_dict', 'model', 'ema', ...). Default: the first present
   * of state_dict, model_state_dict, ema, model_ema, ema_model, ema_state_dict, model, net, network, module, params, weights.
   */
  wrapper?: string;
}

/** A tensor whose bytes have not been read yet. */
export interface LazyTensor {
  name: string;
  shape: number[];
  /** dtype in the file (PyTorch name: float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool). */
  sourceDtype: string;
  /** dtype `load()` returns. */
  dtype: HostDtype;
  /** Bytes this tensor occupies in the file. */
  nbytes: number;
  load(): Promise<HostTensor>;
}

/** Error for unreadable or malformed checkpoint files; the message names the file, the problem and a fix. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}
