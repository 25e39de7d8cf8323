/**
 * Checkpoint I/O: torch.save zip, legacy torch.save, TorchScript archives and safetensors, read with positional
 * reads (files > 2 GiB, one copy in memory) and a pickle reader that executes nothing; safetensors writer.
 */
import { openCheckpoint } from './checkpoint.js';
import { writeSafetensorsFile, type WriteOptions } from './safetensors.js';
import type { CheckpointFormat, HostTensor, StateDict } from './types.js';

export type {
  HostTensor,
  HostDtype,
  StateDict,
  CheckpointFormat,
  Checkpoint,
  ReadOptions,
  LazyTensor,
} from './types.js';
export { CheckpointError } from './types.js';
export { detectFormat, openCheckpoint, readCheckpoint, readStateDict, type OpenedCheckpoint } from './checkpoint.js';
export { checkKeys, formatKeyReport, type KeyReport } from './keys.js';
export {
  registerArchitectureDetector,
  detectArchitecture,
  architectureDetectors,
  type ArchitectureDetector,
  type ShapeMap,
} from './arch.js';
export { f16ToF32, f32ToF16, f32ToF16Bits } from './f16.js';
export {
  parseSafetensorsHeader,
  writeSafetensorsStreaming,
  MAX_HEADER_BYTES,
  type TensorDescriptor,
  type WriteOptions,
} from './safetensors.js';
export { unpickle } from './pickle.js';

/**
 * Write tensors as safetensors (PyTorch layout as given; int32 tensors whose sourceDtype is int64 are written as
 * I64). Atomic: written to a temp file beside `path`, fsynced, then renamed.
 * `opts.dtype: 'float16'` stores float tensors as F16.
 */
export async function writeSafetensors(
  path: string,
  tensors: StateDict | Record<string, HostTensor>,
  metadata?: Record<string, string>,
  opts?: WriteOptions,
): Promise<void> {
  await writeSafetensorsFile(path, tensors, metadata, opts);
}

export interface InspectResult {
  format: CheckpointFormat;
  /** Number of tensors. */
  count: number;
  /** Tensors per source dtype. */
  dtypes: Record<string, number>;
  /** Total elements over all tensors. */
  params: number;
  /** Bytes of tensor data in the file. */
  totalBytes: number;
  keys: { name: string; shape: number[]; dtype: string }[];
  metadata: Record<string, string>;
  unwrapped?: string;
}

/** Describe a checkpoint without reading tensor data. */
export async function inspectCheckpoint(path: string): Promise<InspectResult> {
  const ck = await openCheckpoint(path);
  try {
    const dtypes: Record<string, number> = {};
    let params = 0;
    let totalBytes = 0;
    for (const t of ck.tensors) {
      dtypes[t.sourceDtype] = (dtypes[t.sourceDtype] ?? 0) + 1;
      params += t.shape.reduce((a, b) => a * b, 1);
      totalBytes += t.nbytes;
    }
    return {
      format: ck.format,
      count: ck.tensors.length,
      dtypes,
      params,
      totalBytes,
      keys: ck.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.sourceDtype })),
      metadata: ck.metadata,
      ...(ck.unwrapped ? { unwrapped: ck.unwrapped } : {}),
    };
  } finally {
    await ck.close();
  }
}
