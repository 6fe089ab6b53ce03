/**
 * Password hashing: argon2id with OWASP's minimum (m = 19 MiB, t = 2, p = 1). argon2 runs on
 * libuv's thread pool, off the event loop; a semaphore bounds how many hashes run at once so a
 * burst of sign-ups or sign-ins cannot take every pool thread (DNS, file I/O) or 19 MiB × N memory.
 */
import { availableParallelism } from 'node:os';
import argon2 from 'argon2';

const OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Hashes in flight at most; the rest wait their turn. */
export const HASH_CONCURRENCY = Math.max(1, Math.min(4, availableParallelism()));

let running = 0;
const waiting: (() => void)[] = [];

async function bounded<T>(work: () => Promise<T>): Promise<T> {
  if (running >= HASH_CONCURRENCY) await new Promise<void>((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await work();
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

export function hashPassword(password: string): Promise<string> {
  return bounded(() => argon2.hash(password, OPTIONS));
}

export function verifyPassword(hash: string, password: string): Promise<boolean> {
  return bounded(() => argon2.verify(hash, password).catch(() => false));
}
