/**
 * 2-D convolution with PyTorch padding semantics, channels-last.
 * Forward-only calls use tfjs's fused conv+bias kernel (one pass); under a gradient tape the plain
 * conv2d + add path is used so only the gradients that are asked for are computed (the fused op's
 * custom gradient always computes the filter gradient as well).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Padding: a number p pads p on every side (PyTorch `padding=p`); [[top, bottom], [left, right]]
 * pads explicitly (e.g. DDPM's (0,1,0,1) before a stride-2 conv: [[0, 1], [0, 1]]).
 */
export type ConvPadding = number | [[number, number], [number, number]];

export interface Conv2dOptions {
  /** Stride (default 1). */
  stride?: number;
  /** Default: k // 2 on every side ("same" for odd kernels at stride 1). */
  pad?: ConvPadding;
}

function inGradient(): boolean {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number } }).state;
  return state.gradientDepth > 0;
}

/**
 * @param x [N, H, W, Cin]
 * @param w [kh, kw, Cin, Cout] (PyTorch OIHW transposed at the loader)
 * @param b [Cout]
 * @returns [N, H', W', Cout]
 */
export function conv2d(x: tf.Tensor4D, w: tf.Tensor4D, b?: tf.Tensor1D, opts: Conv2dOptions = {}): tf.Tensor4D {
  return tf.tidy(() => {
    const stride = opts.stride ?? 1;
    const [kh, kw] = w.shape;
    const pad = opts.pad ?? Math.floor(kh / 2);
    let p: [[number, number], [number, number]] = typeof pad === 'number' ? [[pad, pad], [pad, pad]] : pad;
    let tfPad: 'same' | 'valid' | number = 'valid';
    let xin = x;
    // 'same' at stride 1 with odd kernels equals symmetric k//2 padding.
    if (stride === 1 && kh % 2 === 1 && kw % 2 === 1 && p[0][0] === (kh - 1) / 2 && p[0][1] === p[0][0] && p[1][0] === (kw - 1) / 2 && p[1][1] === p[1][0]) {
      tfPad = 'same';
      p = [[0, 0], [0, 0]];
    } else if (p[0][0] || p[0][1] || p[1][0] || p[1][1]) {
      xin = tf.pad(x, [[0, 0], p[0], p[1], [0, 0]]);
    }
    if (kh === 1 && kw === 1 && stride === 1) {
      // 1x1 conv as a matmul over pixels.
      const [n, h, ww, c] = xin.shape;
      let y = tf.matMul(xin.reshape([n * h * ww, c]), w.reshape([c, w.shape[3]]));
      if (b) y = y.add(b);
      return y.reshape([n, h, ww, w.shape[3]]) as tf.Tensor4D;
    }
    if (!inGradient()) return tf.fused.conv2d({ x: xin, filter: w, strides: stride, pad: tfPad, bias: b });
    const y = tf.conv2d(xin, w, stride, tfPad);
    return b ? y.add(b) : y;
  });
}
