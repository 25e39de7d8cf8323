/**
 * `diffguide convert IN OUT.safetensors [--fp16]`: any supported checkpoint -> safetensors (PyTorch layout and key names kept).
 * `diffguide convert --to tfjs IN OUTDIR`: a weights folder or checkpoint -> the TF.js weights-manifest format (model.json + shards).
 */
import type { Command } from '../command.js';
import { openCheckpoint, writeSafetensorsStreaming } from '../../io/index.js';
import { convertToTfjs } from '../../models/tfjs-convert.js';

const convert: Command = {
  name: 'convert',
  summary:
    'convert a torch.save / legacy / TorchScript / safetensors checkpoint to safetensors, or weights to the TF.js format',
  usage:
    'diffguide convert IN OUT.safetensors [--fp16] [--strip-prefix P] [--wrapper KEY] | diffguide convert --to tfjs IN OUTDIR',
  examples: [
    'diffguide convert 256x256_diffusion_uncond.pt weights/gd256.safetensors',
    'diffguide convert ViT-B-32.pt clip-vit-b32.safetensors --fp16',
    'diffguide convert --to tfjs weights/unet out/tfjs/unet',
  ],
  options: {
    to: {
      type: 'string',
      help: "output format: 'safetensors' (default) or 'tfjs' (OUTDIR gets model.json + group1-shard*.bin; the config.json beside IN goes into model.json)",
    },
    fp16: { type: 'boolean', help: 'store float tensors as F16 (default: F32)' },
    'strip-prefix': { type: 'string', help: "remove this key prefix, e.g. 'module.' (default: none)" },
    wrapper: {
      type: 'string',
      help: "take the weights from this top-level entry, e.g. 'model' or 'ema' (default: auto)",
    },
  },
  async run(args) {
    const [input, output] = args.positionals;
    const to = typeof args.values.to === 'string' ? args.values.to : 'safetensors';
    if (to !== 'safetensors' && to !== 'tfjs') {
      console.error(`diffguide convert: --to ${to} is not a format; use --to safetensors or --to tfjs`);
      return 2;
    }
    if (to === 'tfjs') {
      if (!input || !output || args.positionals.length > 2) {
        console.error(
          'diffguide convert --to tfjs: give IN (a weights folder such as weights/unet, or a checkpoint) and OUTDIR',
        );
        return 2;
      }
      if (args.values.fp16 || args.values['strip-prefix'] || args.values.wrapper) {
        console.error(
          'diffguide convert --to tfjs: --fp16, --strip-prefix and --wrapper apply to safetensors output only; convert to safetensors first',
        );
        return 2;
      }
      const r = await convertToTfjs(input, output);
      console.log(
        `${r.source} -> ${r.modelJson}: '${r.model}', ${r.tensors} tensors, ${r.bytes.toLocaleString('en-US')} bytes in ${r.shards} shard${r.shards === 1 ? '' : 's'} (source sha256 ${r.sourceSha256.slice(0, 12)})`,
      );
      return;
    }
    if (!input || !output || args.positionals.length > 2) {
      console.error('diffguide convert: give IN and OUT.safetensors');
      return 2;
    }
    if (!output.endsWith('.safetensors')) {
      console.error(`diffguide convert: the output must be a .safetensors file, got ${output}`);
      return 2;
    }
    const quiet = !!args.values.quiet || process.env.DIFFGUIDE_QUIET === '1';
    const ck = await openCheckpoint(input, {
      stripPrefix: typeof args.values['strip-prefix'] === 'string' ? args.values['strip-prefix'] : undefined,
      wrapper: typeof args.values.wrapper === 'string' ? args.values.wrapper : undefined,
    });
    const metadata: Record<string, string> = {
      format: 'pt',
      source_format: ck.format,
      converted_by: 'diffguide convert',
    };
    if (ck.unwrapped) metadata.unwrapped = ck.unwrapped;
    for (const [k, v] of Object.entries(ck.metadata)) {
      const key = k.startsWith('source_') ? k : `source_${k}`;
      if (!(key in metadata)) metadata[key] = v;
    }
    // Stream: one tensor in memory at a time, so multi-GB checkpoints convert in little memory.
    const byName = new Map(ck.tensors.map((t) => [t.name, t]));
    const progress = !quiet && process.stderr.isTTY;
    let i = 0;
    try {
      await writeSafetensorsStreaming(
        output,
        ck.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, sourceDtype: t.sourceDtype })),
        async (name) => {
          if (progress) process.stderr.write(`\rconverting ${++i}/${ck.tensors.length} tensors`);
          return byName.get(name)!.load();
        },
        metadata,
        { dtype: args.values.fp16 ? 'float16' : 'float32' },
      );
      if (progress) process.stderr.write('\n');
    } finally {
      await ck.close();
    }
    const params = ck.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    console.log(
      `${input} (${ck.format}${ck.unwrapped ? `, from '${ck.unwrapped}'` : ''}) -> ${output}: ${ck.tensors.length} tensors, ${params.toLocaleString('en-US')} parameters${args.values.fp16 ? ', fp16' : ''}`,
    );
  },
};
export default convert;
