/**
 * Our small SIMD wasm module: the kernels tfjs-backend-wasm lacks or runs slowly (Winograd
 * transforms, transpose, the long-reduction GEMM of weight gradients, column sums, the GroupNorm and LayerNorm with their gradients, SiLU / QuickGELU and theirs, the Adam update). It imports tfjs-backend-wasm's own memory, so it reads and writes tensors
 * in place. Its text is generated (winograd-wat.ts, transpose-wat.ts, gemm-wat.ts, reduce-wat.ts, groupnorm-wat.ts, layernorm-wat.ts, swish-wat.ts, adam-wat.ts); `npm run build:wasm`
 * compiles it with wabt into simd-wasm.ts (committed: the package needs no compiler at run time; a
 * test checks that the committed bytes are this source's). simd.ts instantiates it.
 */
import { adamFuncs } from './adam-wat.js';
import { gemmFuncs } from './gemm-wat.js';
import { groupNormFuncs } from './groupnorm-wat.js';
import { layerNormFuncs } from './layernorm-wat.js';
import { swishFuncs } from './swish-wat.js';
import { reduceFuncs } from './reduce-wat.js';
import { transposeFuncs } from './transpose-wat.js';
import { winogradFuncs } from './winograd-wat.js';

/** The module's text. `shared`: import a shared memory (tfjs's threaded build) or a plain one. */
export function simdModuleWat(shared: boolean): string {
  const memory = shared ? '(memory 1 65536 shared)' : '(memory 1)';
  return [
    '(module',
    `(import "env" "memory" ${memory})`,
    ...winogradFuncs(),
    ...transposeFuncs(),
    ...gemmFuncs(),
    ...reduceFuncs(),
    ...groupNormFuncs(),
    ...layerNormFuncs(),
    ...swishFuncs(),
    ...adamFuncs(),
    ')',
  ].join('\n');
}
