import { describe, expect, it } from 'vitest';
import { formatAgo } from './format';

describe('formatAgo', () => {
  const now = Date.parse('2026-12-01T10:00:00.000Z');
  it('says how long ago', () => {
    expect(formatAgo('2026-12-01T09:59:48.000Z', now)).toBe('12 seconds ago');
    expect(formatAgo('2026-12-01T09:57:00.000Z', now)).toBe('3 minutes ago');
  });
  it('never names a time in the future: a clock a few seconds ahead reads "now"', () => {
    expect(formatAgo('2026-12-01T10:00:03.000Z', now)).toBe('now');
    expect(formatAgo('2026-12-01T10:00:00.000Z', now)).toBe('now');
  });
});
