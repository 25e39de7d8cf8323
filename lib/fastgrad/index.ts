/**
 * Fast gradients: installed by `initBackend` for the chosen backend.
 * (Being built under issue 2: conv/matmul/slice/gather gradients expressed with fast forward kernels on wasm.)
 */
export function installFastGradients(_tfBackend: string): void {
  // Filled in by the fast-gradient work (lib/fastgrad/*).
}
