/**
 * Experiment plots: a vega-lite spec in, SVG and PNG out, rendered headless in Node (vega's
 * `View.toSVG()` needs no canvas; resvg rasterises the SVG). Every experiment draws its figure with
 * `plotFiles`, and returns the files from `merge` for the grid engine to write beside table.md.
 *
 * `merge` is synchronous (the engine calls it from runGrid, `--merge` and the queue), while vega
 * renders asynchronously, so the rendering runs in a short child process (`plot-render.ts`) that
 * this module waits for: one process per call, for all the specs of that call.
 *
 * The PNG's text needs a TrueType font: DejaVu Sans (Debian: fonts-dejavu-core), found at the usual
 * paths or given by DIFFGUIDE_PLOT_FONT=/path/to/font.ttf.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packageRoot } from '../paths.js';
import type { TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec as PlotSpec } from 'vega-lite';

const FONT_PATHS = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', // Debian, Ubuntu
  '/usr/share/fonts/TTF/DejaVuSans.ttf', // Arch
  '/usr/share/fonts/dejavu/DejaVuSans.ttf', // Fedora
  '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf',
  '/usr/local/share/fonts/DejaVuSans.ttf',
  '/opt/homebrew/share/fonts/DejaVuSans.ttf',
];

/** The font file plots use: DIFFGUIDE_PLOT_FONT, else DejaVu Sans at a usual path; throws naming the fix. */
export function plotFont(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.DIFFGUIDE_PLOT_FONT;
  if (given) {
    if (!existsSync(given))
      throw new Error(
        `DIFFGUIDE_PLOT_FONT=${given} does not exist; point it at a .ttf file (e.g. DejaVuSans.ttf) or unset it`,
      );
    return given;
  }
  const f = FONT_PATHS.find((p) => existsSync(p));
  if (!f) {
    throw new Error(
      `plots need the DejaVu Sans font for their text and none was found (looked in ${FONT_PATHS.join(', ')}); ` +
        'install it (Debian/Ubuntu: apt-get install -y fonts-dejavu-core) or set DIFFGUIDE_PLOT_FONT=/path/to/a/font.ttf',
    );
  }
  return f;
}

/** The look every experiment plot shares (font, sizes); a spec's own `config` wins. */
export const PLOT_CONFIG = {
  font: 'DejaVu Sans',
  background: 'white',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#e6e6e6', labelLimit: 260 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
  title: { fontSize: 14, anchor: 'start' as const },
};

function withConfig(spec: TopLevelSpec): TopLevelSpec {
  const own = (spec as { config?: Record<string, unknown> }).config ?? {};
  return { ...spec, config: { ...PLOT_CONFIG, ...own } } as TopLevelSpec;
}

/** How this module's sibling renderer runs: the compiled .js under node, the .ts source through tsx (from the package's node_modules). */
function rendererCommand(): string[] {
  const js = fileURLToPath(new URL('./plot-render.js', import.meta.url));
  if (existsSync(js)) return [js];
  const ts = fileURLToPath(new URL('./plot-render.ts', import.meta.url));
  if (!existsSync(ts))
    throw new Error(`the plot renderer is missing: neither ${js} nor ${ts} exists; reinstall diffguide`);
  const tsx = join(packageRoot(), 'node_modules', 'tsx', 'dist', 'loader.mjs');
  if (!existsSync(tsx))
    throw new Error(
      `running from sources (${ts}) needs tsx to render plots (${tsx} is missing); npm install (tsx is a dev dependency), or run the built package (npm run build)`,
    );
  return ['--import', pathToFileURL(tsx).href, ts];
}

export interface RenderedPlot {
  svg: string;
  png: Uint8Array;
}

/**
 * Render vega-lite specs to SVG text and PNG bytes (`scale` PNG pixels per SVG pixel, default 2).
 * Synchronous: it waits for one renderer process that draws them all.
 */
export function renderPlots(specs: TopLevelSpec[], opts: { scale?: number } = {}): RenderedPlot[] {
  if (!specs.length) return [];
  const font = plotFont();
  const r = spawnSync(process.execPath, rendererCommand(), {
    input: JSON.stringify({ specs: specs.map(withConfig), font, scale: opts.scale ?? 2 }),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) throw new Error(`plot renderer could not start (${r.error.message})`);
  if (r.status !== 0)
    throw new Error(`plot renderer failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(0, 6).join('\n')}`);
  const out = JSON.parse(r.stdout) as { plots: { svg: string; png: string }[] };
  return out.plots.map((p) => ({ svg: p.svg, png: new Uint8Array(Buffer.from(p.png, 'base64')) }));
}

/** `{ "<name>.svg": svg, "<name>.png": png }` for each named spec: what an experiment's merge returns as files. */
export function plotFiles(
  plots: Record<string, TopLevelSpec>,
  opts: { scale?: number } = {},
): Record<string, string | Uint8Array> {
  const names = Object.keys(plots);
  const rendered = renderPlots(
    names.map((n) => plots[n]),
    opts,
  );
  const files: Record<string, string | Uint8Array> = {};
  names.forEach((n, i) => {
    files[`${n}.svg`] = rendered[i].svg;
    files[`${n}.png`] = rendered[i].png;
  });
  return files;
}
