/**
 * Secrets of provisioning: clinic database passwords. Their encryption is the shared AES-GCM of
 * crypto.ts, re-exported for the files of this module that import it from here.
 */
import { randomBytes } from 'node:crypto';

export { decryptSecret, encryptSecret } from '../../crypto.js';

/** 256 random bits; base64url needs no escaping in a libpq URL or a SQL string literal. */
export function randomPassword(): string {
  return randomBytes(32).toString('base64url');
}
