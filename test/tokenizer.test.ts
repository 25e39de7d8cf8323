import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { clipTokenizer, cleanText, Tokenizer, bytesToUnicode, CLIP_NUM_MERGES } from '../nets/clip/tokenizer.js';
import '../nets/clip/tokenizer-file.js'; // the Node merges-file reader
import { weightsPath } from '../lib/paths.js';
import { HAVE_PARITY, parity } from './fixtures.js';

interface Case {
  text: string;
  ids: number[];
  padded77: number[];
  decoded: string;
}

describe('CLIP BPE tokenizer', () => {
  it('ships the merges file and its licence', () => {
    expect(existsSync(weightsPath('bpe_simple_vocab_16e6.txt.gz'))).to.equal(true);
    const lic = readFileSync(weightsPath('LICENSE-clip-bpe.txt'), 'utf8');
    expect(lic).to.match(/MIT License/);
    expect(lic).to.match(/Copyright \(c\) 2021 OpenAI/);
  });

  it("builds CLIP's vocabulary: 49408 ids, SOT 49406, EOT 49407", () => {
    const t = clipTokenizer();
    expect(t.vocabSize).to.equal(49408);
    expect(t.numMerges).to.equal(CLIP_NUM_MERGES);
    expect(t.sot).to.equal(49406);
    expect(t.eot).to.equal(49407);
  });

  it('has the 256-entry byte table with printable characters', () => {
    const { bytes, chars } = bytesToUnicode();
    expect(new Set(bytes).size).to.equal(256);
    expect(new Set(chars).size).to.equal(256);
    expect(chars[bytes.indexOf(0x41)]).to.equal('A');
    expect(chars[bytes.indexOf(0x20)]).to.equal('\u0120');
  });

  (HAVE_PARITY ? describe : describe.skip)('reference cases (clip_tokenizer_cases.json)', () => {
    const cases = HAVE_PARITY
      ? (JSON.parse(readFileSync(parity('clip_tokenizer_cases.json'), 'utf8')) as {
          sot: number;
          eot: number;
          vocab_size: number;
          n_merges_used: number;
          cases: Case[];
        })
      : null;
    it('matches the fixture header', () => {
      const t = clipTokenizer();
      expect(t.sot).to.equal(cases!.sot);
      expect(t.eot).to.equal(cases!.eot);
      expect(t.vocabSize).to.equal(cases!.vocab_size);
      expect(t.numMerges).to.equal(cases!.n_merges_used);
    });
    for (const c of cases?.cases ?? []) {
      it(`tokenises ${JSON.stringify(c.text)}`, () => {
        const t = clipTokenizer();
        expect([t.sot, ...t.encode(c.text), t.eot]).to.deep.equal(c.ids);
        expect(Array.from(t.tokenize(c.text)[0])).to.deep.equal(c.padded77);
        expect(t.decode(c.ids.slice(1, -1))).to.equal(c.decoded);
      });
    }
    it('tokenizeTensor stacks the padded rows as int32 [N, 77]', () => {
      const t = clipTokenizer();
      const x = t.tokenizeTensor(cases!.cases.map((c) => c.text));
      expect(x.shape).to.deep.equal([cases!.cases.length, 77]);
      expect(x.dtype).to.equal('int32');
      expect(Array.from(x.dataSync())).to.deep.equal(cases!.cases.flatMap((c) => c.padded77));
      x.dispose();
    });
  });

  it('throws on over-long text unless truncate, which ends with EOT', () => {
    const t = clipTokenizer();
    const long = Array.from({ length: 100 }, () => 'cat').join(' ');
    expect(() => t.tokenize(long)).to.throw(/longer than the context length 77.*truncate/);
    const row = t.tokenize(long, { truncate: true })[0];
    expect(row.length).to.equal(77);
    expect(row[0]).to.equal(t.sot);
    expect(row[76]).to.equal(t.eot);
    expect(row[75]).to.equal(t.encode('cat')[0]);
  });

  it('cleans whitespace, case and HTML entities', () => {
    expect(cleanText('  A&amp;B \t\n C  ')).to.equal('a&b c');
    expect(cleanText('&amp;lt;')).to.equal('<');
    expect(cleanText('it\u2019s')).to.equal("it's");
  });

  it('encodes special tokens written in the text', () => {
    const t = clipTokenizer();
    expect(t.encode('<|startoftext|>hi<|endoftext|>')).to.deep.equal([t.sot, ...t.encode('hi'), t.eot]);
  });

  describe('small vocabularies (first K merges)', () => {
    it('vocab 1000 has SOT 998, EOT 999 and ids below 1000', () => {
      const t = Tokenizer.forVocabSize(1000);
      expect(t.numMerges).to.equal(486);
      expect([t.sot, t.eot]).to.deep.equal([998, 999]);
      const ids = t.encode('a smiling face with sunglasses, pixel art emoji!');
      expect(ids.length).to.be.greaterThan(5);
      for (const id of ids) expect(id).to.be.within(0, 997);
      expect(t.decode(ids)).to.equal('a smiling face with sunglasses , pixel art emoji ! ');
    });

    it('agrees with the full tokenizer on words whose merges all lie in the first K', () => {
      const small = Tokenizer.forVocabSize(1000);
      const full = clipTokenizer();
      // 'the', 'a', 'of' are among the earliest merges: identical ids in both vocabularies.
      expect(small.encode('the a of')).to.deep.equal(full.encode('the a of'));
    });

    it('vocab 514 (no merges) falls back to one id per byte', () => {
      const t = Tokenizer.forVocabSize(514);
      const ids = t.encode('ab');
      expect(ids).to.deep.equal([bytesToUnicode().bytes.indexOf(0x61), 256 + bytesToUnicode().bytes.indexOf(0x62)]);
      expect(t.decode(ids)).to.equal('ab ');
    });

    it('rejects vocabularies below 514 with a clear error', () => {
      expect(() => Tokenizer.forVocabSize(100)).to.throw(/at least 514/);
    });
  });
});
