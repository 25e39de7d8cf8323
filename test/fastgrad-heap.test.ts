/**
 * The wasm heap guard (lib/fastgrad/wasm.ts): where tfjs-backend-wasm 4.22 would register a tensor
 * at address 0 after a failed malloc (then `Aborted()` or a fault inside the next kernel), or pass
 * a size of 4 GB or more to malloc as a wrapped i32, it throws a WasmHeapError that says what was
 * asked and what to change. No test here allocates more than a few bytes.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { WASM_HEAP_MAX, WasmHeapError, guardWasmMalloc } from '../lib/fastgrad/wasm.js';

/** The advice every heap error must carry. */
function expectAdvice(e: unknown): WasmHeapError {
  expect(e).to.be.instanceOf(WasmHeapError);
  const m = (e as Error).message;
  expect(m).to.match(/out of wasm memory/);
  expect(m).to.match(/4 GB/);
  expect(m).to.match(/--batch/);
  expect(m).to.match(/channels/);
  expect(m).to.match(/--backend tensorflow/);
  return e as WasmHeapError;
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('fastgrad: wasm heap guard', () => {
  it('a tensor beyond the wasm32 address space fails with WasmHeapError, and the backend goes on working', function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    const before = tf.memory().numTensors;
    const ids = tf.engine().backend.numDataIds();
    const n = 2 ** 30 + 16; // 4 GiB + 64 bytes of float32: as an i32 malloc argument this would be 64 bytes
    const e = expectAdvice(thrown(() => tf.fill([n], 1.5)));
    expect(e.requestedBytes).to.equal(n * 4);
    expect(e.message).to.match(/one tensor needs 4096 MB/);
    expect(tf.memory().numTensors).to.equal(before);
    expect(tf.engine().backend.numDataIds()).to.equal(ids);
    const y = tf.tidy(() => tf.add(tf.tensor1d([1, 2, 3]), 1));
    expect(Array.from(y.dataSync())).to.deep.equal([2, 3, 4]);
    y.dispose();
  });

  it('the same error inside a gradient step (the training loop meets it there)', function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    const v = tf.variable(tf.ones([2, 4, 4, 3]));
    try {
      const e = thrown(() =>
        tf.variableGrads(
          () =>
            tf.sum(
              tf
                .mul(v, tf.fill([2 ** 30 + 16], 1))
                .reshape([-1])
                .slice(0, 1),
            ) as tf.Scalar,
          [v],
        ),
      );
      expectAdvice(e);
    } finally {
      v.dispose();
    }
  });

  it('the current wasm module is guarded (initBackend installs it)', function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    const m = (tf.backend() as unknown as { wasm: { _malloc(n: number): number } }).wasm;
    expectAdvice(thrown(() => m._malloc(WASM_HEAP_MAX)));
  });

  it('a malloc that returns 0 (heap full) becomes WasmHeapError with the sizes; successes pass through', () => {
    // A stand-in module with a 64 KiB heap whose malloc fails above 1 KiB: the full 4 GB case
    // cannot be produced in a test.
    let next = 16;
    const freed: number[] = [];
    const m = {
      HEAPU8: new Uint8Array(65536),
      _malloc: (n: number) => (n > 1024 ? 0 : (next += n) - n),
      _free: (p: number) => void freed.push(p),
    };
    expect(guardWasmMalloc(m)).to.equal(m);
    expect(guardWasmMalloc(m)).to.equal(m); // idempotent: not wrapped twice
    const p = m._malloc(100);
    expect(p).to.be.greaterThan(0);
    expect(m._malloc(0)).to.be.a('number');
    const e = expectAdvice(thrown(() => m._malloc(5 * 2 ** 20)));
    expect(e.requestedBytes).to.equal(5 * 2 ** 20);
    expect(e.heapBytes).to.equal(65536);
    expect(e.message).to.match(/could not allocate 5 MB: the heap has grown to 0 MB of at most 4096 MB/);
  });

  it('an Emscripten abort with the heap past half its limit becomes WasmHeapError; other aborts are left alone', () => {
    const seen: unknown[] = [];
    const stand = (heap: number) => ({
      HEAPU8: new Uint8Array(heap),
      _malloc: () => 64,
      _free: () => undefined,
      onAbort: (what: unknown) => void seen.push(what),
    });
    const small = guardWasmMalloc(stand(1 << 16), 1 << 20); // 64 KiB of a 1 MiB limit: not blamed on memory
    expect(() => small.onAbort('x')).not.to.throw();
    const full = guardWasmMalloc(stand(3 << 18), 1 << 20); // 768 KiB of 1 MiB
    const e = expectAdvice(thrown(() => full.onAbort('')));
    expect(e.requestedBytes).to.equal(null);
    expect(e.message).to.match(
      /allocation inside a wasm kernel failed .* heap grown to 1 MB of at most 1 MB; the wasm backend cannot be used again/,
    );
    expect(seen).to.deep.equal(['x', '']); // an earlier onAbort still runs
  });

  it('the real module has the abort hook (initBackend installs it)', function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    const m = (tf.backend() as unknown as { wasm: { onAbort?: unknown } }).wasm;
    expect(m.onAbort).to.be.a('function');
  });
});
