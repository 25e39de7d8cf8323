/**
 * Resident or streamed weights (nets/host-params.ts): which a net takes on this backend.
 *
 * On wasm (a 32-bit build: at most 4 GB of heap) a net's resident weights share the heap with its
 * activations, the cached weight copies (Winograd transforms, transposes, XNNPACK's packed
 * operands; lib/fastgrad/wasm.ts `cacheAllowed`) and the fragmentation per-call packing causes. The
 * 256 px guided-diffusion UNet's 2.06 GiB of fp32 weights leave too little of it: its 128 and 256 px
 * forwards ran out. Streamed, the weights stay in host memory and the heap holds one block's at a
 * time. `chooseWeightMode` picks streamed on wasm when the weights and the tensors already live
 * would leave less than `WASM_RESIDENT_HEADROOM` of the heap; env `DIFFGUIDE_WEIGHTS=stream` /
 * `resident` forces a mode (`auto`, the default, decides). Other backends keep weights resident.
 */
import * as tf from '@tensorflow/tfjs';
import { WASM_CACHE_RESERVE, WASM_HEAP_MAX, assertFitsWasm } from '../fastgrad/wasm.js';

export const WEIGHT_MODE_ENV = 'DIFFGUIDE_WEIGHTS';

/** Heap kept free beside resident weights for activations, caches and fragmentation (2 GiB). */
export const WASM_RESIDENT_HEADROOM = 2 * 2 ** 30;

export type WeightMode = 'resident' | 'streamed';

const MiB = 2 ** 20;
const fmtMB = (b: number) => `${Math.round(b / MiB)} MB`;

/** The forced mode from `DIFFGUIDE_WEIGHTS` (null: auto). */
export function forcedWeightMode(): WeightMode | null {
  const v = (process.env[WEIGHT_MODE_ENV] ?? '').trim().toLowerCase();
  if (v === '' || v === 'auto') return null;
  if (v === 'stream' || v === 'streamed') return 'streamed';
  if (v === 'resident') return 'resident';
  throw new Error(
    `${WEIGHT_MODE_ENV} must be auto, stream or resident, got ${JSON.stringify(process.env[WEIGHT_MODE_ENV])}`,
  );
}

/**
 * Resident or streamed for a net of `weightBytes` (fp32) of weights, loaded next to the tensors live
 * now. `force` overrides the environment and the rule.
 */
export function chooseWeightMode(weightBytes: number, force?: WeightMode): { mode: WeightMode; reason: string } {
  const forced = force ?? forcedWeightMode();
  if (forced) return { mode: forced, reason: force ? `asked for ${forced}` : `${WEIGHT_MODE_ENV}=${forced}` };
  if (tf.getBackend() !== 'wasm') return { mode: 'resident', reason: `backend ${tf.getBackend()} has no 4 GB heap` };
  const live = tf.memory().numBytes;
  if (live + weightBytes + WASM_RESIDENT_HEADROOM <= WASM_HEAP_MAX)
    return {
      mode: 'resident',
      reason: `${fmtMB(weightBytes)} of weights + ${fmtMB(live)} live leave >= ${fmtMB(WASM_RESIDENT_HEADROOM)} of the wasm heap`,
    };
  return {
    mode: 'streamed',
    reason: `${fmtMB(weightBytes)} of weights + ${fmtMB(live)} live would leave under ${fmtMB(WASM_RESIDENT_HEADROOM)} of the ${fmtMB(WASM_HEAP_MAX)} wasm heap for activations and caches`,
  };
}

/**
 * The largest group of weights a streamed forward has on the heap at once, from reference key names
 * and element counts: guided-diffusion / DDPM blocks (`input_blocks.3.`, `down.1.`, `middle_block.`, ...),
 * else the first name component. An upper bound (a block's weights are uploaded as its layers run).
 */
export function largestBlockBytes(numels: Iterable<[string, number]>): number {
  const groups = new Map<string, number>();
  for (const [k, n] of numels) {
    const parts = k.split('.');
    const g = /^\d+$/.test(parts[1] ?? '') ? `${parts[0]}.${parts[1]}` : parts[0];
    groups.set(g, (groups.get(g) ?? 0) + 4 * n);
  }
  return Math.max(0, ...groups.values());
}

/**
 * Throw at load, before anything is allocated, when even streamed weights cannot run on wasm: the
 * largest block's weights plus `residentBytes` (nets kept resident beside it) and `reserve` of
 * activations (default: lib/fastgrad's cache reserve, 1.5 GiB, what a 256 px UNet forward needs with
 * its per-call packing) exceed the heap. The message names the backends without the limit.
 */
export function assertFitsStreamed(
  blockBytes: number,
  residentBytes: number,
  what: string,
  reserve = WASM_CACHE_RESERVE,
): void {
  assertFitsWasm(
    blockBytes + residentBytes,
    `${what} (streamed: its largest block plus the resident weights)`,
    reserve,
  );
}
