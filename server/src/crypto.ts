/**
 * AES-256-GCM for secrets Onramp stores (clinic database passwords, mail bodies, 2FA secrets,
 * certificate keys, API secrets), with the process-wide ENCRYPTION_KEY. GCM authenticates as well
 * as encrypts, so a modified token, a wrong key or a token moved to another owner fails instead
 * of decrypting to garbage.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** Bumped if the algorithm or layout changes, so stored tokens say how to read them. */
const VERSION = 'v1';
const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
/** 96 bits is GCM's native nonce size; random nonces are safe far beyond our number of secrets. */
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Encrypts `plaintext` into `v1.<iv>.<tag>.<ciphertext>` (base64url parts). `associatedData`,
 * typically the owning clinic's id, is authenticated but not stored: decrypting needs the same
 * value, so a token copied to another clinic's row is rejected.
 */
export function encryptSecret(plaintext: string, key: Buffer, associatedData?: string): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  if (associatedData !== undefined) cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, iv, tag, ciphertext]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

/**
 * Decrypts a token made by {@link encryptSecret}. Throws on a malformed token, a wrong key, a
 * different `associatedData` or any modification; messages never contain the key or plaintext.
 */
export function decryptSecret(token: string, key: Buffer, associatedData?: string): string {
  checkKey(key);
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) throw new Error('malformed encrypted secret');
  const [iv, tag, ciphertext] = parts.slice(1).map(decodePart) as [Buffer, Buffer, Buffer];
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new Error('malformed encrypted secret');
  const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  if (associatedData !== undefined) decipher.setAAD(Buffer.from(associatedData, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch {
    // GCM cannot tell these apart, and saying which would help nobody but an attacker.
    throw new Error('encrypted secret failed authentication (wrong key, wrong owner or tampered)');
  }
}

function checkKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) throw new Error(`encryption key must be ${KEY_BYTES} bytes`);
}

function decodePart(part: string): Buffer {
  // Buffer.from silently skips invalid characters; a strict check keeps tokens canonical.
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new Error('malformed encrypted secret');
  return Buffer.from(part, 'base64url');
}
