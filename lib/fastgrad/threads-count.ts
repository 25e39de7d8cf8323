/**
 * How many threads the wasm backend runs (0 when lib/fastgrad/threads.ts did not start the threaded
 * build). Kept apart from threads.ts, which is Node-only (it loads tfjs's threaded build through
 * node:worker_threads), so that the kernels that read the count also bundle for browsers.
 */
let enabled = 0;

/** Threads of the shimmed backend, or 0 when the shim is not in use. */
export function wasmThreadsEnabled(): number {
  return enabled;
}

/** Recorded by threads.ts once the threaded build has started. */
export function setWasmThreadsEnabled(n: number): void {
  enabled = n;
}
