/**
 * Accurate Sin, Cos and Log kernels for tfjs-backend-webgpu.
 *
 * The stock kernels call WGSL's builtins, whose precision WGSL leaves loose (sin/cos: 2^-11 absolute
 * on [-pi, pi]; log: 2^-21 absolute near 1, else 3 ULP) and drivers use as such. Measured on
 * SwiftShader 5.0.0: sin/cos 1.9e-4 absolute everywhere, log 1.2e-4 relative; exp, sqrt and
 * rsqrt are within 1.1e-6. The UNet's sinusoidal timestep embedding (sin/cos of t * freq, t up to
 * 999) alone put the time-embedding weight gradients 1.8e-4 (relative) away from wasm's. These
 * kernels use only +, *, /, round, bit casts and the exponent of the float, so their error does not
 * depend on the driver's builtins:
 *
 * - Sin / Cos: Cody-Waite reduction by pi/2 in three parts (the first two exact for |k| < 2^13),
 *   then the usual single-precision minimax polynomials on [-pi/4, pi/4] and the quadrant's
 *   sign/swap. |x| > 8192 (outside where the reduction is exact) falls back to the builtin.
 * - Log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m-1)/(m+1), by its odd
 *   series to s^11 (|s| < 0.172: truncation < 1e-10), plus e ln 2 in two parts. Zero, negative,
 *   NaN and infinite inputs follow IEEE (-inf, NaN, NaN, inf); subnormal inputs are scaled first.
 *
 * Measured against Math.sin/cos/log of the same float32 inputs (SwiftShader): see
 * test/webgpu.test.ts, which checks them at 2e-7 absolute (sin/cos on |x| <= 1000) and 3e-7
 * relative (log).
 */
import * as tf from '@tensorflow/tfjs';

interface WebGPUProgramLike {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  size: boolean;
  getUserCode(): string;
}
interface WebGPUBackendLike {
  runWebGPUProgram(program: WebGPUProgramLike, inputs: tf.TensorInfo[], outputDtype: tf.DataType): tf.TensorInfo;
}

const WORKGROUP = 128;

const SIN_COS = `
  fn dgSinPoly(r : f32) -> f32 {
    let z = r * r;
    return r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * (-1.9515295891e-4)));
  }
  fn dgCosPoly(r : f32) -> f32 {
    let z = r * r;
    return 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  }
  // x = k pi/2 + r, |r| <= pi/4; returns r, sets q = k mod 4
  fn dgReduce(x : f32, q : ptr<function, i32>) -> f32 {
    let k = round(x * 0.636619772367581343);
    *q = ((i32(k) % 4) + 4) % 4;
    var r = x - k * 1.5703125;
    r = r - k * 4.837512969970703125e-4;
    r = r - k * 7.54978995489188216e-8;
    return r;
  }
  fn dgSin(x : f32) -> f32 {
    if (!(abs(x) <= 8192.0)) { return sin(x); }
    var q : i32;
    let r = dgReduce(x, &q);
    if (q == 0) { return dgSinPoly(r); }
    if (q == 1) { return dgCosPoly(r); }
    if (q == 2) { return -dgSinPoly(r); }
    return -dgCosPoly(r);
  }
  fn dgCos(x : f32) -> f32 {
    if (!(abs(x) <= 8192.0)) { return cos(x); }
    var q : i32;
    let r = dgReduce(x, &q);
    if (q == 0) { return dgCosPoly(r); }
    if (q == 1) { return -dgSinPoly(r); }
    if (q == 2) { return -dgCosPoly(r); }
    return dgSinPoly(r);
  }
`;

const LOG = `
  fn dgLog(xin : f32) -> f32 {
    // special cases on the bits (drivers may assume no NaN and flush subnormals in float compares)
    let inBits = bitcast<u32>(xin);
    let mag = inBits & 0x7fffffffu;
    if (mag > 0x7f800000u) { return bitcast<f32>(inBits | 0x7fc00000u); } // NaN
    if (mag == 0u) { return bitcast<f32>(mag | 0xff800000u); } // +-0: -inf
    if ((inBits & 0x80000000u) != 0u) { return bitcast<f32>(mag | 0x7fc00000u); } // negative: NaN
    if (mag == 0x7f800000u) { return xin; } // +inf
    var bits = inBits;
    var e = 0.0;
    if ((bits >> 23u) == 0u) { // subnormal: m 2^-149, m exact as a normal float
      bits = bitcast<u32>(f32(bits));
      e = -149.0;
    }
    e = e + f32(i32(bits >> 23u) - 127);
    var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u); // [1, 2)
    if (m > 1.41421356237) { m = m * 0.5; e = e + 1.0; }
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let p = s * (2.0 + z * (0.666666666666666667 + z * (0.4 + z * (0.285714285714285714 + z * (0.222222222222222222 + z * 0.181818181818181818)))));
    return e * 0.693145751953125 + (p + e * 1.42860682030941723e-6);
  }
`;

function unaryProgram(shape: number[], name: string, lib: string, call: string): WebGPUProgramLike {
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    outputShape: shape,
    shaderKey: `diffguide_${name}`,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    variableNames: ['A'],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    getUserCode: () => `
      ${lib}
      fn main(index : i32) {
        if (index < uniforms.size) {
          setOutputAtIndex(index, ${call}(getAByOutputIndex(index)));
        }
      }
    `,
  };
}

function unaryKernel(name: string, lib: string, call: string): tf.KernelFunc {
  return ({ inputs, backend }) => {
    const x = (inputs as { x: tf.TensorInfo }).x;
    return (backend as unknown as WebGPUBackendLike).runWebGPUProgram(
      unaryProgram(x.shape, name, lib, call),
      [x],
      'float32',
    );
  };
}

let installed: string[] | null = null;

/**
 * Register the kernels above for 'webgpu' (replacing tfjs's). Idempotent. Returns their names.
 * Call after tfjs-backend-webgpu is imported.
 */
export function installWebgpuMath(): readonly string[] {
  if (installed) return installed;
  const kernels: [string, tf.KernelFunc][] = [
    ['Sin', unaryKernel('sin', SIN_COS, 'dgSin')],
    ['Cos', unaryKernel('cos', SIN_COS, 'dgCos')],
    ['Log', unaryKernel('log', LOG, 'dgLog')],
  ];
  for (const [kernelName, kernelFunc] of kernels) {
    if (tf.getKernel(kernelName, 'webgpu')) tf.unregisterKernel(kernelName, 'webgpu');
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc });
  }
  installed = kernels.map(([k]) => k);
  return installed;
}
