/**
 * A minimal line-plot rasteriser (for loss curves): axes, one or more series, optional log-y,
 * and min/max tick labels in a built-in 3x5 pixel font (digits, '.', '-', 'e').
 */
import type { RgbImage, Rgb } from './png.js';

const FONT: Record<string, string> = {
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '111001111100111',
  '3': '111001111001111',
  '4': '101101111001001',
  '5': '111100111001111',
  '6': '111100111101111',
  '7': '111001010010010',
  '8': '111101111101111',
  '9': '111101111001111',
  '.': '000000000000010',
  '-': '000000111000000',
  e: '000111101110011',
  ' ': '000000000000000',
  k: '100101110101101',
};

export interface PlotSeries {
  /** y values; x is the index unless `x` is given. */
  y: number[];
  x?: number[];
  color?: Rgb;
}

export interface PlotOptions {
  width?: number;
  height?: number;
  /** Log-scale y axis (values <= 0 are skipped). Default false. */
  logY?: boolean;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-2) return v.toExponential(1).replace('+', '');
  if (a >= 100) return v.toFixed(0);
  return v.toPrecision(3);
}

/** Draw series into an RGB image (white background). */
export function plotLines(series: PlotSeries[], opts: PlotOptions = {}): RgbImage {
  const W = opts.width ?? 480;
  const H = opts.height ?? 240;
  const data = new Uint8Array(W * H * 3).fill(255);
  const set = (x: number, y: number, c: Rgb) => {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    const i = (y * W + x) * 3;
    data[i] = c[0];
    data[i + 1] = c[1];
    data[i + 2] = c[2];
  };
  const text = (s: string, x0: number, y0: number, c: Rgb) => {
    let x = x0;
    for (const ch of s) {
      const g = FONT[ch] ?? FONT[' '];
      for (let r = 0; r < 5; r++) for (let k = 0; k < 3; k++) if (g[r * 3 + k] === '1') set(x + k, y0 + r, c);
      x += 4;
    }
  };
  const ty = (v: number) => (opts.logY ? Math.log10(v) : v);
  let xmin = Infinity,
    xmax = -Infinity,
    ymin = Infinity,
    ymax = -Infinity;
  for (const s of series) {
    s.y.forEach((v, i) => {
      if (!Number.isFinite(v) || (opts.logY && v <= 0)) return;
      const x = s.x ? s.x[i] : i;
      xmin = Math.min(xmin, x);
      xmax = Math.max(xmax, x);
      ymin = Math.min(ymin, ty(v));
      ymax = Math.max(ymax, ty(v));
    });
  }
  const L = 40,
    R = 8,
    T = 8,
    B = 14;
  const axis: Rgb = [0, 0, 0];
  for (let x = L; x < W - R; x++) set(x, H - B, axis);
  for (let y = T; y <= H - B; y++) set(L, y, axis);
  if (!Number.isFinite(xmin)) return { width: W, height: H, data };
  if (xmax === xmin) xmax = xmin + 1;
  if (ymax === ymin) {
    ymax += 0.5;
    ymin -= 0.5;
  }
  const px = (x: number) => Math.round(L + ((x - xmin) / (xmax - xmin)) * (W - R - L - 1));
  const py = (y: number) => Math.round(H - B - ((ty(y) - ymin) / (ymax - ymin)) * (H - B - T));
  const untr = (v: number) => (opts.logY ? 10 ** v : v);
  text(fmt(untr(ymax)), 2, T, axis);
  text(fmt(untr(ymin)), 2, H - B - 5, axis);
  text(fmt(xmin), L, H - B + 4, axis);
  const xs = fmt(xmax);
  text(xs, W - R - xs.length * 4, H - B + 4, axis);
  const palette: Rgb[] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
  ];
  series.forEach((s, si) => {
    const c = s.color ?? palette[si % palette.length];
    let prev: [number, number] | null = null;
    s.y.forEach((v, i) => {
      if (!Number.isFinite(v) || (opts.logY && v <= 0)) return;
      const p: [number, number] = [px(s.x ? s.x[i] : i), py(v)];
      if (prev) {
        const n = Math.max(Math.abs(p[0] - prev[0]), Math.abs(p[1] - prev[1]), 1);
        for (let k = 0; k <= n; k++)
          set(Math.round(prev[0] + ((p[0] - prev[0]) * k) / n), Math.round(prev[1] + ((p[1] - prev[1]) * k) / n), c);
      } else set(p[0], p[1], c);
      prev = p;
    });
  });
  return { width: W, height: H, data };
}
