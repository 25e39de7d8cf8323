/** The demo's single HTML page: one section per method, inputs and outputs side by side with settings. */

export interface DemoImage {
  /** Path relative to the page. */
  src: string;
  caption: string;
}

export interface DemoRow {
  title: string;
  inputs: DemoImage[];
  outputs: DemoImage[];
  settings: Record<string, unknown>;
  /** Wall time of this row in ms. */
  ms?: number;
}

export interface DemoSection {
  method: string;
  /** One line on what the method does and what to look for. */
  blurb: string;
  rows: DemoRow[];
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fig(img: DemoImage): string {
  return `<figure><img src="${esc(img.src)}" alt="${esc(img.caption)}"><figcaption>${esc(img.caption)}</figcaption></figure>`;
}

function settingsTable(s: Record<string, unknown>): string {
  const rows = Object.entries(s)
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) =>
        `<tr><th>${esc(k)}</th><td>${esc(typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : typeof v === 'object' ? JSON.stringify(v) : String(v))}</td></tr>`,
    )
    .join('');
  return `<table class="settings">${rows}</table>`;
}

/** The whole page. */
export function renderDemoPage(title: string, intro: Record<string, unknown>, sections: DemoSection[]): string {
  const body = sections
    .map(
      (s) => `<section id="${esc(s.method.toLowerCase().replace(/[^a-z0-9]+/g, '-'))}">
<h2>${esc(s.method)}</h2>
<p class="blurb">${esc(s.blurb)}</p>
${s.rows
  .map(
    (r) => `<div class="row">
<h3>${esc(r.title)}${r.ms !== undefined ? ` <span class="ms">${(r.ms / 1000).toFixed(1)} s</span>` : ''}</h3>
<div class="cols">
<div class="col inputs">${r.inputs.length ? `<h4>inputs</h4><div class="imgs">${r.inputs.map(fig).join('')}</div>` : ''}</div>
<div class="col outputs"><h4>outputs</h4><div class="imgs">${r.outputs.map(fig).join('')}</div></div>
<div class="col">${settingsTable(r.settings)}</div>
</div>
</div>`,
  )
  .join('\n')}
</section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}
h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
.blurb{color:#555;max-width:900px}
.row{margin:14px 0 22px}
.row h3{font-size:15px;margin:6px 0}
.ms{color:#888;font-weight:normal;font-size:12px}
.cols{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.col h4{margin:0 0 4px;font-size:12px;color:#777;text-transform:uppercase}
.imgs{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;text-align:center}
figure img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #ccc;display:block}
figcaption{font-size:11px;color:#444;max-width:96px;word-wrap:break-word}
table.settings{border-collapse:collapse;font-size:12px}
table.settings th{text-align:left;padding:1px 8px 1px 0;color:#555;font-weight:normal}
table.settings td{font-family:ui-monospace,monospace}
.intro td,.intro th{padding:1px 10px 1px 0;text-align:left;font-size:13px}
</style></head>
<body>
<h1>${esc(title)}</h1>
<table class="intro">${Object.entries(intro)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`)
    .join('')}</table>
<p>${sections.map((s) => `<a href="#${esc(s.method.toLowerCase().replace(/[^a-z0-9]+/g, '-'))}">${esc(s.method)}</a>`).join(' · ')}</p>
${body}
</body></html>
`;
}
