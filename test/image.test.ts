import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ndarray from 'ndarray';
import { PNG } from 'pngjs';
import {
  decodePng,
  encodePng,
  readPng,
  writePng,
  imageToTensor,
  tensorToImage,
  resize,
  resizeMatrix,
  areaDownsample,
  areaDownsampleBytes,
  makeGrid,
  toNdarray,
  fromNdarray,
  plotLines,
  simulateStrokes,
} from '../lib/image/index.js';
import { GLYPHS, drawText } from '../lib/image/labels.js';

const dir = mkdtempSync(join(tmpdir(), 'dg-image-'));

function rgbaPng(w: number, h: number, f: (x: number, y: number) => [number, number, number, number]): Buffer {
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      const [r, g, b, a] = f(x, y);
      png.data[i] = r;
      png.data[i + 1] = g;
      png.data[i + 2] = b;
      png.data[i + 3] = a;
    }
  return PNG.sync.write(png);
}

describe('lib/image', () => {
  it('round-trips a tensor through writePng/readPng exactly at 8 bits', () => {
    const img = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => (i * 37) % 256) };
    const t = imageToTensor(img);
    expect(t.shape).to.deep.equal([1, 3, 5, 3]);
    const p = join(dir, 'a.png');
    writePng(p, t);
    const back = readPng(p);
    expect(Array.from(tensorToImage(back).data)).to.deep.equal(Array.from(img.data));
    const mx = back.max().dataSync()[0];
    const mn = back.min().dataSync()[0];
    expect(mx).to.be.at.most(1);
    expect(mn).to.be.at.least(-1);
    tf.dispose([t, back]);
  });

  it('composites alpha over the chosen background', () => {
    const buf = rgbaPng(2, 1, (x) => (x === 0 ? [255, 0, 0, 0] : [0, 0, 255, 128]));
    const white = decodePng(buf, 'mem');
    expect(Array.from(white.data.subarray(0, 3))).to.deep.equal([255, 255, 255]);
    // 0*128/255 + 255*(127/255) = 127, blue: 255*128/255 + 255*127/255 = 255
    expect(Array.from(white.data.subarray(3, 6))).to.deep.equal([127, 127, 255]);
    const black = decodePng(buf, 'mem', 'black');
    expect(Array.from(black.data)).to.deep.equal([0, 0, 0, 0, 0, 128]);
    const custom = decodePng(buf, 'mem', [10, 20, 30]);
    expect(Array.from(custom.data.subarray(0, 3))).to.deep.equal([10, 20, 30]);
  });

  it('reads gray PNGs as RGB', () => {
    const png = new PNG({
      width: 2,
      height: 2,
      colorType: 0,
      inputColorType: 0,
      bitDepth: 8,
      inputHasAlpha: false,
    } as never);
    png.data = Buffer.from([0, 100, 200, 255]);
    const buf = PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false } as never);
    const img = decodePng(buf, 'gray');
    expect(Array.from(img.data)).to.deep.equal([0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]);
  });

  it('names the file and the problem for non-PNG, truncated and wrong-shape inputs', () => {
    const notPng = join(dir, 'not.png');
    writeFileSync(notPng, 'hello world, I am text');
    expect(() => readPng(notPng)).to.throw(/not\.png is not a PNG file/);
    const good = rgbaPng(8, 8, () => [1, 2, 3, 255]);
    const trunc = join(dir, 'trunc.png');
    writeFileSync(trunc, good.subarray(0, good.length - 30));
    expect(() => readPng(trunc)).to.throw(/trunc\.png.*truncated or corrupt/);
    expect(() => readPng(join(dir, 'missing.png'))).to.throw(/cannot read image .*missing\.png/);
    const bad = tf.zeros([1, 3, 8, 8]);
    expect(() => writePng(join(dir, 'x.png'), bad)).to.throw(/x\.png.*NHWC/);
    const batch = tf.zeros([2, 4, 4, 3]);
    expect(() => writePng(join(dir, 'y.png'), batch)).to.throw(/batch of 2/);
    expect(() => writePng(join(dir, 'z.png'), tf.zeros([4, 4]))).to.throw(/rank 2/);
    tf.dispose([bad, batch]);
  });

  it('readPng resizes with exact area averaging for integer factors', () => {
    const buf = rgbaPng(4, 4, (x, y) => [x * 60, y * 60, 0, 255]);
    const p = join(dir, 'r.png');
    writeFileSync(p, buf);
    const t = readPng(p, { size: 2 });
    const img = tensorToImage(t);
    // top-left block: red mean (0+60)/2 = 30, green 30
    expect(Array.from(img.data.subarray(0, 3))).to.deep.equal([30, 30, 0]);
    t.dispose();
  });

  it('area resize equals avgPool for integer factors and keeps constants for any size', () => {
    const x = tf.randomUniform([2, 8, 12, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    const a = resize(x, [4, 6], 'area');
    const b = areaDownsample(x, 2);
    expect(tf.abs(a.sub(b)).max().dataSync()[0]).to.be.below(1e-6);
    const c = tf.fill([1, 7, 9, 3], 0.3) as tf.Tensor4D;
    for (const m of ['area', 'bilinear', 'bicubic'] as const) {
      const r = resize(c, [5, 13], m);
      expect(r.shape).to.deep.equal([1, 5, 13, 3]);
      expect(tf.abs(r.sub(0.3)).max().dataSync()[0], m).to.be.below(1e-6);
      r.dispose();
    }
    tf.dispose([x, a, b, c]);
  });

  it('bilinear matches tf.image.resizeBilinear with half-pixel centers', () => {
    const x = tf.randomUniform([1, 6, 5, 2], -1, 1, 'float32', 2) as tf.Tensor4D;
    for (const size of [
      [12, 10],
      [3, 4],
      [7, 9],
    ] as [number, number][]) {
      const a = resize(x, size, 'bilinear');
      const b = tf.image.resizeBilinear(x, size, false, true);
      expect(tf.abs(a.sub(b)).max().dataSync()[0], String(size)).to.be.below(1e-5);
      tf.dispose([a, b]);
    }
    x.dispose();
  });

  it("bicubic uses PyTorch's cubic weights (A = -0.75) and rows summing to 1", () => {
    const m = resizeMatrix(8, 16, 'bicubic');
    for (let o = 0; o < 16; o++) {
      let s = 0;
      for (let i = 0; i < 8; i++) s += m[o * 8 + i];
      expect(s).to.be.closeTo(1, 1e-6);
    }
    // PyTorch's bicubic (A = -0.75) weights for a x2 upsample: output 4 samples input 1.75
    const row = Array.from(m.subarray(4 * 8, 4 * 8 + 8));
    const want = [-0.03515625, 0.26171875, 0.87890625, -0.10546875, 0, 0, 0, 0];
    row.forEach((v, i) => expect(v).to.be.closeTo(want[i], 1e-7));
  });

  it('simulateStrokes: flat blocks of the mean colour, quantised to the given levels; bad sizes named', () => {
    // a 4x4 image: left half -1, right half a ramp whose 2x2 means are 0.3 and 0.9
    const x = tf.tensor4d(
      [-1, -1, 0.2, 0.4, -1, -1, 0.2, 0.4, -1, -1, 0.8, 1, -1, -1, 0.8, 1].flatMap((v) => [v, v, -v]),
      [1, 4, 4, 3],
    );
    const y = simulateStrokes(x, { cell: 2, levels: 3 }); // levels -1, 0, 1
    const v = y.arraySync()[0];
    expect(v.map((row) => row.map((p) => p[0]))).to.deep.equal([
      [-1, -1, 0, 0],
      [-1, -1, 0, 0],
      [-1, -1, 1, 1],
      [-1, -1, 1, 1],
    ]);
    expect(Math.abs(v[0][3][2])).to.equal(0); // -0.3 rounds to the 0 level
    expect(v[3][3][2]).to.equal(-1);
    expect(() => simulateStrokes(x, { cell: 3 })).to.throw(/cell 3 .*4x4/);
    expect(() => simulateStrokes(x, { cell: 2, levels: 1 })).to.throw(/levels/);
    tf.dispose([x, y]);
  });

  it('areaDownsampleBytes averages blocks with rounding', () => {
    const d = Uint8Array.from([0, 1, 2, 4, 10, 10, 10, 11]); // 2x2 image, 2 channels
    expect(Array.from(areaDownsampleBytes(d, 2, 2, 2, 2))).to.deep.equal([6, 7]); // (0+2+10+10)/4=5.5->6, (1+4+10+11)/4=6.5->7
    expect(() => areaDownsampleBytes(d, 2, 2, 2, 3)).to.throw(/factor 3/);
  });

  it('resize is differentiable', () => {
    const x = tf.randomUniform([1, 4, 4, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    const g = tf.grad((v: tf.Tensor) => resize(v as tf.Tensor4D, [2, 2], 'area').sum())(x);
    // each input pixel contributes 1/4 to one output
    expect(tf.abs(g.sub(0.25)).max().dataSync()[0]).to.be.below(1e-6);
    tf.dispose([x, g]);
  });

  it('makeGrid lays tiles out row-major with padding', () => {
    const imgs = tf.stack([tf.fill([2, 2, 3], -1), tf.fill([2, 2, 3], 0), tf.fill([2, 2, 3], 0.5)]) as tf.Tensor4D;
    const g = makeGrid(imgs, 2, 1);
    expect(g.shape).to.deep.equal([1, 2 * 3 + 1, 2 * 3 + 1, 3]);
    const v = g.squeeze().arraySync() as number[][][];
    expect(v[0][0][0]).to.equal(1); // pad
    expect(v[1][1][0]).to.equal(-1); // tile 0
    expect(v[1][4][0]).to.equal(0); // tile 1
    expect(v[4][1][0]).to.equal(0.5); // tile 2
    expect(v[4][4][0]).to.equal(1); // empty slot filled with padValue
    tf.dispose([imgs, g]);
  });

  it('ndarray interop keeps shape and handles strided views', () => {
    const t = tf.tensor3d([1, 2, 3, 4, 5, 6], [1, 2, 3]);
    const nd = toNdarray(t);
    expect(nd.shape).to.deep.equal([1, 2, 3]);
    expect(nd.get(0, 1, 2)).to.equal(6);
    const a = ndarray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]).transpose(1, 0);
    const back = fromNdarray(a);
    expect(back.shape).to.deep.equal([3, 2]);
    expect(Array.from(back.dataSync())).to.deep.equal([1, 4, 2, 5, 3, 6]);
    tf.dispose([t, back]);
  });

  it('plotLines draws a curve into an image that encodes as PNG', () => {
    const img = plotLines([{ y: [1, 0.5, 0.3, 0.2] }], { width: 100, height: 60, logY: true });
    expect(img.data.length).to.equal(100 * 60 * 3);
    expect(img.data.some((v) => v !== 255 && v !== 0)).to.equal(true); // coloured pixels exist
    const buf = encodePng(img.data, 100, 60);
    expect(decodePng(buf).width).to.equal(100);
  });

  it('does not leak tensors', () => {
    const x = tf.randomUniform([1, 8, 8, 3], -1, 1, 'float32', 4) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      tf.dispose([resize(x, 5, 'bicubic'), makeGrid(x, 1), areaDownsample(x, 2)]);
      tensorToImage(x);
    }
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
    void readFileSync;
  });
  it('label font: every glyph is 3x5, and the characters labels use (& > | A W) are drawn, not as ?', () => {
    for (const [ch, g] of Object.entries(GLYPHS)) expect(g, `glyph ${JSON.stringify(ch)}`).to.match(/^[#.]{15}$/);
    const ink = (text: string): string => {
      const img = { width: 4 * text.length, height: 5, data: new Uint8Array(4 * text.length * 5 * 3).fill(255) };
      drawText(img, text, 0, 0);
      let bits = '';
      for (let y = 0; y < 5; y++)
        for (let x = 0; x < 3; x++) bits += img.data[(y * img.width + x) * 3] === 0 ? '#' : '.';
      return bits;
    };
    for (const ch of ['&', '>', '|', 'A', 'W']) {
      expect(ink(ch), ch).to.equal(GLYPHS[ch]);
      expect(ink(ch), ch).to.not.equal(GLYPHS['?']);
    }
  });
});
