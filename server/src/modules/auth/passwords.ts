/**
 * Password hashing: argon2id with OWASP's minimum (m = 19 MiB, t = 2, p = 1). argon2 runs on
 * libuv's thread pool, off the event loop; a semaphore bounds how many hashes run at once so a
 * burst of sign-ups or sign-ins cannot take every pool thread (DNS, file I/O) or 19 MiB × N memory.
 *
 * Sign-ins also take a share: one client address may hold only a few of the slots (running or
 * waiting) at once, and its excess is refused at once, before any hash is queued, so a flood
 * from one address cannot make everyone else's sign-in wait (README, "Security").
 */
import { availableParallelism } from 'node:os';
import argon2 from 'argon2';
import { Counter, Gauge, type Registry } from 'prom-client';

const OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Hashes in flight at most; the rest wait their turn. */
export const HASH_CONCURRENCY = Math.max(1, Math.min(4, availableParallelism()));

/** Slots one client address may hold at once: half of them, at least one (HASH_SLOTS_PER_ADDRESS). */
export const DEFAULT_HASH_SLOTS_PER_ADDRESS = Math.max(1, Math.floor(HASH_CONCURRENCY / 2));

let running = 0;
const waiting: (() => void)[] = [];
/** Claims held per client address (sign-ins between their claim and their release). */
const held = new Map<string, number>();
const totals = { waited: 0, refused: 0 };

async function bounded<T>(work: () => Promise<T>): Promise<T> {
  if (running >= HASH_CONCURRENCY) {
    totals.waited += 1;
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
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

/** A place among the hashes of one client address, held for one sign-in attempt. */
export interface HashClaim {
  /** Verifies within the global slots (waiting for one if need be). */
  verify(hash: string, password: string): Promise<boolean>;
  /** Gives the place back; idempotent. */
  release(): void;
}

/**
 * Claims one of `share` places for `address`. @returns null when the address already holds them
 * all: refuse the attempt then, nothing has been queued.
 */
export function claimHashSlot(address: string, share: number): HashClaim | null {
  const holding = held.get(address) ?? 0;
  if (holding >= share) {
    totals.refused += 1;
    return null;
  }
  held.set(address, holding + 1);
  let released = false;
  return {
    verify: (hash, password) => bounded(() => argon2.verify(hash, password).catch(() => false)),
    release() {
      if (released) return;
      released = true;
      const left = (held.get(address) ?? 1) - 1;
      if (left > 0) held.set(address, left);
      else held.delete(address);
    },
  };
}

/** The hashing slots' state on /metrics (the slots are the process's, like the thread pool). */
export function registerHashingMetrics(registry: Registry): void {
  new Gauge({
    name: 'onramp_password_hashes_running',
    help: 'argon2 hashes running now',
    registers: [registry],
    collect() {
      this.set(running);
    },
  });
  new Gauge({
    name: 'onramp_password_hashes_waiting',
    help: 'argon2 hashes waiting for a slot now',
    registers: [registry],
    collect() {
      this.set(waiting.length);
    },
  });
  new Counter({
    name: 'onramp_password_hash_waits_total',
    help: 'argon2 hashes that had to wait for a slot',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(totals.waited);
    },
  });
  new Counter({
    name: 'onramp_password_hash_refusals_total',
    help: 'password sign-ins refused because their client address held its share of the slots',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(totals.refused);
    },
  });
}
