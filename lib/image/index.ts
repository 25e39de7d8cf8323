/** Images: PNG I/O, resizing, grids, ndarray interop. Tensors are NHWC float32 in [-1, 1]. */
export * from './png.js';
export * from './resize.js';
export * from './grid.js';
export * from './ndarray.js';
export * from './plot.js';
export * from './strokes.js';
