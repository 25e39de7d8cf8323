/** `diffguide inspect FILE`: format, dtypes, tensor count, parameters, and the detected architecture + config. */
import type { Command } from '../command.js';
import { detectArchitecture, inspectCheckpoint, type ShapeMap } from '../../io/index.js';

/** Load the nets so their architecture detectors register (a broken net must not break inspect). */
async function loadDetectors(): Promise<string | null> {
  try {
    await import('../../../nets/index.js');
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function human(bytes: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < u.length - 1) ((v /= 1024), i++);
  return `${v.toFixed(i ? 2 : 0)} ${u[i]}`;
}

const inspect: Command = {
  name: 'inspect',
  summary: 'describe a checkpoint: format, dtypes, tensor count, parameters, detected architecture and config',
  usage: 'diffguide inspect FILE [--json] [--keys]',
  examples: [
    'diffguide inspect 256x256_diffusion_uncond.pt',
    'diffguide inspect ViT-B-32.pt --keys',
    'diffguide inspect model.safetensors --json',
  ],
  options: {
    json: { type: 'boolean', help: 'print one JSON object' },
    keys: { type: 'boolean', help: 'also list every tensor: name, shape, dtype' },
  },
  async run(args) {
    const file = args.positionals[0];
    if (!file || args.positionals.length > 1) {
      console.error(
        'diffguide inspect: give exactly one FILE (a .pt/.pth/.ckpt, TorchScript or .safetensors checkpoint)',
      );
      return 2;
    }
    const info = await inspectCheckpoint(file);
    const detectorError = await loadDetectors();
    const shapes: ShapeMap = new Map(info.keys.map((k) => [k.name, { shape: k.shape }]));
    const arch = detectArchitecture(shapes);
    const report = {
      file,
      format: info.format,
      ...(info.unwrapped ? { unwrapped: info.unwrapped } : {}),
      tensors: info.count,
      params: info.params,
      bytes: info.totalBytes,
      dtypes: info.dtypes,
      architecture: arch ? arch.name : 'unknown',
      config: arch ? arch.config : null,
      metadata: info.metadata,
      ...(detectorError ? { detector_error: detectorError } : {}),
      ...(args.values.keys ? { keys: info.keys } : {}),
    };
    if (args.values.json) {
      console.log(JSON.stringify(report));
      return;
    }
    console.log(`file          ${file}`);
    console.log(`format        ${info.format}${info.unwrapped ? ` (weights unwrapped from '${info.unwrapped}')` : ''}`);
    console.log(`tensors       ${info.count}`);
    console.log(`parameters    ${info.params.toLocaleString('en-US')} (${human(info.totalBytes)} of tensor data)`);
    console.log(
      `dtypes        ${Object.entries(info.dtypes)
        .map(([d, n]) => `${d} x${n}`)
        .join(', ')}`,
    );
    console.log(`architecture  ${report.architecture}`);
    if (arch) console.log(`config        ${JSON.stringify(arch.config)}`);
    if (detectorError) console.log(`  (architecture detectors failed to load: ${detectorError})`);
    const meta = Object.entries(info.metadata);
    if (meta.length)
      console.log(
        `metadata      ${meta.map(([k, v]) => `${k}=${v.length > 60 ? `${v.slice(0, 57)}...` : v}`).join(', ')}`,
      );
    if (args.values.keys) {
      const w = Math.max(...info.keys.map((k) => k.name.length), 4);
      for (const k of info.keys) console.log(`  ${k.name.padEnd(w)}  ${JSON.stringify(k.shape).padEnd(20)} ${k.dtype}`);
    }
  },
};
export default inspect;
