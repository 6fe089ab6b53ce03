/**
 * Growing lockout after repeated failures, per key (an account, an address): after `threshold`
 * failures within the window the key is blocked for `baseSeconds`, and each further lockout
 * doubles it (capped). A success clears the key. Kept in PostgreSQL, so every instance shares
 * the same counters; each update is one atomic statement.
 */
import type { CentralPrisma } from '../../db/database.js';

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

export class Lockout {
  private readonly threshold: number;
  private readonly baseSeconds: number;
  private readonly maxSeconds: number;
  private readonly windowSeconds: number;

  constructor(
    private readonly db: Pick<CentralPrisma, '$queryRaw' | '$executeRaw'>,
    /** Namespace of the keys, e.g. `sign_in.account`. */
    private readonly scope: string,
    options: LockoutOptions = {},
  ) {
    this.threshold = options.threshold ?? 5;
    this.baseSeconds = options.baseSeconds ?? 60;
    this.maxSeconds = options.maxSeconds ?? 3600;
    this.windowSeconds = options.windowSeconds ?? 900;
  }

  /** Seconds until `key` may try again, or 0. */
  async retryAfter(key: string): Promise<number> {
    const [row] = await this.db.$queryRaw<{ wait: number | null }[]>`
      SELECT ceil(extract(epoch FROM blocked_until - now()))::int AS wait
        FROM rate_limits WHERE scope = ${this.scope} AND key = ${key} AND blocked_until > now()`;
    return Math.max(0, row?.wait ?? 0);
  }

  async fail(key: string): Promise<void> {
    await this.db.$executeRaw`
      INSERT INTO rate_limits AS r (scope, key, failures, window_started_at)
      VALUES (${this.scope}, ${key}, 1, now())
      ON CONFLICT (scope, key) DO UPDATE SET
        failures = CASE
          WHEN r.window_started_at < now() - make_interval(secs => ${this.windowSeconds}) THEN 1
          WHEN r.failures + 1 >= ${this.threshold} THEN 0
          ELSE r.failures + 1 END,
        window_started_at = CASE
          WHEN r.window_started_at < now() - make_interval(secs => ${this.windowSeconds}) THEN now()
          ELSE r.window_started_at END,
        blocked_until = CASE
          WHEN r.window_started_at >= now() - make_interval(secs => ${this.windowSeconds}) AND r.failures + 1 >= ${this.threshold}
          THEN now() + make_interval(secs => least(${this.maxSeconds}, ${this.baseSeconds} * power(2, r.lockouts)))
          ELSE r.blocked_until END,
        lockouts = CASE
          WHEN r.window_started_at >= now() - make_interval(secs => ${this.windowSeconds}) AND r.failures + 1 >= ${this.threshold}
          THEN r.lockouts + 1
          ELSE r.lockouts END`;
    // A fresh key whose threshold is 1 blocks at once (the insert path above cannot).
    if (this.threshold <= 1) {
      await this.db
        .$executeRaw`UPDATE rate_limits SET blocked_until = now() + make_interval(secs => ${this.baseSeconds}), failures = 0
        WHERE scope = ${this.scope} AND key = ${key} AND blocked_until IS NULL`;
    }
    // Now and then, forget keys that are long quiet.
    if (Math.random() < 0.01) {
      await this.db.$executeRaw`DELETE FROM rate_limits
        WHERE window_started_at < now() - interval '1 day' AND (blocked_until IS NULL OR blocked_until < now())`;
    }
  }

  async succeed(key: string): Promise<void> {
    await this.db.$executeRaw`DELETE FROM rate_limits WHERE scope = ${this.scope} AND key = ${key}`;
  }
}
