/** Image grids for sample sheets. */
import * as tf from '@tensorflow/tfjs';

export interface GridOptions {
  /** Columns (default: ceil(sqrt(N))). */
  cols?: number;
  /** Pixels between tiles and around the border (default 2). */
  pad?: number;
  /** Value of the padding in [-1, 1] (default 1 = white). */
  padValue?: number;
}

/**
 * Tile a batch into one image, row-major.
 * @param images [N, H, W, C] in [-1, 1]
 * @returns [1, rows*(H+pad)+pad, cols*(W+pad)+pad, C]
 */
export function makeGrid(images: tf.Tensor4D, cols?: number | GridOptions, pad?: number): tf.Tensor4D {
  const o: GridOptions = typeof cols === 'object' ? cols : { cols, pad };
  if (images.rank !== 4) throw new Error(`makeGrid: expected [N, H, W, C], got shape [${images.shape}]`);
  const [n, h, w, c] = images.shape;
  const nc = Math.max(1, Math.min(n, o.cols ?? Math.ceil(Math.sqrt(n))));
  const p = o.pad ?? 2;
  const pv = o.padValue ?? 1;
  const rows = Math.ceil(n / nc);
  return tf.tidy(() => {
    let x: tf.Tensor4D = images;
    if (rows * nc > n) x = tf.concat([x, tf.fill([rows * nc - n, h, w, c], pv)]) as tf.Tensor4D;
    // pad each tile at the top/left, then the whole grid at the bottom/right
    x = tf.pad(
      x,
      [
        [0, 0],
        [p, 0],
        [p, 0],
        [0, 0],
      ],
      pv,
    );
    const th = h + p;
    const tw = w + p;
    const g = x
      .reshape([rows, nc, th, tw, c])
      .transpose([0, 2, 1, 3, 4])
      .reshape([1, rows * th, nc * tw, c]);
    return tf.pad(
      g,
      [
        [0, 0],
        [0, p],
        [0, p],
        [0, 0],
      ],
      pv,
    ) as tf.Tensor4D;
  });
}
