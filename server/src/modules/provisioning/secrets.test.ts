import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decryptSecret, encryptSecret } from '../../crypto.js';
import { randomPassword } from './secrets.js';

const key = randomBytes(32);
const SECRET = 'clinic db password: ünïcødé ✓';

/** Flips one bit of the base64url part at `index` (1 iv, 2 tag, 3 ciphertext). */
function tamper(token: string, index: number): string {
  const parts = token.split('.');
  const bytes = Buffer.from(parts[index]!, 'base64url');
  bytes[0]! ^= 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

describe('encryptSecret / decryptSecret', () => {
  it('round-trips, with and without associated data', () => {
    const token = encryptSecret(SECRET, key, 'clinic-1');
    expect(token).toMatch(/^v1\.[\w-]{16}\.[\w-]{22}\.[\w-]+$/);
    expect(token).not.toContain(Buffer.from(SECRET).toString('base64url'));
    expect(decryptSecret(token, key, 'clinic-1')).toBe(SECRET);
    expect(decryptSecret(encryptSecret(SECRET, key), key)).toBe(SECRET);
    expect(decryptSecret(encryptSecret('', key), key)).toBe('');
  });

  it('uses a fresh IV every time', () => {
    const tokens = Array.from({ length: 100 }, () => encryptSecret(SECRET, key, 'clinic-1'));
    expect(new Set(tokens.map((token) => token.split('.')[1])).size).toBe(100);
    expect(new Set(tokens).size).toBe(100);
  });

  it('rejects a tampered IV, tag or ciphertext', () => {
    const token = encryptSecret(SECRET, key, 'clinic-1');
    for (const index of [1, 2, 3]) {
      expect(() => decryptSecret(tamper(token, index), key, 'clinic-1')).toThrow(/failed authentication/);
    }
  });

  it('rejects a wrong key without revealing the key or the plaintext', () => {
    const token = encryptSecret(SECRET, key, 'clinic-1');
    const other = randomBytes(32);
    let message = '';
    try {
      decryptSecret(token, other, 'clinic-1');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/failed authentication/);
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain(other.toString('hex'));
    expect(message).not.toContain(other.toString('base64'));
  });

  it('binds the associated data: a token moved to another clinic fails', () => {
    const token = encryptSecret(SECRET, key, 'clinic-1');
    expect(() => decryptSecret(token, key, 'clinic-2')).toThrow(/failed authentication/);
    expect(() => decryptSecret(token, key)).toThrow(/failed authentication/);
    expect(() => decryptSecret(encryptSecret(SECRET, key), key, 'clinic-1')).toThrow(/failed authentication/);
  });

  it('rejects malformed tokens', () => {
    const token = encryptSecret(SECRET, key);
    const [, iv, tag, ciphertext] = token.split('.');
    for (const bad of [
      '',
      'garbage',
      `v2.${iv}.${tag}.${ciphertext}`,
      `v1.${iv}.${tag}`,
      `v1.${iv}.${tag}.${ciphertext}.extra`,
      `v1.${iv}.${tag}.${ciphertext}!`,
      `v1.${iv!.slice(2)}.${tag}.${ciphertext}`,
      `v1.${iv}.${tag!.slice(2)}.${ciphertext}`,
    ]) {
      expect(() => decryptSecret(bad, key), bad).toThrow(/malformed encrypted secret/);
    }
  });

  it('insists on a 32-byte key', () => {
    expect(() => encryptSecret(SECRET, randomBytes(16))).toThrow(/32 bytes/);
    expect(() => decryptSecret(encryptSecret(SECRET, key), randomBytes(33))).toThrow(/32 bytes/);
  });
});

describe('randomPassword', () => {
  it('is 32 random bytes in base64url, different every time', () => {
    const passwords = Array.from({ length: 50 }, randomPassword);
    for (const password of passwords) {
      expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(password, 'base64url')).toHaveLength(32);
      // Survives a libpq URL unescaped.
      expect(encodeURIComponent(password)).toBe(password);
    }
    expect(new Set(passwords).size).toBe(50);
  });
});
