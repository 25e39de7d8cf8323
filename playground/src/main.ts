/**
 * The playground page: paint canvas and controls; every computation goes to the worker (worker.ts),
 * so the page stays responsive. `window.playground` exposes the worker calls for the browser test.
 */
import type { FromWorker, Images, Job, ReadyInfo } from './protocol.js';

type Result = Extract<FromWorker, { type: 'result' }>;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const status = (text: string, error = false) => {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', error);
};

// ---------------------------------------------------------------------------------------------
// worker

const params = new URLSearchParams(location.search);
const backend = params.get('backend') ?? 'auto';
($('backend') as HTMLSelectElement).value = backend;
$('backend').addEventListener('change', (e) => {
  params.set('backend', (e.target as HTMLSelectElement).value);
  location.search = params.toString();
});

const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
const pending = new Map<number, { resolve: (r: Result) => void; reject: (e: Error) => void; label: string }>();
let nextId = 1;
let readyResolve!: (i: ReadyInfo) => void;
let readyReject!: (e: Error) => void;
const ready = new Promise<ReadyInfo>((res, rej) => ((readyResolve = res), (readyReject = rej)));
const errors: string[] = [];

function progress(frac: number, text: string): void {
  $('bar').style.width = `${Math.round(frac * 100)}%`;
  $('progressText').textContent = text;
}

worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  const m = ev.data;
  if (m.type === 'status') status(m.text);
  else if (m.type === 'ready') readyResolve(m.info);
  else if (m.type === 'progress')
    progress(
      m.step / m.total,
      `${m.stage}: step ${m.step}/${m.total}${m.loss !== undefined ? `, loss ${m.loss.toFixed(4)}` : ''}`,
    );
  else if (m.type === 'result') {
    const p = pending.get(m.id);
    pending.delete(m.id);
    progress(1, `${p?.label ?? 'done'}: ${(m.ms / 1000).toFixed(1)} s`);
    p?.resolve(m);
  } else if (m.type === 'error') {
    errors.push(m.message);
    if (m.id === null) readyReject(new Error(m.message));
    const p = m.id !== null ? pending.get(m.id) : undefined;
    if (p) {
      pending.delete(m.id!);
      p.reject(new Error(m.message));
    }
    status(m.message, true);
    progress(0, '');
  }
};
worker.onerror = (e) => {
  errors.push(e.message);
  status(`worker error: ${e.message}`, true);
  readyReject(new Error(e.message));
};
worker.postMessage({ type: 'init', backend, base: new URL('./', location.href).href });

function run(job: Job, label: string): Promise<Result> {
  const id = nextId++;
  progress(0, `${label}: starting...`);
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, label });
    const transfer = Object.values(job)
      .filter((v): v is Images => !!v && typeof v === 'object' && 'data' in v)
      .map((im) => im.data.buffer);
    worker.postMessage({ type: 'run', id, job }, transfer);
  });
}

// ---------------------------------------------------------------------------------------------
// images

/** RGBA pixels of a canvas region -> NHWC in [-1, 1]. */
function canvasImages(c: HTMLCanvasElement): Images {
  const { width: w, height: h } = c;
  const px = c.getContext('2d')!.getImageData(0, 0, w, h).data;
  const data = new Float32Array(w * h * 3);
  for (let i = 0; i < w * h; i++) for (let k = 0; k < 3; k++) data[i * 3 + k] = px[i * 4 + k] / 127.5 - 1;
  return { data, shape: [1, h, w, 3] };
}

/** Image `i` of a batch drawn onto a canvas of its size. */
function drawImage(c: HTMLCanvasElement, im: Images, i: number): void {
  const [, h, w] = im.shape;
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d')!;
  const out = ctx.createImageData(w, h);
  const off = i * h * w * 3;
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++)
      out.data[p * 4 + k] = Math.round(Math.min(1, Math.max(-1, im.data[off + p * 3 + k])) * 127.5 + 127.5);
    out.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
}

function showResults(
  target: string,
  r: Result,
  inputs: { label: string; canvas: HTMLCanvasElement }[] = [],
): HTMLCanvasElement[] {
  const out = $(target);
  out.innerHTML = '';
  const fig = (c: HTMLCanvasElement, label: string, cls = '') => {
    const f = document.createElement('figure');
    if (cls) f.className = cls;
    f.append(c);
    const cap = document.createElement('figcaption');
    cap.textContent = label;
    f.append(cap);
    out.append(f);
  };
  for (const inp of inputs) fig(inp.canvas, inp.label, 'input');
  const canvases = r.labels.map((label, i) => {
    const c = document.createElement('canvas');
    drawImage(c, r.images, i);
    fig(c, label, 'output');
    return c;
  });
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = `${(r.ms / 1000).toFixed(1)} s · ${Object.entries(r.settings)
    .filter(([k]) => k !== 'weightsFrom')
    .map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toFixed(4) : v}`)
    .join(' · ')}`;
  out.append(meta);
  return canvases;
}

interface Example {
  name: string;
  file: string;
}
let examples: Example[] = [];
const exampleCache = new Map<string, Promise<ImageBitmap>>();
function exampleBitmap(file: string): Promise<ImageBitmap> {
  let p = exampleCache.get(file);
  if (!p) {
    p = fetch(new URL(`examples/${file}`, location.href))
      .then((r) => r.blob())
      .then((b) => createImageBitmap(b));
    exampleCache.set(file, p);
  }
  return p;
}

/** A picker (example select + upload) bound to a 32x32 preview canvas; `get()` reads the preview. */
function picker(
  selectId: string,
  uploadId: string | null,
  viewId: string,
  initial: number,
  allowNone = false,
): { get: () => Images | undefined } {
  const sel = $<HTMLSelectElement>(selectId);
  const view = $<HTMLCanvasElement>(viewId);
  let has = false;
  for (const e of examples) sel.add(new Option(e.name, e.file));
  const draw = (src: CanvasImageSource) => {
    const ctx = view.getContext('2d')!;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, view.width, view.height);
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(src, 0, 0, view.width, view.height);
    has = true;
  };
  sel.addEventListener('change', async () => {
    if (!sel.value) {
      view.getContext('2d')!.clearRect(0, 0, view.width, view.height);
      has = false;
      return;
    }
    draw(await exampleBitmap(sel.value));
  });
  if (uploadId) {
    $<HTMLInputElement>(uploadId).addEventListener('change', async (e) => {
      const f = (e.target as HTMLInputElement).files?.[0];
      if (f) draw(await createImageBitmap(f));
    });
  }
  if (!allowNone || initial >= 0) {
    sel.selectedIndex = (allowNone ? 1 : 0) + Math.max(0, initial);
    sel.dispatchEvent(new Event('change'));
  }
  return { get: () => (has ? canvasImages(view) : undefined) };
}

// ---------------------------------------------------------------------------------------------
// SDEdit painter

const PALETTE = [
  '#ffffff',
  '#000000',
  '#7f7f7f',
  '#e6262e',
  '#f4a0b5',
  '#ff8c1a',
  '#fac828',
  '#8b5a2b',
  '#3aa655',
  '#1e6b34',
  '#2f6fdf',
  '#8ed1fc',
  '#7b3fbf',
  '#f5d6b4',
];
const paint = $<HTMLCanvasElement>('paint');
const maskView = $<HTMLCanvasElement>('maskview');
const pctx = paint.getContext('2d')!;
const mctx = maskView.getContext('2d')!;
let colour = PALETTE[3];
function clearPaint(): void {
  pctx.fillStyle = '#ffffff';
  pctx.fillRect(0, 0, paint.width, paint.height);
}
clearPaint();
for (const c of PALETTE) {
  const b = document.createElement('button');
  b.style.background = c;
  b.title = c;
  b.dataset.colour = c;
  if (c === colour) b.classList.add('active');
  b.addEventListener('click', () => {
    colour = c;
    document.querySelectorAll('#palette button').forEach((x) => x.classList.toggle('active', x === b));
    ($('paint').closest('section')!.querySelector('input[value=paint]') as HTMLInputElement).checked = true;
  });
  $('palette').append(b);
}
const brush = $<HTMLInputElement>('brush');
brush.addEventListener('input', () => ($('brushOut').textContent = brush.value));
const tool = () => (document.querySelector('input[name=tool]:checked') as HTMLInputElement).value;
let maskUsed = false;
let last: [number, number] | null = null;
function stroke(x: number, y: number): void {
  const t = tool();
  const ctx = t === 'paint' ? pctx : mctx;
  ctx.save();
  if (t === 'unmask') ctx.globalCompositeOperation = 'destination-out'; // erase the mask
  ctx.strokeStyle = t === 'paint' ? colour : 'rgb(20, 40, 220)'; // the mask layer is shown at 45% opacity
  ctx.lineWidth = Number(brush.value);
  ctx.lineCap = ctx.lineJoin = 'round';
  ctx.beginPath();
  const [x0, y0] = last ?? [x, y];
  ctx.moveTo(x0, y0);
  ctx.lineTo(x, y);
  ctx.stroke();
  ctx.restore();
  if (t === 'mask') maskUsed = true;
  last = [x, y];
}
const pos = (e: PointerEvent): [number, number] => {
  const r = paint.getBoundingClientRect();
  return [((e.clientX - r.left) * paint.width) / r.width, ((e.clientY - r.top) * paint.height) / r.height];
};
paint.addEventListener('pointerdown', (e) => {
  paint.setPointerCapture(e.pointerId);
  last = null;
  stroke(...pos(e));
});
paint.addEventListener('pointermove', (e) => {
  if (e.buttons & 1) stroke(...pos(e));
});
paint.addEventListener('pointerup', () => (last = null));
$('clear').addEventListener('click', clearPaint);
$('clearMask').addEventListener('click', () => {
  mctx.clearRect(0, 0, maskView.width, maskView.height);
  maskUsed = false;
});

/** The mask for sdedit: 1 = keep the painting, 0 = regenerate (where the mask brush went). */
function maskImages(): Images | undefined {
  if (!maskUsed) return undefined;
  const { width: w, height: h } = maskView;
  const a = mctx.getImageData(0, 0, w, h).data;
  const data = new Float32Array(w * h);
  let painted = 0;
  for (let i = 0; i < w * h; i++) {
    data[i] = a[i * 4 + 3] > 0 ? 0 : 1;
    painted += 1 - data[i];
  }
  return painted ? { data, shape: [1, h, w, 1] } : undefined;
}

const t0 = $<HTMLInputElement>('t0');
t0.addEventListener('input', () => ($('t0Out').textContent = Number(t0.value).toFixed(2)));
const num = (id: string) => Number($<HTMLInputElement>(id).value);

async function guarded<T>(button: string, f: () => Promise<T>): Promise<T | undefined> {
  const b = $<HTMLButtonElement>(button);
  b.disabled = true;
  try {
    return await f();
  } catch (e) {
    status((e as Error).message, true);
    return undefined;
  } finally {
    b.disabled = false;
  }
}

async function runSdedit(): Promise<Result> {
  await ready;
  const guide = canvasImages(paint);
  const inputCanvas = document.createElement('canvas');
  drawImage(inputCanvas, guide, 0);
  const r = await run(
    {
      type: 'sdedit',
      guide,
      mask: maskImages(),
      t0: Number(t0.value),
      steps: num('sdSteps'),
      repeats: num('repeats'),
      seed: num('sdSeed'),
    },
    'SDEdit',
  );
  showResults('sdeditOut', r, [{ label: 'your painting', canvas: inputCanvas }]);
  return r;
}
$('runSdedit').addEventListener('click', () => guarded('runSdedit', runSdedit));

// ---------------------------------------------------------------------------------------------
// SDG, Imagic, unCLIP

const scale = $<HTMLInputElement>('scale');
scale.addEventListener('input', () => ($('scaleOut').textContent = scale.value));
let sdgRef: { get: () => Images | undefined };
async function runSdg(): Promise<Result> {
  await ready;
  const text = $<HTMLInputElement>('prompt').value.trim();
  const image = sdgRef.get();
  const r = await run(
    {
      type: 'sdg',
      text: text || undefined,
      image,
      imageMode: $<HTMLSelectElement>('sdgMode').value as 'content' | 'style',
      scale: Number(scale.value),
      steps: num('sdgSteps'),
      n: num('sdgN'),
      seed: num('sdgSeed'),
    },
    'SDG',
  );
  showResults('sdgOut', r);
  return r;
}
$('runSdg').addEventListener('click', () => guarded('runSdg', runSdg));

let imagicImg: { get: () => Images | undefined };
const eta = $<HTMLInputElement>('eta');
let imagicResult: Result | null = null;
function showEta(): void {
  const k = Number(eta.value);
  $('etaOut').textContent = (k / 10).toFixed(2);
  if (imagicResult) drawImage($<HTMLCanvasElement>('etaView'), imagicResult.images, k);
}
eta.addEventListener('input', showEta);
async function runImagic(): Promise<Result> {
  await ready;
  const image = imagicImg.get();
  if (!image) throw new Error('Imagic: choose or upload an image');
  const etas = Array.from({ length: 11 }, (_, i) => i / 10);
  const r = await run(
    {
      type: 'imagic',
      image,
      text: $<HTMLInputElement>('imagicText').value,
      etas,
      embSteps: num('embSteps'),
      ftSteps: num('ftSteps'),
      steps: num('imagicSteps'),
      seed: 0,
    },
    'Imagic',
  );
  imagicResult = r;
  eta.disabled = false;
  showEta();
  showResults('imagicOut', r);
  return r;
}
$('runImagic').addEventListener('click', () => guarded('runImagic', runImagic));

let unA: { get: () => Images | undefined };
let unB: { get: () => Images | undefined };
async function runUnclip(): Promise<Result> {
  await ready;
  const [a, b] = [unA.get(), unB.get()];
  if (!a || !b) throw new Error('unCLIP: choose or upload two images');
  const r = await run({ type: 'unclip', a, b, frames: num('frames'), steps: num('unSteps'), seed: 0 }, 'unCLIP');
  showResults('unclipOut', r);
  return r;
}
$('runUnclip').addEventListener('click', () => guarded('runUnclip', runUnclip));

// tabs
document.querySelectorAll<HTMLButtonElement>('#tabs button').forEach((b) =>
  b.addEventListener('click', () => {
    document.querySelectorAll('#tabs button').forEach((x) => x.classList.toggle('active', x === b));
    document.querySelectorAll('.panel').forEach((p) => p.classList.toggle('active', p.id === b.dataset.tab));
  }),
);

// examples (emoji from the committed test subset, written by the build)
async function setupExamples(): Promise<void> {
  examples = (await (await fetch(new URL('examples/index.json', location.href))).json()) as Example[];
  const sel = $<HTMLSelectElement>('exampleSd');
  for (const e of examples) sel.add(new Option(e.name, e.file));
  $('loadExample').addEventListener('click', async () => {
    const bmp = await exampleBitmap(sel.value);
    pctx.imageSmoothingEnabled = false;
    pctx.drawImage(bmp, 0, 0, paint.width, paint.height);
  });
  sdgRef = picker('sdgRef', 'sdgUpload', 'sdgRefView', -1, true);
  imagicImg = picker('imagicImg', 'imagicUpload', 'imagicView', 0);
  unA = picker('unA', 'unAUpload', 'unAView', 0);
  unB = picker('unB', 'unBUpload', 'unBView', 1);
}
const examplesReady = setupExamples().catch((e) => status(`examples: ${(e as Error).message}`, true));

// offline: a service worker keeps the page and code; the weights are cached in IndexedDB by the worker
const offline =
  'serviceWorker' in navigator
    ? navigator.serviceWorker
        .register(new URL('sw.js', location.href), { type: 'module' })
        .then(() => navigator.serviceWorker.ready)
        .then(
          () => true,
          (e) => (console.warn(`service worker: ${(e as Error).message}`), false),
        )
    : Promise.resolve(false);

/**
 * The controls that start at the method's default take it from the library (sent by the worker), so
 * the page never restates one; a control the user already changed keeps its value.
 */
function startAtDefaults(d: ReadyInfo['defaults']): void {
  const start: [string, number][] = [
    ['t0', d.sdedit.t0],
    ['sdSteps', d.sdedit.steps],
    ['scale', d.sdg.scale[d.sdg.on]],
    ['sdgN', d.sdg.n],
  ];
  for (const [id, v] of start) {
    const el = $<HTMLInputElement>(id);
    if (el.dataset.touched) continue;
    el.value = String(v);
    el.dispatchEvent(new Event('input')); // the outputs beside the sliders follow
  }
  const mode = $<HTMLSelectElement>('sdgMode');
  if (!mode.dataset.touched) mode.value = d.sdg.imageMode;
}
for (const id of ['t0', 'sdSteps', 'scale', 'sdgN', 'sdgMode'])
  $(id).addEventListener('input', (e) => {
    if (e.isTrusted) $(id).dataset.touched = '1';
  });

ready.then(
  async (info) => {
    startAtDefaults(info.defaults);
    const sw = await offline;
    const models = Object.entries(info.models)
      .map(([k, v]) => `${k} from ${v}`)
      .join(', ');
    status(
      `ready · ${info.backend}${info.simd ? ' (SIMD)' : ''}${info.backend === 'wasm' ? `, ${info.threads} thread${info.threads === 1 ? '' : 's'}, diffguide SIMD kernels ${info.ourSimdKernels ? 'on' : 'off'}` : ''} · ${models}${sw ? ' · works offline' : ''}${info.skipped.length ? ` · skipped ${info.skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}` : ''}`,
    );
  },
  (e) => status(`could not start: ${(e as Error).message}`, true),
);

/** For tests and the console: the worker calls behind the buttons. */
(window as unknown as { playground: unknown }).playground = {
  ready,
  examplesReady,
  offline,
  errors,
  run,
  runSdedit: () => runSdedit(),
  runSdg: () => runSdg(),
  runImagic: () => runImagic(),
  runUnclip: () => runUnclip(),
};
