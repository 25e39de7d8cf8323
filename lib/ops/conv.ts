/**
 * 2-D convolution with PyTorch padding semantics, channels-last.
 * Forward-only calls use tfjs's fused conv+bias(+relu) kernel (one pass); under a gradient tape the
 * plain conv2d + add path is used so only the gradients that are asked for are computed (the fused
 * op's custom gradient always computes the filter gradient as well).
 * Padding goes to the convolution itself (explicit, possibly asymmetric), never through a padded
 * copy of the input; on wasm the backward passes are lib/fastgrad's forward-convolution kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { recordingGradients } from './tape.js';
import { biasKernelUnderTape, linear, silu } from './nn.js';

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
  /** Activation applied after the bias (default 'linear'). */
  activation?: 'linear' | 'relu' | 'silu';
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
    const act = opts.activation ?? 'linear';
    const [kh, kw] = w.shape;
    const pad = opts.pad ?? Math.floor(kh / 2);
    const p: [[number, number], [number, number]] =
      typeof pad === 'number'
        ? [
            [pad, pad],
            [pad, pad],
          ]
        : pad;
    let tfPad: 'same' | 'valid' | tf.backend_util.ExplicitPadding = [[0, 0], p[0], p[1], [0, 0]];
    // 'same' at stride 1 with odd kernels equals symmetric k//2 padding.
    if (
      stride === 1 &&
      kh % 2 === 1 &&
      kw % 2 === 1 &&
      p[0][0] === (kh - 1) / 2 &&
      p[0][1] === p[0][0] &&
      p[1][0] === (kw - 1) / 2 &&
      p[1][1] === p[1][0]
    ) {
      tfPad = 'same';
    } else if (!p[0][0] && !p[0][1] && !p[1][0] && !p[1][1]) {
      tfPad = 'valid';
    }
    const finish = (y: tf.Tensor4D) => (act === 'silu' ? silu(y) : act === 'relu' ? tf.relu(y) : y) as tf.Tensor4D;
    if (kh === 1 && kw === 1 && stride === 1 && tfPad === 'valid') {
      // 1x1 conv as a matmul over pixels.
      const [n, h, ww, c] = x.shape;
      const x2 = x.reshape([n * h * ww, c]) as tf.Tensor2D;
      const w2 = w.reshape([c, w.shape[3]]) as tf.Tensor2D;
      let y: tf.Tensor;
      if (b && (!recordingGradients() || biasKernelUnderTape(b))) y = linear(x2, w2, b);
      else y = b ? tf.matMul(x2, w2).add(b) : tf.matMul(x2, w2);
      return finish(y.reshape([n, h, ww, w.shape[3]]) as tf.Tensor4D);
    }
    if (!recordingGradients()) {
      const y = tf.fused.conv2d({
        x,
        filter: w,
        strides: stride,
        pad: tfPad,
        bias: b,
        activation: act === 'relu' ? 'relu' : 'linear',
      });
      return act === 'relu' ? y : finish(y);
    }
    if (b && biasKernelUnderTape(b)) {
      // one kernel with its own gradient (lib/fastgrad/index.ts), not a conv and an add
      const y = tf.engine().runKernel('FusedConv2D', { x, filter: w, bias: b }, {
        strides: [stride, stride],
        pad: tfPad,
        dataFormat: 'NHWC',
        dilations: [1, 1],
        activation: 'linear',
      } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
      return finish(y);
    }
    const y = tf.conv2d(x, w, stride, tfPad);
    return finish(b ? y.add(b) : y);
  });
}
