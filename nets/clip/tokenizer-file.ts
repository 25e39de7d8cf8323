/**
 * Node: reads BPE merges files (gzipped or plain) for `Tokenizer.fromFile` / `forVocabSize`; importing
 * this module registers the reader (nets/clip/index.ts does). Default: the shipped
 * `weights/bpe_simple_vocab_16e6.txt.gz`. Kept apart from tokenizer.ts so that the tokenizer bundles
 * for browsers.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { weightsPath } from '../../lib/paths.js';
import { setMergesReader } from './tokenizer.js';

/** The text of a merges file (gunzipped when it starts with the gzip magic). */
export function readMergesFile(path: string = weightsPath('bpe_simple_vocab_16e6.txt.gz')): string {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new Error(
      `Tokenizer: cannot read BPE merges file ${path} (${(e as Error).message}); pass the path of bpe_simple_vocab_16e6.txt.gz`,
    );
  }
  return raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
}

setMergesReader(readMergesFile);
