/** Compile our SIMD module's generated text with wabt (a dev dependency: build and tests only). */
import wabtInit from 'wabt';
import { simdModuleWat } from '../lib/fastgrad/simd-module.js';

const FEATURES = { simd: true, threads: true, bulk_memory: true };

export async function compileSimdModule(): Promise<{ plain: Uint8Array; shared: Uint8Array }> {
  const wabt = await wabtInit();
  const compile = (shared: boolean) => {
    const mod = wabt.parseWat(`simd${shared ? '-shared' : ''}.wat`, simdModuleWat(shared), FEATURES);
    try {
      mod.validate(FEATURES);
      return new Uint8Array(mod.toBinary({}).buffer);
    } finally {
      mod.destroy();
    }
  };
  return { plain: compile(false), shared: compile(true) };
}
