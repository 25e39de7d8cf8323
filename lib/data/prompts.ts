/**
 * The caption and prompt templates of the emoji data: what the CLIP trainer samples (lib/train/tasks/clip.ts)
 * and the prompts evaluation and the experiments use (zero-shot category, name retrieval), in one place.
 */
import type { Rng } from '../random.js';
import type { DatasetItem } from './format.js';

const VENDOR_WORD: Record<string, string> = { google: 'noto', twitter: 'twemoji' };

/** What a caption describes: the emoji itself, its subcategory, or its category. */
export type CaptionKind = 'name' | 'subcategory' | 'category';

export interface Caption {
  text: string;
  kind: CaptionKind;
  /** group (emoji code point) for 'name', the subcategory or category name otherwise. */
  key: string;
}

/** Human form of a category ('Smileys & Emotion' -> 'smileys & emotion'). */
export function categoryPhrase(category: string): string {
  return category.toLowerCase();
}

/** Human form of a subcategory ('face-smiling' -> 'face smiling'). */
export function subcategoryPhrase(sub: string): string {
  return sub.replace(/-/g, ' ').toLowerCase();
}

/** The zero-shot prompt of a category (also one of the training templates). */
export function categoryPrompt(category: string): string {
  return `an emoji of ${categoryPhrase(category)}`;
}

/** The retrieval prompt of an emoji name (also one of the training templates). */
export function namePrompt(name: string): string {
  return `an emoji of ${name.toLowerCase()}`;
}

/**
 * Sample one caption of an emoji: name templates (~60%; "X", "an emoji of X", "a noto emoji of X",
 * short names), category (~25%) or subcategory (~15%) templates.
 */
export function sampleCaption(item: DatasetItem, rng: Rng): Caption {
  const u = rng.float();
  const name = (item.name ?? '').toLowerCase();
  if (u < 0.6 && name) {
    const shorts = (item.shortNames ?? []).map((s) => s.replace(/_/g, ' ').toLowerCase()).filter((s) => s !== name);
    const style = VENDOR_WORD[item.vendor ?? ''] ?? '';
    const opts = [
      name,
      namePrompt(name),
      namePrompt(name),
      style ? `a ${style} emoji of ${name}` : namePrompt(name),
      `${name}, ${categoryPhrase(item.category ?? '')}`,
    ];
    for (const s of shorts) opts.push(namePrompt(s));
    return { text: opts[rng.int(opts.length)], kind: 'name', key: item.group ?? item.id };
  }
  if (u < 0.85 || !item.subcategory) {
    const c = categoryPhrase(item.category ?? '');
    const opts = [
      c,
      categoryPrompt(item.category ?? ''),
      categoryPrompt(item.category ?? ''),
      `an emoji from the ${c} category`,
    ];
    return { text: opts[rng.int(opts.length)], kind: 'category', key: item.category ?? '' };
  }
  const s = subcategoryPhrase(item.subcategory);
  const opts = [s, `an emoji of ${s}`];
  return { text: opts[rng.int(opts.length)], kind: 'subcategory', key: item.subcategory };
}

/** Does caption `c` describe `item`? */
export function captionFits(c: Caption, item: DatasetItem): boolean {
  if (c.kind === 'name') return (item.group ?? item.id) === c.key;
  if (c.kind === 'category') return item.category === c.key;
  return item.subcategory === c.key;
}
