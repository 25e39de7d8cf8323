/**
 * Node: `diffguide convert --to tfjs`: a weights folder (`weights/<model>/`: `<model>.safetensors` +
 * `config.json`) or any checkpoint lib/io reads -> the TF.js weights-manifest format in a folder
 * (`model.json` + `group1-shard{i}of{n}.bin`). The safetensors stay the source of truth: model.json
 * records the source file's SHA-256, so a cache keyed by it (the playground's IndexedDB) renews itself.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readStateDict } from '../io/index.js';
import { encodeTfjsWeights } from '../io/tfjs.js';
import { writeTfjsFolder } from '../io/tfjs-file.js';
import { packageVersion } from '../paths.js';
import { readConfigBeside } from './load.js';

export interface TfjsConversion {
  /** The model.json written. */
  modelJson: string;
  model: string;
  source: string;
  sourceSha256: string;
  tensors: number;
  bytes: number;
  shards: number;
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Resolve IN: a file, or a folder holding `<folder>.safetensors` / `model.safetensors` / exactly one checkpoint. */
function resolveInput(input: string): string {
  if (!existsSync(input))
    throw new Error(
      `diffguide convert: ${input} does not exist; give a weights folder (weights/<model>) or a checkpoint file`,
    );
  if (statSync(input).isFile()) return input;
  const name = basename(input.replace(/\/+$/, ''));
  for (const f of [`${name}.safetensors`, 'model.safetensors']) if (existsSync(join(input, f))) return join(input, f);
  throw new Error(
    `diffguide convert: ${input} holds no ${name}.safetensors or model.safetensors; give the checkpoint file itself`,
  );
}

/** Convert `input` (folder or checkpoint) into `outDir`. `model` defaults to config.json's `model`, else the folder's name. */
export async function convertToTfjs(
  input: string,
  outDir: string,
  opts: { model?: string; shardBytes?: number } = {},
): Promise<TfjsConversion> {
  const file = resolveInput(input);
  const config = readConfigBeside(file);
  const model = opts.model ?? (typeof config?.model === 'string' ? config.model : basename(dirname(file)));
  const sd = await readStateDict(file);
  const sourceSha256 = await sha256(file);
  const { modelJSON, shards } = encodeTfjsWeights(sd, {
    model,
    config,
    shardBytes: opts.shardBytes,
    generatedBy: `diffguide ${packageVersion()}`,
    metadata: { source: basename(file), sourceSha256 },
  });
  const modelJson = await writeTfjsFolder(outDir, modelJSON, shards);
  return {
    modelJson,
    model,
    source: file,
    sourceSha256,
    tensors: sd.size,
    bytes: shards.reduce((a, s) => a + s.data.byteLength, 0),
    shards: shards.length,
  };
}
