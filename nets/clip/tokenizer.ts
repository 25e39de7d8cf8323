/**
 * CLIP's byte-level BPE tokenizer (the algorithm of openai/CLIP's `SimpleTokenizer`), built from the
 * merges file `bpe_simple_vocab_16e6.txt.gz` shipped in `weights/`.
 *
 * Vocabulary construction, as in the reference: the 256 byte symbols, the same 256 symbols with an
 * end-of-word marker `</w>`, then one entry per merge (in merge order), then `<|startoftext|>` and
 * `<|endoftext|>`. Using only the first K merges gives a vocabulary of 512 + K + 2 ids with the same
 * algorithm: `Tokenizer.forVocabSize(1000)` is the tokenizer of a small CLIP with vocab 1000
 * (SOT = 998, EOT = 999). The full file gives K = 48894, vocab 49408 (SOT 49406, EOT 49407).
 *
 * This module runs anywhere (Node, browsers, workers). Reading the merges file is the job of a
 * registered `MergesReader`: `tokenizer-file.ts` registers the Node one (the shipped file, gunzipped;
 * `nets/clip/index.ts` imports it); a browser fetches the file and calls `setMergesText`.
 */
import * as tf from '@tensorflow/tfjs';

/** Merges in the released vocabulary that CLIP uses (49152 - 256 - 2). */
export const CLIP_NUM_MERGES = 48894;
export const SOT_TOKEN = '<|startoftext|>';
export const EOT_TOKEN = '<|endoftext|>';
export const DEFAULT_CONTEXT_LENGTH = 77;

/**
 * GPT-2 / CLIP byte -> printable character table: printable Latin-1 bytes map to themselves, the
 * others to code points 256 + n in byte order. Entry order (the byte list) is the vocabulary order.
 */
export function bytesToUnicode(): { bytes: number[]; chars: string[] } {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const codes = bytes.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      codes.push(256 + n);
      n++;
    }
  }
  return { bytes, chars: codes.map((c) => String.fromCodePoint(c)) };
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
};

/** HTML entity unescape for the common named entities and numeric references. */
function htmlUnescape(s: string): string {
  return s.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (m, body: string) => {
    if (body[0] === '#') {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    return NAMED_ENTITIES[body] ?? m;
  });
}

/**
 * The reference's `basic_clean` + `whitespace_clean` + lower-casing.
 *
 * The reference runs `ftfy.fix_text` (mojibake repair, curly quotes, NFC, ...) then `html.unescape`
 * twice. We do only what clean text needs: NFC normalisation, straightening curly quotes (ftfy's
 * `uncurl_quotes`), and the common HTML entities (`&amp; &lt; &gt; &quot; &apos; &nbsp;` and numeric
 * references), twice. Plain ASCII input is therefore tokenised exactly as the reference does; text
 * with mojibake or exotic entities may differ.
 */
export function cleanText(text: string): string {
  let s = text.normalize('NFC');
  s = s.replace(/[\u2018\u2019\u201a\u201b]/g, "'").replace(/[\u201c\u201d\u201e\u201f]/g, '"');
  s = htmlUnescape(htmlUnescape(s)).trim();
  s = s.replace(/\s+/g, ' ').trim();
  return s.toLowerCase();
}

// The reference pattern (case-insensitive), with Unicode letter / number classes.
const TOKEN_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

export interface TokenizeOptions {
  /** Sequence length of the id rows (default 77). */
  contextLength?: number;
  /** Cut over-long texts to `contextLength` (ending with EOT) instead of throwing. Default false. */
  truncate?: boolean;
}

export interface TokenizerOptions {
  /** Use only the first `numMerges` merges (default: all 48894 that CLIP uses). */
  numMerges?: number;
}

/** Byte-level BPE tokenizer with CLIP's vocabulary construction. */
export class Tokenizer {
  /** id of `<|startoftext|>` (vocabSize - 2). */
  readonly sot: number;
  /** id of `<|endoftext|>` (vocabSize - 1). */
  readonly eot: number;
  readonly vocabSize: number;
  readonly numMerges: number;
  private readonly encoder = new Map<string, number>();
  private readonly decoder: string[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly byteEncoder: string[] = new Array(256);
  private readonly byteDecoder = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  /**
   * @param merges merge pairs in rank order, e.g. `[['i','n'], ['t','h'], ...]`
   */
  constructor(merges: [string, string][]) {
    const { bytes, chars } = bytesToUnicode();
    bytes.forEach((b, i) => {
      this.byteEncoder[b] = chars[i];
      this.byteDecoder.set(chars[i], b);
    });
    const vocab = [...chars, ...chars.map((c) => c + '</w>')];
    merges.forEach(([a, b], i) => {
      this.ranks.set(a + ' ' + b, i);
      vocab.push(a + b);
    });
    vocab.push(SOT_TOKEN, EOT_TOKEN);
    // Later duplicates win, as with Python's dict(zip(vocab, range(...))).
    vocab.forEach((v, i) => this.encoder.set(v, i));
    this.decoder = vocab;
    this.numMerges = merges.length;
    this.vocabSize = vocab.length;
    this.sot = this.vocabSize - 2;
    this.eot = this.vocabSize - 1;
  }

  /** Parse a merges file's text (first line is a header; one `a b` pair per line). */
  static fromMergesText(text: string, opts: TokenizerOptions = {}): Tokenizer {
    const lines = text.split('\n');
    const available = lines.length - 1;
    const n = opts.numMerges ?? CLIP_NUM_MERGES;
    if (!Number.isInteger(n) || n < 0) throw new Error(`Tokenizer: numMerges must be a non-negative integer, got ${n}`);
    if (n > available) throw new Error(`Tokenizer: the merges file has ${available} lines, fewer than numMerges ${n}`);
    const merges: [string, string][] = [];
    for (let i = 1; i <= n; i++) {
      const parts = lines[i].split(/\s+/).filter((p) => p.length > 0);
      if (parts.length !== 2)
        throw new Error(`Tokenizer: merges line ${i + 1} is not a pair: ${JSON.stringify(lines[i])}`);
      merges.push([parts[0], parts[1]]);
    }
    return new Tokenizer(merges);
  }

  /**
   * Load a gzipped (or plain) merges file; default: the shipped `weights/bpe_simple_vocab_16e6.txt.gz`.
   */
  static fromFile(path?: string, opts: TokenizerOptions = {}): Tokenizer {
    if (!mergesReader) {
      throw new Error(
        'Tokenizer: no BPE merges reader is registered in this environment. In Node import nets/clip/index.js ' +
          "(or nets/clip/tokenizer-file.js), which reads the shipped weights/bpe_simple_vocab_16e6.txt.gz; in a browser fetch that file's text and call setMergesText(text)",
      );
    }
    return Tokenizer.fromMergesText(mergesReader(path), opts);
  }

  /**
   * The tokenizer for a CLIP with `vocabSize` token embeddings: the first vocabSize - 514 merges
   * (49408 gives CLIP's own tokenizer). Cached per size.
   */
  static forVocabSize(vocabSize: number, path?: string): Tokenizer {
    const k = vocabSize - 2 * 256 - 2;
    if (!Number.isInteger(vocabSize) || k < 0) {
      throw new Error(
        `Tokenizer: vocab size ${vocabSize} is too small for byte-level BPE (need at least 514 = 2*256 bytes + 2 specials)`,
      );
    }
    const key = `${path ?? ''}#${k}`;
    let t = tokenizerCache.get(key);
    if (!t) {
      t = Tokenizer.fromFile(path, { numMerges: k });
      tokenizerCache.set(key, t);
    }
    return t;
  }

  /** BPE of one pre-token (already byte-encoded); returns its symbols. */
  private bpe(token: string): string[] {
    const cached = this.cache.get(token);
    if (cached) return cached;
    const chars = Array.from(token);
    let word = chars.slice(0, -1).concat([chars[chars.length - 1] + '</w>']);
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(word[i] + ' ' + word[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      // Merge every non-overlapping occurrence of (first, second), left to right.
      const next: string[] = [];
      let i = 0;
      while (i < word.length) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]);
          i += 1;
        }
      }
      word = next;
    }
    if (this.cache.size < 100000) this.cache.set(token, word);
    return word;
  }

  /** Text -> BPE ids, without SOT/EOT. */
  encode(text: string): number[] {
    const ids: number[] = [];
    const cleaned = cleanText(text);
    const utf8 = new TextEncoder();
    for (const m of cleaned.matchAll(TOKEN_PATTERN)) {
      const piece = m[0];
      if (piece === SOT_TOKEN) {
        ids.push(this.sot);
        continue;
      }
      if (piece === EOT_TOKEN) {
        ids.push(this.eot);
        continue;
      }
      let encoded = '';
      for (const b of utf8.encode(piece)) encoded += this.byteEncoder[b];
      for (const sym of this.bpe(encoded)) {
        const id = this.encoder.get(sym);
        if (id === undefined)
          throw new Error(
            `Tokenizer: BPE symbol ${JSON.stringify(sym)} is not in the vocabulary (corrupt merges file?)`,
          );
        ids.push(id);
      }
    }
    return ids;
  }

  /** Ids -> text; `</w>` becomes a space, invalid UTF-8 becomes U+FFFD (as the reference). */
  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const sym = this.decoder[ids[i]];
      if (sym === undefined)
        throw new Error(`Tokenizer.decode: id ${ids[i]} is outside the vocabulary (size ${this.vocabSize})`);
      s += sym;
    }
    const bytes: number[] = [];
    for (const ch of s) {
      const b = this.byteDecoder.get(ch);
      if (b !== undefined) {
        bytes.push(b);
      } else {
        for (const x of new TextEncoder().encode(ch)) bytes.push(x);
      }
    }
    return new TextDecoder('utf-8', { fatal: false }).decode(new Uint8Array(bytes)).replaceAll('</w>', ' ');
  }

  /**
   * `clip.tokenize`: each text -> [SOT, ...ids, EOT] zero-padded to `contextLength`.
   * @returns one row of `contextLength` ids per text
   */
  tokenize(texts: string | string[], opts: TokenizeOptions = {}): Int32Array[] {
    const ctx = opts.contextLength ?? DEFAULT_CONTEXT_LENGTH;
    const list = typeof texts === 'string' ? [texts] : texts;
    return list.map((text) => {
      const ids = [this.sot, ...this.encode(text), this.eot];
      if (ids.length > ctx) {
        if (!opts.truncate) {
          throw new Error(
            `Tokenizer: input ${JSON.stringify(text)} is ${ids.length} tokens, longer than the context length ${ctx}; shorten it or pass {truncate: true}`,
          );
        }
        ids.length = ctx;
        ids[ctx - 1] = this.eot;
      }
      const row = new Int32Array(ctx);
      row.set(ids);
      return row;
    });
  }

  /** `tokenize` as a [N, contextLength] int32 tensor. */
  tokenizeTensor(texts: string | string[], opts: TokenizeOptions = {}): tf.Tensor2D {
    const rows = this.tokenize(texts, opts);
    const ctx = opts.contextLength ?? DEFAULT_CONTEXT_LENGTH;
    const flat = new Int32Array(rows.length * ctx);
    rows.forEach((r, i) => flat.set(r, i * ctx));
    return tf.tensor2d(flat, [rows.length, ctx], 'int32');
  }
}

const tokenizerCache = new Map<string, Tokenizer>();

/** Reads a merges file's text: `path` undefined = the shipped `bpe_simple_vocab_16e6.txt.gz`. */
export type MergesReader = (path?: string) => string;
let mergesReader: MergesReader | null = null;

/** Register how `Tokenizer.fromFile` / `forVocabSize` read merges files (clears the per-size cache). */
export function setMergesReader(reader: MergesReader): void {
  mergesReader = reader;
  tokenizerCache.clear();
}

/** Use this merges text (a browser's fetched, decompressed `bpe_simple_vocab_16e6.txt`) as the shipped file. */
export function setMergesText(text: string): void {
  setMergesReader((path) => {
    if (path !== undefined)
      throw new Error(`Tokenizer: only the registered merges text is available here, not a file ${path}`);
    return text;
  });
}

/** CLIP's own tokenizer (full vocabulary, 49408 ids), loaded once from the shipped merges file. */
export function clipTokenizer(): Tokenizer {
  return Tokenizer.forVocabSize(CLIP_NUM_MERGES + 514);
}
