/**
 * A progress bar on stderr for long method runs (any `onProgress({stage, step, total, loss?})`).
 * On a TTY it redraws one line per stage; otherwise it logs a line every ~10 s and at the end of each
 * stage. Silent with --quiet (DIFFGUIDE_QUIET=1).
 */
export interface ProgressEvent {
  stage: string;
  step: number;
  total: number;
  loss?: number;
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

/** A progress callback drawing `label stage step/total [####....] loss ETA` on stderr. */
export function progressBar(label = ''): (p: ProgressEvent) => void {
  const tty = !!process.stderr.isTTY;
  let stage = '';
  let stageStartMs = Date.now();
  let lastLogMs = 0;
  let lastStep = 0;
  return (p) => {
    if (process.env.DIFFGUIDE_QUIET === '1') return;
    const nowMs = Date.now();
    if (p.stage !== stage || p.step <= lastStep) {
      if (tty && stage) process.stderr.write('\n');
      stage = p.stage;
      stageStartMs = nowMs;
    }
    lastStep = p.step;
    const done = p.step >= p.total;
    const width = 24;
    const filled = Math.max(0, Math.min(width, Math.round((width * p.step) / Math.max(1, p.total))));
    const elapsedS = (nowMs - stageStartMs) / 1000;
    const remainingS = p.step > 0 ? (elapsedS * (p.total - p.step)) / p.step : NaN;
    const line =
      `${label ? `${label} ` : ''}${p.stage} ${p.step}/${p.total} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}]` +
      (p.loss !== undefined ? ` loss ${p.loss.toFixed(4)}` : '') +
      ` ${fmtSeconds(elapsedS)}${done ? '' : ` ETA ${fmtSeconds(remainingS)}`}`;
    if (tty) {
      process.stderr.write(`\r${line}\x1b[K${done ? '\n' : ''}`);
      if (done) stage = '';
    } else if (done || nowMs - lastLogMs > 10000) {
      lastLogMs = nowMs;
      process.stderr.write(`${line}\n`);
    }
  };
}

/** Write a note (resized inputs, warnings) to stderr unless quiet. */
export function note(msg: string): void {
  if (process.env.DIFFGUIDE_QUIET !== '1') process.stderr.write(`note: ${msg}\n`);
}
