/**
 * The rules of every account, whichever module creates or changes it (registration, members,
 * clients, auth): e-mail, phone and password, and the text rule of names that end up in messages
 * sent to people. Each rule reports its own message; callers check them together.
 */
import { z } from 'zod';
import { COUNTRY_CODES } from '../../countries.js';
import { COMMON_PASSWORDS } from './common-passwords.js';

export const normaliseEmail = (email: string) => email.trim().toLowerCase();

export const emailSchema = z
  .string()
  .transform(normaliseEmail)
  .pipe(z.email({ error: 'Enter a valid e-mail address' }).max(254, { error: 'E-mail address is too long' }));

/** E.164 after removing spaces, dots, dashes and parentheses. */
export const phoneSchema = z
  .string()
  .transform((phone) => phone.replace(/[\s().-]/g, ''))
  .pipe(
    z
      .string()
      .regex(/^\+[1-9]\d{6,14}$/, { error: 'Phone must be in international format, e.g. +33612345678' }),
  );

/** The password rules of every account: length, not common. (Not the e-mail: checked where known.) */
export const passwordSchema = z
  .string()
  .min(12, { error: 'Password must be at least 12 characters' })
  // argon2 cost grows with input; nobody types more.
  .max(256, { error: 'Password must be at most 256 characters' })
  .refine((password) => !COMMON_PASSWORDS.has(password.toLowerCase()), {
    error: 'This password is too common; choose another',
  });

/** Top-level domains a clinic name could point at: generic ones and every country code. */
const TOP_LEVEL_DOMAINS = new Set([
  ...[...COUNTRY_CODES].map((code) => code.toLowerCase()),
  ...['com', 'net', 'org', 'info', 'biz', 'io', 'app', 'dev', 'xyz', 'online', 'site', 'top', 'club'],
  ...['shop', 'store', 'link', 'click', 'live', 'pro', 'tech', 'website', 'space', 'fun', 'icu', 'vip'],
  ...['win', 'bid', 'loan', 'email', 'support', 'health', 'clinic', 'care', 'doctor', 'dental'],
  ...['bank', 'pay', 'money', 'finance', 'gov', 'edu', 'mil', 'int', 'eu', 'asia', 'onion', 'local'],
  ...['localhost', 'example', 'test', 'invalid', 'mobi', 'name', 'page', 'cloud', 'digital', 'network'],
]);

/**
 * Whether text carries a link (a scheme, `www.`, or a domain name under a known top-level
 * domain) or a phone number (7 digits or more, separators allowed). Clinic names appear in
 * messages Onramp sends to people who never chose to receive them (invitations, verification);
 * a link or a number there is how such messages are turned into phishing.
 */
export function containsLinkOrPhone(raw: string): boolean {
  const text = raw.normalize('NFKC').toLowerCase();
  if (/[a-z][a-z0-9+.-]*:\/\//.test(text) || /(^|[^\p{L}\p{N}])www\d*\./u.test(text)) return true;
  for (const match of text.matchAll(/(?:[\p{L}\p{N}-]+\.)+([a-z]{2,24})(?![\p{L}\p{N}])/gu)) {
    if (TOP_LEVEL_DOMAINS.has(match[1] as string)) return true;
  }
  return /\d(?:[\s().\-/]*\d){6,}/.test(text);
}
