/**
 * Secrets of the onboarding service: master keys (`mk_<keyId>_<secret>`) and an onboarding's
 * API credentials (`ak_<keyId>` + `as_<secret>`). 256 bits of randomness each; the key id is
 * public (it finds the row), the whole string is stored only as sha256 and compared in
 * constant time. sha256 (not argon2) is right here: the input is random, not a password, so
 * there is nothing to brute-force and every request can afford the check.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const KEY_ID_BYTES = 8;
const SECRET_BYTES = 32;
const MASTER_KEY = /^mk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface IssuedSecret {
  /** Shown to the caller once. */
  plaintext: string;
  keyId: string;
  hash: string;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Constant-time comparison of two hex digests. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

export function newMasterKey(): IssuedSecret {
  const keyId = randomBytes(KEY_ID_BYTES).toString('hex');
  const plaintext = `mk_${keyId}_${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return { plaintext, keyId, hash: sha256(plaintext) };
}

/** The key id of a well-formed master key, else null. */
export function masterKeyId(presented: string): string | null {
  return MASTER_KEY.exec(presented.trim())?.[1] ?? null;
}

export interface ApiCredentials {
  apiKey: IssuedSecret;
  apiSecret: { plaintext: string; hash: string };
}

export function newApiCredentials(): ApiCredentials {
  const keyId = randomBytes(12).toString('hex');
  const apiKey = `ak_${keyId}`;
  const apiSecret = `as_${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return {
    apiKey: { plaintext: apiKey, keyId, hash: sha256(apiKey) },
    apiSecret: { plaintext: apiSecret, hash: sha256(apiSecret) },
  };
}
