/**
 * Node: a `tf.io` handler for a folder holding the TF.js weights-manifest format (`model.json` +
 * `group1-shard{i}of{n}.bin`), for loading (`tf.io.getModelArtifactsForJSON`, as tfjs-node's file
 * handler does) and saving. Writes are atomic per file (temp file, then rename), model.json last.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointError } from './types.js';
import { TFJS_SHARD_BYTES, splitShards } from './tfjs.js';

async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await fsp.writeFile(tmp, data);
  await fsp.rename(tmp, path);
}

/** Write a model.json and its shards into `dir` (created), model.json last. */
export async function writeTfjsFolder(
  dir: string,
  modelJSON: tf.io.ModelJSON,
  shards: { path: string; data: Uint8Array }[],
): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  for (const s of shards) await writeAtomic(join(dir, s.path), s.data);
  const file = join(dir, 'model.json');
  await writeAtomic(file, JSON.stringify(modelJSON));
  return file;
}

/**
 * A `tf.io.IOHandler` on a folder (or its `model.json`): `load()` reads model.json and the shards it
 * lists; `save(artifacts)` writes them (the weights as one group in 4 MiB shards).
 */
export function tfjsFileHandler(path: string, opts: { shardBytes?: number } = {}): tf.io.IOHandler {
  const file = path.endsWith('.json') ? path : join(path, 'model.json');
  const dir = dirname(file);
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(await fsp.readFile(file, 'utf8')) as tf.io.ModelJSON;
      } catch (e) {
        throw new CheckpointError(
          `${file}: cannot read a TF.js model.json (${(e as Error).message}); make it with: diffguide convert --to tfjs weights/<model> ${dir}`,
        );
      }
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const shard = join(dir, p);
            let b: Buffer;
            try {
              b = await fsp.readFile(shard);
            } catch (e) {
              throw new CheckpointError(
                `${file}: shard ${p} is missing or unreadable (${(e as Error).message}); convert again with: diffguide convert --to tfjs`,
              );
            }
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
          }
        }
        return [specs, buffers];
      });
    },
    async save(a: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (a.modelTopology instanceof ArrayBuffer) throw new Error('tfjsFileHandler saves JSON topologies only');
      const bytes =
        a.weightData == null ? new Uint8Array(0) : new Uint8Array(new tf.io.CompositeArrayBuffer(a.weightData).slice());
      const shards = splitShards(bytes, opts.shardBytes ?? TFJS_SHARD_BYTES);
      const json: tf.io.ModelJSON = {
        modelTopology: a.modelTopology ?? {},
        weightsManifest: [{ paths: shards.map((s) => s.path), weights: a.weightSpecs ?? [] }],
        ...(a.format ? { format: a.format } : {}),
        ...(a.generatedBy ? { generatedBy: a.generatedBy } : {}),
        ...(a.convertedBy ? { convertedBy: a.convertedBy } : {}),
        ...(a.userDefinedMetadata ? { userDefinedMetadata: a.userDefinedMetadata } : {}),
      };
      await writeTfjsFolder(dir, json, shards);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    },
  };
}
