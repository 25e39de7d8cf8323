/**
 * Child process for test/backend-threads.test.ts: starts wasm (threads from the environment), runs a
 * conv and conv + matmul gradients (the conv is a Winograd one), prints one JSON line (threads, details, a value, the gradients' hash,
 * Winograd's status), then returns WITHOUT process.exit — the process must end by itself.
 * Args: [--throw] (end with an uncaught error instead).
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/backend.js';
import { winogradEnabled } from '../lib/fastgrad/winograd.js';
import type { WasmBackend } from '../lib/fastgrad/wasm.js';

const b = await initBackend({ backend: 'wasm' }); // verbose unless DIFFGUIDE_QUIET=1
const y = tf.conv2d(tf.ones([2, 16, 16, 8]) as tf.Tensor4D, tf.ones([3, 3, 8, 8]) as tf.Tensor4D, 1, 'same');
// Gradients of a conv + matmul big enough to be split across threads: their bits, hashed.
const x = tf.randomNormal([2, 16, 16, 16], 0, 1, 'float32', 1);
const w = tf.randomNormal([3, 3, 16, 32], 0, 0.1, 'float32', 2);
const m = tf.randomNormal([32, 48], 0, 0.1, 'float32', 3);
const gradBits = () => {
  const grads = tf.grads((a: tf.Tensor, f: tf.Tensor, n: tf.Tensor) =>
    tf
      .matMul(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'same').reshape([512, 32]), n)
      .tanh()
      .sum(),
  )([x, w, m]);
  const hash = createHash('sha256');
  for (const g of grads) hash.update(Buffer.from((g.dataSync() as Float32Array).buffer));
  tf.dispose(grads);
  return hash.digest('hex');
};
const before = gradBits();
// Grow the (shared, with threads) wasm memory by 256 MiB; diffguide's kernels must see the new heap.
const big = tf.zeros([64 * 1024 * 1024]);
const after = gradBits();
big.dispose();
process.stdout.write(
  `${JSON.stringify({ threads: b.threads, details: b.details, center: y.dataSync()[(8 * 16 + 8) * 8], gradBits: before, sameAfterGrowth: after === before, winograd: winogradEnabled(tf.backend() as unknown as WasmBackend) })}\n`,
);
if (process.argv.includes('--throw')) throw new Error('deliberate error after the threaded backend started');
