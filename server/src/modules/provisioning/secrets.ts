/**
 * Secrets of provisioning: clinic database passwords. They are encrypted with the shared AES-GCM
 * of crypto.ts, which every file imports from there.
 */
import { randomBytes } from 'node:crypto';

/** 256 random bits; base64url needs no escaping in a libpq URL or a SQL string literal. */
export function randomPassword(): string {
  return randomBytes(32).toString('base64url');
}
