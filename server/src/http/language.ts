/**
 * The language of a REST answer: English, or French when `Accept-Language` prefers it. One
 * language per answer: a message without a French wording is answered in English, and
 * `Content-Language` says which one the answer is in.
 */
import type { IncomingMessage } from 'node:http';

export type Language = 'en' | 'fr';

/** A message in both languages; `fr` only where a French wording exists (the onboarding routes' first). */
export interface Text {
  en: string;
  fr?: string;
}

/** The first of `en`/`fr` by the header's q-values (ties keep the header's order); else English. */
export function preferredLanguage(req: Pick<IncomingMessage, 'headers'>): Language {
  const header = req.headers['accept-language'];
  if (typeof header !== 'string') return 'en';
  const ranked = header
    .split(',')
    .map((part, index) => {
      const [tag = '', ...params] = part.trim().toLowerCase().split(';');
      const q = params.map((param) => /^\s*q=([\d.]+)\s*$/.exec(param)?.[1]).find(Boolean);
      return { primary: tag.trim().split('-')[0], q: q === undefined ? 1 : Number(q), index };
    })
    .filter((entry) => (entry.primary === 'en' || entry.primary === 'fr') && entry.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index);
  return ranked[0]?.primary === 'fr' ? 'fr' : 'en';
}

/** `text` in `preferred` when it has that wording, else in English. */
export function say(text: Text, preferred: Language): { message: string; language: Language } {
  return preferred === 'fr' && text.fr
    ? { message: text.fr, language: 'fr' }
    : { message: text.en, language: 'en' };
}
