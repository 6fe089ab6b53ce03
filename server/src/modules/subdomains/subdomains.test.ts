import { describe, expect, it } from 'vitest';
import {
  generatedSubdomain,
  isAllowedSubdomain,
  MAX_LABEL_LENGTH,
  preferredSubdomain,
  RESERVED_SUBDOMAINS,
  subdomainSlug,
} from './allocator.js';

describe('subdomain names', () => {
  it.each([
    ['Clinique du Lac', 'clinique-du-lac'],
    ['Zürich Zahnarzt', 'zurich-zahnarzt'],
    ['  Clínica São José (Lyon) ', 'clinica-sao-jose-lyon'],
    ['Straße & Søn Œuvre', 'strasse-son-oeuvre'],
    ["L'Œil -- du  Łódź", 'l-oeil-du-lodz'],
    ['xn--evil', 'xn-evil'],
    ['東京クリニック', ''],
  ])('%s → %s', (name, expected) => {
    expect(subdomainSlug(name)).toBe(expected);
  });

  it('keeps to DNS label rules: at most 50 characters from the name, no hyphen at either end', () => {
    const slug = subdomainSlug(`${'a'.repeat(49)} b c`);
    expect(slug).toBe('a'.repeat(49));
    expect(slug.length).toBeLessThanOrEqual(MAX_LABEL_LENGTH);
    expect(isAllowedSubdomain('-abc')).toBe(false);
    expect(isAllowedSubdomain('abc-')).toBe(false);
    expect(isAllowedSubdomain('a'.repeat(64))).toBe(false);
    expect(isAllowedSubdomain('a'.repeat(63))).toBe(true);
    expect(isAllowedSubdomain('UPPER')).toBe(false);
    expect(isAllowedSubdomain('xn--abc')).toBe(false);
  });

  it('refuses reserved names', () => {
    for (const name of ['www', 'api', 'admin', 'mail', 'smtp', 'ns1', 'localhost']) {
      expect(RESERVED_SUBDOMAINS.has(name)).toBe(true);
      expect(isAllowedSubdomain(name)).toBe(false);
    }
    expect(isAllowedSubdomain('admin-2')).toBe(false); // a look-alike (reserved.test.ts)
  });

  it('generates a readable name when there is no usable organisation name', () => {
    for (const name of [undefined, null, '', 'AB', '東京']) {
      const generated = preferredSubdomain(name);
      expect(generated).toMatch(/^[a-z]+-[a-z]+-\d{4}$/);
      expect(isAllowedSubdomain(generated)).toBe(true);
    }
    expect(new Set(Array.from({ length: 20 }, generatedSubdomain)).size).toBeGreaterThan(15);
    expect(preferredSubdomain('Clinique du Lac')).toBe('clinique-du-lac');
  });
});
