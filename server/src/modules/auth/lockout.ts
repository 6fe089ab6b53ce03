/**
 * Growing lockout after repeated sign-in failures, per account and per client address: after
 * `threshold` failures the key is blocked for `baseSeconds`, and each further lockout doubles
 * it (capped). A success clears the account's record. Kept in memory: one instance's view; the
 * identity issue moves it to rate-limiter-flexible on PostgreSQL / Redis for several instances.
 */
export interface LockoutOptions {
  /** @default 5 */
  threshold?: number;
  /** @default 60 */
  baseSeconds?: number;
  /** @default 3600 */
  maxSeconds?: number;
  /** Failures older than this are forgotten. @default 900 */
  windowSeconds?: number;
}

interface Entry {
  failures: number[];
  lockouts: number;
  blockedUntil: number;
}

export class Lockout {
  private readonly entries = new Map<string, Entry>();
  private readonly threshold: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly windowMs: number;

  constructor(options: LockoutOptions = {}) {
    this.threshold = options.threshold ?? 5;
    this.baseMs = (options.baseSeconds ?? 60) * 1000;
    this.maxMs = (options.maxSeconds ?? 3600) * 1000;
    this.windowMs = (options.windowSeconds ?? 900) * 1000;
  }

  /** Seconds until `key` may try again, or 0. */
  retryAfter(key: string, now = Date.now()): number {
    const entry = this.entries.get(key);
    return entry && entry.blockedUntil > now ? Math.ceil((entry.blockedUntil - now) / 1000) : 0;
  }

  fail(key: string, now = Date.now()): void {
    const entry = this.entries.get(key) ?? { failures: [], lockouts: 0, blockedUntil: 0 };
    entry.failures = entry.failures.filter((at) => now - at < this.windowMs);
    entry.failures.push(now);
    if (entry.failures.length >= this.threshold) {
      entry.blockedUntil = now + Math.min(this.maxMs, this.baseMs * 2 ** entry.lockouts);
      entry.lockouts += 1;
      entry.failures = [];
    }
    this.entries.set(key, entry);
    if (this.entries.size > 100_000) this.prune(now);
  }

  succeed(key: string): void {
    this.entries.delete(key);
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.blockedUntil < now && entry.failures.every((at) => now - at >= this.windowMs))
        this.entries.delete(key);
    }
  }
}
