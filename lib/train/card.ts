/**
 * Model cards for shipped weights: what was trained on what, how long, on which hardware/backend,
 * the losses and evaluation figures, the exact command and commit. Written next to the weights.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { basename, join } from 'node:path';
import { packageRoot } from '../paths.js';
import { makeDirs } from '../output.js';

export interface CardInput {
  model: string;
  /** Run folder (state.json, loss.csv, loss.png, evals.jsonl, samples/latest.png). */
  runDir: string;
  /** Ship folder (weights + config already written there). */
  shipDir: string;
  weightsFile: string;
  /** One paragraph: what the model is and how it is used. */
  description: string;
  /** Data and split description. */
  data: string;
  /** Licence / credit lines. */
  credits: string[];
  /** The command that trained it (as typed). */
  command: string;
  backend: string;
  /** An `diffguide eval --json` report, if measured. */
  evalReport?: { bars: Record<string, { value: number; goal: string; pass: boolean }>; [k: string]: unknown };
  notes?: string[];
}

function gitHead(cwd: string): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

/** Write `<shipDir>/MODEL_CARD.md` and copy the loss curve and latest sample grid beside it. */
export function writeModelCard(c: CardInput): string {
  makeDirs(c.shipDir);
  const st = JSON.parse(readFileSync(join(c.runDir, 'state.json'), 'utf8')) as {
    step: number;
    wallSeconds: number;
    avgLoss: number;
    config: Record<string, unknown>;
    evals?: Record<string, number>;
    backends?: string[];
    cooldown?: { steps: number; end: number };
  };
  const csv = existsSync(join(c.runDir, 'loss.csv'))
    ? readFileSync(join(c.runDir, 'loss.csv'), 'utf8').trim().split('\n').slice(1)
    : [];
  const first = csv[0]?.split(',');
  const images: string[] = [];
  if (existsSync(join(c.runDir, 'loss.png'))) {
    copyFileSync(join(c.runDir, 'loss.png'), join(c.shipDir, 'loss.png'));
    images.push('![loss curve](loss.png)');
  }
  if (existsSync(join(c.runDir, 'samples', 'latest.png'))) {
    copyFileSync(join(c.runDir, 'samples', 'latest.png'), join(c.shipDir, 'samples.png'));
    images.push('![samples (EMA weights)](samples.png)');
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    `# diffguide ${c.model}`,
    '',
    c.description,
    '',
    `- Weights: \`${basename(c.weightsFile)}\` (safetensors, PyTorch layout, reference key names, EMA weights); config: \`config.json\``,
    `- Data: ${c.data}`,
    `- Training: ${st.step} steps, batch ${st.config.batch}, ${(st.wallSeconds / 3600).toFixed(2)} h wall time (across resumes)${st.cooldown ? `; the learning rate decayed linearly to 0 over the last ${st.cooldown.steps} steps (cooldown ending at step ${st.cooldown.end})` : ''}`,
    `- Hardware: ${os.cpus().length} cores (${cpu}), shared with other jobs; ${st.backends?.length ? `trained on tfjs ${st.backends.join('; ')}; exported with ${c.backend}` : `backend ${c.backend}`}`,
    `- Loss: first logged ${first ? Number(first[1]).toFixed(4) : '?'} (step ${first?.[0] ?? '?'}), mean of the last 100 steps before the checkpoint ${Number(st.avgLoss).toFixed(4)} (step ${st.step})`,
    ...(st.evals && Object.keys(st.evals).length
      ? [
          `- Figures logged during training (EMA weights): ${Object.entries(st.evals)
            .map(([k, v]) => `${k} ${v.toFixed(4)}`)
            .join(', ')}`,
        ]
      : []),
    `- Command: \`${c.command}\``,
    `- Commit: \`${gitHead(packageRoot())}\` (git rev-parse HEAD when the card was written; the tree may have had uncommitted work)`,
    '',
  ];
  if (c.evalReport) {
    lines.push(
      '## Evaluation (`diffguide eval ' + c.model + ' --json`)',
      '',
      '| bar | value | goal | pass |',
      '| --- | --- | --- | --- |',
    );
    for (const [k, b] of Object.entries(c.evalReport.bars))
      lines.push(`| ${k} | ${b.value.toFixed(4)} | ${b.goal} | ${b.pass ? 'yes' : 'no'} |`);
    const extra = Object.entries(c.evalReport).filter(([k]) => k !== 'bars' && k !== 'model');
    if (extra.length)
      lines.push(
        '',
        extra.map(([k, v]) => `- ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'),
      );
    lines.push('');
  }
  if (c.notes?.length) lines.push('## Notes', '', ...c.notes.map((n) => `- ${n}`), '');
  if (images.length) lines.push(...images, '');
  lines.push('## Credits and licences', '', ...c.credits.map((l) => `- ${l}`), '');
  const path = join(c.shipDir, 'MODEL_CARD.md');
  writeFileSync(path, lines.filter((l, i, a) => !(l === '' && a[i - 1] === '')).join('\n'));
  return path;
}
