/**
 * The renderer process behind lib/experiments/plot.ts `renderPlots`: reads
 * `{ specs: VegaLiteSpec[], font: string }` as JSON on stdin, compiles each spec with vega-lite,
 * renders it headless with vega (`View.toSVG()`, no canvas) and rasterises the SVG with resvg, and
 * writes `{ plots: [{ svg, png (base64) }] }` as JSON on stdout. A process of its own because vega
 * renders asynchronously while an experiment's `merge` is synchronous (see plot.ts).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';

interface Request {
  specs: TopLevelSpec[];
  /** A TrueType font file for the PNG's text. */
  font: string;
  /** PNG pixels per SVG pixel. */
  scale: number;
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Request;
  const plots: { svg: string; png: string }[] = [];
  for (const spec of req.specs) {
    const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
    const svg = await view.toSVG();
    view.finalize();
    const png = new Resvg(svg, {
      background: 'white',
      fitTo: { mode: 'zoom', value: req.scale },
      font: { loadSystemFonts: false, fontFiles: [req.font], defaultFontFamily: 'DejaVu Sans' },
    })
      .render()
      .asPng();
    plots.push({ svg, png: Buffer.from(png).toString('base64') });
  }
  process.stdout.write(JSON.stringify({ plots }));
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
